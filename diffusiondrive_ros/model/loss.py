"""Official DiffusionDrive trajectory loss: focal classification of the anchor nearest the ground truth + L1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Mean sigmoid focal loss (Lin et al. 2017) over all elements."""
    prob = logits.sigmoid()
    targets = targets.type_as(logits)
    pt = (1 - prob) * targets + prob * (1 - targets)
    weight = (alpha * targets + (1 - alpha) * (1 - targets)) * pt.pow(gamma)
    return (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight).mean()


def nearest_anchor(target: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Index of the anchor nearest (mean L2 over poses) to the target: target (B, P, 3), anchors (K, P, 2)."""
    return torch.linalg.norm(target[:, None, :, :2] - anchors[None], dim=-1).mean(dim=-1).argmin(dim=-1)


def trajectory_loss(
    poses: torch.Tensor,
    scores: torch.Tensor,
    target: torch.Tensor,
    anchors: torch.Tensor,
    cls_weight: float = 10.0,
    reg_weight: float = 8.0,
) -> torch.Tensor:
    """Loss of one decoder layer: poses (B, K, P, 3), scores (B, K), target (B, P, 3), anchors (K, P, 2)."""
    mode = nearest_anchor(target, anchors)
    onehot = F.one_hot(mode, scores.shape[1]).to(scores.dtype)
    best = poses[torch.arange(poses.shape[0], device=poses.device), mode]
    return cls_weight * sigmoid_focal_loss(scores, onehot) + reg_weight * F.l1_loss(best, target)


def cascade_loss(
    layer_outputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    target: torch.Tensor,
    anchors: torch.Tensor,
    cls_weight: float = 10.0,
    reg_weight: float = 8.0,
) -> torch.Tensor:
    """Sum of `trajectory_loss` over the cascade decoder layers."""
    return sum(trajectory_loss(p, s, target, anchors, cls_weight, reg_weight) for p, s in layer_outputs)
