"""Open-loop planning metrics on one frame (displacement, collision, clearance, comfort, progress, intent); numpy only.

Conventions: a trajectory is (P, 2|3) poses (x forward, y left, heading) of the ego's rear axle in the ego frame at the
current time, the i-th pose at t = i * interval_s (i = 1..P). The current pose (0, 0, 0) at t = 0 is implicit and
is prepended wherever motion from "now" matters (sweeps, comfort, progress, path length).

LiDAR checks are time-consistent, as nuPlan and NAVSIM check a plan against the agents' future states: the plan's pose
at time tau (every step_s) meets the obstacle points (0.4-2 m above the ground) of the sweep recorded nearest tau,
moved from the ego frame of that sweep into the plan's with the recorded odometry (`ObstacleSweep`). Static obstacles
stay where they are; a lead car that drives on is met where it is when the ego gets there, not where it stood when the
plan was made. Collision is the swept footprint touching a point. "Near an obstacle" (the plan comes within 0.75 m of
one) is measured from the plan's path, its centre line, not from the footprint: the recorded drives themselves keep
only 0.6-0.9 m between the footprint and the parked cars and oncoming traffic beside their 2.9-4 m lanes, so a 0.75 m
footprint margin flags 31% of the recorded frames of the held-out drives (85% on one), while their path stays over
1.5 m from every obstacle (0%). As 0.75 m is less than half the ego's width, a path that near also puts the footprint
on the obstacle; the footprint's own margin is reported as `clearance_m`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Points per block when sweeping the footprint, so (sweep poses x points) arrays stay small for 100k-point clouds.
_POINT_CHUNK = 8192
# Segments shorter than this (m) carry no direction when headings are derived from positions.
_MIN_SEGMENT_M = 1e-3


def _require(ok: bool, name: str, allowed: str, value: object) -> None:
    """Raise a ValueError naming the field, what is allowed and the value given."""
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _trajectory(array: np.ndarray, name: str = "trajectory") -> np.ndarray:
    """Check one trajectory is (P, 2|3) with P >= 1 and finite; return it as float64."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] not in (2, 3) or array.shape[0] < 1:
        raise ValueError(f"{name} must have shape (P, 2) or (P, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return array


def _modes(array: np.ndarray, name: str = "modes") -> np.ndarray:
    """Check a set of trajectories is (K, P, 2|3) with K, P >= 1 and finite; return it as float64."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] not in (2, 3) or min(array.shape[:2]) < 1:
        raise ValueError(f"{name} must have shape (K, P, 2) or (K, P, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return array


def _same_length(pred: np.ndarray, gt: np.ndarray) -> None:
    """Predictions and ground truth must have the same number of poses."""
    if pred.shape[-2] != gt.shape[0]:
        raise ValueError(f"prediction has {pred.shape[-2]} poses but ground truth has {gt.shape[0]}")


def _with_origin(xy: np.ndarray) -> np.ndarray:
    """(P, 2) positions with the current position (0, 0) prepended: (P + 1, 2)."""
    return np.concatenate([np.zeros((1, 2)), xy], axis=0)


def headings(trajectory: np.ndarray) -> np.ndarray:
    """Unwrapped headings (P,) continuous from 0 at t = 0, so a U-turn reads +-pi and not a sign flip.

    With a heading column it is used; with (P, 2) positions the heading is the direction of travel of each segment
    (held through segments shorter than 1 mm, starting from 0).
    """
    trajectory = _trajectory(trajectory)
    if trajectory.shape[1] == 3:
        raw = trajectory[:, 2]
    else:
        steps = np.diff(_with_origin(trajectory[:, :2]), axis=0)
        raw = np.arctan2(steps[:, 1], steps[:, 0])
        moving = np.hypot(steps[:, 0], steps[:, 1]) >= _MIN_SEGMENT_M
        last = 0.0
        raw = raw.copy()
        for i in range(raw.shape[0]):  # P is small (8): a loop is clearer than a cumulative-select trick
            if moving[i]:
                last = raw[i]
            raw[i] = last
    return np.unwrap(np.concatenate([[0.0], raw]))[1:]


def path_length(trajectory: np.ndarray) -> float:
    """Length (m) of the polyline from the current position through every pose."""
    xy = _with_origin(_trajectory(trajectory)[:, :2])
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())


# --- displacement --------------------------------------------------------------------------------------------------


def ade(pred: np.ndarray, gt: np.ndarray) -> float:
    """Average displacement error (m): mean over poses of the xy distance between prediction and ground truth."""
    pred, gt = _trajectory(pred, "pred"), _trajectory(gt, "gt")
    _same_length(pred, gt)
    return float(np.linalg.norm(pred[:, :2] - gt[:, :2], axis=-1).mean())


def fde(pred: np.ndarray, gt: np.ndarray) -> float:
    """Final displacement error (m): xy distance between the last predicted and last ground-truth pose."""
    pred, gt = _trajectory(pred, "pred"), _trajectory(gt, "gt")
    _same_length(pred, gt)
    return float(np.linalg.norm(pred[-1, :2] - gt[-1, :2]))


def _mode_errors(modes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-mode, per-pose xy distances (K, P) to the ground truth."""
    modes, gt = _modes(modes), _trajectory(gt, "gt")
    _same_length(modes, gt)
    return np.linalg.norm(modes[:, :, :2] - gt[None, :, :2], axis=-1)


def min_ade(modes: np.ndarray, gt: np.ndarray) -> float:
    """Best-of-K ADE (m): the smallest ADE over the K modes (the oracle choice, independent of the scores)."""
    return float(_mode_errors(modes, gt).mean(axis=1).min())


def min_fde(modes: np.ndarray, gt: np.ndarray) -> float:
    """Best-of-K FDE (m): the smallest FDE over the K modes, chosen on its own (may be another mode than min_ade's)."""
    return float(_mode_errors(modes, gt)[:, -1].min())


def miss(pred: np.ndarray, gt: np.ndarray, threshold_m: float = 2.0) -> bool:
    """A miss: the final pose is more than `threshold_m` from the ground truth's (FDE > threshold)."""
    return fde(pred, gt) > threshold_m


# --- collision and clearance (time-consistent: see the module docstring) -------------------------------------------


@dataclass(frozen=True)
class EgoFootprint:
    """The ego's box relative to its pose reference point (the rear axle), used for the swept-footprint checks."""

    length_m: float = 4.8  # bumper to bumper
    width_m: float = 2.0  # without mirrors
    # Rear axle to box centre along x: 1.5 puts the front bumper 3.9 m ahead of the rear axle (the synthetic world's).
    rear_axle_to_centre_m: float = 1.5

    def __post_init__(self) -> None:
        _require(math.isfinite(self.length_m) and self.length_m >= 0, "length_m", "finite and >= 0", self.length_m)
        _require(math.isfinite(self.width_m) and self.width_m >= 0, "width_m", "finite and >= 0", self.width_m)
        _require(math.isfinite(self.rear_axle_to_centre_m), "rear_axle_to_centre_m", "finite",
                 self.rear_axle_to_centre_m)

    @property
    def reach_m(self) -> float:
        """Farthest distance from the reference point to the box: bounds the footprint for point prefiltering."""
        return math.hypot(abs(self.rear_axle_to_centre_m) + self.length_m / 2, self.width_m / 2)


@dataclass(frozen=True)
class CollisionConfig:
    """How a trajectory's swept footprint and path are checked against LiDAR sweeps and boxes."""

    footprint: EgoFootprint = EgoFootprint()
    min_z_m: float = 0.4  # points at or above this height (ego frame) are obstacles: kerbs and road surface are not
    max_z_m: float = 2.0  # points at or below this height are obstacles: overhanging branches and signs are not
    step_s: float = 0.1  # sweep sampling; poses are interpolated linearly (heading unwrapped) between trajectory poses
    # A sweep pose is checked against the sweep nearest its time when that sweep is at most this far from it: half the
    # period of a 10 Hz LiDAR. Poses without one (sweeps dropped, or the bag ends first) are not checked.
    sweep_tolerance_s: float = 0.05
    # Obstacles inside the footprint at the sweep's own pose are the ego's own returns (or annotation noise), not the
    # plan's fault; drop them.
    exclude_self_returns: bool = True

    def __post_init__(self) -> None:
        _require(math.isfinite(self.min_z_m), "min_z_m", "finite", self.min_z_m)
        _require(math.isfinite(self.max_z_m) and self.max_z_m >= self.min_z_m, "max_z_m",
                 f"finite and >= min_z_m ({self.min_z_m})", self.max_z_m)
        _require(math.isfinite(self.step_s) and self.step_s > 0, "step_s", "finite and > 0", self.step_s)
        _require(self.sweep_tolerance_s >= 0, "sweep_tolerance_s", ">= 0", self.sweep_tolerance_s)


@dataclass(frozen=True)
class ObstacleSweep:
    """The obstacle points of one LiDAR sweep, placed in the ego frame of the plan."""

    offset_s: float  # the sweep's stamp minus the plan's (s): the time of the sweep poses it is checked against
    xy: np.ndarray  # (M, 2): `obstacle_points` of the sweep moved into the plan's frame by `to_plan_frame`


@dataclass(frozen=True)
class ObstacleDistances:
    """A trajectory's closest approach to the obstacles it meets (`obstacle_distances`); inf beyond the reach asked."""

    footprint_m: float  # smallest signed distance from a point to the swept footprint (m): negative inside
    centre_line_m: float  # smallest distance from a point to the trajectory's path (m)
    unchecked_poses: int  # sweep poses without a sweep within sweep_tolerance_s: not checked


def obstacle_points(points: np.ndarray, config: CollisionConfig = CollisionConfig()) -> np.ndarray:
    """Xy (M, 2) of one sweep's obstacles in the ego frame of that sweep: what the ego would hit.

    The finite points (N, >=3) with min_z_m <= z <= max_z_m, less (with exclude_self_returns) those inside the
    footprint at the sweep's own pose, the origin: the ego's own returns.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must have shape (N, 3) or more columns, got {points.shape}")
    xyz = points[:, :3].astype(np.float64, copy=False)
    keep = (xyz[:, 2] >= config.min_z_m) & (xyz[:, 2] <= config.max_z_m) & np.isfinite(xyz).all(axis=1)
    xy = xyz[keep, :2]
    if config.exclude_self_returns and xy.shape[0]:
        xy = xy[footprint_signed_distance(np.zeros((1, 3)), xy, config.footprint)[0] >= 0.0]
    return xy


def to_plan_frame(xy: np.ndarray, ego_pose: Sequence[float]) -> np.ndarray:
    """Points (M, 2) seen in the ego frame at a sweep's time, in the ego frame of the plan.

    `ego_pose` = (x, y, yaw) is the ego's pose at the sweep's time in the plan's frame (from odometry): a point q of
    the sweep is at R(yaw) q + (x, y).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    x, y, yaw = (float(v) for v in ego_pose)
    cos, sin = math.cos(yaw), math.sin(yaw)
    return np.stack([cos * xy[:, 0] - sin * xy[:, 1] + x, sin * xy[:, 0] + cos * xy[:, 1] + y], axis=1)


def _sample_times(end_s: float, step_s: float) -> np.ndarray:
    """Times from 0 to end_s at most step_s apart, evenly spaced: the sweep poses' times."""
    return np.linspace(0.0, end_s, int(math.ceil(end_s / step_s - 1e-9)) + 1)


def sweep_poses(trajectory: np.ndarray, interval_s: float = 0.5, step_s: float = 0.1) -> np.ndarray:
    """Poses (T, 3) from the origin at t = 0 through every trajectory pose, at most `step_s` apart in time.

    x, y and the unwrapped heading are interpolated linearly between consecutive poses; the trajectory's own poses
    are among the samples when `step_s` divides `interval_s`.
    """
    trajectory = _trajectory(trajectory)
    _require(interval_s > 0, "interval_s", "> 0", interval_s)
    _require(step_s > 0, "step_s", "> 0", step_s)
    knots = np.concatenate([_with_origin(trajectory[:, :2]), np.concatenate([[0.0], headings(trajectory)])[:, None]],
                           axis=1)
    times = interval_s * np.arange(knots.shape[0])
    samples = _sample_times(float(times[-1]), step_s)
    return np.stack([np.interp(samples, times, knots[:, i]) for i in range(3)], axis=1)


def match_sweeps(times_s: np.ndarray, offsets_s: Sequence[float], tolerance_s: float) -> np.ndarray:
    """For each time (T,), the index of the sweep offset nearest it (the earlier on a tie); -1 where none is within
    tolerance_s (1 ns of slack for offsets computed from nanosecond stamps)."""
    times_s = np.asarray(times_s, dtype=np.float64).reshape(-1)
    offsets = np.asarray(offsets_s, dtype=np.float64).reshape(-1)
    if offsets.shape[0] == 0:
        return np.full(times_s.shape[0], -1)
    order = np.argsort(offsets, kind="stable")
    gap = np.abs(times_s[:, None] - offsets[order][None, :])
    nearest = gap.argmin(axis=1)
    close = gap[np.arange(times_s.shape[0]), nearest] <= tolerance_s + 1e-9
    return np.where(close, order[nearest], -1)


def footprint_signed_distance(poses: np.ndarray, xy: np.ndarray,
                              footprint: EgoFootprint = EgoFootprint()) -> np.ndarray:
    """Signed distance (T, M) from each point to the footprint at each pose: negative inside, 0 on the edge (m)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    cos, sin = np.cos(poses[:, 2:3]), np.sin(poses[:, 2:3])
    dx = xy[None, :, 0] - poses[:, 0:1]
    dy = xy[None, :, 1] - poses[:, 1:2]
    # point in the box frame: rotate by -heading, then shift to the box centre
    qx = np.abs(cos * dx + sin * dy - footprint.rear_axle_to_centre_m) - footprint.length_m / 2
    qy = np.abs(-sin * dx + cos * dy) - footprint.width_m / 2
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return outside + inside


def segment_distance(starts: np.ndarray, ends: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Distance (S, M) from each point (M, 2) to each segment from starts[i] to ends[i] (S, 2) (m)."""
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
    delta = np.asarray(ends, dtype=np.float64).reshape(-1, 2) - starts
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    relative = xy[None, :, :] - starts[:, None, :]
    squared = np.maximum((delta**2).sum(axis=1), 1e-12)[:, None]
    along = np.clip((relative * delta[:, None, :]).sum(axis=2) / squared, 0.0, 1.0)
    return np.linalg.norm(relative - along[:, :, None] * delta[:, None, :], axis=2)


def _within_box(xy: np.ndarray, corners: np.ndarray, grow: float) -> np.ndarray:
    """The points (M, 2) inside the bounding box of `corners` (C, 2) grown by `grow` on every side."""
    (low_x, low_y), (high_x, high_y) = corners.min(axis=0) - grow, corners.max(axis=0) + grow
    x, y = xy[:, 0], xy[:, 1]  # per column: several times faster than a 2-D comparison reduced with all(axis=1)
    return xy[(x >= low_x) & (x <= high_x) & (y >= low_y) & (y <= high_y)]


def obstacle_distances(trajectory: np.ndarray, sweeps: Sequence[ObstacleSweep], reach_m: float,
                       interval_s: float = 0.5, config: CollisionConfig = CollisionConfig()) -> ObstacleDistances:
    """Closest approach of a trajectory to the obstacles, each sweep pose against the sweep of its own time.

    Each sweep pose (`sweep_poses`, t = 0 .. the last pose every step_s) is matched to the sweep nearest its time
    (`match_sweeps`) and checked against that sweep's points only. footprint_m: the footprint at the pose.
    centre_line_m: the path the poses trace (the reference point's polyline from the origin through every pose), each
    piece of it against the sweep of the nearest sweep pose, so it is exact between poses. Only points within
    `reach_m` of the poses (grown by the footprint) are examined: both distances are exact up to `reach_m`, inf beyond.
    """
    trajectory = _trajectory(trajectory)
    poses = sweep_poses(trajectory, interval_s, config.step_s)
    owner = match_sweeps(_sample_times(interval_s * trajectory.shape[0], config.step_s),
                         [sweep.offset_s for sweep in sweeps], config.sweep_tolerance_s)
    path = poses[:, :2]
    halfway = (path[:-1] + path[1:]) / 2
    before, after = np.concatenate([path[:1], halfway]), np.concatenate([halfway, path[-1:]])
    reach_m = max(reach_m, 0.0)
    footprint = centre_line = math.inf
    # Sweeps in time order; only points that could beat the closest approach so far are examined (exact pruning).
    for index in dict.fromkeys(owner[owner >= 0].tolist()):
        mine = owner == index
        starts, ends = np.concatenate([before[mine], path[mine]]), np.concatenate([path[mine], after[mine]])
        grow = config.footprint.reach_m + min(reach_m, max(footprint, 0.0))
        near_poses = _within_box(sweeps[index].xy, path[mine], grow)
        for start in range(0, near_poses.shape[0], _POINT_CHUNK):
            block = near_poses[start:start + _POINT_CHUNK]
            footprint = min(footprint, float(footprint_signed_distance(poses[mine], block, config.footprint).min()))
        near_path = _within_box(sweeps[index].xy, np.concatenate([starts, ends]), min(reach_m, centre_line))
        for start in range(0, near_path.shape[0], _POINT_CHUNK):
            block = near_path[start:start + _POINT_CHUNK]
            centre_line = min(centre_line, float(segment_distance(starts, ends, block).min()))
    return ObstacleDistances(footprint_m=footprint if footprint <= reach_m else math.inf,
                             centre_line_m=centre_line if centre_line <= reach_m else math.inf,
                             unchecked_poses=int((owner < 0).sum()))


def collision(trajectory: np.ndarray, sweeps: Sequence[ObstacleSweep], margin_m: float = 0.0, interval_s: float = 0.5,
              config: CollisionConfig = CollisionConfig()) -> bool:
    """True when an obstacle point lies inside the footprint, grown by `margin_m`, at a sweep pose from t = 0 to the
    last pose, each pose against the sweep of its time (points on the edge count)."""
    return obstacle_distances(trajectory, sweeps, margin_m, interval_s, config).footprint_m <= margin_m


def clearance(trajectory: np.ndarray, sweeps: Sequence[ObstacleSweep], max_range_m: float = 10.0,
              interval_s: float = 0.5, config: CollisionConfig = CollisionConfig()) -> float:
    """Closest approach (m) of the swept footprint to the obstacles of its time: 0 on contact, inf beyond max_range_m.

    Distances are taken at the sweep poses (every step_s).
    """
    return max(obstacle_distances(trajectory, sweeps, max_range_m, interval_s, config).footprint_m, 0.0)


def centre_line_clearance(trajectory: np.ndarray, sweeps: Sequence[ObstacleSweep], max_range_m: float = 10.0,
                          interval_s: float = 0.5, config: CollisionConfig = CollisionConfig()) -> float:
    """Closest approach (m) of the trajectory's path to the obstacles of its time, inf beyond max_range_m.

    "The plan comes within 0.75 m of a LiDAR obstacle" is `centre_line_clearance(...) < 0.75` (see MetricsConfig).
    """
    return obstacle_distances(trajectory, sweeps, max_range_m, interval_s, config).centre_line_m


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether oriented boxes (..., 5) = (x, y, yaw, length, width) overlap, broadcasting; touching counts.

    Separating-axis test: two rectangles are disjoint iff their projections are disjoint on one of their 4 edge normals.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    centre = b[..., :2] - a[..., :2]

    def box_axes(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors along a box's length and width."""
        cos, sin = np.cos(box[..., 2]), np.sin(box[..., 2])
        return np.stack([cos, sin], -1), np.stack([-sin, cos], -1)

    axes_a, axes_b = box_axes(a), box_axes(b)

    def radius(axes: tuple[np.ndarray, np.ndarray], box: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Half extent of a box projected on `normal`."""
        return (box[..., 3] / 2 * np.abs((axes[0] * normal).sum(-1))
                + box[..., 4] / 2 * np.abs((axes[1] * normal).sum(-1)))

    separated = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=bool)
    for normal in (*axes_a, *axes_b):
        gap = np.abs((centre * normal).sum(-1))
        separated |= gap > radius(axes_a, a, normal) + radius(axes_b, b, normal)
    return ~separated


def box_collision(trajectory: np.ndarray, boxes: np.ndarray, interval_s: float = 0.5,
                  config: CollisionConfig = CollisionConfig()) -> bool:
    """True when the swept footprint overlaps any ground-truth box (B, 5) = (x, y, yaw, length, width).

    Boxes are the current frame's, held where they are (a check against parked and slow agents; moving agents would
    need their future boxes). Boxes already overlapping the ego at t = 0 are ignored when exclude_self_returns is set.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ValueError(f"boxes must have shape (B, 5) = (x, y, yaw, length, width), got {boxes.shape}")
    if boxes.shape[0] == 0:
        return False
    poses = sweep_poses(trajectory, interval_s, config.step_s)
    shift = config.footprint.rear_axle_to_centre_m
    ego = np.stack([poses[:, 0] + shift * np.cos(poses[:, 2]), poses[:, 1] + shift * np.sin(poses[:, 2]), poses[:, 2],
                    np.full(len(poses), config.footprint.length_m), np.full(len(poses), config.footprint.width_m)], -1)
    overlap = boxes_overlap(ego[:, None], boxes[None])
    if config.exclude_self_returns:
        overlap = overlap[:, ~overlap[0]]
    return bool(overlap.any())


# --- comfort -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComfortThresholds:
    """nuPlan's published ego comfort bounds (m/s^2, m/s^3, rad/s, rad/s^2), also used by NAVSIM's EC/C metric."""

    max_abs_lat_accel: float = 4.89
    max_lon_accel: float = 2.40
    min_lon_accel: float = -4.05
    max_abs_yaw_accel: float = 1.93
    max_abs_lon_jerk: float = 4.13
    max_abs_yaw_rate: float = 0.95
    max_abs_mag_jerk: float = 8.37

    def __post_init__(self) -> None:
        for name in ("max_abs_lat_accel", "max_lon_accel", "max_abs_yaw_accel", "max_abs_lon_jerk", "max_abs_yaw_rate",
                     "max_abs_mag_jerk"):
            value = getattr(self, name)
            _require(value > 0, name, "> 0", value)
        _require(self.min_lon_accel < 0, "min_lon_accel", "< 0", self.min_lon_accel)


@dataclass(frozen=True)
class Comfort:
    """Extremes of the planned motion's derivatives over the planned poses, and which nuPlan bounds they break."""

    lon_accel_max: float  # m/s^2, along the heading
    lon_accel_min: float  # m/s^2 (braking is negative)
    lat_accel_max_abs: float  # m/s^2, across the heading
    lon_jerk_max_abs: float  # m/s^3, derivative of the longitudinal acceleration
    jerk_max_abs: float  # m/s^3, magnitude of the derivative of the acceleration vector
    yaw_rate_max_abs: float  # rad/s
    yaw_accel_max_abs: float  # rad/s^2
    violations: tuple[str, ...]  # names of the ComfortThresholds fields exceeded
    comfortable: bool  # no violations


def comfort(trajectory: np.ndarray, velocity: Sequence[float] = (0.0, 0.0), acceleration: Sequence[float] | None = None,
            yaw_rate: float | None = None, interval_s: float = 0.5,
            thresholds: ComfortThresholds = ComfortThresholds()) -> Comfort:
    """Comfort of a trajectory against nuPlan's bounds, from finite differences of its poses.

    The origin pose at t = 0 is prepended; derivatives are second-order finite differences (`np.gradient`,
    edge_order=2) in time, with the ego's current velocity (vx, vy), acceleration (ax, ay) and yaw rate (ego frame)
    replacing the t = 0 estimates when given, so a plan that ignores the current motion shows up as acceleration or
    jerk. Longitudinal/lateral are along/across each pose's heading. Extremes are taken over the planned poses
    t = interval_s .. P * interval_s (the current state itself is not judged).
    """
    trajectory = _trajectory(trajectory)
    _require(trajectory.shape[0] >= 2, "trajectory", "at least 2 poses for comfort", trajectory.shape[0])
    _require(interval_s > 0, "interval_s", "> 0", interval_s)
    xy = _with_origin(trajectory[:, :2])
    heading = np.concatenate([[0.0], headings(trajectory)])
    vel = np.gradient(xy, interval_s, axis=0, edge_order=2)
    vel[0] = np.asarray(velocity, dtype=np.float64)
    acc = np.gradient(vel, interval_s, axis=0, edge_order=2)
    if acceleration is not None:
        acc[0] = np.asarray(acceleration, dtype=np.float64)
    jerk = np.gradient(acc, interval_s, axis=0, edge_order=2)
    lon_accel = acc[:, 0] * np.cos(heading) + acc[:, 1] * np.sin(heading)
    lat_accel = -acc[:, 0] * np.sin(heading) + acc[:, 1] * np.cos(heading)
    lon_jerk = np.gradient(lon_accel, interval_s, edge_order=2)
    rate = np.gradient(heading, interval_s, edge_order=2)
    if yaw_rate is not None:
        rate[0] = float(yaw_rate)
    yaw_accel = np.gradient(rate, interval_s, edge_order=2)
    planned = slice(1, None)
    values = {
        "lon_accel_max": float(lon_accel[planned].max()),
        "lon_accel_min": float(lon_accel[planned].min()),
        "lat_accel_max_abs": float(np.abs(lat_accel[planned]).max()),
        "lon_jerk_max_abs": float(np.abs(lon_jerk[planned]).max()),
        "jerk_max_abs": float(np.linalg.norm(jerk[planned], axis=1).max()),
        "yaw_rate_max_abs": float(np.abs(rate[planned]).max()),
        "yaw_accel_max_abs": float(np.abs(yaw_accel[planned]).max()),
    }
    checks = (
        ("max_abs_lat_accel", values["lat_accel_max_abs"] > thresholds.max_abs_lat_accel),
        ("max_lon_accel", values["lon_accel_max"] > thresholds.max_lon_accel),
        ("min_lon_accel", values["lon_accel_min"] < thresholds.min_lon_accel),
        ("max_abs_yaw_accel", values["yaw_accel_max_abs"] > thresholds.max_abs_yaw_accel),
        ("max_abs_lon_jerk", values["lon_jerk_max_abs"] > thresholds.max_abs_lon_jerk),
        ("max_abs_yaw_rate", values["yaw_rate_max_abs"] > thresholds.max_abs_yaw_rate),
        ("max_abs_mag_jerk", values["jerk_max_abs"] > thresholds.max_abs_mag_jerk),
    )
    violations = tuple(name for name, broken in checks if broken)
    return Comfort(**values, violations=violations, comfortable=not violations)


# --- progress and intent -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far along the ground-truth path the trajectory's final pose gets."""

    along_m: float  # arc length of the final pose's projection onto the ground-truth polyline (from the origin)
    gt_length_m: float  # length of the ground-truth polyline from the origin
    ratio: float  # along_m / gt_length_m in [0, 1]; 1 when the ground truth stands still


def progress(trajectory: np.ndarray, gt: np.ndarray, standstill_length_m: float = 0.5) -> Progress:
    """Progress of the final pose along the ground-truth path (origin + gt poses), as metres and as a ratio.

    The final xy is projected onto the nearest point of the polyline (first segment on ties); the projection is
    clamped to the polyline, so overshooting the ground truth's end is worth no more than reaching it. When the
    ground truth travels less than `standstill_length_m` there is no progress to make and the ratio is 1 (as NAVSIM's
    ego-progress does below its threshold); stopping versus moving is then judged by FDE and `stops`.
    """
    trajectory, gt = _trajectory(trajectory), _trajectory(gt, "gt")
    polyline = _with_origin(gt[:, :2])
    start, delta = polyline[:-1], np.diff(polyline, axis=0)
    lengths = np.linalg.norm(delta, axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    total = float(cumulative[-1])
    end = trajectory[-1, :2]
    squared = np.maximum(lengths**2, 1e-12)
    u = np.clip(((end - start) * delta).sum(axis=1) / squared, 0.0, 1.0)
    distance = np.linalg.norm(start + u[:, None] * delta - end, axis=1)
    nearest = int(np.argmin(distance))
    along = float(cumulative[nearest] + u[nearest] * lengths[nearest])
    ratio = 1.0 if total < standstill_length_m else along / total
    return Progress(along_m=along, gt_length_m=total, ratio=ratio)


def stops(trajectory: np.ndarray, threshold_m: float = 1.0) -> bool:
    """True when every pose stays within `threshold_m` of the current position (the plan stops or stays stopped)."""
    trajectory = _trajectory(trajectory)
    return bool(np.linalg.norm(trajectory[:, :2], axis=1).max() <= threshold_m)


def turn_direction(trajectory: np.ndarray, heading_threshold_rad: float = 0.2, min_travel_m: float = 1.0) -> int:
    """+1 for a left turn, -1 for a right turn, 0 for straight (or standing): the sign of the final heading change.

    A turn is a final (unwrapped) heading change of at least `heading_threshold_rad` (0.2 rad = 11.5 deg: more than
    a lane change's transient heading, less than an intersection turn reaches in a few seconds). Headings come from
    the heading column, or from the direction of travel for (P, 2). A trajectory that travels less than
    `min_travel_m` is not turning, whatever its (then meaningless) headings.
    """
    if path_length(trajectory) < min_travel_m:
        return 0
    change = float(headings(trajectory)[-1])
    if change >= heading_threshold_rad:
        return 1
    if change <= -heading_threshold_rad:
        return -1
    return 0


# --- one frame and a summary ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsConfig:
    """Thresholds of `evaluate_frame`."""

    interval_s: float = 0.5  # time between trajectory poses
    miss_threshold_m: float = 2.0  # FDE above this is a miss
    collision_margin_m: float = 0.0  # footprint growth for the LiDAR collision check
    near_obstacle_m: float = 0.75  # centre-line clearance below this is "near an obstacle" (see the module docstring)
    clearance_range_m: float = 10.0  # clearances beyond this read inf (bounds the point search)
    stop_threshold_m: float = 1.0  # `stops`: every pose within this of the origin
    turn_heading_threshold_rad: float = 0.2  # `turn_direction` threshold
    turn_min_travel_m: float = 1.0  # `turn_direction`: shorter paths are not turns
    standstill_length_m: float = 0.5  # `progress`: shorter ground truth is a standstill
    collision: CollisionConfig = CollisionConfig()
    comfort: ComfortThresholds = ComfortThresholds()

    def __post_init__(self) -> None:
        for name in ("interval_s", "miss_threshold_m", "near_obstacle_m", "clearance_range_m", "stop_threshold_m",
                     "turn_heading_threshold_rad", "standstill_length_m"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, name, "finite and > 0", value)
        _require(math.isfinite(self.turn_min_travel_m) and self.turn_min_travel_m >= 0, "turn_min_travel_m",
                 "finite and >= 0", self.turn_min_travel_m)
        _require(math.isfinite(self.collision_margin_m) and self.collision_margin_m >= 0, "collision_margin_m",
                 "finite and >= 0", self.collision_margin_m)
        limit = max(self.near_obstacle_m, self.collision_margin_m)
        _require(self.clearance_range_m >= limit, "clearance_range_m",
                 f">= near_obstacle_m and collision_margin_m ({limit})", self.clearance_range_m)


@dataclass(frozen=True)
class FrameMetrics:
    """Metrics of one frame: the best-scored mode's, plus best-of-K displacement; None where an input was missing."""

    best_index: int  # argmax of the scores
    ade: float  # best-scored mode's ADE (m)
    fde: float  # best-scored mode's FDE (m)
    miss: bool  # best-scored mode's FDE > miss_threshold_m
    min_ade: float  # best-of-K ADE (m)
    min_fde: float  # best-of-K FDE (m)
    min_miss: bool  # min_fde > miss_threshold_m
    # LiDAR checks of the best mode, each pose against the sweep of its time (`obstacle_distances`); None without sweeps
    collision: bool | None  # the swept footprint (grown by collision_margin_m) touches an obstacle point
    clearance_m: float | None  # the swept footprint's closest approach to an obstacle (m; inf beyond range)
    centre_line_clearance_m: float | None  # the path's closest approach to an obstacle (m; inf beyond range)
    near_obstacle: bool | None  # centre_line_clearance_m < near_obstacle_m
    unchecked_poses: int | None  # sweep poses with no sweep within sweep_tolerance_s (not checked)
    box_collision: bool | None  # best mode's swept footprint overlaps a ground-truth box (None without boxes)
    comfort: Comfort  # best mode's comfort
    progress: Progress  # best mode's progress along the ground truth
    stops: bool  # best mode stays within stop_threshold_m
    gt_stops: bool  # ground truth stays within stop_threshold_m
    turn_direction: int  # best mode's turn: +1 left, -1 right, 0 straight
    gt_turn_direction: int  # ground truth's turn


def evaluate_frame(modes: np.ndarray, scores: np.ndarray, gt: np.ndarray,
                   sweeps: Sequence[ObstacleSweep] | None = None, velocity: Sequence[float] = (0.0, 0.0),
                   acceleration: Sequence[float] | None = None, yaw_rate: float | None = None,
                   boxes: np.ndarray | None = None, config: MetricsConfig = MetricsConfig()) -> FrameMetrics:
    """All metrics of one frame, for the best-scored mode and best-of-K.

    Inputs: modes (K, P, 2|3), scores (K,) higher is better, gt (P, 2|3), optional boxes (B, 5), all in the current
    ego frame; optional LiDAR sweeps from the current one through the horizon, placed in that frame (ObstacleSweep);
    the ego's current velocity (vx, vy), acceleration (ax, ay), yaw rate.
    """
    modes, gt = _modes(modes), _trajectory(gt, "gt")
    _same_length(modes, gt)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (modes.shape[0],):
        raise ValueError(f"scores must have shape ({modes.shape[0]},), got {scores.shape}")
    best_index = int(np.argmax(scores))
    best = modes[best_index]
    errors = _mode_errors(modes, gt)
    best_fde = float(errors[best_index, -1])
    minimum_fde = float(errors[:, -1].min())
    distances = None
    if sweeps is not None:
        distances = obstacle_distances(best, sweeps, config.clearance_range_m, config.interval_s, config.collision)
    return FrameMetrics(
        best_index=best_index,
        ade=float(errors[best_index].mean()),
        fde=best_fde,
        miss=best_fde > config.miss_threshold_m,
        min_ade=float(errors.mean(axis=1).min()),
        min_fde=minimum_fde,
        min_miss=minimum_fde > config.miss_threshold_m,
        collision=None if distances is None else distances.footprint_m <= config.collision_margin_m,
        clearance_m=None if distances is None else max(distances.footprint_m, 0.0),
        centre_line_clearance_m=None if distances is None else distances.centre_line_m,
        near_obstacle=None if distances is None else distances.centre_line_m < config.near_obstacle_m,
        unchecked_poses=None if distances is None else distances.unchecked_poses,
        box_collision=None if boxes is None else box_collision(best, boxes, config.interval_s, config.collision),
        comfort=comfort(best, velocity, acceleration, yaw_rate, config.interval_s, config.comfort),
        progress=progress(best, gt, config.standstill_length_m),
        stops=stops(best, config.stop_threshold_m),
        gt_stops=stops(gt, config.stop_threshold_m),
        turn_direction=turn_direction(best, config.turn_heading_threshold_rad, config.turn_min_travel_m),
        gt_turn_direction=turn_direction(gt, config.turn_heading_threshold_rad, config.turn_min_travel_m),
    )


def _mean(values: Sequence[float | bool | None]) -> float:
    """Mean over the values that are not None (a rate for booleans); NaN when there are none."""
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else math.nan


def summarize(frames: Sequence[FrameMetrics]) -> dict[str, float]:
    """Means and rates over frames; a LiDAR or box rate counts only frames that had sweeps or boxes (NaN if none).

    Keys: num_frames, ade, fde, min_ade, min_fde, miss_rate, min_miss_rate, collision_rate, near_obstacle_rate,
    box_collision_rate, comfort_rate, progress (mean ratio), progress_m, stop_rate (best mode stops),
    stop_agreement_rate (best mode stops iff the ground truth does), turn_agreement_rate (same turn direction as the
    ground truth), num_lidar_frames, num_partial_lidar_frames (LiDAR frames with unchecked poses), num_box_frames.
    """
    if not frames:
        raise ValueError("summarize needs at least one FrameMetrics")
    return {
        "num_frames": float(len(frames)),
        "ade": _mean([f.ade for f in frames]),
        "fde": _mean([f.fde for f in frames]),
        "min_ade": _mean([f.min_ade for f in frames]),
        "min_fde": _mean([f.min_fde for f in frames]),
        "miss_rate": _mean([f.miss for f in frames]),
        "min_miss_rate": _mean([f.min_miss for f in frames]),
        "collision_rate": _mean([f.collision for f in frames]),
        "near_obstacle_rate": _mean([f.near_obstacle for f in frames]),
        "box_collision_rate": _mean([f.box_collision for f in frames]),
        "comfort_rate": _mean([f.comfort.comfortable for f in frames]),
        "progress": _mean([f.progress.ratio for f in frames]),
        "progress_m": _mean([f.progress.along_m for f in frames]),
        "stop_rate": _mean([f.stops for f in frames]),
        "stop_agreement_rate": _mean([f.stops == f.gt_stops for f in frames]),
        "turn_agreement_rate": _mean([f.turn_direction == f.gt_turn_direction for f in frames]),
        "num_lidar_frames": float(sum(f.collision is not None for f in frames)),
        "num_partial_lidar_frames": float(sum(bool(f.unchecked_poses) for f in frames)),
        "num_box_frames": float(sum(f.box_collision is not None for f in frames)),
    }
