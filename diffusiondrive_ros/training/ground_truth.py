"""Ground truth of a frame: the future ego poses that odometry recorded, in the ego frame of the plan. Pure numpy."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NS_PER_S = 1_000_000_000

GROUND_TRUTH_INTERVAL_S = 0.5
"""Spacing of the planner's poses, and so of the ground-truth poses taken from odometry."""


@dataclass(frozen=True)
class OdometryTrack:
    """Ego poses (x, y, unwrapped yaw) in the odometry frame, by stamp, for ground-truth futures."""

    stamps_ns: np.ndarray
    poses: np.ndarray

    @classmethod
    def from_samples(cls, samples: Sequence[tuple[int, float, float, float]]) -> OdometryTrack:
        """Track of (stamp_ns, x, y, yaw) samples in any order; repeated stamps keep the first."""
        table = sorted(samples)
        stamps = np.array([s[0] for s in table], dtype=np.int64)
        stamps, first = np.unique(stamps, return_index=True)
        poses = np.array([s[1:] for s in table], dtype=np.float64).reshape(-1, 3)[first]
        poses[:, 2] = np.unwrap(poses[:, 2])
        return cls(stamps, poses)

    def future(self, stamp_ns: int, count: int, interval_s: float = GROUND_TRUTH_INTERVAL_S) -> np.ndarray | None:
        """(count, 3) poses at stamp + interval * (1..count) in the ego frame at `stamp_ns`.

        None when odometry does not cover the stamp and the whole horizon.
        """
        horizon_ns = round(count * interval_s * NS_PER_S)
        if len(self.stamps_ns) < 2 or not self.stamps_ns[0] <= stamp_ns <= self.stamps_ns[-1] - horizon_ns:
            return None
        offsets = (np.int64(stamp_ns) - self.stamps_ns[0]) + np.round(
            np.arange(count + 1) * interval_s * NS_PER_S).astype(np.int64)
        known = (self.stamps_ns - self.stamps_ns[0]).astype(np.float64)
        x, y, yaw = (np.interp(offsets.astype(np.float64), known, self.poses[:, k]) for k in range(3))
        dx, dy = x[1:] - x[0], y[1:] - y[0]
        c, s = math.cos(yaw[0]), math.sin(yaw[0])
        heading = (yaw[1:] - yaw[0] + math.pi) % (2 * math.pi) - math.pi
        return np.column_stack([c * dx + s * dy, -s * dx + c * dy, heading])


COMMAND_LEFT, COMMAND_STRAIGHT, COMMAND_RIGHT = 0, 1, 2
"""Driving commands as the status feature's one-hot index (3, unknown, is never derived)."""

STRAIGHT_MAX_HEADING_RAD = 0.2
"""Largest |heading change| over the horizon that still counts as driving straight."""

STRAIGHT_MAX_LATERAL_M = 2.0
"""Largest |lateral offset| at the end of the horizon that still counts as driving straight (about half a lane)."""


def derive_command(future: np.ndarray, max_heading_rad: float = STRAIGHT_MAX_HEADING_RAD,
                   max_lateral_m: float = STRAIGHT_MAX_LATERAL_M) -> int:
    """The driving command a route would have given for a ground-truth future, for recordings without commands.

    Rule on the last pose of the (P, 3) ego-frame future (4 s ahead for the planner's horizon): straight when
    |heading| < max_heading_rad and |y| < max_lateral_m; otherwise a turn, left for a positive sign and right for a
    negative one, the sign being the heading's when |heading| >= max_heading_rad (turns) and else y's (lane changes,
    S-bends). y points left and headings turn counter-clockwise, so positive means left.
    """
    _, y, heading = np.asarray(future, dtype=np.float64)[-1, :3]
    if abs(heading) >= max_heading_rad:
        return COMMAND_LEFT if heading > 0 else COMMAND_RIGHT
    if abs(y) >= max_lateral_m:
        return COMMAND_LEFT if y > 0 else COMMAND_RIGHT
    return COMMAND_STRAIGHT
