"""Seeded scenery as oriented boxes: sidewalks, buildings, parked and stopped cars, movers and path-following agents."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .layout import RoadLayout
from .motion import EgoMotion, SpeedProfile
from .network import RoadNetwork
from .path import TabulatedPath


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


# Ego rear axle (base_link) to front bumper (m).
EGO_FRONT_OVERHANG = 3.9
# Demo: gap (m) between the ego's front bumper and the car it stops behind.
_STOP_GAP = 5.0

BUILDING_COLORS = ((181, 160, 133), (150, 140, 130), (170, 95, 80), (120, 125, 135), (200, 190, 170),
                   (110, 100, 95))
CAR_COLORS = ((200, 200, 205), (30, 30, 35), (150, 20, 25), (20, 50, 120), (120, 125, 130), (230, 230, 225),
              (40, 90, 60))
CLOTHES_COLORS = ((200, 60, 50), (40, 60, 160), (60, 60, 60), (220, 180, 60), (80, 140, 80))
SIDEWALK_COLOR = (160, 158, 150)


@dataclass(frozen=True, eq=False)
class Agent:
    """A box driving or walking along a path: at time t it is at s = max(hold_s, offset_s + d(t + time_shift)).

    d is the distance of ``speed``; a lead vehicle is the ego's own profile shifted ahead in time and space,
    so it keeps a time gap and stops where the ego stops, only earlier and further on.
    """

    path: TabulatedPath
    speed: SpeedProfile
    row: tuple
    """Box (x, y, length, width, height, yaw, rgb, intensity) as in BoxSet.from_rows; x, y and yaw are replaced."""
    time_shift: float = 0.0
    offset_s: float = 0.0
    hold_s: float = -math.inf
    across: float = 0.0
    """Lateral offset (m, left positive) from the path."""

    def distance(self, t: float) -> float:
        """Path distance at time ``t``."""
        return max(self.hold_s, self.offset_s + float(self.speed.evaluate(t + self.time_shift)[0]))

    def box_row(self, t: float) -> tuple:
        """The agent's box at time ``t`` as a BoxSet row."""
        s = self.distance(t)
        x, y = self.path.point(s, self.across)
        return (float(x), float(y)) + self.row[2:5] + (float(self.path.heading(s)),) + self.row[6:]


@dataclass(frozen=True, eq=False)
class World:
    """Everything LiDAR and cameras can see besides the ground and the painted road."""

    layout: RoadLayout | RoadNetwork
    sidewalks: BoxSet
    solids: BoxSet
    movers: BoxSet
    mover_velocity: np.ndarray
    agents: tuple[Agent, ...] = ()

    def moving_at(self, t: float) -> BoxSet:
        """Vehicles and pedestrians that move, at time ``t``: constant-velocity movers, then agents."""
        moved = self.movers.moved(self.mover_velocity * t)
        if not self.agents:
            return moved
        return BoxSet.concat([moved, BoxSet.from_rows([a.box_row(t) for a in self.agents])])

    def obstacles_at(self, t: float) -> BoxSet:
        """Buildings, vehicles and pedestrians at time ``t`` (movers advanced)."""
        return BoxSet.concat([self.solids, self.moving_at(t)])

    def boxes_at(self, t: float) -> BoxSet:
        """All boxes at time ``t``, sidewalk slabs first."""
        return BoxSet.concat([self.sidewalks, self.obstacles_at(t)])


def choice(rng: np.random.Generator, options: Sequence[tuple]) -> tuple:
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
                    rows.append((float(x), float(y), d1 - d0, bl - hw, 0.15, yaw, SIDEWALK_COLOR, 0.3))
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
                    rows.append((float(x), float(y), length, depth, height, yaw, choice(rng, BUILDING_COLORS),
                                 float(rng.uniform(0.3, 0.45))))
                    d += length + float(rng.choice([0.0, rng.uniform(1.0, 4.0)]))
    return rows


def vehicle_row(rng: np.random.Generator, x: float, y: float, yaw: float) -> tuple:
    """One car-sized box."""
    return (x, y, float(rng.uniform(4.2, 5.0)), float(rng.uniform(1.75, 1.95)), float(rng.uniform(1.45, 1.75)),
            yaw, choice(rng, CAR_COLORS), float(rng.uniform(0.5, 0.7)))


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
                    rows.append(vehicle_row(rng, float(x), float(y), heading))
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
                     choice(rng, CLOTHES_COLORS), 0.35))
        velocities.append((speed * direction[0], speed * direction[1], 0.0))
    return rows, np.array(velocities, dtype=float).reshape(-1, 3)


def build_world(rng: np.random.Generator, layout: RoadLayout, motion: EgoMotion) -> World:
    """Seeded static scenery plus the stopped car ahead of the ego's stop and the movers."""
    sidewalks = BoxSet.from_rows(_sidewalk_rows(layout))
    s_stop = float(motion.speed.evaluate(motion.speed.knots_t[-1])[0])
    stopped_s = s_stop + EGO_FRONT_OVERHANG + _STOP_GAP + 2.4
    sx, sy = (float(q) for q in motion.path.position(stopped_s))
    stopped = vehicle_row(rng, sx, sy, float(motion.path.heading(stopped_s)))
    stopped = (stopped[0], stopped[1], 4.8) + stopped[3:]
    solids = BoxSet.from_rows(_building_rows(rng, layout) + _parked_rows(rng, layout) + [stopped])
    ped_rows, ped_velocity = _pedestrian_rows(rng, layout, count=12)
    oncoming = vehicle_row(rng, layout.center_x + 32.0, layout.lane_width / 2, math.pi)
    movers = BoxSet.from_rows([oncoming] + ped_rows)
    velocity = np.vstack([[[-9.0, 0.0, 0.0]], ped_velocity])
    return World(layout, sidewalks, solids, movers, velocity)
