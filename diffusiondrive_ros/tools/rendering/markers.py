"""Modes and scores back from the candidates MarkerArray that `ros.markers.modes_to_markers` writes."""
from __future__ import annotations

import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

from diffusiondrive_ros.ros import conversions

from .geometry import headings_from_polyline


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
