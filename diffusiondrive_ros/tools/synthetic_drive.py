"""Deterministic synthetic urban drive, written as a real rosbag2 (MCAP or sqlite3).

The ego drives a straight two-lane road at 10 m/s, turns left or right at a four-way
intersection and later stops behind a vehicle standing in its lane. A ray-cast spinning
LiDAR, three rasterised cameras (NAVSIM-like rig), odometry, IMU, the driving command and the
static transforms all come from one seeded world, so a seed fixes every message. Neither rclpy
nor torch is imported: messages are rosbags ``Stores.ROS2_KILTED`` classes.

Frames: ``map`` (world, z up), ``base_link`` (ego rear axle on the ground, REP-103),
``lidar_top`` (axes of base_link), ``camera_<name>`` (REP-103 body frame of the camera) and
``camera_<name>_optical`` (z forward, x right, y down; images are stamped in it). Sensors are
instantaneous: a sweep is a snapshot at its stamp (no motion skew) and the cameras fire at the
LiDAR instants, so a planner can pair them exactly.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterator, Literal, Mapping, Sequence

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from transforms3d.quaternions import mat2quat

EPOCH_NS = 1_700_000_000 * 10**9
GRAVITY = 9.80665

MAP_FRAME = "map"
BASE_FRAME = "base_link"
LIDAR_FRAME = "lidar_top"
CAMERA_NAMES = ("left", "front", "right")

TOPIC_CAMERA_IMAGE: Mapping[str, str] = MappingProxyType(
    {name: f"/camera/{name}/image_raw/compressed" for name in CAMERA_NAMES}
)
TOPIC_CAMERA_INFO: Mapping[str, str] = MappingProxyType(
    {name: f"/camera/{name}/camera_info" for name in CAMERA_NAMES}
)
TOPIC_LIDAR = "/lidar/points"
TOPIC_ODOMETRY = "/odometry"
TOPIC_IMU = "/imu"
TOPIC_COMMAND = "/command"
TOPIC_TF_STATIC = "/tf_static"

COMMAND_LEFT, COMMAND_STRAIGHT, COMMAND_RIGHT, COMMAND_UNKNOWN = 0, 1, 2, 3

TOPIC_TYPES: Mapping[str, str] = MappingProxyType(
    {
        TOPIC_TF_STATIC: "tf2_msgs/msg/TFMessage",
        TOPIC_COMMAND: "std_msgs/msg/UInt8",
        TOPIC_ODOMETRY: "nav_msgs/msg/Odometry",
        TOPIC_IMU: "sensor_msgs/msg/Imu",
        TOPIC_LIDAR: "sensor_msgs/msg/PointCloud2",
        **{TOPIC_CAMERA_INFO[n]: "sensor_msgs/msg/CameraInfo" for n in CAMERA_NAMES},
        **{TOPIC_CAMERA_IMAGE[n]: "sensor_msgs/msg/CompressedImage" for n in CAMERA_NAMES},
    }
)


def camera_frame(name: str) -> str:
    """REP-103 body frame of camera ``name`` (x forward)."""
    return f"camera_{name}"


def optical_frame(name: str) -> str:
    """Optical frame of camera ``name`` (z forward, x right, y down); images use it."""
    return f"camera_{name}_optical"


# --------------------------------------------------------------------------------------------
# Configuration and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveConfig:
    """Everything that defines a synthetic drive; equal configs give identical bags."""

    seed: int = 0
    duration_s: float = 20.0
    turn: Literal["left", "right"] = "left"
    lidar_rate_hz: float = 10.0
    camera_rate_hz: float = 10.0
    odom_rate_hz: float = 50.0
    imu_rate_hz: float = 50.0
    image_width: int = 1920
    image_height: int = 1080
    jpeg_quality: int = 85
    lidar_beams: int = 64
    lidar_azimuth_steps: int = 2000
    lidar_noise_std_m: float = 0.02
    storage: Literal["mcap", "sqlite3"] = "mcap"
    start_time_ns: int = EPOCH_NS

    def __post_init__(self) -> None:
        if self.turn not in ("left", "right"):
            raise ValueError(f"turn must be 'left' or 'right', got {self.turn!r}")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {self.storage!r}")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        rates = (self.lidar_rate_hz, self.camera_rate_hz, self.odom_rate_hz, self.imu_rate_hz)
        if min(rates) <= 0:
            raise ValueError("all sensor rates must be positive")
        if min(self.image_width, self.image_height, self.lidar_beams, self.lidar_azimuth_steps) < 2:
            raise ValueError("image size and LiDAR resolution must be at least 2")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be within 1..100")


@dataclass(frozen=True)
class DriveSummary:
    """What ``make_drive`` wrote: bag path, time span and per-topic type and count."""

    path: Path
    storage: str
    duration_s: float
    start_ns: int
    end_ns: int
    topic_types: Mapping[str, str]
    counts: Mapping[str, int]
    wall_time_s: float

    @property
    def message_count(self) -> int:
        """Total number of messages in the bag."""
        return sum(self.counts.values())

    def format(self) -> str:
        """Human-readable multi-line summary for the CLI."""
        lines = [
            f"bag: {self.path} ({self.storage})",
            f"duration: {self.duration_s:.2f} s, {self.message_count} messages, "
            f"written in {self.wall_time_s:.1f} s",
        ]
        lines += [f"  {t:<34} {self.topic_types[t]:<32} {self.counts[t]:>6}" for t in self.counts]
        return "\n".join(lines)


@dataclass(frozen=True)
class EgoState:
    """Ego kinematics at time ``t``: pose in map, speed and accelerations in base_link."""

    t: float
    x: float
    y: float
    yaw: float
    speed: float
    accel: float
    yaw_rate: float
    lateral_accel: float
    distance: float

    @property
    def velocity(self) -> tuple[float, float]:
        """(vx, vy) in base_link; the rear axle does not slip sideways."""
        return (self.speed, 0.0)

    @property
    def acceleration(self) -> tuple[float, float]:
        """(ax, ay) in base_link: longitudinal and centripetal."""
        return (self.accel, self.lateral_accel)

    def map_from_base(self) -> np.ndarray:
        """4x4 transform taking base_link points into the map frame."""
        return _pose_matrix(self.x, self.y, 0.0, self.yaw)


# --------------------------------------------------------------------------------------------
# Small geometry helpers
# --------------------------------------------------------------------------------------------


def _rot_z(yaw: float) -> np.ndarray:
    """3x3 rotation about z."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _pose_matrix(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """4x4 rigid transform from translation and yaw."""
    m = np.eye(4)
    m[:3, :3] = _rot_z(yaw)
    m[:3, 3] = (x, y, z)
    return m


def _invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform."""
    inv = np.eye(4)
    inv[:3, :3] = m[:3, :3].T
    inv[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return inv


def _wrap(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


# --------------------------------------------------------------------------------------------
# Ego motion: cosine-blended speed profile along a clothoid-arc-clothoid path
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedProfile:
    """Speed through (time, speed) knots with cosine blends: C1 speed, analytic distance."""

    knots_t: tuple[float, ...]
    knots_v: tuple[float, ...]

    def evaluate(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distance, speed, acceleration) at times ``t``; constant speed outside the knots."""
        t = np.asarray(t, dtype=float)
        kt, kv = np.asarray(self.knots_t), np.asarray(self.knots_v)
        durations = np.diff(kt)
        knot_s = np.concatenate([[0.0], np.cumsum(durations * (kv[:-1] + kv[1:]) / 2)])
        tc = np.clip(t, kt[0], kt[-1])
        i = np.clip(np.searchsorted(kt, tc, side="right") - 1, 0, len(kt) - 2)
        dur, dv, u = durations[i], kv[i + 1] - kv[i], (tc - kt[i]) / durations[i]
        speed = kv[i] + dv * (1 - np.cos(np.pi * u)) / 2
        accel = np.where(t == tc, dv * np.pi / (2 * dur) * np.sin(np.pi * u), 0.0)
        dist = knot_s[i] + kv[i] * dur * u + dv * dur * (u / 2 - np.sin(np.pi * u) / (2 * np.pi))
        return dist + speed * (t - tc), speed, accel

    def time_at_distance(self, target: float, t_max: float) -> float | None:
        """First time in [knots_t[0], t_max] at which the distance reaches ``target``."""
        lo, hi = self.knots_t[0], t_max
        if float(self.evaluate(hi)[0]) < target:
            return None
        for _ in range(64):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(self.evaluate(mid)[0]) < target else (lo, mid)
        return hi


@dataclass(frozen=True)
class TurnPath:
    """Straight road, then a 90 degree clothoid-arc-clothoid turn, then straight again.

    Curvature ramps linearly (clothoid) so yaw rate and lateral acceleration stay continuous.
    """

    start_x: float
    start_y: float
    turn_start: float
    sign: int
    radius: float = 10.0
    transition: float = 6.0
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.arc_length <= 0:
            raise ValueError("transition too long for the turn radius")
        u = np.linspace(0.0, self.turn_length, 4097)
        heading = self.heading(self.turn_start + u)
        du = np.diff(u)
        x = np.concatenate([[0.0], np.cumsum(du * (np.cos(heading[1:]) + np.cos(heading[:-1])) / 2)])
        y = np.concatenate([[0.0], np.cumsum(du * (np.sin(heading[1:]) + np.sin(heading[:-1])) / 2)])
        table = np.stack([u, x + self.start_x + self.turn_start, y + self.start_y])
        object.__setattr__(self, "_table", table)

    @property
    def arc_length(self) -> float:
        """Length of the constant-curvature part."""
        return math.pi / 2 * self.radius - self.transition

    @property
    def turn_length(self) -> float:
        """Length of the whole turn, both clothoids included."""
        return 2 * self.transition + self.arc_length

    @property
    def turn_end(self) -> float:
        """Path distance where the turn is complete."""
        return self.turn_start + self.turn_length

    @property
    def end_point(self) -> tuple[float, float]:
        """Map position where the turn is complete."""
        return float(self._table[1, -1]), float(self._table[2, -1])

    def curvature(self, s: np.ndarray | float) -> np.ndarray:
        """Signed curvature (1/m, positive = left) at path distance ``s``."""
        k, lt, la = 1.0 / self.radius, self.transition, self.arc_length
        u = np.asarray(s, dtype=float) - self.turn_start
        ramp_up = k * u / lt
        ramp_down = k * (self.turn_length - u) / lt
        kappa = np.clip(np.minimum(ramp_up, ramp_down), 0.0, k)
        return self.sign * np.where((u > 0) & (u < lt + la + lt), kappa, 0.0)

    def heading(self, s: np.ndarray | float) -> np.ndarray:
        """Heading (rad, map frame) at path distance ``s``: the integral of the curvature."""
        k, lt, la = 1.0 / self.radius, self.transition, self.arc_length
        u = np.clip(np.asarray(s, dtype=float) - self.turn_start, 0.0, self.turn_length)
        w = np.clip(u - lt - la, 0.0, lt)
        entry = k * np.minimum(u, lt) ** 2 / (2 * lt)
        arc = k * np.clip(u - lt, 0.0, la)
        exit_ = k * w - k * w**2 / (2 * lt)
        return self.sign * (entry + arc + exit_)

    def position(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Map (x, y) at path distance ``s``; straight lines outside the tabulated turn."""
        s = np.asarray(s, dtype=float)
        u, tx, ty = self._table
        local = s - self.turn_start
        x = np.where(local <= 0, self.start_x + s, np.interp(local, u, tx))
        y = np.where(local <= 0, self.start_y, np.interp(local, u, ty))
        beyond = np.maximum(local - self.turn_length, 0.0)
        end_heading = self.sign * math.pi / 2
        return x + beyond * math.cos(end_heading), y + beyond * math.sin(end_heading)


@dataclass(frozen=True)
class EgoMotion:
    """Ego trajectory: a speed profile driven along a path."""

    speed: SpeedProfile
    path: TurnPath

    def poses(self, t: np.ndarray | float) -> np.ndarray:
        """(..., 3) map poses x, y, yaw at times ``t``."""
        s = self.speed.evaluate(t)[0]
        x, y = self.path.position(s)
        return np.stack([x, y, self.path.heading(s)], axis=-1)

    def state(self, t: float) -> EgoState:
        """Full kinematic state at time ``t``."""
        s, v, a = (float(q) for q in self.speed.evaluate(t))
        x, y = (float(q) for q in self.path.position(s))
        kappa = float(self.path.curvature(s))
        return EgoState(
            t=float(t), x=x, y=y, yaw=float(self.path.heading(s)), speed=v, accel=a,
            yaw_rate=kappa * v, lateral_accel=kappa * v * v, distance=s,
        )


# Timeline (s, m/s): cruise, slow for the turn, turn, speed up, cruise, stop behind the vehicle.
_SPEED_KNOTS = ((0.0, 10.0), (4.0, 10.0), (6.0, 6.0), (10.0, 6.0), (12.0, 9.0), (14.0, 9.0), (18.0, 0.0))
_EGO_START = (0.0, -1.75)
_TURN_START_S = 57.0
_EGO_FRONT_OVERHANG = 3.9
_STOP_GAP = 5.0
_COMMAND_LEAD_M = 30.0


# --------------------------------------------------------------------------------------------
# World: road layout and boxes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BoxSet:
    """Oriented boxes standing in the map: centre, size (length along yaw, width, height)."""

    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    color: np.ndarray
    intensity: np.ndarray

    @staticmethod
    def from_rows(rows: Sequence[tuple]) -> BoxSet:
        """Boxes standing on the ground from (x, y, length, width, height, yaw, rgb, intensity) rows."""
        if not rows:
            return BoxSet.empty()
        arr = np.array([r[:6] for r in rows], dtype=float)
        center = np.column_stack([arr[:, 0], arr[:, 1], arr[:, 4] / 2])
        return BoxSet(
            center=center,
            size=arr[:, 2:5].copy(),
            yaw=arr[:, 5].copy(),
            color=np.array([r[6] for r in rows], dtype=np.uint8),
            intensity=np.array([r[7] for r in rows], dtype=np.float32),
        )

    @staticmethod
    def empty() -> BoxSet:
        """A set without boxes."""
        return BoxSet(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3), np.uint8),
                      np.zeros(0, np.float32))

    @staticmethod
    def concat(sets: Sequence[BoxSet]) -> BoxSet:
        """All boxes of ``sets`` in order."""
        return BoxSet(*(np.concatenate([getattr(b, f) for b in sets]) for f in
                        ("center", "size", "yaw", "color", "intensity")))

    def __len__(self) -> int:
        return len(self.yaw)

    def moved(self, offset: np.ndarray) -> BoxSet:
        """Copy with centres shifted by ``offset`` (N, 3)."""
        return BoxSet(self.center + offset, self.size, self.yaw, self.color, self.intensity)

    def footprints(self) -> np.ndarray:
        """(N, 4, 2) map xy of the footprint corners."""
        half = self.size[:, :2] / 2
        signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=float)
        local = signs[None] * half[:, None]
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        x = c * local[..., 0] - s * local[..., 1] + self.center[:, None, 0]
        y = s * local[..., 0] + c * local[..., 1] + self.center[:, None, 1]
        return np.stack([x, y], axis=-1)


