"""Pairs each LiDAR sweep with the camera, odometry, IMU and command messages that belong to it.

Shared by the live node and offline replay, so both plan exactly the same frames from the same messages.
Works on ROS message objects; holds no rclpy node and does no heavy conversion (that is the worker's job).
The degradation policy for each input (docs/degradation.md) is implemented here: cameras and velocity are
required, the acceleration falls back from the IMU to odometry differencing to zero and the command to its
default, each fallback reported as a `Fallback` on the frame.
"""
from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..features import NUM_COMMANDS
from .conversions import ConversionError, acceleration_from_imu, stamp_to_ns, velocity_from_odometry
from .message_size import payload_bytes

CAMERA_NAMES = ("camera_left", "camera_front", "camera_right")
ACCELERATION_SOURCES = ("auto", "imu", "odometry")
CLOCK_JUMP_TOLERANCE_S = 1.0
"""A clock reading this far (or more) behind the newest one is a backward jump (a looped bag with /clock)."""
_NS = 1e9


class FrameSkipped(Exception):
    """A sweep that cannot be planned: `reason` is a short key for counting, the message says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Fallback:
    """A frame planned with a degraded minor input: which input, and what was used instead and why."""

    input: str
    message: str


@dataclass(frozen=True)
class SyncConfig:
    """How inputs are paired with a cloud, how far each may be from it, and how much of each is buffered."""

    sync_tolerance_s: float = 0.1
    """Largest |camera, odometry or IMU stamp - cloud stamp| for a frame planned without fallbacks."""
    acceleration_source: str = "auto"
    """Preferred acceleration: imu, odometry, or auto (the IMU once one has published, else odometry)."""
    acceleration_window_s: float = 0.1
    """Shortest baseline over which odometry velocities are differenced."""
    default_command: int = 3
    sync_wait_s: float = 0.05
    odometry_tolerance_s: float = 1.5
    """Largest |odometry stamp - cloud stamp| for the velocity; beyond sync_tolerance_s the frame carries a
    Fallback (low-rate odometry)."""
    acceleration_max_gap_s: float = 2.0
    """Longest odometry gap differenced into an acceleration; beyond it the acceleration is zero (Fallback)."""
    buffer_window_s: float = 1.0
    """Messages older than the newest of their topic by more than this are dropped."""
    buffer_max_bytes: int = 64 * 2**20
    """Byte budget of each topic's buffer; the oldest messages go first."""
    lidar_history_s: tuple[float, ...] = ()
    """How long before each cloud the earlier sweeps of a model with several LiDAR channels were taken (the model
    config's `lidar_history_s`): the cloud nearest each, within sync_tolerance_s, joins the frame with its odometry."""

    def __post_init__(self) -> None:
        if self.acceleration_source not in ACCELERATION_SOURCES:
            raise ValueError(f"acceleration_source must be one of {ACCELERATION_SOURCES}, "
                             f"got {self.acceleration_source!r}")
        if not 0 <= self.default_command < NUM_COMMANDS:
            raise ValueError(f"default_command must be 0..3, got {self.default_command}")
        if self.sync_tolerance_s <= 0 or self.acceleration_window_s <= 0 or self.sync_wait_s < 0:
            raise ValueError("sync_tolerance_s and acceleration_window_s must be positive, sync_wait_s >= 0, got "
                             f"{self.sync_tolerance_s}, {self.acceleration_window_s}, {self.sync_wait_s}")
        if self.odometry_tolerance_s < self.sync_tolerance_s:
            raise ValueError(f"odometry_tolerance_s must be >= sync_tolerance_s ({self.sync_tolerance_s}), "
                             f"got {self.odometry_tolerance_s}")
        if self.acceleration_max_gap_s < self.acceleration_window_s:
            raise ValueError(f"acceleration_max_gap_s must be >= acceleration_window_s "
                             f"({self.acceleration_window_s}), got {self.acceleration_max_gap_s}")
        if self.buffer_window_s < self.sync_tolerance_s:
            raise ValueError(f"buffer_window_s must be >= sync_tolerance_s ({self.sync_tolerance_s}), "
                             f"got {self.buffer_window_s}")
        if self.buffer_max_bytes <= 0:
            raise ValueError(f"buffer_max_bytes must be positive, got {self.buffer_max_bytes}")
        object.__setattr__(self, "lidar_history_s", tuple(float(s) for s in self.lidar_history_s))
        if not all(s > 0 for s in self.lidar_history_s):
            raise ValueError(f"lidar_history_s must hold positive seconds, got {self.lidar_history_s}")

    @property
    def odometry_window_s(self) -> float:
        """Odometry history kept: enough to difference the matched message over the longest allowed gap, and to
        place the earliest sweep of the LiDAR history."""
        return max(self.buffer_window_s, self.odometry_tolerance_s + self.acceleration_max_gap_s,
                   self.cloud_window_s + self.odometry_tolerance_s)

    @property
    def cloud_window_s(self) -> float:
        """Clouds kept for the LiDAR history (none without one)."""
        return max(self.lidar_history_s, default=0.0) + self.sync_tolerance_s


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
    """imu, odometry or zero."""
    fallbacks: tuple[Fallback, ...] = ()
    odometry: Any = None
    """The odometry message the velocity came from (its pose places the Path in the odometry frame)."""
    past_sweeps: tuple[PastSweep | None, ...] = ()
    """One per `lidar_history_s`: the earlier cloud and the odometry that places it, or None when there is none
    (a Fallback: the current sweep takes its place)."""


