"""Kinematic baselines from the current ego state, in closed form: constant velocity, constant turn rate (CTRV/CTRA).

Output poses (P, 3) = (x forward, y left, heading) of the rear axle in the current ego frame at t = i * interval_s,
i = 1..P: the same layout as the planner's trajectories, so the open-loop metrics apply to them unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Below this |yaw rate| (rad/s) the arc formulas lose precision and their series to first order in the yaw rate is used.
_SMALL_YAW_RATE = 1e-4
# Below this speed (m/s) the direction of motion is undefined and taken as the heading.
_SMALL_SPEED = 1e-9


def _times(num_poses: int, interval_s: float) -> np.ndarray:
    """Pose times interval_s .. num_poses * interval_s, after checking the arguments."""
    if num_poses < 1:
        raise ValueError(f"num_poses must be >= 1, got {num_poses}")
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be finite and > 0, got {interval_s}")
    return interval_s * np.arange(1, num_poses + 1, dtype=np.float64)


def _velocity(velocity: Sequence[float]) -> tuple[float, float]:
    """(vx, vy) in the ego frame as finite floats."""
    vx, vy = (float(v) for v in velocity)
    if not (math.isfinite(vx) and math.isfinite(vy)):
        raise ValueError(f"velocity must be finite, got {(vx, vy)}")
    return vx, vy


def constant_velocity(velocity: Sequence[float], num_poses: int = 8, interval_s: float = 0.5) -> np.ndarray:
    """Keep the current velocity (vx, vy) in the ego frame: p(t) = v t, heading 0 (no rotation), as (P, 3) float64."""
    t = _times(num_poses, interval_s)
    vx, vy = _velocity(velocity)
    return np.stack([vx * t, vy * t, np.zeros_like(t)], axis=1)


def constant_turn_rate(velocity: Sequence[float], yaw_rate: float, acceleration: float = 0.0, num_poses: int = 8,
                       interval_s: float = 0.5) -> np.ndarray:
    """Constant turn rate and velocity (CTRV), or with `acceleration` != 0 constant turn rate and acceleration (CTRA).

    Speed s(t) = |v| + a t along the direction of motion, which keeps its angle beta = atan2(vy, vx) to the heading
    theta(t) = w t; integrating s(t) (cos(w t), sin(w t)) from 0 gives, rotated by beta,

        x(t) = s(t) sin(w t) / w + a (cos(w t) - 1) / w^2
        y(t) = (|v| - s(t) cos(w t)) / w + a sin(w t) / w^2

    which tends to x = |v| t + a t^2 / 2, y = w (|v| t^2 / 2 + a t^3 / 3) as w -> 0 (used below 1e-4 rad/s). A
    braking ego (a < 0) stops at t = -|v| / a and then holds its pose, heading included: it does not reverse.
    """
    t = _times(num_poses, interval_s)
    vx, vy = _velocity(velocity)
    w, a = float(yaw_rate), float(acceleration)
    if not (math.isfinite(w) and math.isfinite(a)):
        raise ValueError(f"yaw_rate and acceleration must be finite, got {(w, a)}")
    speed = math.hypot(vx, vy)
    beta = math.atan2(vy, vx) if speed > _SMALL_SPEED else 0.0
    if a < 0:
        t = np.minimum(t, speed / -a)
    s = speed + a * t
    if abs(w) < _SMALL_YAW_RATE:
        along = speed * t + a * t**2 / 2
        across = w * (speed * t**2 / 2 + a * t**3 / 3)
    else:
        along = s * np.sin(w * t) / w + a * (np.cos(w * t) - 1) / w**2
        across = (speed - s * np.cos(w * t)) / w + a * np.sin(w * t) / w**2
    x = math.cos(beta) * along - math.sin(beta) * across
    y = math.sin(beta) * along + math.cos(beta) * across
    return np.stack([x, y, w * t], axis=1)
