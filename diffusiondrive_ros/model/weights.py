"""Deterministic seeded weights (the reference fixtures' rule): the built-in default when no checkpoint is given.

Every tensor depends only on (seed, key, shape), so any process reproduces the same model of any variant without files.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn

from .anchors import arc_anchors
from .config import DiffusionDriveConfig
from .diffusiondrive import DiffusionDrive


def seeded_tensor(key: str, shape: tuple, seed: int) -> np.ndarray:
    """One state_dict entry by the rule: BN statistics, fan-in scaled normals, unit-ish norm scales, small biases."""
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
    if key.endswith("running_mean"):
        value = 0.1 * rng.standard_normal(shape)
    elif key.endswith("running_var"):
        value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) >= 2:
        value = rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))
    elif len(shape) == 1 and key.endswith("weight"):
        value = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        value = 0.1 * rng.standard_normal(shape)
    return value.astype(np.float32)


def seeded_state_dict(model: nn.Module, seed: int, anchors: torch.Tensor) -> dict[str, torch.Tensor]:
    """Seeded values for every key of `model`; the trajectory anchors are taken as given, not drawn."""
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("plan_anchor"):
            out[key] = anchors.to(torch.float32).clone()
        else:
            out[key] = torch.from_numpy(seeded_tensor(key, tuple(value.shape), seed))
    return out


def seeded_model(
    config: DiffusionDriveConfig = DiffusionDriveConfig(), seed: int = 0, anchors: torch.Tensor | None = None
) -> DiffusionDrive:
    """A DiffusionDrive of `config` with seeded weights, in eval mode; anchors default to `arc_anchors`."""
    model = DiffusionDrive(config)
    if anchors is None:
        anchors = torch.from_numpy(arc_anchors(config.num_modes, config.num_poses))
    model.load_state_dict(seeded_state_dict(model, seed, anchors), strict=True)
    return model.eval()
