"""Auxiliary perception heads of the TransFuser model: agent boxes and the BEV semantic map."""

from __future__ import annotations

import math

import torch
from torch import nn

BOX_DIMS = 5  # x, y, heading, length, width


class AgentHead(nn.Module):
    """Bounding box (x, y within +-range, heading, length, width) and existence logit per agent query."""

    def __init__(self, d_model: int, d_ffn: int, xy_range: float = 32.0):
        super().__init__()
        self.xy_range = xy_range
        self._mlp_states = nn.Sequential(nn.Linear(d_model, d_ffn), nn.ReLU(), nn.Linear(d_ffn, BOX_DIMS))
        self._mlp_label = nn.Sequential(nn.Linear(d_model, 1))

    def forward(self, agents_query: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self._mlp_states(agents_query)
        states = torch.cat([raw[..., :2].tanh() * self.xy_range, raw[..., 2:3].tanh() * math.pi, raw[..., 3:]], dim=-1)
        return {"agent_states": states, "agent_labels": self._mlp_label(agents_query).squeeze(-1)}


def bev_semantic_head(channels: int, num_classes: int, height: int, width: int) -> nn.Sequential:
    """3x3 conv + ReLU + 1x1 classifier on the FPN map, bilinearly upsampled to the semantic map size."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, num_classes, 1),
        nn.Upsample(size=(height, width), mode="bilinear", align_corners=False),
    )
