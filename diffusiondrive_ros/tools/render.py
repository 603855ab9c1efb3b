"""Render a planner output bag as pictures of every candidate mode (PNG frames and an MP4 video).

Each picture shows a bird's-eye view (LiDAR, ego box, all modes coloured by score with the best one
highlighted, the odometry ground truth) beside the front camera with the modes projected onto the
road. The bag is what the replay tool writes: the sensor inputs plus `/diffusiondrive/candidates`
(the MarkerArray of `conversions.modes_to_markers`); an input bag and an outputs-only bag can also be
passed together. No torch is imported.
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import heapq
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from diffusiondrive_ros import conversions
from diffusiondrive_ros.tools.bag_io import StaticTransforms, message_class

BagPath = str | os.PathLike
"""A rosbag2 directory (with metadata.yaml)."""

_NS_PER_S = 1_000_000_000
GROUND_TRUTH_INTERVAL_S = 0.5
"""Spacing of the planner's poses, and so of the ground-truth poses taken from odometry."""

# ---------------------------------------------------------------------------------------------
# Inputs of one picture
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """Undistorted pinhole camera: intrinsics K, image size and its pose base_link <- optical frame."""

    K: np.ndarray  # 3x3 intrinsic matrix
    width: int
    height: int
    base_from_optical: np.ndarray
    near_m: float = 0.5

    @classmethod
    def from_camera_info(cls, info: CameraInfo, base_from_optical: np.ndarray) -> PinholeCamera:
        """Camera of a sensor_msgs/CameraInfo (K; distortion is ignored) and its optical-frame pose."""
        intrinsics = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
            raise conversions.ConversionError("CameraInfo: K has no focal length (uncalibrated camera)")
        return cls(intrinsics, int(info.width), int(info.height),
                   np.asarray(base_from_optical, dtype=np.float64))

    def scaled(self, factor: float) -> PinholeCamera:
        """The same camera for its image resized by `factor` (pixel centres kept aligned)."""
        intrinsics = self.K.copy()
        intrinsics[:2, :2] *= factor
        intrinsics[:2, 2] = (intrinsics[:2, 2] + 0.5) * factor - 0.5
        return PinholeCamera(intrinsics, round(self.width * factor), round(self.height * factor),
                             self.base_from_optical, self.near_m)

    def to_optical(self, points_ego: np.ndarray) -> np.ndarray:
        """(N, 3) base_link points expressed in the optical frame (z forward, x right, y down)."""
        points = np.asarray(points_ego, dtype=np.float64).reshape(-1, 3)
        rotation, origin = self.base_from_optical[:3, :3], self.base_from_optical[:3, 3]
        return (points - origin) @ rotation

    def project(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of base_link points, NaN behind the camera, and whether each lands in the image."""
        optical = self.to_optical(points_ego)
        uv = np.full((len(optical), 2), np.nan)
        in_front = optical[:, 2] > self.near_m
        uv[in_front] = self.optical_to_pixels(optical[in_front])
        with np.errstate(invalid="ignore"):
            inside = ((uv[:, 0] >= 0) & (uv[:, 0] < self.width)
                      & (uv[:, 1] >= 0) & (uv[:, 1] < self.height))
        return uv, in_front & inside

    def optical_to_pixels(self, optical: np.ndarray) -> np.ndarray:
        """(N, 2) pixel (u, v) of optical-frame points, which must lie in front of the camera."""
        normalised = optical[:, :2] / optical[:, 2:3]
        return normalised @ self.K[:2, :2].T + self.K[:2, 2]


@dataclass(frozen=True, eq=False)
class RenderFrame:
    """Everything one picture shows; all geometry in the ego frame base_link (x forward, y left)."""

    stamp_ns: int
    modes: np.ndarray  # (K, P, 3) x, y, heading
    scores: np.ndarray  # (K,)
    best_index: int
    points_ego: np.ndarray | None = None  # (N, 3+) LiDAR points
    ground_truth: np.ndarray | None = None  # (P, 3) future poses from odometry
    front_image: np.ndarray | None = None  # (H, W, 3) uint8 RGB
    camera: PinholeCamera | None = None  # the front camera that took `front_image`


@dataclass(frozen=True)
class RenderTopics:
    """Topics read from the bag."""

    candidates: str = "/diffusiondrive/candidates"
    lidar: str = "/lidar/points"
    front_image: str = "/camera/front/image_raw/compressed"
    front_camera_info: str = "/camera/front/camera_info"
    odometry: str = "/odometry"
    tf_static: str = "/tf_static"


@dataclass(frozen=True)
class RenderSummary:
    """What `render_bag` wrote and how many frames had each input."""

    out_dir: Path
    png_paths: tuple[Path, ...]
    mp4_path: Path | None
    frame_count: int
    frames_with_lidar: int
    frames_with_camera: int
    frames_with_ground_truth: int
    wall_time_s: float

    @property
    def seconds_per_frame(self) -> float:
        """Average wall time per frame: reading, drawing and writing."""
        return self.wall_time_s / max(self.frame_count, 1)

    def format(self) -> str:
        """Human-readable summary for the command line."""
        lines = [
            f"rendered {self.frame_count} frames in {self.wall_time_s:.1f} s "
            f"({1000 * self.seconds_per_frame:.0f} ms per frame)",
            f"  with LiDAR {self.frames_with_lidar}, front camera {self.frames_with_camera}, "
            f"ground truth {self.frames_with_ground_truth}",
            f"  {len(self.png_paths)} PNG files in {self.out_dir}",
        ]
        if self.mp4_path is not None:
            lines.append(f"  video: {self.mp4_path}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def smooth_curves(points: np.ndarray, samples_per_segment: int) -> np.ndarray:
    """(..., M, D) polylines as (..., (M-1)*n+1, D) centripetal Catmull-Rom curves through every point.

    Planner poses are 0.5 s apart; a curve through them reads as the motion, straight chords do not.
    The centripetal knots keep the curve from overshooting or looping at uneven spacing or stops.
    """
    p = np.asarray(points, dtype=np.float64)
    count = p.shape[-2]
    if count < 2 or samples_per_segment < 2:
        return p
    extended = np.concatenate([2 * p[..., :1, :] - p[..., 1:2, :], p,
                               2 * p[..., -1:, :] - p[..., -2:-1, :]], axis=-2)
    gaps = np.maximum(np.linalg.norm(np.diff(extended, axis=-2), axis=-1), 1e-12) ** 0.5
    knots = np.concatenate([np.zeros((*gaps.shape[:-1], 1)), np.cumsum(gaps, axis=-1)], axis=-1)
    p0, p1, p2, p3 = (extended[..., k:k + count - 1, None, :] for k in range(4))
    t0, t1, t2, t3 = (knots[..., k:k + count - 1, None, None] for k in range(4))
    t = t1 + (t2 - t1) * (np.arange(samples_per_segment) / samples_per_segment)[:, None]
    a1 = ((t1 - t) * p0 + (t - t0) * p1) / (t1 - t0)
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    curve = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)
    curve = curve.reshape(*p.shape[:-2], (count - 1) * samples_per_segment, p.shape[-1])
    return np.concatenate([curve, p[..., -1:, :]], axis=-2)


def _with_origin(poses: np.ndarray) -> np.ndarray:
    """(..., P, 2) xy of poses with the ego origin prepended: trajectories start at the ego."""
    xy = np.asarray(poses, dtype=np.float64)[..., :2]
    return np.concatenate([np.zeros((*xy.shape[:-2], 1, 2)), xy], axis=-2)


def headings_from_polyline(xy_from_origin: np.ndarray) -> np.ndarray:
    """(K, P) heading of each pose: direction of the segment reaching it (kept while standing still)."""
    steps = np.diff(xy_from_origin, axis=-2)
    headings = np.arctan2(steps[..., 1], steps[..., 0])
    moving = np.hypot(steps[..., 0], steps[..., 1]) > 1e-6
    for j in range(1, headings.shape[-1]):
        headings[..., j] = np.where(moving[..., j], headings[..., j], headings[..., j - 1])
    return headings


def _yaw_of_quaternion(w: float, x: float, y: float, z: float) -> float:
    """Rotation about z (rad) of a quaternion."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@dataclass(frozen=True)
class BevView:
    """Metres <-> pixels of the bird's-eye view: x forward is up, y left is left."""

    size_px: int = 800
    range_m: tuple[float, float, float, float] = (-10.0, 60.0, -32.0, 32.0)  # x_min, x_max, y_min, y_max

    def __post_init__(self) -> None:
        x_min, x_max, y_min, y_max = self.range_m
        if x_max <= x_min or y_max <= y_min:
            raise ValueError(f"range_m must be (x_min, x_max, y_min, y_max) with min < max, got {self.range_m}")
        if self.size_px < 200:
            raise ValueError(f"size_px must be at least 200, got {self.size_px}")

    @property
    def pixels_per_m(self) -> float:
        """Scale; the forward range spans the image height."""
        return self.size_px / (self.range_m[1] - self.range_m[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels; the width is made even for the video."""
        width = round((self.range_m[3] - self.range_m[2]) * self.pixels_per_m)
        return self.size_px, width + width % 2

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) float pixel (column, row) of ego-frame (x, y) metres."""
        xy = np.asarray(xy, dtype=np.float64)
        column = (self.range_m[3] - xy[..., 1]) * self.pixels_per_m
        row = (self.range_m[1] - xy[..., 0]) * self.pixels_per_m
        return np.stack([column, row], axis=-1)


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

Colour = tuple[int, int, int]

_BACKGROUND: Colour = (18, 20, 26)
_GRID: Colour = (42, 46, 56)
_GRID_AXIS: Colour = (64, 70, 84)
_GRID_TEXT: Colour = (120, 126, 140)
_TEXT: Colour = (235, 235, 235)
_DIM_TEXT: Colour = (170, 174, 184)
_PANEL: Colour = (10, 11, 14)
_OUTLINE: Colour = (255, 255, 255)
_SHADOW: Colour = (0, 0, 0)
_GROUND_TRUTH: Colour = (255, 70, 150)
_EGO_FILL: Colour = (70, 76, 92)
_POINT_LOW = np.array([58, 62, 72], dtype=np.float64)
_POINT_HIGH = np.array([200, 208, 222], dtype=np.float64)
_POINT_TOP_M = 2.5  # points this high above the ground are drawn brightest
_POINT_PALETTE = (_POINT_LOW + np.linspace(0.0, 1.0, 256)[:, None] * (_POINT_HIGH - _POINT_LOW)).astype(np.uint8)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SHIFT = 2  # sub-pixel bits for cv2 drawing
_EGO_REAR_M, _EGO_FRONT_M, _EGO_HALF_WIDTH_M = -0.6, 3.9, 0.95  # 4.5 x 1.9 m, rear axle at 0
_GRID_STEP_M = 10.0
_BEV_SAMPLES, _CAMERA_SAMPLES = 8, 16  # curve samples between consecutive poses
_DASH_M, _GAP_M = 1.6, 1.0
_LEGEND_BOTTOM = 104  # last row of the title block


def mode_colours(scores: np.ndarray) -> list[Colour]:
    """RGB uint8 colour per mode: the RViz marker colour map (viridis over min-max scores)."""
    rgb = conversions.score_colors(np.asarray(scores, dtype=np.float64)) * 255.0
    return [tuple(int(round(c)) for c in row) for row in rgb]


def _fixed(pixels: np.ndarray) -> np.ndarray:
    """int32 fixed-point coordinates for cv2 drawing with `_SHIFT` sub-pixel bits."""
    return np.round(np.asarray(pixels) * (1 << _SHIFT)).astype(np.int32)


def _polyline(image: np.ndarray, pixels: np.ndarray, colour: Colour, thickness: int) -> None:
    """Anti-aliased open polyline through (N, 2) float pixel points."""
    if len(pixels) >= 2:
        cv2.polylines(image, [_fixed(pixels)], False, colour, thickness, cv2.LINE_AA, _SHIFT)


def _dot(image: np.ndarray, pixel: np.ndarray, radius: float, colour: Colour, filled: bool = True) -> None:
    """Anti-aliased circle at a float pixel position."""
    centre = tuple(int(v) for v in _fixed(pixel))
    cv2.circle(image, centre, round(radius * (1 << _SHIFT)), colour, -1 if filled else 1, cv2.LINE_AA, _SHIFT)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.48,
          colour: Colour = _TEXT, thickness: int = 1) -> None:
    """Anti-aliased text with its baseline starting at `origin`."""
    cv2.putText(image, text, origin, _FONT, scale, colour, thickness, cv2.LINE_AA)


def _panel(image: np.ndarray, top_left: tuple[int, int], bottom_right: tuple[int, int],
           opacity: float = 0.72) -> None:
    """Darken a rectangle so text on it stays legible over busy content."""
    (x0, y0), (x1, y1) = top_left, bottom_right
    x0, x1 = max(x0, 0), min(x1, image.shape[1])
    y0, y1 = max(y0, 0), min(y1, image.shape[0])
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = (region * (1 - opacity) + np.array(_PANEL) * opacity).astype(np.uint8)


def _draw_grid(image: np.ndarray, view: BevView) -> None:
    """Lines every 10 m, the ego axes a little brighter, forward distances labelled on the left."""
    height, width = image.shape[:2]
    x_min, x_max, y_min, y_max = view.range_m
    for x in np.arange(math.ceil(x_min / _GRID_STEP_M) * _GRID_STEP_M, x_max + 1e-9, _GRID_STEP_M):
        row = round(float(view.to_pixels(np.array([x, 0.0]))[1]))
        cv2.line(image, (0, row), (width - 1, row), _GRID_AXIS if x == 0 else _GRID, 1)
        if x > 0 and row > _LEGEND_BOTTOM + 20:
            _text(image, f"{x:.0f} m", (6, row - 5), 0.4, _GRID_TEXT)
    for y in np.arange(math.ceil(y_min / _GRID_STEP_M) * _GRID_STEP_M, y_max + 1e-9, _GRID_STEP_M):
        column = round(float(view.to_pixels(np.array([0.0, y]))[0]))
        cv2.line(image, (column, 0), (column, height - 1), _GRID_AXIS if y == 0 else _GRID, 1)


def _draw_points(image: np.ndarray, view: BevView, points: np.ndarray) -> None:
    """LiDAR points as 1-pixel dots, brighter with height; higher points win a shared pixel."""
    height, width = image.shape[:2]
    x_max, y_max = view.range_m[1], view.range_m[3]
    scale = np.float32(view.pixels_per_m)
    columns = np.floor((np.float32(y_max) - points[:, 1]) * scale)
    rows = np.floor((np.float32(x_max) - points[:, 0]) * scale)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    flat = rows[inside].astype(np.int64) * width + columns[inside].astype(np.int64)
    level = np.clip(points[inside, 2] * np.float32(255 / _POINT_TOP_M), 0, 255).astype(np.uint8)
    order = np.argsort(level, kind="stable")  # radix sort of uint8: draw low points first
    image.reshape(-1, 3)[flat[order]] = _POINT_PALETTE[level[order]]


def _draw_ego(image: np.ndarray, view: BevView) -> None:
    """The ego vehicle's footprint with a chevron pointing forward."""
    corners = np.array([[_EGO_FRONT_M, _EGO_HALF_WIDTH_M], [_EGO_FRONT_M, -_EGO_HALF_WIDTH_M],
                        [_EGO_REAR_M, -_EGO_HALF_WIDTH_M], [_EGO_REAR_M, _EGO_HALF_WIDTH_M]])
    polygon = _fixed(view.to_pixels(corners))
    cv2.fillPoly(image, [polygon], _EGO_FILL, cv2.LINE_AA, _SHIFT)
    cv2.polylines(image, [polygon], True, _TEXT, 1, cv2.LINE_AA, _SHIFT)
    chevron = np.array([[_EGO_FRONT_M - 1.6, 0.6], [_EGO_FRONT_M - 0.6, 0.0], [_EGO_FRONT_M - 1.6, -0.6]])
    _polyline(image, view.to_pixels(chevron), _TEXT, 1)


def _draw_other_modes(image: np.ndarray, curves: np.ndarray, frame: RenderFrame) -> None:
    """Every mode but the best as a thin curve from the ego, lowest score first (best ones on top)."""
    colours = mode_colours(frame.scores)
    for index in np.argsort(frame.scores, kind="stable"):
        if index != frame.best_index:
            _polyline(image, curves[index], colours[index], 2)


def _draw_best_mode(image: np.ndarray, view: BevView, curves: np.ndarray, frame: RenderFrame) -> None:
    """The best mode on top of everything: thick, outlined, its poses marked."""
    best = frame.best_index
    colour = mode_colours(frame.scores)[best]
    _polyline(image, curves[best], _SHADOW, 9)
    _polyline(image, curves[best], _OUTLINE, 7)
    _polyline(image, curves[best], colour, 4)
    for pose in view.to_pixels(frame.modes[best, :, :2]):
        _dot(image, pose, 4.0, _SHADOW)
        _dot(image, pose, 3.0, colour)


def _dashes(pixels: np.ndarray, dash_px: float, gap_px: float) -> list[np.ndarray]:
    """Pieces of a polyline: `dash_px` drawn, `gap_px` skipped, along its length."""
    lengths = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pixels, axis=0).T))])
    pieces = []
    for start in np.arange(0.0, lengths[-1], dash_px + gap_px):
        along = np.linspace(start, min(start + dash_px, lengths[-1]), 6)
        pieces.append(np.column_stack([np.interp(along, lengths, pixels[:, 0]),
                                       np.interp(along, lengths, pixels[:, 1])]))
    return pieces


