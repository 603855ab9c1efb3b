"""Official DiffusionDrive trajectory loss: focal classification of the anchor nearest the ground truth + L1.

Optionally with a noise-consistency term and a mode-anchoring term (neither in the paper; both off by default): see
`noise_consistency_loss` and `mode_anchoring_loss`.
"""

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


def noise_consistency_loss(poses: torch.Tensor, other_poses: torch.Tensor) -> torch.Tensor:
    """L1 between the (x, y) of every mode decoded from two noise draws of the same anchors, (B, K, P, 3) each.

    The noise carries nothing about the future, so a denoiser's output should not depend on it. The L1 to the ground
    truth teaches that only weakly: it reaches one mode per sample, and its gradient is the sign of the error, which
    the context error dominates, so an undertrained decoder passes part of the per-pose noise through as jitter.
    This term measures the noise alone, on every mode.
    """
    return F.l1_loss(poses[..., :2], other_poses[..., :2])


def mode_anchoring_loss(poses: torch.Tensor, anchors: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """L1 between the (x, y) of every mode but the positive one and its own anchor: poses (B, K, P, 3), anchors
    (K, P, 2), positive (B,) mode indices.

    The regression reaches the positive mode alone, so with the noise off nothing keeps the other modes apart: a
    turn command bends them all its way, and no mode is left on the other branches of an intersection. This term
    keeps each mode near the manoeuvre of its anchor, so the modes stay the alternatives the anchors span.
    """
    others = torch.ones(poses.shape[:2], dtype=poses.dtype, device=poses.device)
    others[torch.arange(poses.shape[0], device=poses.device), positive] = 0
    error = (poses[..., :2] - anchors[None].to(poses.dtype)).abs().mean(dim=(-2, -1))
    return (error * others).sum() / others.sum().clamp(min=1)


def trajectory_loss(
    poses: torch.Tensor,
    scores: torch.Tensor,
    target: torch.Tensor,
    anchors: torch.Tensor,
    cls_weight: float = 10.0,
    reg_weight: float = 8.0,
    other_poses: torch.Tensor | None = None,
    consistency_weight: float = 0.0,
    anchoring_weight: float = 0.0,
) -> torch.Tensor:
    """Loss of one decoder layer: poses (B, K, P, 3), scores (B, K), target (B, P, 3), anchors (K, P, 2).

    other_poses: the same layer's poses from a second noise draw, for `noise_consistency_loss` x consistency_weight.
    anchoring_weight: factor on `mode_anchoring_loss`.
    """
    mode = nearest_anchor(target, anchors)
    onehot = F.one_hot(mode, scores.shape[1]).to(scores.dtype)
    best = poses[torch.arange(poses.shape[0], device=poses.device), mode]
    loss = cls_weight * sigmoid_focal_loss(scores, onehot) + reg_weight * F.l1_loss(best, target)
    if other_poses is not None:
        loss = loss + consistency_weight * noise_consistency_loss(poses, other_poses)
    if anchoring_weight:
        loss = loss + anchoring_weight * mode_anchoring_loss(poses, anchors, mode)
    return loss


def cascade_loss(
    layer_outputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    target: torch.Tensor,
    anchors: torch.Tensor,
    cls_weight: float = 10.0,
    reg_weight: float = 8.0,
    other_layer_outputs: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    consistency_weight: float = 0.0,
    anchoring_weight: float = 0.0,
) -> torch.Tensor:
    """Sum of `trajectory_loss` over the cascade decoder layers (with a second noise draw's layers, when given)."""
    others = [p for p, _ in other_layer_outputs] if other_layer_outputs is not None else [None] * len(layer_outputs)
    return sum(trajectory_loss(p, s, target, anchors, cls_weight, reg_weight, other, consistency_weight,
                               anchoring_weight)
               for (p, s), other in zip(layer_outputs, others))
