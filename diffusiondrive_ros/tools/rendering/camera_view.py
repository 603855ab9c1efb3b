"""Front camera view of a frame: the image (or a placeholder) with every mode projected onto the road."""
from __future__ import annotations

import cv2
import numpy as np

from .drawing import BACKGROUND, DIM_TEXT, FONT, OUTLINE, SHADOW, dot, mode_colours, panel, polyline, put_text
from .frame import RenderFrame
from .geometry import PinholeCamera, smooth_curves, with_origin

_CAMERA_SAMPLES = 16  # curve samples between consecutive poses


def _true_runs(mask: np.ndarray) -> list[slice]:
    """Slices of the consecutive True stretches of a boolean vector."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [slice(start, stop) for start, stop in zip(edges[::2], edges[1::2])]


def _camera_curve(camera: PinholeCamera, mode: np.ndarray) -> list[np.ndarray]:
    """Pixel polylines of one mode on the ground (z = 0), split where it passes behind the camera."""
    curve = smooth_curves(with_origin(mode), _CAMERA_SAMPLES)
    optical = camera.to_optical(np.column_stack([curve, np.zeros(len(curve))]))
    in_front = optical[:, 2] > camera.near_m
    return [camera.optical_to_pixels(optical[run]) for run in _true_runs(in_front)]


def _placeholder(height: int, width: int, message: str) -> np.ndarray:
    """Dark image with a centred note, standing in for a missing camera picture."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    (text_width, _), _ = cv2.getTextSize(message, FONT, 0.7, 1)
    put_text(image, message, ((width - text_width) // 2, height // 2), 0.7, DIM_TEXT)
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


def _draw_camera_modes(image: np.ndarray, camera: PinholeCamera, frame: RenderFrame) -> None:
    """Modes lowest score first, then the best one outlined with its poses marked."""
    thin = max(1, round(image.shape[0] / 300))
    colours = mode_colours(frame.scores)
    for index in np.argsort(frame.scores, kind="stable"):
        if index != frame.best_index:
            for pixels in _camera_curve(camera, frame.modes[index]):
                polyline(image, pixels, colours[index], thin)
    best = frame.best_index
    for pixels in _camera_curve(camera, frame.modes[best]):
        polyline(image, pixels, SHADOW, 3 * thin + 3)
        polyline(image, pixels, OUTLINE, 3 * thin + 1)
        polyline(image, pixels, colours[best], 2 * thin)
    poses = np.column_stack([frame.modes[best, :, :2], np.zeros(len(frame.modes[best]))])
    uv, valid = camera.project(poses)
    for pixel in uv[valid]:
        dot(image, pixel, thin + 2.0, SHADOW)
        dot(image, pixel, thin + 1.0, colours[best])


def render_camera(frame: RenderFrame, height: int | None = None) -> np.ndarray:
    """Front image (resized to `height` rows if given) with every mode projected onto the road."""
    image, camera = _camera_base(frame, height)
    label = "front camera"
    if camera is None:
        label += " (no calibration: modes not drawn)"
    elif len(frame.modes):
        _draw_camera_modes(image, camera, frame)
    (text_width, _), _ = cv2.getTextSize(label, FONT, 0.48, 1)
    panel(image, (6, 6), (text_width + 22, 34))
    put_text(image, label, (14, 26), 0.48)
    return image