@dataclass(frozen=True)
class PastSweep:
    """An earlier cloud of the LiDAR history and the odometry message nearest its stamp."""

    cloud: Any
    stamp_ns: int
    odometry: Any


class MessageBuffer:
    """Messages of one topic sorted by header stamp (any arrival order), bounded by a time window and a byte
    budget rather than a count: messages more than `window_s` older than the newest go, then the oldest until the
    budget holds (the newest always stays).
    """

    def __init__(self, window_s: float, max_bytes: int):
        self.window_ns = int(window_s * _NS)
        self.max_bytes = max_bytes
        self._stamps: list[int] = []
        self._items: list[tuple[int, Any, int]] = []
        self.nbytes = 0

    def add(self, msg: Any) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        index = bisect.bisect_right(self._stamps, stamp)
        self._stamps.insert(index, stamp)
        self._items.insert(index, (stamp, msg, payload_bytes(msg)))
        self.nbytes += self._items[index][2]
        cutoff = self._stamps[-1] - self.window_ns
        while self._stamps[0] < cutoff or (self.nbytes > self.max_bytes and len(self._items) > 1):
            self._pop_oldest()

    def _pop_oldest(self) -> None:
        self._stamps.pop(0)
        self.nbytes -= self._items.pop(0)[2]

    def clear(self) -> None:
        self._stamps.clear()
        self._items.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def latest(self) -> tuple[int, Any] | None:
        """(stamp, message) with the newest stamp."""
        return self._items[-1][:2] if self._items else None

    def closest(self, stamp_ns: int) -> tuple[int, Any] | None:
        index = bisect.bisect_left(self._stamps, stamp_ns)
        near = [self._items[i][:2] for i in (index - 1, index) if 0 <= i < len(self._items)]
        return min(near, key=lambda item: abs(item[0] - stamp_ns), default=None)

    def newest_at_or_before(self, stamp_ns: int) -> tuple[int, Any] | None:
        index = bisect.bisect_right(self._stamps, stamp_ns)
        return self._items[index - 1][:2] if index else None


def check_stamp_not_future(name: str, stamp_ns: int, now_ns: int, tolerance_s: float) -> None:
    """FrameSkipped('future_stamp') when a message is stamped more than `tolerance_s` ahead of the clock; a clock
    at 0 (sim time before the first /clock) checks nothing.
    """
    ahead = (stamp_ns - now_ns) / _NS
    if now_ns > 0 and ahead > tolerance_s:
        raise FrameSkipped("future_stamp", f"{name} stamp is {ahead:.3f} s ahead of the node clock "
                                           f"(future_stamp_tolerance_s {tolerance_s})")


class ClockWatch:
    """Spots a backward jump of the clock (a looped bag with /clock), after which time-keyed state is reset."""

    def __init__(self, tolerance_s: float = CLOCK_JUMP_TOLERANCE_S):
        self.tolerance_ns = int(tolerance_s * _NS)
        self._newest: int | None = None
        self._lock = threading.Lock()

    def read(self, clock: Callable[[], int]) -> tuple[int, int]:
        """(now, how far (ns) the clock jumped back since the newest reading, 0 when it did not). The clock is read
        under the lock, so threads reading it around a /clock step cannot hand their readings in out of order,
        which would look like a backward jump; a jump makes `now` the new reference."""
        with self._lock:
            now_ns = clock()
            jump = 0 if self._newest is None or now_ns > self._newest - self.tolerance_ns else self._newest - now_ns
            self._newest = now_ns if jump or self._newest is None else max(self._newest, now_ns)
            return now_ns, jump


