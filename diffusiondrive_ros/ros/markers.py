"""Planner outputs as ROS messages: the best trajectory as nav_msgs/Path, every mode as RViz markers coloured
by score."""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from .conversions import ConversionError, Stamp, make_header

# viridis sampled at 0, 0.25, 0.5, 0.75, 1 (dark purple -> yellow, brightness rises with score)
_COLORMAP_STOPS = np.array([
    [0.267, 0.005, 0.329],
    [0.229, 0.322, 0.546],
    [0.128, 0.567, 0.551],
    [0.369, 0.789, 0.383],
    [0.993, 0.906, 0.144],
])

_LINE_WIDTH = 0.1
_BEST_LINE_WIDTH = 0.35
_ALPHA = 0.5
_BEST_ALPHA = 1.0
_BEST_LIFT = 0.05
_SPHERE_SIZE = 0.15
_BEST_SPHERE_SIZE = 0.3
_TEXT_HEIGHT = 0.4
_TEXT_LIFT = 0.5
_MARKERS_PER_MODE = 3


def _check_trajectory(what: str, poses: np.ndarray) -> np.ndarray:
    """Poses as float64 (..., T, 3) of x, y, heading, all finite."""
    checked = np.asarray(poses, dtype=np.float64)
    if checked.ndim < 2 or checked.shape[-1] != 3:
        raise ConversionError(f"{what}: expected poses of shape (..., T, 3), got {checked.shape}")
    if not np.isfinite(checked).all():
        raise ConversionError(f"{what}: poses contain NaN/Inf")
    return checked


def trajectory_to_path(best: np.ndarray, stamp: Stamp, frame_id: str,
                  current_pose_prefix: bool = False) -> Path:
    """nav_msgs/Path of one (T, 3) trajectory of x, y, heading (yaw about z) in `frame_id`.

    With `current_pose_prefix` the path starts at the ego pose (origin, identity orientation).
    Every pose carries the path's stamp and frame.
    """
    poses = _check_trajectory("Path", best)
    if poses.ndim != 2:
        raise ConversionError(f"Path: expected one trajectory of shape (T, 3), got {poses.shape}")
    if current_pose_prefix:
        poses = np.vstack([np.zeros((1, 3)), poses])
    header = make_header(stamp, frame_id)
    path = Path(header=header)
    for x, y, heading in poses:
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z = math.sin(heading / 2.0)
        pose.pose.orientation.w = math.cos(heading / 2.0)
        path.poses.append(pose)
    return path


def score_colors(scores: np.ndarray) -> np.ndarray:
    """(K, 3) RGB in [0, 1] from a viridis-like map of min-max normalised scores.

    Normalisation is over the K scores of one message, so colours rank modes within a plan and
    are not comparable across plans; equal scores all get the top colour.
    """
    values = np.asarray(scores, dtype=np.float64)
    spread = values.max() - values.min() if values.size else 0.0
    level = (values - values.min()) / spread if spread > 0 else np.ones_like(values)
    stops = np.linspace(0.0, 1.0, len(_COLORMAP_STOPS))
    return np.stack([np.interp(level, stops, _COLORMAP_STOPS[:, c]) for c in range(3)], axis=1)


def _marker(header: Header, ns: str, marker_id: int, marker_type: int, rgb: np.ndarray,
            alpha: float, scale: float) -> Marker:
    """ADD marker with identity pose, uniform scale, colour, and lifetime 0 (kept until replaced)."""
    marker = Marker(header=header, ns=ns, id=marker_id, type=marker_type, action=Marker.ADD)
    marker.scale.x = marker.scale.y = marker.scale.z = scale
    marker.color = ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=alpha)
    return marker


def _mode_markers(header: Header, ns: str, index: int, mode: np.ndarray, rgb: np.ndarray,
                  label: str, is_best: bool) -> list[Marker]:
    """Line strip from the ego through the poses, spheres at the poses and a score label."""
    first_id = 1 + _MARKERS_PER_MODE * index
    alpha = _BEST_ALPHA if is_best else _ALPHA
    lift = _BEST_LIFT if is_best else 0.0
    line = _marker(header, ns, first_id, Marker.LINE_STRIP, rgb, alpha,
                   _BEST_LINE_WIDTH if is_best else _LINE_WIDTH)
    line.points = [Point(z=lift)] + [Point(x=float(x), y=float(y), z=lift) for x, y, _ in mode]
    spheres = _marker(header, ns, first_id + 1, Marker.SPHERE_LIST, rgb, alpha,
                      _BEST_SPHERE_SIZE if is_best else _SPHERE_SIZE)
    spheres.points = line.points[1:]
    text = _marker(header, ns, first_id + 2, Marker.TEXT_VIEW_FACING, np.ones(3), alpha, _TEXT_HEIGHT)
    text.pose.position.x, text.pose.position.y = float(mode[-1, 0]), float(mode[-1, 1])
    text.pose.position.z = _TEXT_LIFT
    text.text = label
    return [line, spheres, text]


def modes_to_markers(modes: np.ndarray, scores: np.ndarray, best_index: int, stamp: Stamp,
                     frame_id: str, ns: str = "diffusiondrive") -> MarkerArray:
    """visualization_msgs/MarkerArray drawing every mode, coloured by score.

    First a DELETEALL for `ns` (so no marker of a previous plan lingers when K changes), then per
    mode k the ids 3k+1 (LINE_STRIP from the ego origin), 3k+2 (SPHERE_LIST at the poses) and
    3k+3 (TEXT_VIEW_FACING '#rank score', raw score with 2 decimals, rank 1 = highest score).
    The best mode is wider, opaque and lifted slightly so it draws on top.
    """
    trajectories = _check_trajectory("MarkerArray", modes)
    values = np.asarray(scores, dtype=np.float64)
    count = trajectories.shape[0]
    if trajectories.ndim != 3 or values.shape != (count,):
        raise ConversionError(
            f"MarkerArray: expected modes (K, T, 3) and scores (K,), got {trajectories.shape} "
            f"and {values.shape}")
    if not np.isfinite(values).all():
        raise ConversionError("MarkerArray: scores contain NaN/Inf")
    if count and not 0 <= best_index < count:
        raise ConversionError(f"MarkerArray: best_index {best_index} outside 0..{count - 1}")
    header = make_header(stamp, frame_id)
    markers = [Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL)]
    colors = score_colors(values)
    ranks = np.empty(count, dtype=int)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, count + 1)
    for index in range(count):
        label = f"#{ranks[index]} {values[index]:.2f}"
        markers += _mode_markers(header, ns, index, trajectories[index], colors[index], label,
                                 index == best_index)
    return MarkerArray(markers=markers)
