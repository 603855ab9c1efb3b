"""RenderFrame: what one picture shows, the input of every drawing function."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import PinholeCamera

NS_PER_S = 1_000_000_000
"""Stamps (RenderFrame, bag log times) are integer nanoseconds."""


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
