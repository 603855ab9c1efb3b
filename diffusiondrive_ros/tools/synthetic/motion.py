"""Ego motion: a cosine-blended speed profile driven along a path (the demo's clothoid-arc-clothoid turn)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .geometry import pose_matrix
from .path import TabulatedPath


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
        return pose_matrix(self.x, self.y, 0.0, self.yaw)


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
    """Ego trajectory: a speed profile driven along a path (the demo's TurnPath or a random drive's route)."""

    speed: SpeedProfile
    path: TurnPath | TabulatedPath

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