class InputSynchronizer:
    """Buffers inputs; `assemble(cloud)` returns the frame's inputs or raises FrameSkipped saying what is missing.

    Messages of different topics arrive in any order, so a cloud is assembled once every required input has a
    message at or after its stamp (`is_complete`), or after `sync_wait_s`; callers (node, replay) do the waiting.
    A cloud not newer than the previous one is skipped, so outputs never go back in time.
    Thread-safe: the node adds messages from the executor and assembles on its worker thread.
    """

    def __init__(self, config: SyncConfig = SyncConfig()):
        self.config = config
        window, budget = config.buffer_window_s, config.buffer_max_bytes
        self.cameras = [MessageBuffer(window, budget) for _ in CAMERA_NAMES]
        self.odometry = MessageBuffer(config.odometry_window_s, budget)
        self.imu = MessageBuffer(window, budget)
        self.clouds = MessageBuffer(config.cloud_window_s, budget)
        self.command: int | None = None
        self.imu_seen = False
        self.last_cloud_ns: int | None = None
        self._lock = threading.Lock()

    def add_camera(self, index: int, msg: Any) -> None:
        with self._lock:
            self.cameras[index].add(msg)

    def add_odometry(self, msg: Any) -> None:
        with self._lock:
            self.odometry.add(msg)

    def add_cloud(self, msg: Any) -> None:
        """Keep a cloud for the LiDAR history of later frames (a model with one LiDAR channel keeps none)."""
        if self.config.lidar_history_s:
            with self._lock:
                self.clouds.add(msg)

    def add_imu(self, msg: Any) -> None:
        with self._lock:
            self.imu.add(msg)
            self.imu_seen = True

    def reset(self) -> None:
        """Forget every buffered message, the acceleration history and the cloud order (after a clock jump); the
        latched command stays.
        """
        with self._lock:
            for buffer in (*self.cameras, self.odometry, self.imu, self.clouds):
                buffer.clear()
            self.imu_seen = False
            self.last_cloud_ns = None

    def buffered_bytes(self) -> int:
        with self._lock:
            return sum(buffer.nbytes for buffer in (*self.cameras, self.odometry, self.imu, self.clouds))

    def _prefers_imu(self) -> bool:
        source = self.config.acceleration_source
        return source == "imu" or (source == "auto" and self.imu_seen)

    def is_complete(self, stamp_ns: int) -> bool:
        """True when no required input can still bring a message closer to `stamp_ns`."""
        with self._lock:
            required = [*self.cameras, self.odometry] + ([self.imu] if self._prefers_imu() else [])
            return all((latest := buffer.latest()) is not None and latest[0] >= stamp_ns for buffer in required)

    def set_command(self, value: int) -> None:
        """Driving command 0 left, 1 straight, 2 right, 3 unknown; anything else is rejected."""
        if not 0 <= int(value) < NUM_COMMANDS:
            raise ConversionError(f"command: {value} is not 0 (left), 1 (straight), 2 (right) or 3 (unknown)")
        self.command = int(value)

    def _match(self, name: str, buffer: MessageBuffer, stamp_ns: int, tolerance_s: float) -> tuple[int, Any]:
        found = buffer.closest(stamp_ns)
        if found is None:
            raise FrameSkipped(f"{name}_missing", f"no {name} message received yet")
        offset = (found[0] - stamp_ns) / _NS
        if abs(offset) > tolerance_s:
            raise FrameSkipped(f"{name}_out_of_sync", f"nearest {name} message is {offset:+.3f} s from the cloud stamp "
                                                      f"(tolerance {tolerance_s} s)")
        return found

    def _acceleration_from_odometry(self, odom_stamp: int, odom: Any) -> tuple[tuple[float, float], float]:
        """Finite difference of ego-frame velocity over the gap available (>= the window), with the rotating-frame
        term w x v, and that gap in s; FrameSkipped when no gap within the bound exists.
        """
        window, max_gap = self.config.acceleration_window_s, self.config.acceleration_max_gap_s
        earlier = self.odometry.newest_at_or_before(odom_stamp - int(window * _NS))
        if earlier is None:
            raise FrameSkipped("acceleration_unavailable", f"no odometry message {window} s before the matched one")
        dt = (odom_stamp - earlier[0]) / _NS
        if dt > max_gap:
            raise FrameSkipped("acceleration_unavailable",
                               f"odometry gap {dt:.2f} s > acceleration_max_gap_s {max_gap}")
        try:
            (vx1, vy1), (vx0, vy0) = velocity_from_odometry(odom), velocity_from_odometry(earlier[1])
        except ConversionError as error:
            raise FrameSkipped("acceleration_unavailable", f"earlier {error}") from error
        yaw_rate = float(odom.twist.twist.angular.z)
        return ((vx1 - vx0) / dt - yaw_rate * vy1, (vy1 - vy0) / dt + yaw_rate * vx1), dt

    def _acceleration(self, stamp_ns: int, odom_stamp: int,
                      odom: Any) -> tuple[tuple[float, float], str, Fallback | None]:
        """IMU -> odometry differencing -> zero: the first that works, its name, and a Fallback when it is not the
        preferred source (IMU for `imu`, and for `auto` once an IMU has published; odometry otherwise).
        """
        prefer_imu, why = self._prefers_imu(), []
        if self.config.acceleration_source != "odometry":
            try:
                return acceleration_from_imu(self._match("imu", self.imu, stamp_ns,
                                                         self.config.sync_tolerance_s)[1]), "imu", None
            except (FrameSkipped, ConversionError) as error:
                if prefer_imu:
                    why.append(f"IMU: {error}")
        try:
            acceleration, gap = self._acceleration_from_odometry(odom_stamp, odom)
            fallback = None if not prefer_imu else Fallback(
                "acceleration", f"odometry differenced over {gap:.2f} s ({'; '.join(why)})")
            return acceleration, "odometry", fallback
        except FrameSkipped as skip:
            why.append(f"odometry: {skip.detail}")
        return (0.0, 0.0), "zero", Fallback("acceleration", f"zero ({'; '.join(why)})")

    def assemble(self, cloud: Any) -> FrameInputs:
        with self._lock:
            return self._assemble(cloud)

    def _assemble(self, cloud: Any) -> FrameInputs:
        stamp_ns = stamp_to_ns(cloud.header.stamp)
        previous, self.last_cloud_ns = self.last_cloud_ns, max(stamp_ns, self.last_cloud_ns or stamp_ns)
        if previous is not None and stamp_ns <= previous:
            raise FrameSkipped("cloud_out_of_order", f"cloud stamp is {(previous - stamp_ns) / _NS:.3f} s older than "
                                                     "the previous cloud's (or the same)")
        tolerance = self.config.sync_tolerance_s
        cameras = tuple(self._match(name, buffer, stamp_ns, tolerance)[1]
                        for name, buffer in zip(CAMERA_NAMES, self.cameras))
        odom_stamp, odom = self._match("odometry", self.odometry, stamp_ns, self.config.odometry_tolerance_s)
        fallbacks = []
        offset = (odom_stamp - stamp_ns) / _NS
        if abs(offset) > tolerance:
            fallbacks.append(Fallback("odometry", f"velocity from odometry {offset:+.3f} s from the cloud stamp "
                                                  f"(beyond sync_tolerance_s {tolerance})"))
        try:
            velocity = velocity_from_odometry(odom)
        except ConversionError as error:
            raise FrameSkipped("bad_ego_state", str(error)) from error
        acceleration, source, fallback = self._acceleration(stamp_ns, odom_stamp, odom)
        fallbacks += [fallback] if fallback else []
        command = self.command
        if command is None:
            command = self.config.default_command
            fallbacks.append(Fallback("command", f"no command received: default_command {command}"))
        past_sweeps = tuple(self._past_sweep(stamp_ns, ago, fallbacks) for ago in self.config.lidar_history_s)
        return FrameInputs(stamp_ns, cloud, cameras, velocity, acceleration, command, source, tuple(fallbacks), odom,
                           past_sweeps)

    def _past_sweep(self, stamp_ns: int, ago_s: float, fallbacks: list[Fallback]) -> PastSweep | None:
        """The cloud `ago_s` before `stamp_ns` (within sync_tolerance_s) with the odometry nearest it; None and a
        Fallback when either is missing (after start-up, or a gap in the LiDAR or odometry)."""
        tolerance = self.config.sync_tolerance_s
        found = self.clouds.closest(stamp_ns - int(ago_s * _NS))
        odom = found and self.odometry.closest(found[0])
        if found is None or abs(found[0] - stamp_ns + ago_s * _NS) > tolerance * _NS:
            why = f"no cloud within {tolerance} s of {ago_s:g} s before this one"
        elif odom is None or abs(odom[0] - found[0]) > self.config.odometry_tolerance_s * _NS:
            why = f"no odometry within {self.config.odometry_tolerance_s} s of the cloud {ago_s:g} s before this one"
        else:
            return PastSweep(found[1], found[0], odom[1])
        fallbacks.append(Fallback("lidar_history", f"{why}: the current sweep in its place"))
        return None
