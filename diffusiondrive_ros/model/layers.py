"""Small building blocks shared by the DiffusionDrive heads."""

from __future__ import annotations

import math

import torch
from torch import nn


def spatial_size(x: torch.Tensor) -> tuple[int, int]:
    """(height, width) of an (..., H, W) tensor as plain ints, so a traced graph (the ONNX export) keeps them static."""
    return int(x.shape[-2]), int(x.shape[-1])


def linear_relu_ln(embed_dims: int, in_loops: int, out_loops: int, input_dims: int | None = None) -> list[nn.Module]:
    """`out_loops` x ([Linear, ReLU] x `in_loops`, LayerNorm), the official MLP pattern (module indices matter)."""
    layers: list[nn.Module] = []
    input_dims = embed_dims if input_dims is None else input_dims
    for _ in range(out_loops):
        for _ in range(in_loops):
            layers += [nn.Linear(input_dims, embed_dims), nn.ReLU(inplace=True)]
            input_dims = embed_dims
        layers.append(nn.LayerNorm(embed_dims))
    return layers


def sine_position_embedding(points: torch.Tensor, hidden_dim: int = 64) -> torch.Tensor:
    """DAB-DETR style sine embedding of (x, y) in metres -> [emb(y), emb(x)], `hidden_dim` features in all."""
    half = hidden_dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=points.device)
    dim_t = 10000 ** (2 * (dim_t // 2) / half)

    def embed(coord: torch.Tensor) -> torch.Tensor:
        angles = (coord * (2 * math.pi))[..., None] / dim_t
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat((embed(points[..., 1]), embed(points[..., 0])), dim=-1)


class SinusoidalPosEmb(nn.Module):
    """Sinusoidal embedding of integer diffusion timesteps: [sin, cos] at log-spaced frequencies."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        angles = t[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)
