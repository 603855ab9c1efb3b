"""The composite picture of one frame (bird's-eye view beside the camera), as an array or a PNG file."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .bev import render_bev
from .camera_view import render_camera
from .frame import RenderFrame


def compose(frame: RenderFrame, size_px: int = 800) -> np.ndarray:
    """Bird's-eye view and the camera (scaled to the same height) side by side, even width and height."""
    bev = render_bev(frame, size_px)
    camera = render_camera(frame, height=bev.shape[0])
    separator = np.zeros((bev.shape[0], 4, 3), np.uint8)
    picture = np.hstack([bev, separator, camera])
    return np.pad(picture, ((0, picture.shape[0] % 2), (0, picture.shape[1] % 2), (0, 0)))


def write_png(picture: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB picture as a PNG; returns the path (OSError when it cannot be written)."""
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def render_frame_png(frame: RenderFrame, path: str | os.PathLike) -> Path:
    """Write the composite picture of one frame as a PNG; returns the path."""
    return write_png(compose(frame), path)