@dataclass(frozen=True)
class RoadLayout:
    """Main road along map x (axis y=0) crossed at ``center_x`` by a road along map y."""

    center_x: float
    lane_width: float = 3.5
    parking_width: float = 2.0
    sidewalk_width: float = 4.5
    behind: float = 120.0
    ahead: float = 120.0
    cross_half_length: float = 150.0
    line_width: float = 0.15
    dash_length: float = 3.0
    dash_period: float = 9.0
    dash_offset: float = 1.0

    @property
    def half_width(self) -> float:
        """Kerb offset from a road axis (lane plus parking strip)."""
        return self.lane_width + self.parking_width

    @property
    def building_line(self) -> float:
        """Offset of building fronts from a road axis."""
        return self.half_width + self.sidewalk_width

    def extent(self, road: str) -> tuple[float, float]:
        """Along-road range of ``road`` ('main' or 'cross') relative to the intersection."""
        if road == "main":
            return (-self.center_x - self.behind, self.ahead)
        return (-self.cross_half_length, self.cross_half_length)

    def to_map(self, road: str, along: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Road-local (along, across) to map (x, y); cross road 'across' grows toward +x."""
        if road == "main":
            return along + self.center_x, across
        return across + self.center_x, along

    def rect(self, road: str, along: tuple[float, float], across: tuple[float, float], z: float) -> np.ndarray:
        """(4, 3) map corners of a road-aligned rectangle at height ``z``."""
        a = np.array([along[0], along[1], along[1], along[0]])
        c = np.array([across[0], across[0], across[1], across[1]])
        x, y = self.to_map(road, a, c)
        return np.column_stack([x, y, np.full(4, z)])

    def surface_quads(self) -> list[np.ndarray]:
        """Asphalt rectangles of both roads."""
        return [self.rect(r, self.extent(r), (-self.half_width, self.half_width), 0.0) for r in ("main", "cross")]

    def marking_quads(self) -> list[np.ndarray]:
        """Dashed centre lines and solid lane/parking lines, outside the intersection box."""
        quads, w = [], self.line_width / 2
        for road in ("main", "cross"):
            for side, limit in ((-1, -self.extent(road)[0]), (1, self.extent(road)[1])):
                start = self.half_width + self.dash_offset
                for d0 in np.arange(start, limit - self.dash_length, self.dash_period):
                    along = sorted((side * d0, side * (d0 + self.dash_length)))
                    quads.append(self.rect(road, tuple(along), (-w, w), 0.01))
                for line in (-self.lane_width, self.lane_width):
                    along = sorted((side * self.half_width, side * limit))
                    quads.append(self.rect(road, tuple(along), (line - w, line + w), 0.01))
        return quads

    def _local(self, road: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map (x, y) to road-local (along, across)."""
        if road == "main":
            return x - self.center_x, y
        return y, x - self.center_x

    def on_road(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether map points lie on asphalt."""
        result = np.zeros(np.shape(x), dtype=bool)
        for road in ("main", "cross"):
            along, across = self._local(road, x, y)
            lo, hi = self.extent(road)
            result |= (np.abs(across) <= self.half_width) & (along >= lo) & (along <= hi)
        return result

    def on_marking(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether map points lie on a painted line; same geometry as ``marking_quads``."""
        result = np.zeros(np.shape(x), dtype=bool)
        w = self.line_width / 2
        for road in ("main", "cross"):
            along, across = self._local(road, x, y)
            lo, hi = self.extent(road)
            outside = (np.abs(along) >= self.half_width) & (along >= lo) & (along <= hi)
            d = np.abs(along) - self.half_width - self.dash_offset
            dash = (np.abs(across) < w) & (d >= 0) & (np.mod(d, self.dash_period) < self.dash_length)
            solid = np.abs(np.abs(across) - self.lane_width) < w
            result |= outside & (dash | solid)
        return result

    def ground_intensity(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """LiDAR reflectivity of the ground: paint > terrain > asphalt."""
        out = np.where(self.on_road(x, y), 0.08, 0.2).astype(np.float32)
        return np.where(self.on_marking(x, y), np.float32(0.85), out)


_BUILDING_COLORS = ((181, 160, 133), (150, 140, 130), (170, 95, 80), (120, 125, 135), (200, 190, 170),
                    (110, 100, 95))
_CAR_COLORS = ((200, 200, 205), (30, 30, 35), (150, 20, 25), (20, 50, 120), (120, 125, 130), (230, 230, 225),
               (40, 90, 60))
_CLOTHES_COLORS = ((200, 60, 50), (40, 60, 160), (60, 60, 60), (220, 180, 60), (80, 140, 80))
_SIDEWALK_COLOR = (160, 158, 150)


@dataclass(frozen=True, eq=False)
class World:
    """Everything LiDAR and cameras can see besides the ground and the painted road."""

    layout: RoadLayout
    sidewalks: BoxSet
    solids: BoxSet
    movers: BoxSet
    mover_velocity: np.ndarray

    def obstacles_at(self, t: float) -> BoxSet:
        """Buildings, vehicles and pedestrians at time ``t`` (movers advanced)."""
        return BoxSet.concat([self.solids, self.movers.moved(self.mover_velocity * t)])

    def boxes_at(self, t: float) -> BoxSet:
        """All boxes at time ``t``, sidewalk slabs first."""
        return BoxSet.concat([self.sidewalks, self.obstacles_at(t)])


def _choice(rng: np.random.Generator, options: Sequence[tuple]) -> tuple:
    """One element of ``options``, drawn with ``rng``."""
    return options[int(rng.integers(len(options)))]


def _sidewalk_rows(layout: RoadLayout, segment: float = 10.0) -> list[tuple]:
    """Raised (0.15 m) sidewalk slabs in short segments; their road edges are the kerbs."""
    rows = []
    hw, bl = layout.half_width, layout.building_line
    for road, start in (("main", hw), ("cross", bl)):
        lo, hi = layout.extent(road)
        for side in (-1, 1):
            limit = -lo if side < 0 else hi
            for d0 in np.arange(start, limit, segment):
                d1 = min(d0 + segment, limit)
                for across in ((hw + bl) / 2, -(hw + bl) / 2):
                    x, y = layout.to_map(road, np.array(side * (d0 + d1) / 2), np.array(across))
                    yaw = 0.0 if road == "main" else math.pi / 2
                    rows.append((float(x), float(y), d1 - d0, bl - hw, 0.15, yaw, _SIDEWALK_COLOR, 0.3))
    return rows


def _building_rows(rng: np.random.Generator, layout: RoadLayout) -> list[tuple]:
    """Rows of boxes behind the sidewalks; cross-road ones start beyond the corner blocks."""
    rows, max_depth = [], 18.0
    for road in ("main", "cross"):
        lo, hi = layout.extent(road)
        start = layout.building_line if road == "main" else layout.building_line + max_depth + 2.0
        for side in (-1, 1):
            for across_sign in (-1, 1):
                d, limit = start, (-lo if side < 0 else hi)
                while d < limit - 4.0:
                    length = min(float(rng.uniform(8.0, 22.0)), limit - d)
                    depth, height = float(rng.uniform(10.0, max_depth)), float(rng.uniform(6.0, 28.0))
                    across = across_sign * (layout.building_line + depth / 2)
                    x, y = layout.to_map(road, np.array(side * (d + length / 2)), np.array(across))
                    yaw = 0.0 if road == "main" else math.pi / 2
                    rows.append((float(x), float(y), length, depth, height, yaw, _choice(rng, _BUILDING_COLORS),
                                 float(rng.uniform(0.3, 0.45))))
                    d += length + float(rng.choice([0.0, rng.uniform(1.0, 4.0)]))
    return rows


def _vehicle_row(rng: np.random.Generator, x: float, y: float, yaw: float) -> tuple:
    """One car-sized box."""
    return (x, y, float(rng.uniform(4.2, 5.0)), float(rng.uniform(1.75, 1.95)), float(rng.uniform(1.45, 1.75)),
            yaw, _choice(rng, _CAR_COLORS), float(rng.uniform(0.5, 0.7)))


def _parked_rows(rng: np.random.Generator, layout: RoadLayout, keep_out: float = 15.0) -> list[tuple]:
    """Cars in the parking strips of both roads, away from the intersection."""
    rows, offset = [], layout.lane_width + layout.parking_width / 2
    for road in ("main", "cross"):
        lo, hi = layout.extent(road)
        for across in (-offset, offset):
            along = lo + float(rng.uniform(0.0, 8.0))
            while along < hi - 5.0:
                if abs(along) > keep_out:
                    x, y = layout.to_map(road, np.array(along), np.array(across))
                    heading = (0.0 if across < 0 else math.pi) if road == "main" else (
                        math.pi / 2 if across > 0 else -math.pi / 2)
                    rows.append(_vehicle_row(rng, float(x), float(y), heading))
                along += 5.5 + float(rng.uniform(1.0, 14.0))
    return rows


def _pedestrian_rows(rng: np.random.Generator, layout: RoadLayout, count: int) -> tuple[list[tuple], np.ndarray]:
    """Thin boxes on the sidewalks; about half walk along the road at ~1.3 m/s."""
    rows, velocities = [], []
    mid = (layout.half_width + layout.building_line) / 2
    for i in range(count):
        road = "main" if i < 2 * count // 3 else "cross"
        lo, hi = layout.extent(road)
        along = float(rng.uniform(max(lo, -70.0), min(hi, 60.0)))
        along = along if abs(along) > 15.0 else along + math.copysign(20.0, along)
        across = float(rng.choice([-1.0, 1.0])) * (mid + float(rng.uniform(-1.2, 1.2)))
        x, y = layout.to_map(road, np.array(along), np.array(across))
        speed = float(rng.choice([0.0, 1.3])) * float(rng.choice([-1.0, 1.0]))
        direction = (1.0, 0.0) if road == "main" else (0.0, 1.0)
        rows.append((float(x), float(y), 0.45, 0.6, float(rng.uniform(1.6, 1.9)), 0.0,
                     _choice(rng, _CLOTHES_COLORS), 0.35))
        velocities.append((speed * direction[0], speed * direction[1], 0.0))
    return rows, np.array(velocities, dtype=float).reshape(-1, 3)


def _build_world(rng: np.random.Generator, layout: RoadLayout, motion: EgoMotion) -> World:
    """Seeded static scenery plus the stopped car ahead of the ego's stop and the movers."""
    sidewalks = BoxSet.from_rows(_sidewalk_rows(layout))
    s_stop = float(motion.speed.evaluate(motion.speed.knots_t[-1])[0])
    stopped_s = s_stop + _EGO_FRONT_OVERHANG + _STOP_GAP + 2.4
    sx, sy = (float(q) for q in motion.path.position(stopped_s))
    stopped = _vehicle_row(rng, sx, sy, float(motion.path.heading(stopped_s)))
    stopped = (stopped[0], stopped[1], 4.8) + stopped[3:]
    solids = BoxSet.from_rows(_building_rows(rng, layout) + _parked_rows(rng, layout) + [stopped])
    ped_rows, ped_velocity = _pedestrian_rows(rng, layout, count=12)
    oncoming = _vehicle_row(rng, layout.center_x + 32.0, layout.lane_width / 2, math.pi)
    movers = BoxSet.from_rows([oncoming] + ped_rows)
    velocity = np.vstack([[[-9.0, 0.0, 0.0]], ped_velocity])
    return World(layout, sidewalks, solids, movers, velocity)


# --------------------------------------------------------------------------------------------
# LiDAR: vectorised ray casting against the ground plane and oriented boxes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LidarModel:
    """Spinning LiDAR: ``beams`` rows from ``min_el`` to ``max_el`` times ``azimuth_steps`` columns."""

    base_from_lidar: np.ndarray
    beams: int = 64
    azimuth_steps: int = 2000
    min_elevation_deg: float = -25.0
    max_elevation_deg: float = 15.0
    max_range: float = 80.0
    noise_std: float = 0.02
    _dirs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        el, az = self.elevations, self.azimuths
        dirs = np.stack(np.broadcast_arrays(np.cos(el)[:, None] * np.cos(az)[None],
                                            np.cos(el)[:, None] * np.sin(az)[None],
                                            np.sin(el)[:, None]), axis=-1)
        object.__setattr__(self, "_dirs", dirs.astype(np.float32))

    @property
    def elevations(self) -> np.ndarray:
        """Beam elevation angles (rad), ascending."""
        return np.deg2rad(np.linspace(self.min_elevation_deg, self.max_elevation_deg, self.beams))

    @property
    def azimuths(self) -> np.ndarray:
        """Column azimuths (rad), counter-clockwise from +x."""
        return np.arange(self.azimuth_steps) * (2 * np.pi / self.azimuth_steps)

    def sweep(self, map_from_base: np.ndarray, boxes: BoxSet, layout: RoadLayout,
              rng: np.random.Generator) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity in the LiDAR frame: nearest hit per ray, with noise."""
        map_from_lidar = map_from_base @ self.base_from_lidar
        origin = map_from_lidar[:3, 3]
        yaw = math.atan2(map_from_lidar[1, 0], map_from_lidar[0, 0])
        ranges = np.broadcast_to(self._ground_ranges(origin[2])[:, None],
                                 (self.beams, self.azimuth_steps)).copy()
        owner = np.full(ranges.shape, -1, dtype=np.int32)
        for i, rows, cols in self._candidate_blocks(boxes, origin, yaw):
            self._cast_box(ranges, owner, i, rows, cols, boxes, origin, yaw)
        hit = ranges <= self.max_range
        r = ranges[hit] + rng.normal(0.0, self.noise_std, int(hit.sum())).astype(np.float32)
        points = self._dirs[hit] * r[:, None]
        who = owner[hit]
        world = points.astype(float) @ map_from_lidar[:3, :3].T + origin
        intensity = np.where(who >= 0, boxes.intensity[np.maximum(who, 0)],
                             layout.ground_intensity(world[:, 0], world[:, 1]))
        return np.column_stack([points, intensity.astype(np.float32)]).astype(np.float32)

    def _ground_ranges(self, height: float) -> np.ndarray:
        """Per-beam range to the flat ground (inf for beams that never reach it)."""
        sin_el = np.sin(self.elevations)
        with np.errstate(divide="ignore"):
            r = np.where(sin_el < 0, height / -sin_el, np.inf)
        return r.astype(np.float32)

    def _candidate_blocks(self, boxes: BoxSet, origin: np.ndarray,
                          yaw: float) -> Iterator[tuple[int, slice, np.ndarray]]:
        """Yield (box index, row slice, column indices) of rays that may hit each box.

        Azimuth span from the footprint corners is exact for a convex footprint; the elevation
        span uses the nearest/farthest footprint distance, which is conservative.
        """
        if not len(boxes):
            return
        rot = _rot_z(-yaw)[:2, :2]
        corners = (boxes.footprints() - origin[:2]) @ rot.T
        center = (boxes.center[:, :2] - origin[:2]) @ rot.T
        ang_c = np.arctan2(center[:, 1], center[:, 0])
        diff = _wrap(np.arctan2(corners[..., 1], corners[..., 0]) - ang_c[:, None])
        lo, hi = ang_c + diff.min(axis=1), ang_c + diff.max(axis=1)
        c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
        rel = origin[:2] - boxes.center[:, :2]
        local = np.column_stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]])
        d_min = np.hypot(*np.maximum(np.abs(local) - boxes.size[:, :2] / 2, 0.0).T)
        d_max = np.linalg.norm(corners, axis=-1).max(axis=1)
        z0 = boxes.center[:, 2] - boxes.size[:, 2] / 2 - origin[2]
        z1 = z0 + boxes.size[:, 2]
        el_lo = np.where(z0 < 0, np.arctan2(z0, d_min), np.arctan2(z0, d_max))
        el_hi = np.where(z1 > 0, np.arctan2(z1, d_min), np.arctan2(z1, d_max))
        elevations, step = self.elevations, 2 * np.pi / self.azimuth_steps
        all_cols = np.arange(self.azimuth_steps)
        for i in np.flatnonzero(d_min < self.max_range):
            r0 = int(np.searchsorted(elevations, el_lo[i], side="left"))
            r1 = int(np.searchsorted(elevations, el_hi[i], side="right"))
            if r1 <= r0:
                continue
            if d_min[i] == 0.0:
                cols = all_cols
            else:
                cols = np.arange(math.ceil(lo[i] / step), math.floor(hi[i] / step) + 1) % self.azimuth_steps
            if len(cols):
                yield int(i), slice(r0, r1), cols

    def _cast_box(self, ranges: np.ndarray, owner: np.ndarray, i: int, rows: slice, cols: np.ndarray,
                  boxes: BoxSet, origin: np.ndarray, yaw: float) -> None:
        """Slab-test one box against a block of rays and keep the nearer hits."""
        rel = origin - boxes.center[i]
        c, s = math.cos(boxes.yaw[i]), math.sin(boxes.yaw[i])
        o = (c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2])
        half = boxes.size[i] / 2
        el = self.elevations[rows]
        az = self.azimuths[cols] + (yaw - boxes.yaw[i])
        ce = np.cos(el)[:, None]
        d = (ce * np.cos(az)[None], ce * np.sin(az)[None], np.sin(el)[:, None])
        t_near, t_far = None, None
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis in range(3):
                inv = 1.0 / d[axis]
                t0, t1 = (-half[axis] - o[axis]) * inv, (half[axis] - o[axis]) * inv
                lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
                t_near = lo if t_near is None else np.maximum(t_near, lo)
                t_far = hi if t_far is None else np.minimum(t_far, hi)
            t = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
        block = ranges[rows, cols]
        closer = t < block
        if closer.any():
            ranges[rows, cols] = np.where(closer, t, block)
            owner[rows, cols] = np.where(closer, i, owner[rows, cols])


# --------------------------------------------------------------------------------------------
# Cameras: pinhole model and a painter's-algorithm rasteriser
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraMount:
    """Where a camera sits on the ego (base_link, metres) and where it looks."""

    name: str
    x: float
    y: float
    z: float
    yaw_deg: float
    hfov_deg: float = 70.0


CAMERA_RIG = (
    CameraMount("left", 1.4, 0.45, 1.55, 55.0),
    CameraMount("front", 1.6, 0.0, 1.55, 0.0),
    CameraMount("right", 1.4, -0.45, 1.55, -55.0),
)
LIDAR_MOUNT = (1.0, 0.0, 1.8)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Undistorted pinhole camera with its base_link extrinsic (optical frame)."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    base_from_camera: np.ndarray
    near: float = 0.1

    @classmethod
    def from_mount(cls, mount: CameraMount, width: int, height: int) -> CameraModel:
        """Square-pixel camera with the mount's horizontal FOV and a level optical axis."""
        f = (width / 2) / math.tan(math.radians(mount.hfov_deg) / 2)
        return cls(mount.name, width, height, f, f, width / 2, height / 2, _optical_pose(mount))

    @property
    def frame_id(self) -> str:
        """Optical frame id used in image headers."""
        return optical_frame(self.name)

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the intrinsic matrix
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the usual name of the projection matrix
        """3x4 projection matrix of the (already rectified) image."""
        return np.hstack([self.K, np.zeros((3, 1))])

    @property
    def camera_from_base(self) -> np.ndarray:
        """4x4 transform taking base_link points into the optical frame."""
        return _invert(self.base_from_camera)

    def project(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel (u, v) of base_link points (N, 3) and whether each is in front and in the image."""
        pts = np.asarray(points_ego, dtype=float).reshape(-1, 3)
        cam = pts @ self.camera_from_base[:3, :3].T + self.camera_from_base[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * cam[:, 0] / z + self.cx
            v = self.fy * cam[:, 1] / z + self.cy
        valid = (z > self.near) & (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        return u, v, valid


def _optical_pose(mount: CameraMount) -> np.ndarray:
    """base_link <- optical frame: z along the viewing direction, x right, y down."""
    yaw = math.radians(mount.yaw_deg)
    forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    m = np.eye(4)
    m[:3, :3] = np.column_stack([right, [0.0, 0.0, -1.0], forward])
    m[:3, 3] = (mount.x, mount.y, mount.z)
    return m


@dataclass(frozen=True, eq=False)
class Quads:
    """Flat convex quads to paint: vertices (M, 4, 3) in map, outward normals, RGB colours."""

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray

    @staticmethod
    def concat(items: Sequence[Quads]) -> Quads:
        """All quads of ``items`` in order."""
        return Quads(*(np.concatenate([getattr(q, f) for q in items]) for f in ("vertices", "normals", "colors")))


_SUN = np.array([-0.45, -0.35, 0.82]) / np.linalg.norm([-0.45, -0.35, 0.82])


def _shade(color: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Lambert shading with ambient light, so box faces are told apart."""
    light = 0.55 + 0.45 * np.clip(normals @ _SUN, 0.0, 1.0)
    return np.clip(color[None].astype(float) * light[:, None], 0, 255).astype(np.uint8)


def _box_quads(boxes: BoxSet, max_width: float = 3.0) -> Quads:
    """Side faces cut into strips no wider than ``max_width`` plus the top face, per box.

    Narrow strips keep the painter's sort by distance right for people in front of facades.
    """
    verts, normals, colors = [], [], []
    for i in range(len(boxes)):
        (a, b, c), rot = boxes.size[i] / 2, _rot_z(boxes.yaw[i])
        faces = []
        for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
            span = b if axis == 0 else a
            edges = np.linspace(-span, span, max(1, math.ceil(2 * span / max_width)) + 1)
            for e0, e1 in zip(edges[:-1], edges[1:]):
                t = np.array([[e0, -c], [e1, -c], [e1, c], [e0, c]])
                fixed = np.full(4, sign * (a if axis == 0 else b))
                local = np.column_stack([fixed, t[:, 0], t[:, 1]] if axis == 0 else [t[:, 0], fixed, t[:, 1]])
                normal = np.zeros(3)
                normal[axis] = sign
                faces.append((local, normal))
        top = np.array([[a, b, c], [-a, b, c], [-a, -b, c], [a, -b, c]])
        faces.append((top, np.array([0.0, 0.0, 1.0])))
        box_normals = np.array([rot @ n for _, n in faces])
        verts += [loc @ rot.T + boxes.center[i] for loc, _ in faces]
        normals.append(box_normals)
        colors.append(_shade(boxes.color[i], box_normals))
    if not verts:
        return Quads(np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    return Quads(np.array(verts), np.concatenate(normals), np.concatenate(colors))


def _ground_quads(layout: RoadLayout) -> Quads:
    """Asphalt then paint, both facing up."""
    road, paint = layout.surface_quads(), layout.marking_quads()
    colors = [(72, 72, 75)] * len(road) + [(235, 235, 230)] * len(paint)
    verts = np.array(road + paint)
    return Quads(verts, np.tile([0.0, 0.0, 1.0], (len(verts), 1)), np.array(colors, dtype=np.uint8))


def _clip_halfspace(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Sutherland-Hodgman: keep the part of a convex polygon where normal . p + offset >= 0."""
    d = poly @ normal + offset
    inside = d >= 0
    if inside.all():
        return poly
    if not inside.any():
        return poly[:0]
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if inside[i]:
            out.append(poly[i])
        if inside[i] != inside[j]:
            out.append(poly[i] + (poly[j] - poly[i]) * (d[i] / (d[i] - d[j])))
    return np.array(out)


class Rasteriser:
    """Paints quads into one camera's image: sky/terrain background, then far-to-near faces."""

    SUBPIXEL_BITS = 2
    GUARD = 1024

    def __init__(self, camera: CameraModel) -> None:
        self.camera = camera
        self._background = self._make_background()

    def _make_background(self) -> np.ndarray:
        """Sky gradient above the horizon (a level camera's centre row), terrain below."""
        cam = self.camera
        rows = np.arange(cam.height, dtype=float)[:, None]
        frac = np.clip(rows / max(cam.cy, 1.0), 0.0, 1.0)
        sky = (1 - frac) * np.array([70.0, 130.0, 200.0]) + frac * np.array([190.0, 210.0, 235.0])
        img = np.where(rows < cam.cy, sky, np.array([96.0, 102.0, 82.0]))
        return np.ascontiguousarray(np.broadcast_to(img[:, None, :], (cam.height, cam.width, 3))).astype(np.uint8)

    def render(self, map_from_camera: np.ndarray, layers: Sequence[tuple[Quads, bool]]) -> np.ndarray:
        """RGB image of ``layers`` (quads, sort-by-distance) drawn in order over the background."""
        image = self._background.copy()
        camera_from_map = _invert(map_from_camera)
        for quads, sort in layers:
            self._draw(image, camera_from_map, quads, sort)
        return image

    def _draw(self, image: np.ndarray, camera_from_map: np.ndarray, quads: Quads, sort: bool) -> None:
        """Cull (frustum, back faces), optionally sort far-to-near, then fill each quad.

        Quads fully in front of the near plane and inside the guard band are projected in one
        batch; only the others go through polygon clipping.
        """
        if not len(quads.vertices):
            return
        rot, trans = camera_from_map[:3, :3], camera_from_map[:3, 3]
        pts = quads.vertices @ rot.T + trans
        keep = self._in_frustum(pts)
        centroid = pts.mean(axis=1)
        keep &= np.einsum("ij,ij->i", quads.normals @ rot.T, centroid) < 0
        idx = np.flatnonzero(keep)
        if sort:
            distance = np.hypot(centroid[idx, 0], centroid[idx, 2])
            idx = idx[np.argsort(-distance, kind="stable")]
        pts = pts[idx]
        uv, simple = self._project_simple(pts)
        fixed = np.round(uv * (1 << self.SUBPIXEL_BITS)).astype(np.int32)
        colors = quads.colors[idx].tolist()
        for k in range(len(idx)):
            if simple[k]:
                cv2.fillConvexPoly(image, fixed[k], colors[k], cv2.LINE_8, self.SUBPIXEL_BITS)
            else:
                self._fill(image, pts[k], colors[k])

    def _project_simple(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates of (K, 4, 3) camera points and whether a quad needs no clipping."""
        cam, g = self.camera, self.GUARD
        z = pts[..., 2]
        simple = (z >= cam.near).all(axis=1)
        safe_z = np.where(simple[:, None], z, 1.0)
        uv = np.stack([cam.fx * pts[..., 0] / safe_z + cam.cx, cam.fy * pts[..., 1] / safe_z + cam.cy], axis=-1)
        inside = (uv >= -g).all(axis=(1, 2)) & (uv[..., 0] <= cam.width + g).all(axis=1) & (
            uv[..., 1] <= cam.height + g).all(axis=1)
        simple &= inside
        return np.where(simple[:, None, None], uv, 0.0), simple

    def _in_frustum(self, pts: np.ndarray) -> np.ndarray:
        """False for quads entirely behind the near plane or outside one side plane."""
        cam = self.camera
        x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
        outside = (
            (z < cam.near).all(axis=1)
            | (cam.fx * x + cam.cx * z < 0).all(axis=1)
            | (cam.fx * x + (cam.cx - cam.width) * z > 0).all(axis=1)
            | (cam.fy * y + cam.cy * z < 0).all(axis=1)
            | (cam.fy * y + (cam.cy - cam.height) * z > 0).all(axis=1)
        )
        return ~outside

    def _fill(self, image: np.ndarray, poly: np.ndarray, color: Sequence[int]) -> None:
        """Near-clip, project, guard-band clip (keeps OpenCV's fixed point in range), fill."""
        cam = self.camera
        poly = _clip_halfspace(poly, np.array([0.0, 0.0, 1.0]), -cam.near)
        if len(poly) < 3:
            return
        uv = np.column_stack([cam.fx * poly[:, 0] / poly[:, 2] + cam.cx, cam.fy * poly[:, 1] / poly[:, 2] + cam.cy])
        g = self.GUARD
        if (uv < -g).any() or (uv[:, 0] > cam.width + g).any() or (uv[:, 1] > cam.height + g).any():
            for normal, offset in (((1.0, 0.0), g), ((-1.0, 0.0), cam.width + g),
                                   ((0.0, 1.0), g), ((0.0, -1.0), cam.height + g)):
                uv = _clip_halfspace(uv, np.array(normal), offset)
                if len(uv) < 3:
                    return
        fixed = np.round(uv * (1 << self.SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillConvexPoly(image, fixed, color, cv2.LINE_8, self.SUBPIXEL_BITS)


# --------------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------------


class SyntheticScene:
    """The seeded drive: ego motion, world, sensor models; query any time without a bag."""

    def __init__(self, config: DriveConfig | None = None) -> None:
        self.config = config or DriveConfig()
        sign = 1 if self.config.turn == "left" else -1
        path = TurnPath(_EGO_START[0], _EGO_START[1], _TURN_START_S, sign)
        self.motion = EgoMotion(SpeedProfile(*zip(*_SPEED_KNOTS)), path)
        exit_lane_x = path.end_point[0]
        center_x = exit_lane_x - sign * RoadLayout.lane_width / 2
        self.layout = RoadLayout(center_x=center_x)
        self.world = _build_world(np.random.default_rng(self.config.seed), self.layout, self.motion)
        self.cameras = {m.name: CameraModel.from_mount(m, self.config.image_width, self.config.image_height)
                        for m in CAMERA_RIG}
        self.lidar = LidarModel(_pose_matrix(*LIDAR_MOUNT, 0.0), self.config.lidar_beams,
                                self.config.lidar_azimuth_steps, noise_std=self.config.lidar_noise_std_m)
        self._rasterisers = {name: Rasteriser(cam) for name, cam in self.cameras.items()}
        self._ground = _ground_quads(self.layout)
        self._sidewalk_quads = _box_quads(self.world.sidewalks)
        self._solid_quads = _box_quads(self.world.solids)

    @property
    def turn_command(self) -> int:
        """Command issued for this drive's turn."""
        return COMMAND_LEFT if self.config.turn == "left" else COMMAND_RIGHT

    @property
    def command_start_distance(self) -> float:
        """Path distance where the turn command starts: 30 m before the intersection edge."""
        edge_x = self.layout.center_x - self.layout.half_width
        return edge_x - _COMMAND_LEAD_M - _EGO_START[0]

    def ego_state(self, t: float) -> EgoState:
        """Ego kinematics at time ``t`` (seconds from the start of the drive)."""
        return self.motion.state(t)

    def ground_truth_future(self, t: float, num_poses: int = 8, interval_s: float = 0.5) -> np.ndarray:
        """(num_poses, 3) future x, y, heading of the ego in its own frame at time ``t``."""
        x0, y0, yaw0 = self.motion.poses(t)
        future = self.motion.poses(t + interval_s * np.arange(1, num_poses + 1))
        dx, dy = future[:, 0] - x0, future[:, 1] - y0
        c, s = math.cos(yaw0), math.sin(yaw0)
        return np.column_stack([c * dx + s * dy, -s * dx + c * dy, _wrap(future[:, 2] - yaw0)])

    def command(self, t: float) -> int:
        """Driving command at ``t``: the turn from 30 m before the intersection until it is done."""
        s = float(self.motion.speed.evaluate(t)[0])
        in_turn_window = self.command_start_distance <= s < self.motion.path.turn_end
        return self.turn_command if in_turn_window else COMMAND_STRAIGHT

    def command_changes(self, t_end: float) -> list[tuple[float, int]]:
        """(time, command) at t=0 and at each change before ``t_end``."""
        changes = [(0.0, self.command(0.0))]
        for s in (self.command_start_distance, self.motion.path.turn_end):
            t = self.motion.speed.time_at_distance(s, t_end)
            if t is not None and 0.0 < t < t_end:
                changes.append((t, self.command(t)))
        return sorted(changes)

    def obstacles(self, t: float) -> BoxSet:
        """Buildings, vehicles and pedestrians at ``t`` (map frame)."""
        return self.world.obstacles_at(t)

    def lidar_sweep(self, t: float) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity in ``lidar_top``; noise is seeded by (seed, t)."""
        rng = np.random.default_rng([self.config.seed, round(t * 1e6) % 2**63])
        state = self.ego_state(t)
        return self.lidar.sweep(state.map_from_base(), self.world.boxes_at(t), self.layout, rng)

    def render_camera(self, name: str, t: float) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of camera ``name`` ('left', 'front', 'right') at ``t``."""
        if name not in self.cameras:
            raise KeyError(f"unknown camera {name!r}; expected one of {CAMERA_NAMES}")
        map_from_camera = self.ego_state(t).map_from_base() @ self.cameras[name].base_from_camera
        moving = self.world.movers.moved(self.world.mover_velocity * t)
        obstacles = Quads.concat([self._solid_quads, _box_quads(moving)])
        layers = ((self._ground, False), (self._sidewalk_quads, True), (obstacles, True))
        return self._rasterisers[name].render(map_from_camera, layers)


def ground_truth_future(t: float, config: DriveConfig | None = None, num_poses: int = 8,
                        interval_s: float = 0.5) -> np.ndarray:
    """Convenience wrapper: ``SyntheticScene(config).ground_truth_future(t, ...)``."""
    return SyntheticScene(config).ground_truth_future(t, num_poses, interval_s)


# --------------------------------------------------------------------------------------------
# Messages (rosbags dataclasses)
# --------------------------------------------------------------------------------------------


class _MessageFactory:
    """Builds rosbags message objects for one scene."""

    def __init__(self, scene: SyntheticScene) -> None:
        self.scene = scene
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.types = self.typestore.types

    def serialize(self, msg: object) -> bytes:
        """CDR bytes of ``msg``."""
        return self.typestore.serialize_cdr(msg, msg.__msgtype__)

    def header(self, stamp_ns: int, frame_id: str) -> object:
        """std_msgs/Header with a nanosecond stamp."""
        stamp = self.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        return self.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def quaternion(self, rotation: np.ndarray) -> object:
        """geometry_msgs/Quaternion of a rotation matrix."""
        w, x, y, z = mat2quat(rotation)
        return self.types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))

    def vector3(self, x: float, y: float, z: float) -> object:
        """geometry_msgs/Vector3."""
        return self.types["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))

    def transform(self, stamp_ns: int, parent: str, child: str, pose: np.ndarray) -> object:
        """geometry_msgs/TransformStamped parent <- child."""
        t = self.types
        tf = t["geometry_msgs/msg/Transform"](translation=self.vector3(*pose[:3, 3]),
                                              rotation=self.quaternion(pose[:3, :3]))
        return t["geometry_msgs/msg/TransformStamped"](header=self.header(stamp_ns, parent), child_frame_id=child,
                                                       transform=tf)

    def tf_static(self, stamp_ns: int) -> object:
        """All sensor extrinsics: base_link -> lidar_top, camera_<n>, camera_<n>_optical."""
        transforms = [self.transform(stamp_ns, BASE_FRAME, LIDAR_FRAME, self.scene.lidar.base_from_lidar)]
        for mount in CAMERA_RIG:
            body = _pose_matrix(mount.x, mount.y, mount.z, math.radians(mount.yaw_deg))
            transforms.append(self.transform(stamp_ns, BASE_FRAME, camera_frame(mount.name), body))
            optical = self.scene.cameras[mount.name].base_from_camera
            transforms.append(self.transform(stamp_ns, BASE_FRAME, optical_frame(mount.name), optical))
        return self.types["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def command(self, value: int) -> object:
        """std_msgs/UInt8 driving command."""
        return self.types["std_msgs/msg/UInt8"](data=value)

    def odometry(self, stamp_ns: int, state: EgoState) -> object:
        """nav_msgs/Odometry: pose in map, twist in base_link."""
        t = self.types
        cov = np.diag([1e-4] * 6).ravel()
        pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=state.x, y=state.y, z=0.0),
                                          orientation=self.quaternion(_rot_z(state.yaw)))
        twist = t["geometry_msgs/msg/Twist"](linear=self.vector3(state.speed, 0.0, 0.0),
                                            angular=self.vector3(0.0, 0.0, state.yaw_rate))
        return t["nav_msgs/msg/Odometry"](
            header=self.header(stamp_ns, MAP_FRAME), child_frame_id=BASE_FRAME,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=cov),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=cov.copy()),
        )

    def imu(self, stamp_ns: int, state: EgoState) -> object:
        """sensor_msgs/Imu: specific force (gravity on +z), yaw rate, map orientation."""
        cov = np.diag([1e-4] * 3).ravel()
        return self.types["sensor_msgs/msg/Imu"](
            header=self.header(stamp_ns, BASE_FRAME),
            orientation=self.quaternion(_rot_z(state.yaw)), orientation_covariance=cov,
            angular_velocity=self.vector3(0.0, 0.0, state.yaw_rate), angular_velocity_covariance=cov.copy(),
            linear_acceleration=self.vector3(state.accel, state.lateral_accel, GRAVITY),
            linear_acceleration_covariance=cov.copy(),
        )

    def pointcloud(self, stamp_ns: int, points: np.ndarray) -> object:
        """sensor_msgs/PointCloud2 with float32 x, y, z, intensity."""
        t = self.types
        field_type = t["sensor_msgs/msg/PointField"]
        fields = [field_type(name=n, offset=4 * k, datatype=field_type.FLOAT32, count=1)
                  for k, n in enumerate(("x", "y", "z", "intensity"))]
        data = np.frombuffer(np.ascontiguousarray(points, dtype="<f4").tobytes(), dtype=np.uint8)
        return t["sensor_msgs/msg/PointCloud2"](
            header=self.header(stamp_ns, LIDAR_FRAME), height=1, width=len(points), fields=fields,
            is_bigendian=False, point_step=16, row_step=16 * len(points), data=data, is_dense=True,
        )

    def compressed_image(self, stamp_ns: int, name: str, rgb: np.ndarray) -> object:
        """sensor_msgs/CompressedImage, JPEG."""
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.scene.config.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for camera {name}")
        return self.types["sensor_msgs/msg/CompressedImage"](
            header=self.header(stamp_ns, optical_frame(name)), format="jpeg", data=encoded.reshape(-1))

    def camera_info(self, stamp_ns: int, name: str) -> object:
        """sensor_msgs/CameraInfo (plumb_bob, no distortion)."""
        t = self.types
        cam = self.scene.cameras[name]
        roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return t["sensor_msgs/msg/CameraInfo"](
            header=self.header(stamp_ns, cam.frame_id), height=cam.height, width=cam.width,
            distortion_model="plumb_bob", d=np.zeros(5), k=cam.K.ravel(), r=np.eye(3).ravel(), p=cam.P.ravel(),
            binning_x=0, binning_y=0, roi=roi,
        )


# --------------------------------------------------------------------------------------------
# Bag writing
# --------------------------------------------------------------------------------------------

_LATCHED_QOS = Qos(
    history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
    durability=QosDurability.TRANSIENT_LOCAL, deadline=QosTime(0, 0), lifespan=QosTime(0, 0),
    liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=QosTime(0, 0),
    avoid_ros_namespace_conventions=False,
)
_LATCHED_TOPICS = (TOPIC_TF_STATIC, TOPIC_COMMAND)
_STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Write order for messages sharing a stamp.
_PRIORITY = {"tf": 0, "command": 1, "odometry": 2, "imu": 3, "lidar": 4, "camera": 5}


def sample_times(rate_hz: float, duration_s: float) -> np.ndarray:
    """Instants k / rate in [0, duration)."""
    count = math.ceil(duration_s * rate_hz - 1e-9)
    return np.arange(count) / rate_hz


def _schedule(scene: SyntheticScene) -> list[tuple[int, int, str, float, int]]:
    """Sorted (stamp_ns, priority, kind, t, payload) of every event in the drive."""
    cfg = scene.config
    events = [(0.0, "tf", 0)]
    events += [(t, "command", value) for t, value in scene.command_changes(cfg.duration_s)]
    for kind, rate in (("odometry", cfg.odom_rate_hz), ("imu", cfg.imu_rate_hz), ("lidar", cfg.lidar_rate_hz),
                       ("camera", cfg.camera_rate_hz)):
        events += [(float(t), kind, 0) for t in sample_times(rate, cfg.duration_s)]
    stamped = [(cfg.start_time_ns + round(t * 1e9), _PRIORITY[kind], kind, t, payload) for t, kind, payload in events]
    return sorted(stamped)


def _prepare_output(out_dir: Path, overwrite: bool) -> None:
    """Refuse an existing path unless ``overwrite``; even then only delete an old bag or an empty dir."""
    if not out_dir.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir} already exists; choose a new directory or pass overwrite=True")
    if not out_dir.is_dir() or not ((out_dir / "metadata.yaml").exists() or not any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and does not look like a rosbag2 directory; not deleting it")
    shutil.rmtree(out_dir)


def make_drive(out_dir: str | Path, config: DriveConfig | None = None, *, overwrite: bool = False,
               progress: Callable[[float], None] | None = None) -> DriveSummary:
    """Write the synthetic drive to a new rosbag2 directory ``out_dir`` and summarise it.

    ``progress`` (optional) is called with the fraction of events written.
    """
    config = config or DriveConfig()
    out_dir = Path(out_dir)
    _prepare_output(out_dir, overwrite)
    started = time.perf_counter()
    scene = SyntheticScene(config)
    factory = _MessageFactory(scene)
    events = _schedule(scene)
    counts = dict.fromkeys(TOPIC_TYPES, 0)
    with Writer(out_dir, version=9, storage_plugin=_STORAGE[config.storage]) as writer:
        connections = {
            topic: writer.add_connection(topic, msgtype, typestore=factory.typestore,
                                         offered_qos_profiles=[_LATCHED_QOS] if topic in _LATCHED_TOPICS else [])
            for topic, msgtype in TOPIC_TYPES.items()
        }
        for n, (stamp, _, kind, t, payload) in enumerate(events):
            for topic, msg in _event_messages(factory, scene, kind, stamp, t, payload):
                writer.write(connections[topic], stamp, factory.serialize(msg))
                counts[topic] += 1
            if progress is not None:
                progress((n + 1) / len(events))
    return DriveSummary(
        path=out_dir, storage=config.storage, duration_s=config.duration_s, start_ns=events[0][0],
        end_ns=events[-1][0], topic_types=TOPIC_TYPES, counts=counts, wall_time_s=time.perf_counter() - started,
    )


def _event_messages(factory: _MessageFactory, scene: SyntheticScene, kind: str, stamp: int, t: float,
                    payload: int) -> list[tuple[str, object]]:
    """(topic, message) pairs produced by one scheduled event."""
    if kind == "tf":
        return [(TOPIC_TF_STATIC, factory.tf_static(stamp))]
    if kind == "command":
        return [(TOPIC_COMMAND, factory.command(payload))]
    if kind == "odometry":
        return [(TOPIC_ODOMETRY, factory.odometry(stamp, scene.ego_state(t)))]
    if kind == "imu":
        return [(TOPIC_IMU, factory.imu(stamp, scene.ego_state(t)))]
    if kind == "lidar":
        return [(TOPIC_LIDAR, factory.pointcloud(stamp, scene.lidar_sweep(t)))]
    messages = []
    for name in CAMERA_NAMES:
        messages.append((TOPIC_CAMERA_INFO[name], factory.camera_info(stamp, name)))
        messages.append((TOPIC_CAMERA_IMAGE[name], factory.compressed_image(stamp, name, scene.render_camera(name, t))))
    return messages


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="bag directory to create (must not exist)")
    parser.add_argument("--seed", type=int, default=DriveConfig.seed)
    parser.add_argument("--duration", type=float, default=DriveConfig.duration_s, help="seconds")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default=DriveConfig.storage)
    parser.add_argument("--turn", choices=("left", "right"), default=DriveConfig.turn)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag directory")


def run(args: argparse.Namespace) -> int:
    """Write a synthetic drive bag and print its summary."""
    config = DriveConfig(seed=args.seed, duration_s=args.duration, storage=args.storage, turn=args.turn)
    reported = [-1]

    def report(fraction: float) -> None:
        percent = int(fraction * 10) * 10
        if percent > reported[0]:
            reported[0] = percent
            print(f"\r{percent:3d}%", end="", file=sys.stderr, flush=True)

    summary = make_drive(args.out_dir, config, overwrite=args.overwrite, progress=report)
    print(file=sys.stderr)
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a deterministic synthetic drive as a rosbag2.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
