"""Trajectory anchors (K-means cluster centres of future ego poses) and the head's coordinate normalisation."""
from pathlib import Path
from typing import Union

import numpy as np
import torch

# Official normalisation of (x, y) in metres into [-1, 1]: x in [-1.2, 55.7], y in [-20, 26].
X_OFFSET, X_RANGE = 1.2, 56.9
Y_OFFSET, Y_RANGE = 20.0, 46.0


def normalize_xy(xy: torch.Tensor) -> torch.Tensor:
    x = 2 * (xy[..., 0:1] + X_OFFSET) / X_RANGE - 1
    y = 2 * (xy[..., 1:2] + Y_OFFSET) / Y_RANGE - 1
    return torch.cat([x, y], dim=-1)


def denormalize_xy(xy: torch.Tensor) -> torch.Tensor:
    x = (xy[..., 0:1] + 1) / 2 * X_RANGE - X_OFFSET
    y = (xy[..., 1:2] + 1) / 2 * Y_RANGE - Y_OFFSET
    return torch.cat([x, y], dim=-1)


def load_anchors(path: Union[str, Path], num_modes: int = 20, num_poses: int = 8) -> torch.Tensor:
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
