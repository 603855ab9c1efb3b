"""Drawing primitives and colours shared by the bird's-eye and camera views (anti-aliased, sub-pixel)."""
from __future__ import annotations

import cv2
import numpy as np

from diffusiondrive_ros.ros import markers

Colour = tuple[int, int, int]

BACKGROUND: Colour = (18, 20, 26)
TEXT: Colour = (235, 235, 235)
DIM_TEXT: Colour = (170, 174, 184)
OUTLINE: Colour = (255, 255, 255)
SHADOW: Colour = (0, 0, 0)
_PANEL: Colour = (10, 11, 14)
FONT = cv2.FONT_HERSHEY_SIMPLEX
SHIFT = 2  # sub-pixel bits for cv2 drawing


def mode_colours(scores: np.ndarray) -> list[Colour]:
    """RGB uint8 colour per mode: the RViz marker colour map (viridis over min-max scores)."""
    rgb = markers.score_colors(np.asarray(scores, dtype=np.float64)) * 255.0
    return [tuple(int(round(c)) for c in row) for row in rgb]


def fixed_point(pixels: np.ndarray) -> np.ndarray:
    """int32 fixed-point coordinates for cv2 drawing with `SHIFT` sub-pixel bits."""
    return np.round(np.asarray(pixels) * (1 << SHIFT)).astype(np.int32)


def polyline(image: np.ndarray, pixels: np.ndarray, colour: Colour, thickness: int) -> None:
    """Anti-aliased open polyline through (N, 2) float pixel points."""
    if len(pixels) >= 2:
        cv2.polylines(image, [fixed_point(pixels)], False, colour, thickness, cv2.LINE_AA, SHIFT)


def dot(image: np.ndarray, pixel: np.ndarray, radius: float, colour: Colour, filled: bool = True) -> None:
    """Anti-aliased circle at a float pixel position."""
    centre = tuple(int(v) for v in fixed_point(pixel))
    cv2.circle(image, centre, round(radius * (1 << SHIFT)), colour, -1 if filled else 1, cv2.LINE_AA, SHIFT)


def put_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.48,
             colour: Colour = TEXT, thickness: int = 1) -> None:
    """Anti-aliased text with its baseline starting at `origin`."""
    cv2.putText(image, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)


def panel(image: np.ndarray, top_left: tuple[int, int], bottom_right: tuple[int, int],
          opacity: float = 0.72) -> None:
    """Darken a rectangle so text on it stays legible over busy content."""
    (x0, y0), (x1, y1) = top_left, bottom_right
    x0, x1 = max(x0, 0), min(x1, image.shape[1])
    y0, y1 = max(y0, 0), min(y1, image.shape[0])
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = (region * (1 - opacity) + np.array(_PANEL) * opacity).astype(np.uint8)