def _draw_ground_truth(image: np.ndarray, view: BevView, ground_truth: np.ndarray) -> None:
    """Where the ego really drove: dashed line from the ego, rings at the future poses."""
    curve = view.to_pixels(smooth_curves(_with_origin(ground_truth), _BEV_SAMPLES))
    scale = view.pixels_per_m
    for piece in _dashes(curve, _DASH_M * scale, _GAP_M * scale):
        _polyline(image, piece, _GROUND_TRUTH, 2)
    for pose in view.to_pixels(ground_truth[:, :2]):
        _dot(image, pose, 4.0, _GROUND_TRUTH, filled=False)


def _draw_colour_bar(image: np.ndarray, scores: np.ndarray) -> None:
    """Vertical score colour bar in the top-right corner, max score at the top."""
    width = image.shape[1]
    bar_height, bar_width = 150, 12
    x0, y0 = width - 78, 40
    _panel(image, (x0 - 12, y0 - 30), (width - 6, y0 + bar_height + 14))
    levels = np.linspace(1.0, 0.0, bar_height)
    bar = (conversions.score_colors(levels) * 255).astype(np.uint8)
    image[y0:y0 + bar_height, x0:x0 + bar_width] = bar[:, None, :]
    cv2.rectangle(image, (x0 - 1, y0 - 1), (x0 + bar_width, y0 + bar_height), _DIM_TEXT, 1)
    _text(image, "score", (x0 - 4, y0 - 12), 0.45, _DIM_TEXT)
    if len(scores):
        _text(image, f"{np.max(scores):.2f}", (x0 + bar_width + 5, y0 + 9), 0.42)
        _text(image, f"{np.min(scores):.2f}", (x0 + bar_width + 5, y0 + bar_height), 0.42)


