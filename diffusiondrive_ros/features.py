"""Sensor arrays to DiffusionDrive (NAVSIM TransFuser) model inputs.

Reproduces NAVSIM's ``TransfuserFeatureBuilder`` bit for bit on its default
rig, with the crop, BEV grid and thresholds exposed as configuration so other
vehicles can be used. ``camera_config_for`` and ``lidar_config_for`` give the
output sizes a model config expects. Pure numpy + OpenCV; outputs are unbatched
arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

NUM_COMMANDS = 4
"""Driving commands: 0 left, 1 straight, 2 right, 3 unknown."""

_CAMERA_NAMES = ("left", "front", "right")

ASPECT_RATIO_TOLERANCE = 0.01
"""Relative aspect-ratio difference from the rig's reference size below which a camera is not reported."""

if TYPE_CHECKING:  # only for the hints: importing the model package would import torch
    from .model.config import DiffusionDriveConfig


@dataclass(frozen=True)
class CameraRigConfig:
    """Crop and output size for stitching the left, front and right cameras.

    Defaults are NAVSIM's 1920x1080 rig: 28 rows off the top and bottom of every
    camera and 416 columns off both sides of the side cameras, giving a 4:1
    panorama that is resized to 1024x256. Crops are given in pixels of a
    ``reference_width`` x ``reference_height`` image and scale with each
    camera's own size, so the same rig at another resolution crops the same
    field of view (exactly the given pixels at the reference size). A camera of
    another aspect ratio is cropped by the same fractions and its panorama is
    then stretched to ``output_width`` x ``output_height``: ``aspect_ratio_note``
    says so, for the caller to warn about.
    """

    crop_top: int = 28
    crop_bottom: int = 28
    side_crop: int = 416
    output_width: int = 1024
    output_height: int = 256
    reference_width: int = 1920
    reference_height: int = 1080

    def crops(self, height: int, width: int) -> tuple[int, int, int]:
        """(top, bottom, side) crop in pixels of a height x width image."""
        rows, cols = height / self.reference_height, width / self.reference_width
        return round(self.crop_top * rows), round(self.crop_bottom * rows), round(self.side_crop * cols)

    def aspect_ratio_note(self, height: int, width: int) -> str:
        """'' when a height x width camera has the reference aspect ratio (within ASPECT_RATIO_TOLERANCE);
        otherwise a sentence saying how its picture is stretched to the reference one.
        """
        reference = self.reference_width / self.reference_height
        stretch = reference / (width / height)
        if abs(stretch - 1.0) <= ASPECT_RATIO_TOLERANCE:
            return ""
        return (f"{width}x{height} image has aspect ratio {width / height:.3f}, the rig "
                f"{self.reference_width}x{self.reference_height} has {reference:.3f}: cropped by the same fractions, "
                f"its width is scaled {stretch:.3f}x relative to its height in the model's "
                f"{self.output_width}x{self.output_height} panorama")

    def __post_init__(self) -> None:
        for name in ("reference_width", "reference_height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"CameraRigConfig.{name} must be a positive int, got {value!r}")
        for name in ("crop_top", "crop_bottom", "side_crop"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"CameraRigConfig.{name} must be a non-negative int, got {value!r}")
        for name in ("output_width", "output_height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"CameraRigConfig.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class LidarBevConfig:
    """Bird's-eye-view LiDAR histogram grid (ego frame, metres) and height filter.

    Defaults are NAVSIM's: a 64 m x 64 m square at 4 px/m (256x256 cells), only
    points with ``split_height < z < max_height``, counts saturating at 5.
    """

    min_x: float = -32.0
    max_x: float = 32.0
    min_y: float = -32.0
    max_y: float = 32.0
    pixels_per_meter: float = 4.0
    split_height: float = 0.2
    max_height: float = 100.0
    hist_max_per_pixel: int = 5

    def __post_init__(self) -> None:
        if not self.pixels_per_meter > 0:
            raise ValueError(f"LidarBevConfig.pixels_per_meter must be > 0, got {self.pixels_per_meter!r}")
        for axis in ("x", "y"):
            lo, hi = getattr(self, f"min_{axis}"), getattr(self, f"max_{axis}")
            if not hi > lo:
                raise ValueError(f"LidarBevConfig: max_{axis} ({hi!r}) must exceed min_{axis} ({lo!r})")
            cells = (hi - lo) * self.pixels_per_meter
            if abs(cells - round(cells)) > 1e-9 * max(1.0, abs(cells)):
                raise ValueError(
                    f"LidarBevConfig: (max_{axis} - min_{axis}) * pixels_per_meter = {cells!r} "
                    "must be a whole number of cells"
                )
        if not isinstance(self.hist_max_per_pixel, int) or self.hist_max_per_pixel < 1:
            raise ValueError(
                f"LidarBevConfig.hist_max_per_pixel must be a positive int, got {self.hist_max_per_pixel!r}"
            )

    @property
    def x_edges(self) -> np.ndarray:
        """Cell edges along x, the same array NAVSIM passes to ``np.histogramdd``."""
        return np.linspace(self.min_x, self.max_x, round((self.max_x - self.min_x) * self.pixels_per_meter) + 1)

    @property
    def y_edges(self) -> np.ndarray:
        """Cell edges along y, the same array NAVSIM passes to ``np.histogramdd``."""
        return np.linspace(self.min_y, self.max_y, round((self.max_y - self.min_y) * self.pixels_per_meter) + 1)


def camera_config_for(model_config: DiffusionDriveConfig, rig: CameraRigConfig = CameraRigConfig()) -> CameraRigConfig:
    """``rig``'s crop with the panorama resized to the model's camera input (camera_width x camera_height)."""
    backbone = model_config.backbone
    return dataclasses.replace(rig, output_width=backbone.camera_width, output_height=backbone.camera_height)


def lidar_config_for(model_config: DiffusionDriveConfig, lidar: LidarBevConfig = LidarBevConfig()) -> LidarBevConfig:
    """``lidar``'s height filter and saturation on the model's ego-centred BEV grid of lidar_resolution cells a side."""
    max_x, max_y = model_config.lidar_max_x, model_config.lidar_max_y
    ppm = model_config.lidar_pixels_per_meter
    return dataclasses.replace(lidar, min_x=-max_x, max_x=max_x, min_y=-max_y, max_y=max_y, pixels_per_meter=ppm)


def _check_image(name: str, image: np.ndarray, config: CameraRigConfig, side: bool) -> None:
    """Raise a ValueError naming the camera unless ``image`` is croppable (H, W, 3) uint8."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"dtype {image.dtype}, shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} camera: expected an RGB uint8 array of shape (H, W, 3), got {got}")
    top, bottom, side_crop = config.crops(*image.shape[:2])
    min_rows = top + bottom + 1
    min_cols = 2 * side_crop + 1 if side else 1
    if image.shape[0] < min_rows or image.shape[1] < min_cols:
        raise ValueError(
            f"{name} camera: image of {image.shape[1]}x{image.shape[0]} (WxH) is too small for the crop; "
            f"needs at least {min_cols} columns and {min_rows} rows"
        )


def stitch_cameras(
    left: np.ndarray, front: np.ndarray, right: np.ndarray, config: CameraRigConfig = CameraRigConfig()
) -> np.ndarray:
    """Crop, stitch left|front|right and resize; returns (output_height, output_width, 3) uint8 RGB."""
    stitched = np.concatenate(camera_crops(left, front, right, config), axis=1)
    return cv2.resize(stitched, (config.output_width, config.output_height))


def camera_crops(
    left: np.ndarray, front: np.ndarray, right: np.ndarray, config: CameraRigConfig
) -> list[np.ndarray]:
    """The checked (left, front, right) crops as views, all of one height, to be stitched side by side."""
    crops = []
    for name, image in zip(_CAMERA_NAMES, (left, front, right)):
        _check_image(name, image, config, side=name != "front")
        top, bottom, side_crop = config.crops(*image.shape[:2])
        rows = slice(top, image.shape[0] - bottom)
        crops.append(image[rows] if name == "front" else image[rows, side_crop:image.shape[1] - side_crop])
    heights = {name: crop.shape[0] for name, crop in zip(_CAMERA_NAMES, crops)}
    if len(set(heights.values())) != 1:
        raise ValueError(f"cameras have different heights after cropping: {heights}")
    return crops


def camera_feature(
    left: np.ndarray, front: np.ndarray, right: np.ndarray, config: CameraRigConfig = CameraRigConfig()
) -> np.ndarray:
    """Stitched panorama as (3, output_height, output_width) float32 in [0, 1], like torchvision ToTensor."""
    chw = np.ascontiguousarray(stitch_cameras(left, front, right, config).transpose(2, 0, 1), dtype=np.float32)
    chw /= np.float32(255)
    return chw


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Cell of each value in [edges[0], edges[-1]], matching ``np.histogramdd`` exactly.

    histogramdd uses ``searchsorted(edges, v, 'right') - 1`` with the last cell
    closed on the right; the arithmetic estimate below can be one cell off near
    an edge, so it is corrected by comparing against the actual edges.
    """
    cells = edges.size - 1
    idx = ((values - edges[0]) * (cells / (edges[-1] - edges[0]))).astype(np.intp)
    np.clip(idx, 0, cells - 1, out=idx)
    idx -= values < edges[idx]
    idx += values >= edges[idx + 1]
    np.minimum(idx, cells - 1, out=idx)
    return idx


def check_points(points: np.ndarray) -> None:
    """ValueError unless `points` is an (N, >=3) float32/float64 array."""
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] < 3:
        got = f"shape {points.shape}" if isinstance(points, np.ndarray) else type(points).__name__
        raise ValueError(f"lidar points: expected an array of shape (N, >=3), got {got}")
    if points.dtype not in (np.float32, np.float64):
        raise ValueError(f"lidar points: expected dtype float32 or float64, got {points.dtype}")


def lidar_feature(
    points: np.ndarray, config: LidarBevConfig = LidarBevConfig(), out: np.ndarray | None = None
) -> np.ndarray:
    """BEV point-count histogram of points above ``split_height``; returns (1, nx, ny) float32 in [0, 1].

    ``points`` is (N, >=3) float32/float64, columns x forward, y left, z up in the
    ego frame. Axis 1 of the output is the x cell, axis 2 the y cell. Points with
    NaN/Inf coordinates are dropped. Height thresholds are compared in the
    points' own dtype, as NAVSIM does. ``out``: a C-contiguous (1, nx, ny)
    float32 array to write into (and return) instead of a new one.
    """
    check_points(points)
    x_edges, y_edges = config.x_edges, config.y_edges
    nx, ny = x_edges.size - 1, y_edges.size - 1
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    keep = (z < float(config.max_height)) & (z > float(config.split_height))
    keep &= (x >= x_edges[0]) & (x <= x_edges[-1]) & (y >= y_edges[0]) & (y <= y_edges[-1])
    x = np.compress(keep, x).astype(np.float64)
    y = np.compress(keep, y).astype(np.float64)
    flat = _bin_index(x, x_edges) * ny + _bin_index(y, y_edges)
    counts = np.bincount(flat, minlength=nx * ny)
    cap = config.hist_max_per_pixel
    levels = (np.arange(cap + 1) / cap).astype(np.float32)
    if out is None:
        out = np.empty((1, nx, ny), np.float32)
    np.take(levels, np.minimum(counts, cap, out=counts), out=out.reshape(-1))
    return out


def lidar_sweeps_feature(
    sweeps: Sequence[np.ndarray], config: LidarBevConfig = LidarBevConfig(), out: np.ndarray | None = None
) -> np.ndarray:
    """`lidar_feature` of each sweep (the current one first, then earlier ones already moved into the current ego
    frame) as one channel each: (len(sweeps), nx, ny) float32, written into ``out`` when given."""
    if not len(sweeps):
        raise ValueError("lidar: expected at least the current sweep")
    nx, ny = config.x_edges.size - 1, config.y_edges.size - 1
    if out is None:
        out = np.empty((len(sweeps), nx, ny), np.float32)
    for channel, points in enumerate(sweeps):
        lidar_feature(points, config, out=out[channel : channel + 1])
    return out


def lidar_sweeps(points: np.ndarray, past_points: Sequence[np.ndarray], channels: int) -> list[np.ndarray]:
    """[current, earlier...] for a LiDAR input of `channels` sweeps; a ValueError when the earlier ones do not fill
    it."""
    if len(past_points) != channels - 1:
        raise ValueError(f"past_points: the model takes {channels - 1} earlier LiDAR sweep(s), got {len(past_points)}")
    return [points, *past_points]


def _finite_pair(name: str, value: Sequence[float]) -> np.ndarray:
    """Two finite numbers as float64, or a ValueError naming ``name``."""
    try:
        pair = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected two numbers, got {value!r}") from error
    if pair.shape != (2,):
        raise ValueError(f"{name}: expected two numbers, got shape {pair.shape}")
    if not np.all(np.isfinite(pair)):
        raise ValueError(f"{name}: values must be finite, got {pair.tolist()}")
    return pair


def status_feature(command: int, velocity: Sequence[float], acceleration: Sequence[float]) -> np.ndarray:
    """Ego status as (8,) float32: one-hot command (4), then (vx, vy) and (ax, ay) in the ego frame."""
    if isinstance(command, (bool, np.bool_)) or not isinstance(command, (int, np.integer)):
        raise ValueError(f"command: expected an int in [0, {NUM_COMMANDS}), got {command!r}")
    if not 0 <= command < NUM_COMMANDS:
        raise ValueError(f"command: expected 0 (left), 1 (straight), 2 (right) or 3 (unknown), got {command}")
    feature = np.zeros(NUM_COMMANDS + 4, dtype=np.float32)
    feature[command] = 1.0
    feature[NUM_COMMANDS : NUM_COMMANDS + 2] = _finite_pair("velocity", velocity)
    feature[NUM_COMMANDS + 2 :] = _finite_pair("acceleration", acceleration)
    return feature


def build_features(
    cameras: Sequence[np.ndarray],
    points: np.ndarray,
    velocity: Sequence[float],
    acceleration: Sequence[float],
    command: int,
    camera_config: CameraRigConfig = CameraRigConfig(),
    lidar_config: LidarBevConfig = LidarBevConfig(),
    past_points: Sequence[np.ndarray] = (),
) -> dict[str, np.ndarray]:
    """All three model inputs (unbatched) from ``cameras`` = (left, front, right) and the other sensors;
    ``past_points``: the earlier sweeps of a model with several LiDAR channels, in the current ego frame."""
    if len(cameras) != len(_CAMERA_NAMES):
        raise ValueError(f"cameras: expected (left, front, right), got {len(cameras)} images")
    return {
        "camera_feature": camera_feature(*cameras, config=camera_config),
        "lidar_feature": lidar_sweeps_feature([points, *past_points], lidar_config),
        "status_feature": status_feature(command, velocity, acceleration),
    }


def _float_buffer(shape: tuple[int, ...], pinned: bool) -> np.ndarray:
    """An uninitialised float32 array, in page-locked memory (allocated by torch, which needs CUDA) if `pinned`."""
    if not pinned:
        return np.empty(shape, np.float32)
    import torch  # only for pinned buffers: the feature code stays usable without torch

    return torch.empty(shape, dtype=torch.float32, pin_memory=True).numpy()


class FeatureBuilder:
    """`build_features` writing into buffers kept from frame to frame, for a planner's per-frame loop.

    The returned arrays are views of the buffers and are overwritten by the next `build`: copy them to keep them.
    The camera feature is stored height x width x channel, so its (3, H, W) view is already channels-last for
    the network. Outputs equal `build_features`'. `pinned`: the two feature buffers live in page-locked memory
    (needs CUDA), so that their copy to the GPU can run asynchronously.
    """

    def __init__(self, camera_config: CameraRigConfig = CameraRigConfig(),
                 lidar_config: LidarBevConfig = LidarBevConfig(), pinned: bool = False, lidar_channels: int = 1):
        self.camera_config, self.lidar_config = camera_config, lidar_config
        out_h, out_w = camera_config.output_height, camera_config.output_width
        self._stitched = np.empty((0, 0, 3), np.uint8)  # grows to the rig's stitched size on the first frame
        self._resized = np.empty((out_h, out_w, 3), np.uint8)
        nx, ny = lidar_config.x_edges.size - 1, lidar_config.y_edges.size - 1
        self._camera = _float_buffer((out_h, out_w, 3), pinned)
        self._lidar = _float_buffer((lidar_channels, nx, ny), pinned)

    def camera(self, left: np.ndarray, front: np.ndarray, right: np.ndarray) -> np.ndarray:
        """`camera_feature` of the three images as a (3, H, W) view of a reused H x W x 3 buffer."""
        config = self.camera_config
        crops = camera_crops(left, front, right, config)
        shape = (crops[0].shape[0], sum(crop.shape[1] for crop in crops), 3)
        if self._stitched.shape != shape:
            self._stitched = np.empty(shape, np.uint8)
        np.concatenate(crops, axis=1, out=self._stitched)
        cv2.resize(self._stitched, (config.output_width, config.output_height), dst=self._resized)
        np.divide(self._resized, np.float32(255), out=self._camera, dtype=np.float32)
        return self._camera.transpose(2, 0, 1)

    def build(self, cameras: Sequence[np.ndarray], points: np.ndarray, velocity: Sequence[float],
              acceleration: Sequence[float], command: int,
              past_points: Sequence[np.ndarray] = ()) -> dict[str, np.ndarray]:
        """All three model inputs (unbatched), as `build_features`; camera and LiDAR are views of the buffers."""
        if len(cameras) != len(_CAMERA_NAMES):
            raise ValueError(f"cameras: expected (left, front, right), got {len(cameras)} images")
        sweeps = lidar_sweeps(points, past_points, self._lidar.shape[0])
        lidar_sweeps_feature(sweeps, self.lidar_config, out=self._lidar)
        return {
            "camera_feature": self.camera(*cameras),
            "lidar_feature": self._lidar,
            "status_feature": status_feature(command, velocity, acceleration),
        }
