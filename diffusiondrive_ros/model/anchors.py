"""Trajectory anchors (K-means cluster centres of future ego poses) and the head's coordinate normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .config import TrajectoryNormalization


def normalize_xy(xy: torch.Tensor, n: TrajectoryNormalization = TrajectoryNormalization()) -> torch.Tensor:
    """(..., 2) metres -> the head's [-1, 1] space."""
    x = 2 * (xy[..., 0:1] + n.x_offset) / n.x_range - 1
    y = 2 * (xy[..., 1:2] + n.y_offset) / n.y_range - 1
    return torch.cat([x, y], dim=-1)


def denormalize_xy(xy: torch.Tensor, n: TrajectoryNormalization = TrajectoryNormalization()) -> torch.Tensor:
    """(..., 2) in the head's [-1, 1] space -> metres; the inverse of `normalize_xy`."""
    x = (xy[..., 0:1] + 1) / 2 * n.x_range - n.x_offset
    y = (xy[..., 1:2] + 1) / 2 * n.y_range - n.y_offset
    return torch.cat([x, y], dim=-1)


def fit_normalization(futures: np.ndarray, margin: float = 2.0) -> TrajectoryNormalization:
    """Normalisation whose [-1, 1] box covers every (x, y) of `futures` (N, P, 2 or 3) plus `margin` metres a side.

    The head clamps noisy samples to [-1, 1], so ground-truth poses outside the box could never be produced.
    """
    futures = np.asarray(futures)
    if futures.ndim != 3 or futures.shape[-1] not in (2, 3) or futures.shape[0] * futures.shape[1] == 0:
        raise ValueError(f"futures: expected a non-empty array of shape (N, P, 2 or 3), got shape {futures.shape}")
    if not np.isfinite(futures[..., :2]).all():
        raise ValueError("futures: contain NaN or Inf")
    if not (isinstance(margin, (int, float)) and np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: expected a finite number of metres > 0, got {margin!r}")
    xy = futures[..., :2].reshape(-1, 2)
    low, high = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    (x_low, y_low), (x_range, y_range) = low.tolist(), (high - low).tolist()
    return TrajectoryNormalization(x_offset=-x_low, x_range=x_range, y_offset=-y_low, y_range=y_range)


def load_anchors(path: str | Path, num_modes: int = 20, num_poses: int = 8) -> torch.Tensor:
    """Load the official `kmeans_navsim_traj_20.npy` (num_modes, num_poses, 2) as float32."""
    array = np.load(path)
    if array.shape != (num_modes, num_poses, 2):
        raise ValueError(f"anchors {path}: expected shape {(num_modes, num_poses, 2)}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"anchors {path}: contain NaN or Inf")
    return torch.as_tensor(array, dtype=torch.float32)


def arc_anchors(num_modes: int = 20, num_poses: int = 8, interval_s: float = 0.5) -> np.ndarray:
    """Deterministic constant-speed, constant-yaw-rate arcs used when no K-means file is available.

    Mode k drives at 15 k / (K - 1) m/s with yaw rate 0.25 cos(2.39996 k) rad/s (the reference fixtures' rule).
    """
    k = np.arange(num_modes, dtype=np.float64)[:, None]
    t = interval_s * np.arange(1, num_poses + 1, dtype=np.float64)[None, :]
    v = 15.0 * k / max(num_modes - 1, 1)
    w = 0.25 * np.cos(2.39996 * k)
    x = v / w * np.sin(w * t)
    y = v / w * (1 - np.cos(w * t))
    return np.stack([x, y], axis=-1).astype(np.float32)
