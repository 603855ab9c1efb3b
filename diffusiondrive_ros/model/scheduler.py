"""DDIM maths for truncated diffusion (scaled-linear betas, clean-sample prediction, eta = 0).

Numerically identical to diffusers' `DDIMScheduler(beta_schedule="scaled_linear", prediction_type="sample")`
with `clip_sample=True`, `set_alpha_to_one=True` and `set_timesteps(num_train_timesteps)`, which is how the
official head uses it; kept free of networks and of diffusers itself.
"""

from __future__ import annotations

import numpy as np
import torch


class TruncatedDDIMScheduler:
    """Forward noising (`add_noise`) and the deterministic DDIM update (`step`) in float32, as diffusers."""

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
        self.num_train_timesteps = num_train_timesteps
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        alphas = torch.cat([self.alphas_cumprod, torch.ones(1)])  # index -1: the final alpha (set_alpha_to_one)
        # sqrt(alpha_bar) and sqrt(1 - alpha_bar) per timestep, in float32 as diffusers computes them, kept as Python
        # numbers so that a compiled step bakes them in (no CPU tensor in a GPU graph)
        self._roots = list(zip((alphas**0.5).tolist(), ((1 - alphas) ** 0.5).tolist()))

    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for a batch of timesteps (one per leading-axis element)."""
        alphas = self.alphas_cumprod.to(device=clean.device, dtype=clean.dtype)[timesteps.to(clean.device)]
        shape = (-1,) + (1,) * (clean.dim() - 1)
        return alphas.sqrt().view(shape) * clean + (1 - alphas).sqrt().view(shape) * noise

    def step(self, predicted_clean: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """One DDIM step from `timestep` to `timestep - 1` given the predicted clean sample."""
        root_t, root_rest_t = self._roots[timestep]
        root_prev, root_rest_prev = self._roots[timestep - 1]
        epsilon = (sample - root_t * predicted_clean) / root_rest_t
        clean = predicted_clean.clamp(-1.0, 1.0)
        return root_prev * clean + root_rest_prev * epsilon

    @staticmethod
    def inference_timesteps(steps: int, span: int) -> list[int]:
        """Timesteps the denoising loop visits, largest first (official: round(arange(steps) * span / steps))."""
        return [int(t) for t in (np.arange(steps) * (span / steps)).round()[::-1]]
