"""Pairs each LiDAR sweep with the camera, odometry, IMU and command messages that belong to it.

Shared by the live node and offline replay, so both plan exactly the same frames from the same messages.
Works on ROS message objects; holds no rclpy node and does no heavy conversion (that is the worker's job).
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..features import NUM_COMMANDS
from .conversions import ConversionError, acceleration_from_imu, stamp_to_ns, velocity_from_odometry

CAMERA_NAMES = ("camera_left", "camera_front", "camera_right")
ACCELERATION_SOURCES = ("auto", "imu", "odometry")
_NS = 1e9


class FrameSkipped(Exception):
    """A sweep that cannot be planned: `reason` is a short key for counting, the message says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SyncConfig:
    sync_tolerance_s: float = 0.1
    acceleration_source: str = "auto"
    acceleration_window_s: float = 0.1
    default_command: int = 3
    sync_wait_s: float = 0.05
    buffer_size: int = 64

    def __post_init__(self) -> None:
        if self.acceleration_source not in ACCELERATION_SOURCES:
            raise ValueError(f"acceleration_source must be one of {ACCELERATION_SOURCES}, "
                             f"got {self.acceleration_source!r}")
        if not 0 <= self.default_command < NUM_COMMANDS:
            raise ValueError(f"default_command must be 0..3, got {self.default_command}")
        if self.sync_tolerance_s <= 0 or self.acceleration_window_s <= 0 or self.sync_wait_s < 0:
            raise ValueError("sync_tolerance_s and acceleration_window_s must be positive, sync_wait_s >= 0")


@dataclass(frozen=True)
class FrameInputs:
    """Everything one plan needs, with the cameras and cloud still as messages."""

    stamp_ns: int
    cloud: Any
    cameras: tuple[Any, Any, Any]
    velocity: tuple[float, float]
    acceleration: tuple[float, float]
    command: int
    acceleration_source: str


class MessageBuffer:
    """The newest messages of one topic, searchable by header stamp."""

    def __init__(self, size: int):
        self._items: deque[tuple[int, Any]] = deque(maxlen=size)

    def add(self, msg: Any) -> None:
        self._items.append((stamp_to_ns(msg.header.stamp), msg))

    def __len__(self) -> int:
        return len(self._items)

    def latest(self) -> tuple[int, Any] | None:
        return self._items[-1] if self._items else None

    def closest(self, stamp_ns: int) -> tuple[int, Any] | None:
        return min(self._items, key=lambda item: abs(item[0] - stamp_ns), default=None)

    def newest_at_or_before(self, stamp_ns: int) -> tuple[int, Any] | None:
        return max((item for item in self._items if item[0] <= stamp_ns), key=lambda item: item[0], default=None)


class InputSynchronizer:
    """Buffers inputs; `assemble(cloud)` returns the frame's inputs or raises FrameSkipped saying what is missing.

    Messages of different topics arrive in any order, so a cloud is assembled once every required input has a
    message at or after its stamp (`is_complete`), or after `sync_wait_s`; callers (node, replay) do the waiting.
    Thread-safe: the node adds messages from the executor and assembles on its worker thread.
    """

    def __init__(self, config: SyncConfig = SyncConfig()):
        self.config = config
        self.cameras = [MessageBuffer(config.buffer_size) for _ in CAMERA_NAMES]
        self.odometry = MessageBuffer(config.buffer_size * 4)
        self.imu = MessageBuffer(config.buffer_size * 4)
        self.command: int | None = None
        self._lock = threading.Lock()

    def add_camera(self, index: int, msg: Any) -> None:
        with self._lock:
            self.cameras[index].add(msg)

    def add_odometry(self, msg: Any) -> None:
        with self._lock:
            self.odometry.add(msg)

    def add_imu(self, msg: Any) -> None:
        with self._lock:
            self.imu.add(msg)

    def is_complete(self, stamp_ns: int) -> bool:
        """True when no required input can still bring a message closer to `stamp_ns`."""
        required = [*self.cameras, self.odometry] + ([self.imu] if self.config.acceleration_source == "imu" else [])
        with self._lock:
            return all((latest := buffer.latest()) is not None and latest[0] >= stamp_ns for buffer in required)

    def set_command(self, value: int) -> None:
        """Driving command 0 left, 1 straight, 2 right, 3 unknown; anything else is rejected."""
        if not 0 <= int(value) < NUM_COMMANDS:
            raise ConversionError(f"command: {value} is not 0 (left), 1 (straight), 2 (right) or 3 (unknown)")
        self.command = int(value)

    def _match(self, name: str, buffer: MessageBuffer, stamp_ns: int) -> tuple[int, Any]:
        found = buffer.closest(stamp_ns)
        if found is None:
            raise FrameSkipped(f"{name}_missing", f"no {name} message received yet")
        offset = (found[0] - stamp_ns) / _NS
        if abs(offset) > self.config.sync_tolerance_s:
            raise FrameSkipped(f"{name}_out_of_sync", f"nearest {name} message is {offset:+.3f} s from the cloud stamp "
                                                      f"(tolerance {self.config.sync_tolerance_s} s)")
        return found

    def _acceleration_from_odometry(self, stamp_ns: int, odom: Any) -> tuple[float, float]:
        """Finite difference of ego-frame velocity over >= the window, with the rotating-frame term w x v."""
        stamp1 = stamp_to_ns(odom.header.stamp)
        earlier = self.odometry.newest_at_or_before(stamp1 - int(self.config.acceleration_window_s * _NS))
        if earlier is None:
            raise FrameSkipped("acceleration_unavailable", f"odometry history shorter than acceleration_window_s "
                                                           f"({self.config.acceleration_window_s} s) and no IMU")
        dt = (stamp1 - earlier[0]) / _NS
        if dt > 4 * self.config.acceleration_window_s:
            raise FrameSkipped("acceleration_unavailable", f"odometry gap of {dt:.3f} s: cannot difference velocity")
        (vx1, vy1), (vx0, vy0) = velocity_from_odometry(odom), velocity_from_odometry(earlier[1])
        yaw_rate = float(odom.twist.twist.angular.z)
        return ((vx1 - vx0) / dt - yaw_rate * vy1, (vy1 - vy0) / dt + yaw_rate * vx1)

    def _acceleration(self, stamp_ns: int, odom: Any) -> tuple[tuple[float, float], str]:
        source = self.config.acceleration_source
        if source == "imu" or (source == "auto" and len(self.imu)):
            try:
                return acceleration_from_imu(self._match("imu", self.imu, stamp_ns)[1]), "imu"
            except (FrameSkipped, ConversionError):
                if source == "imu":
                    raise
        return self._acceleration_from_odometry(stamp_ns, odom), "odometry"

    def assemble(self, cloud: Any) -> FrameInputs:
        with self._lock:
            return self._assemble(cloud)

    def _assemble(self, cloud: Any) -> FrameInputs:
        stamp_ns = stamp_to_ns(cloud.header.stamp)
        cameras = tuple(self._match(name, buffer, stamp_ns)[1] for name, buffer in zip(CAMERA_NAMES, self.cameras))
        odom = self._match("odometry", self.odometry, stamp_ns)[1]
        try:
            velocity = velocity_from_odometry(odom)
            acceleration, source = self._acceleration(stamp_ns, odom)
        except ConversionError as error:
            raise FrameSkipped("bad_ego_state", str(error)) from error
        command = self.config.default_command if self.command is None else self.command
        return FrameInputs(stamp_ns, cloud, cameras, velocity, acceleration, command, source)

