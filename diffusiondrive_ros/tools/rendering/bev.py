"""Bird's-eye view of a frame: grid, LiDAR, every mode by score, the best mode, ground truth, ego, legend."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from diffusiondrive_ros.ros import markers

from .drawing import (
    BACKGROUND,
    DIM_TEXT,
    OUTLINE,
    SHADOW,
    SHIFT,
    TEXT,
    Colour,
    dot,
    fixed_point,
    mode_colours,
    panel,
    polyline,
    put_text,
)
from .frame import NS_PER_S, RenderFrame
from .geometry import smooth_curves, with_origin

_GRID: Colour = (42, 46, 56)
_GRID_AXIS: Colour = (64, 70, 84)
_GRID_TEXT: Colour = (120, 126, 140)
_GROUND_TRUTH: Colour = (255, 70, 150)
_EGO_FILL: Colour = (70, 76, 92)
_POINT_LOW = np.array([58, 62, 72], dtype=np.float64)
_POINT_HIGH = np.array([200, 208, 222], dtype=np.float64)
_POINT_TOP_M = 2.5  # points this high above the ground are drawn brightest
_POINT_PALETTE = (_POINT_LOW + np.linspace(0.0, 1.0, 256)[:, None] * (_POINT_HIGH - _POINT_LOW)).astype(np.uint8)
_EGO_REAR_M, _EGO_FRONT_M, _EGO_HALF_WIDTH_M = -0.6, 3.9, 0.95  # 4.5 x 1.9 m, rear axle at 0
_GRID_STEP_M = 10.0
_BEV_SAMPLES = 8  # curve samples between consecutive poses
_DASH_M, _GAP_M = 1.6, 1.0
_LEGEND_BOTTOM = 104  # last row of the title block


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


def _draw_grid(image: np.ndarray, view: BevView) -> None:
    """Lines every 10 m, the ego axes a little brighter, forward distances labelled on the left."""
    height, width = image.shape[:2]
    x_min, x_max, y_min, y_max = view.range_m
    for x in np.arange(math.ceil(x_min / _GRID_STEP_M) * _GRID_STEP_M, x_max + 1e-9, _GRID_STEP_M):
        row = round(float(view.to_pixels(np.array([x, 0.0]))[1]))
        cv2.line(image, (0, row), (width - 1, row), _GRID_AXIS if x == 0 else _GRID, 1)
        if x > 0 and row > _LEGEND_BOTTOM + 20:
            put_text(image, f"{x:.0f} m", (6, row - 5), 0.4, _GRID_TEXT)
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
    polygon = fixed_point(view.to_pixels(corners))
    cv2.fillPoly(image, [polygon], _EGO_FILL, cv2.LINE_AA, SHIFT)
    cv2.polylines(image, [polygon], True, TEXT, 1, cv2.LINE_AA, SHIFT)
    chevron = np.array([[_EGO_FRONT_M - 1.6, 0.6], [_EGO_FRONT_M - 0.6, 0.0], [_EGO_FRONT_M - 1.6, -0.6]])
    polyline(image, view.to_pixels(chevron), TEXT, 1)


def _draw_other_modes(image: np.ndarray, curves: np.ndarray, frame: RenderFrame) -> None:
    """Every mode but the best as a thin curve from the ego, lowest score first (best ones on top)."""
    colours = mode_colours(frame.scores)
    for index in np.argsort(frame.scores, kind="stable"):
        if index != frame.best_index:
            polyline(image, curves[index], colours[index], 2)


def _draw_best_mode(image: np.ndarray, view: BevView, curves: np.ndarray, frame: RenderFrame) -> None:
    """The best mode on top of everything: thick, outlined, its poses marked."""
    best = frame.best_index
    colour = mode_colours(frame.scores)[best]
    polyline(image, curves[best], SHADOW, 9)
    polyline(image, curves[best], OUTLINE, 7)
    polyline(image, curves[best], colour, 4)
    for pose in view.to_pixels(frame.modes[best, :, :2]):
        dot(image, pose, 4.0, SHADOW)
        dot(image, pose, 3.0, colour)


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
    curve = view.to_pixels(smooth_curves(with_origin(ground_truth), _BEV_SAMPLES))
    scale = view.pixels_per_m
    for piece in _dashes(curve, _DASH_M * scale, _GAP_M * scale):
        polyline(image, piece, _GROUND_TRUTH, 2)
    for pose in view.to_pixels(ground_truth[:, :2]):
        dot(image, pose, 4.0, _GROUND_TRUTH, filled=False)


def _draw_colour_bar(image: np.ndarray, scores: np.ndarray) -> None:
    """Vertical score colour bar in the top-right corner, max score at the top."""
    width = image.shape[1]
    bar_height, bar_width = 150, 12
    x0, y0 = width - 78, 40
    panel(image, (x0 - 12, y0 - 30), (width - 6, y0 + bar_height + 14))
    levels = np.linspace(1.0, 0.0, bar_height)
    bar = (markers.score_colors(levels) * 255).astype(np.uint8)
    image[y0:y0 + bar_height, x0:x0 + bar_width] = bar[:, None, :]
    cv2.rectangle(image, (x0 - 1, y0 - 1), (x0 + bar_width, y0 + bar_height), DIM_TEXT, 1)
    put_text(image, "score", (x0 - 4, y0 - 12), 0.45, DIM_TEXT)
    if len(scores):
        put_text(image, f"{np.max(scores):.2f}", (x0 + bar_width + 5, y0 + 9), 0.42)
        put_text(image, f"{np.min(scores):.2f}", (x0 + bar_width + 5, y0 + bar_height), 0.42)


def _stamp_text(stamp_ns: int) -> str:
    """Stamp as seconds with milliseconds, exact (no float rounding)."""
    seconds, rest = divmod(int(stamp_ns), NS_PER_S)
    return f"{seconds}.{rest // 1_000_000:03d} s"


def _draw_legend(image: np.ndarray, frame: RenderFrame) -> None:
    """Title block: stamp, best mode and its score, and what the line styles mean."""
    panel(image, (6, 6), (262, _LEGEND_BOTTOM))
    put_text(image, f"stamp {_stamp_text(frame.stamp_ns)}", (14, 26), 0.46, DIM_TEXT)
    if len(frame.modes):
        best = frame.best_index
        put_text(image, f"best mode {best}  score {frame.scores[best]:.2f}", (14, 48), 0.5)
        polyline(image, np.array([[16.0, 68.0], [44.0, 68.0]]), OUTLINE, 7)
        polyline(image, np.array([[16.0, 68.0], [44.0, 68.0]]), mode_colours(frame.scores)[best], 4)
        put_text(image, f"best of {len(frame.modes)} modes", (54, 73), 0.44, DIM_TEXT)
    if frame.ground_truth is not None:
        for piece in _dashes(np.array([[16.0, 90.0], [46.0, 90.0]]), 9.0, 5.0):
            polyline(image, piece, _GROUND_TRUTH, 2)
        put_text(image, "ground truth (odometry)", (54, 95), 0.44, DIM_TEXT)
    else:
        put_text(image, "no ground truth", (14, 95), 0.44, DIM_TEXT)


def render_bev(frame: RenderFrame, size_px: int = 800,
               range_m: tuple[float, float, float, float] = (-10.0, 60.0, -32.0, 32.0)) -> np.ndarray:
    """Bird's-eye view (H = size_px, RGB uint8): grid, LiDAR, modes, ground truth, best mode, ego, legend."""
    view = BevView(size_px, tuple(float(v) for v in range_m))
    image = np.empty((*view.shape, 3), np.uint8)
    image[:] = BACKGROUND
    _draw_grid(image, view)
    if frame.points_ego is not None and len(frame.points_ego):
        _draw_points(image, view, frame.points_ego)
    curves = view.to_pixels(smooth_curves(with_origin(frame.modes), _BEV_SAMPLES))
    _draw_other_modes(image, curves, frame)
    if frame.ground_truth is not None:
        _draw_ground_truth(image, view, frame.ground_truth)
    if len(frame.modes):
        _draw_best_mode(image, view, curves, frame)
    _draw_ego(image, view)
    _draw_legend(image, frame)
    _draw_colour_bar(image, frame.scores)
    return image