def _stamp_text(stamp_ns: int) -> str:
    """Stamp as seconds with milliseconds, exact (no float rounding)."""
    seconds, rest = divmod(int(stamp_ns), _NS_PER_S)
    return f"{seconds}.{rest // 1_000_000:03d} s"


def _draw_legend(image: np.ndarray, frame: RenderFrame) -> None:
    """Title block: stamp, best mode and its score, and what the line styles mean."""
    _panel(image, (6, 6), (262, _LEGEND_BOTTOM))
    _text(image, f"stamp {_stamp_text(frame.stamp_ns)}", (14, 26), 0.46, _DIM_TEXT)
    if len(frame.modes):
        best = frame.best_index
        _text(image, f"best mode {best}  score {frame.scores[best]:.2f}", (14, 48), 0.5)
        _polyline(image, np.array([[16.0, 68.0], [44.0, 68.0]]), _OUTLINE, 7)
        _polyline(image, np.array([[16.0, 68.0], [44.0, 68.0]]), mode_colours(frame.scores)[best], 4)
        _text(image, f"best of {len(frame.modes)} modes", (54, 73), 0.44, _DIM_TEXT)
    if frame.ground_truth is not None:
        for piece in _dashes(np.array([[16.0, 90.0], [46.0, 90.0]]), 9.0, 5.0):
            _polyline(image, piece, _GROUND_TRUTH, 2)
        _text(image, "ground truth (odometry)", (54, 95), 0.44, _DIM_TEXT)
    else:
        _text(image, "no ground truth", (14, 95), 0.44, _DIM_TEXT)


def render_bev(frame: RenderFrame, size_px: int = 800,
               range_m: tuple[float, float, float, float] = (-10.0, 60.0, -32.0, 32.0)) -> np.ndarray:
    """Bird's-eye view (H = size_px, RGB uint8): grid, LiDAR, modes, ground truth, best mode, ego, legend."""
    view = BevView(size_px, tuple(float(v) for v in range_m))
    image = np.empty((*view.shape, 3), np.uint8)
    image[:] = _BACKGROUND
    _draw_grid(image, view)
    if frame.points_ego is not None and len(frame.points_ego):
        _draw_points(image, view, frame.points_ego)
    curves = view.to_pixels(smooth_curves(_with_origin(frame.modes), _BEV_SAMPLES))
    _draw_other_modes(image, curves, frame)
    if frame.ground_truth is not None:
        _draw_ground_truth(image, view, frame.ground_truth)
    if len(frame.modes):
        _draw_best_mode(image, view, curves, frame)
    _draw_ego(image, view)
    _draw_legend(image, frame)
    _draw_colour_bar(image, frame.scores)
    return image


def _true_runs(mask: np.ndarray) -> list[slice]:
    """Slices of the consecutive True stretches of a boolean vector."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [slice(start, stop) for start, stop in zip(edges[::2], edges[1::2])]


def _camera_curve(camera: PinholeCamera, mode: np.ndarray) -> list[np.ndarray]:
    """Pixel polylines of one mode on the ground (z = 0), split where it passes behind the camera."""
    curve = smooth_curves(_with_origin(mode), _CAMERA_SAMPLES)
    optical = camera.to_optical(np.column_stack([curve, np.zeros(len(curve))]))
    in_front = optical[:, 2] > camera.near_m
    return [camera.optical_to_pixels(optical[run]) for run in _true_runs(in_front)]


def _placeholder(height: int, width: int, message: str) -> np.ndarray:
    """Dark image with a centred note, standing in for a missing camera picture."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = _BACKGROUND
    (text_width, _), _ = cv2.getTextSize(message, _FONT, 0.7, 1)
    _text(image, message, ((width - text_width) // 2, height // 2), 0.7, _DIM_TEXT)
    return image


def _camera_base(frame: RenderFrame, height: int | None) -> tuple[np.ndarray, PinholeCamera | None]:
    """The front image (or a placeholder) at `height` rows and the camera scaled to it."""
    camera = frame.camera
    if frame.front_image is not None:
        image = frame.front_image
    else:
        rows, columns = (camera.height, camera.width) if camera is not None else (720, 1280)
        image = _placeholder(rows, columns, "no front camera image")
    factor = 1.0 if height is None else height / image.shape[0]
    if factor != 1.0:
        size = (max(round(image.shape[1] * factor), 1), int(height))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 0.5 else cv2.INTER_LINEAR)
    else:
        image = image.copy()
    if camera is not None:
        camera = camera.scaled(image.shape[0] / camera.height)
    return image, camera


def render_camera(frame: RenderFrame, height: int | None = None) -> np.ndarray:
    """Front image (resized to `height` rows if given) with every mode projected onto the road."""
    image, camera = _camera_base(frame, height)
    label = "front camera"
    if camera is None:
        label += " (no calibration: modes not drawn)"
    elif len(frame.modes):
        _draw_camera_modes(image, camera, frame)
    (text_width, _), _ = cv2.getTextSize(label, _FONT, 0.48, 1)
    _panel(image, (6, 6), (text_width + 22, 34))
    _text(image, label, (14, 26), 0.48)
    return image


def _draw_camera_modes(image: np.ndarray, camera: PinholeCamera, frame: RenderFrame) -> None:
    """Modes lowest score first, then the best one outlined with its poses marked."""
    thin = max(1, round(image.shape[0] / 300))
    colours = mode_colours(frame.scores)
    for index in np.argsort(frame.scores, kind="stable"):
        if index != frame.best_index:
            for pixels in _camera_curve(camera, frame.modes[index]):
                _polyline(image, pixels, colours[index], thin)
    best = frame.best_index
    for pixels in _camera_curve(camera, frame.modes[best]):
        _polyline(image, pixels, _SHADOW, 3 * thin + 3)
        _polyline(image, pixels, _OUTLINE, 3 * thin + 1)
        _polyline(image, pixels, colours[best], 2 * thin)
    poses = np.column_stack([frame.modes[best, :, :2], np.zeros(len(frame.modes[best]))])
    uv, valid = camera.project(poses)
    for pixel in uv[valid]:
        _dot(image, pixel, thin + 2.0, _SHADOW)
        _dot(image, pixel, thin + 1.0, colours[best])


def compose(frame: RenderFrame, size_px: int = 800) -> np.ndarray:
    """Bird's-eye view and the camera (scaled to the same height) side by side, even width and height."""
    bev = render_bev(frame, size_px)
    camera = render_camera(frame, height=bev.shape[0])
    separator = np.zeros((bev.shape[0], 4, 3), np.uint8)
    picture = np.hstack([bev, separator, camera])
    return np.pad(picture, ((0, picture.shape[0] % 2), (0, picture.shape[1] % 2), (0, 0)))


def render_frame_png(frame: RenderFrame, path: BagPath) -> Path:
    """Write the composite picture of one frame as a PNG; returns the path."""
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(compose(frame), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


# ---------------------------------------------------------------------------------------------
# Reading a planner output bag
# ---------------------------------------------------------------------------------------------

_IMAGE_TOLERANCE_NS = 50_000_000  # nearest image within this of the plan stamp
_MAX_WAIT_NS = 2 * _NS_PER_S  # stop waiting for a plan's sensors once sensor stamps are this far past it


def _deserialize(raw: bytes, msgtype: str) -> object:
    """rclpy message of CDR bytes from a bag."""
    return deserialize_message(raw, message_class(msgtype))


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
        horizon_ns = round(count * interval_s * _NS_PER_S)
        if len(self.stamps_ns) < 2 or not self.stamps_ns[0] <= stamp_ns <= self.stamps_ns[-1] - horizon_ns:
            return None
        offsets = (np.int64(stamp_ns) - self.stamps_ns[0]) + np.round(
            np.arange(count + 1) * interval_s * _NS_PER_S).astype(np.int64)
        known = (self.stamps_ns - self.stamps_ns[0]).astype(np.float64)
        x, y, yaw = (np.interp(offsets.astype(np.float64), known, self.poses[:, k]) for k in range(3))
        dx, dy = x[1:] - x[0], y[1:] - y[0]
        c, s = math.cos(yaw[0]), math.sin(yaw[0])
        heading = (yaw[1:] - yaw[0] + math.pi) % (2 * math.pi) - math.pi
        return np.column_stack([c * dx + s * dy, -s * dx + c * dy, heading])


@dataclass(frozen=True, eq=False)
class _Plan:
    """Modes and scores of one candidates MarkerArray, with its stamp and frame."""

    stamp_ns: int
    frame_id: str
    modes: np.ndarray
    scores: np.ndarray


def _score_of_label(text: str) -> float:
    """Score of a '#rank score' marker label."""
    try:
        return float(text.split()[-1])
    except (IndexError, ValueError):
        raise conversions.ConversionError(f"MarkerArray: label {text!r} is not '#rank score'") from None


def plan_from_markers(msg: MarkerArray) -> tuple[np.ndarray, np.ndarray]:
    """(modes (K, P, 3), scores (K,)) of a `modes_to_markers` array; heading from the polyline.

    Mode k is the LINE_STRIP id 3k+1 (its first point, the ego origin, dropped) and the score the
    number in the TEXT_VIEW_FACING id 3k+3. Arrays without modes give K = 0.
    """
    lines: dict[int, np.ndarray] = {}
    scores: dict[int, float] = {}
    for marker in msg.markers:
        if marker.action != Marker.ADD:
            continue
        if marker.type == Marker.LINE_STRIP and marker.id % 3 == 1:
            lines[marker.id // 3] = np.array([(p.x, p.y) for p in marker.points], dtype=np.float64)
        elif marker.type == Marker.TEXT_VIEW_FACING and marker.id % 3 == 0 and marker.id > 0:
            scores[marker.id // 3 - 1] = _score_of_label(marker.text)
    if set(lines) != set(scores):
        raise conversions.ConversionError(
            f"MarkerArray: modes {sorted(lines)} and score labels {sorted(scores)} do not match")
    if not lines:
        return np.zeros((0, 0, 3)), np.zeros(0)
    order = sorted(lines)
    if order != list(range(len(order))) or len({len(lines[k]) for k in order}) != 1 or len(lines[0]) < 2:
        raise conversions.ConversionError("MarkerArray: line strips are not modes 0..K-1 of equal length")
    xy = np.stack([lines[k] for k in order])
    modes = np.concatenate([xy[:, 1:], headings_from_polyline(xy)[..., None]], axis=-1)
    return modes, np.array([scores[k] for k in order])


def _open(bag_dirs: Sequence[Path], stack: contextlib.ExitStack) -> list[Reader]:
    """Open every bag (checked to be rosbag2 directories) for the lifetime of `stack`."""
    readers = []
    for bag in bag_dirs:
        if not (bag / "metadata.yaml").is_file():
            raise FileNotFoundError(f"{bag} is not a rosbag2 directory (no metadata.yaml)")
        readers.append(stack.enter_context(Reader(bag)))
    return readers


def _messages(readers: Sequence[Reader], topics: Iterable[str]) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time, raw) of the topics in all bags, merged by log time."""
    wanted = set(topics)
    streams = []
    for reader in readers:
        connections = [c for c in reader.connections if c.topic in wanted]
        if connections:
            streams.append(((c.topic, c.msgtype, t, raw) for c, t, raw in reader.messages(connections)))
    return heapq.merge(*streams, key=lambda item: item[2])


@dataclass
class _BagIndex:
    """The small topics of the bags, read in a first pass: plans, odometry, transforms, camera info."""

    plans: list[_Plan] = field(default_factory=list)
    odometry: list[tuple[int, float, float, float]] = field(default_factory=list)
    transforms: StaticTransforms = field(default_factory=StaticTransforms)
    camera_info: CameraInfo | None = None


def _index(readers: Sequence[Reader], topics: RenderTopics) -> _BagIndex:
    """First pass over the small topics."""
    index = _BagIndex()
    small = (topics.candidates, topics.odometry, topics.tf_static, topics.front_camera_info)
    for topic, msgtype, _, raw in _messages(readers, small):
        if topic == topics.tf_static:
            index.transforms.add_raw(raw)
            continue
        msg = _deserialize(raw, msgtype)
        if topic == topics.candidates:
            modes, scores = plan_from_markers(msg)
            if len(modes):
                header = msg.markers[-1].header
                index.plans.append(_Plan(conversions.stamp_to_ns(header.stamp), header.frame_id, modes, scores))
        elif topic == topics.odometry:
            pose = msg.pose.pose
            q = pose.orientation
            index.odometry.append((conversions.stamp_to_ns(msg.header.stamp), pose.position.x,
                                   pose.position.y, _yaw_of_quaternion(q.w, q.x, q.y, q.z)))
        elif index.camera_info is None:
            index.camera_info = msg
    return index


@dataclass
class _Pending:
    """A plan waiting for its LiDAR cloud and nearest front image from the second pass."""

    plan: _Plan
    cloud: PointCloud2 | None = None
    image: CompressedImage | Image | None = None
    image_offset_ns: int | None = None


class _Matcher:
    """Pairs plans with the cloud of the same stamp and the nearest image, yielding them in stamp order.

    Waiting is measured in header stamps, not bag log times, which may run on another clock.
    A stamp planned twice keeps the last plan.
    """

    def __init__(self, plans: Sequence[_Plan], wants_cloud: bool, wants_image: bool) -> None:
        self._by_stamp = {plan.stamp_ns: _Pending(plan) for plan in plans}
        self._stamps = sorted(self._by_stamp)
        self._queue = deque(self._by_stamp[stamp] for stamp in self._stamps)
        self._wants_cloud, self._wants_image = wants_cloud, wants_image
        self._latest_image_ns = self._latest_sensor_ns = -1

    def add_cloud(self, cloud: PointCloud2) -> None:
        """Attach a cloud to the plan of the same stamp, if any."""
        stamp = conversions.stamp_to_ns(cloud.header.stamp)
        self._latest_sensor_ns = max(self._latest_sensor_ns, stamp)
        item = self._by_stamp.get(stamp)
        if item is not None:
            item.cloud = cloud

    def add_image(self, image: CompressedImage | Image) -> None:
        """Attach an image to every plan it is nearer to than the image that plan has."""
        stamp = conversions.stamp_to_ns(image.header.stamp)
        self._latest_image_ns = max(self._latest_image_ns, stamp)
        self._latest_sensor_ns = max(self._latest_sensor_ns, stamp)
        low = bisect.bisect_left(self._stamps, stamp - _IMAGE_TOLERANCE_NS)
        high = bisect.bisect_right(self._stamps, stamp + _IMAGE_TOLERANCE_NS)
        for plan_stamp in self._stamps[low:high]:
            item = self._by_stamp.get(plan_stamp)
            offset = abs(stamp - plan_stamp)
            if item is not None and (item.image_offset_ns is None or offset < item.image_offset_ns):
                item.image, item.image_offset_ns = image, offset

    def _complete(self, item: _Pending) -> bool:
        """Whether nothing better can still arrive for this plan."""
        stamp = item.plan.stamp_ns
        has_cloud = item.cloud is not None or not self._wants_cloud
        has_image = (not self._wants_image or item.image_offset_ns == 0
                     or self._latest_image_ns > stamp + _IMAGE_TOLERANCE_NS)
        return has_cloud and has_image

    def ready(self, flush: bool = False) -> Iterator[_Pending]:
        """Pop plans from the front that are complete or waited for too long (all with `flush`)."""
        while self._queue:
            item = self._queue[0]
            stale = flush or self._latest_sensor_ns > item.plan.stamp_ns + _MAX_WAIT_NS
            if not (stale or self._complete(item)):
                return
            self._queue.popleft()
            del self._by_stamp[item.plan.stamp_ns]
            yield item


class _FrameBuilder:
    """Turns a matched plan into a RenderFrame: points and camera in the plan's frame, ground truth."""

    def __init__(self, index: _BagIndex) -> None:
        self._transforms = index.transforms
        self._camera_info = index.camera_info
        self._odometry = OdometryTrack.from_samples(index.odometry)
        self._cameras: dict[tuple[str, str], PinholeCamera | None] = {}

    def build(self, item: _Pending) -> RenderFrame:
        """RenderFrame of one plan and its sensors."""
        plan = item.plan
        return RenderFrame(
            stamp_ns=plan.stamp_ns, modes=plan.modes, scores=plan.scores,
            best_index=int(np.argmax(plan.scores)),
            points_ego=self._points(item.cloud, plan.frame_id),
            ground_truth=self._odometry.future(plan.stamp_ns, plan.modes.shape[1]),
            front_image=None if item.image is None else _image_rgb(item.image),
            camera=self._camera(item.image, plan.frame_id),
        )

    def _points(self, cloud: PointCloud2 | None, base_frame: str) -> np.ndarray | None:
        """Cloud xyz in the plan's frame, or None without a cloud or a transform to it."""
        if cloud is None:
            return None
        base_from_cloud = self._transforms.lookup(base_frame, cloud.header.frame_id)
        if base_from_cloud is None:
            return None
        return conversions.transform_points(conversions.pointcloud2_to_xyz(cloud).points, base_from_cloud)

    def _camera(self, image: CompressedImage | Image | None, base_frame: str) -> PinholeCamera | None:
        """Front camera from its CameraInfo and the static pose of the image's (or info's) frame."""
        if self._camera_info is None:
            return None
        frame = image.header.frame_id if image is not None else self._camera_info.header.frame_id
        key = (base_frame, frame)
        if key not in self._cameras:
            base_from_optical = self._transforms.lookup(base_frame, frame)
            self._cameras[key] = None if base_from_optical is None else PinholeCamera.from_camera_info(
                self._camera_info, base_from_optical)
        return self._cameras[key]


def _image_rgb(msg: CompressedImage | Image) -> np.ndarray:
    """RGB pixels of a raw or compressed image message."""
    if isinstance(msg, CompressedImage):
        return conversions.compressed_to_rgb(msg)
    return conversions.image_to_rgb(msg)


def _bag_paths(bag_dir: BagPath | Sequence[BagPath]) -> list[Path]:
    """One bag or several (e.g. the input bag and an outputs-only bag) as a list of paths."""
    if isinstance(bag_dir, (str, os.PathLike)):
        return [Path(bag_dir)]
    return [Path(bag) for bag in bag_dir]


def frames_from_bag(bag_dir: BagPath | Sequence[BagPath], topics: RenderTopics = RenderTopics()
                    ) -> Iterator[RenderFrame]:
    """One RenderFrame per candidates MarkerArray stamp (arrays without modes skipped), in stamp order.

    Two passes: the small topics first (plans, odometry for the ground truth, /tf_static, camera
    info), then the LiDAR clouds (same stamp as the plan) and front images (nearest within 50 ms),
    decoding only those that belong to a plan. Several bags are merged by log time.
    """
    bags = _bag_paths(bag_dir)
    with contextlib.ExitStack() as stack:
        readers = _open(bags, stack)
        index = _index(readers, topics)
        if not index.plans:
            names = ", ".join(str(bag) for bag in bags)
            raise ValueError(f"no {topics.candidates} MarkerArray with modes in {names}")
        present = {c.topic for reader in readers for c in reader.connections}
        matcher = _Matcher(index.plans, topics.lidar in present, topics.front_image in present)
        builder = _FrameBuilder(index)
        for topic, msgtype, _, raw in _messages(readers, (topics.lidar, topics.front_image)):
            msg = _deserialize(raw, msgtype)
            if topic == topics.lidar:
                matcher.add_cloud(msg)
            else:
                matcher.add_image(msg)
            yield from map(builder.build, matcher.ready())
        yield from map(builder.build, matcher.ready(flush=True))


# ---------------------------------------------------------------------------------------------
# Writing pictures and video
# ---------------------------------------------------------------------------------------------


class _Mp4Writer:
    """H.264 (yuv420p) video through imageio-ffmpeg; frames of another size are resized to the first."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self._fps = path, fps
        self._size: tuple[int, int] | None = None
        self._encoder = None

    def add(self, rgb: np.ndarray) -> None:
        """Append one RGB frame (even width and height)."""
        if self._encoder is None:
            self._start(rgb.shape[1], rgb.shape[0])
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        self._encoder.send(np.ascontiguousarray(rgb))

    def _start(self, width: int, height: int) -> None:
        """Start ffmpeg for frames of this size."""
        try:
            import imageio_ffmpeg
        except ImportError:
            raise ImportError("MP4 output needs imageio-ffmpeg: pip install imageio-ffmpeg "
                               "(or the package's 'tools' extra), or pass mp4=False / --no-mp4") from None
        self._size = (width, height)
        self._encoder = imageio_ffmpeg.write_frames(
            str(self.path), self._size, fps=self._fps, codec="libx264", pix_fmt_out="yuv420p",
            quality=7, macro_block_size=2, output_params=["-movflags", "+faststart"])
        self._encoder.send(None)

    def close(self) -> None:
        """Finish the file (no file is written when no frame was added)."""
        if self._encoder is not None:
            self._encoder.close()


def render_bag(bag_dir: BagPath | Sequence[BagPath], out_dir: BagPath, png_every: int = 1, mp4: bool = True,
               fps: float = 10.0, topics: RenderTopics = RenderTopics()) -> RenderSummary:
    """Write `frame_<stamp>.png` for every `png_every`-th frame (0: none) and `drive.mp4` of all frames."""
    if png_every < 0:
        raise ValueError(f"png_every must be >= 0, got {png_every}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = _Mp4Writer(out / "drive.mp4", fps) if mp4 else None
    pngs: list[Path] = []
    counts = np.zeros(4, dtype=int)
    try:
        for number, frame in enumerate(frames_from_bag(bag_dir, topics)):
            picture = compose(frame)
            if png_every and number % png_every == 0:
                pngs.append(out / f"frame_{frame.stamp_ns}.png")
                if not cv2.imwrite(str(pngs[-1]), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {pngs[-1]}")
            if video is not None:
                video.add(picture)
            counts += (1, frame.points_ego is not None, frame.front_image is not None,
                       frame.ground_truth is not None)
    finally:
        if video is not None:
            video.close()
    return RenderSummary(out, tuple(pngs), None if video is None else video.path, *map(int, counts),
                         wall_time_s=time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# Command line (`diffusiondrive-ros render`)
# ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the render subcommand."""
    parser.add_argument("bag", nargs="+", type=Path,
                        help="planner output bag (inputs + /diffusiondrive/candidates); pass the input bag "
                             "as well when the outputs were recorded on their own")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the PNG files and drive.mp4 (default: <bag>_render beside the bag)")
    parser.add_argument("--every", type=int, default=1, help="write a PNG of every Nth frame; 0 writes none")
    parser.add_argument("--no-mp4", action="store_true", help="do not write drive.mp4")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of drive.mp4")


def run(args: argparse.Namespace) -> int:
    """Render the bag and print where the files went; 1 on a missing or unusable bag or no MP4 encoder."""
    bags = list(args.bag)
    out = args.out if args.out is not None else bags[0].parent / f"{bags[0].name}_render"
    try:
        summary = render_bag(bags, out, png_every=args.every, mp4=not args.no_mp4, fps=args.fps)
    except (FileNotFoundError, ImportError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (`python -m diffusiondrive_ros.tools.render`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
