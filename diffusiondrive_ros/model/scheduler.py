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
        self.final_alpha_cumprod = torch.tensor(1.0)

    def alpha_cumprod(self, timestep: int) -> torch.Tensor:
        return self.alphas_cumprod[timestep] if timestep >= 0 else self.final_alpha_cumprod

    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for a batch of timesteps (one per leading-axis element)."""
        alphas = self.alphas_cumprod.to(device=clean.device, dtype=clean.dtype)[timesteps.to(clean.device)]
        shape = (-1,) + (1,) * (clean.dim() - 1)
        return alphas.sqrt().view(shape) * clean + (1 - alphas).sqrt().view(shape) * noise

    def step(self, predicted_clean: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """One DDIM step from `timestep` to `timestep - 1` given the predicted clean sample."""
        alpha_t = self.alpha_cumprod(timestep)
        alpha_prev = self.alpha_cumprod(timestep - 1)
        epsilon = (sample - alpha_t**0.5 * predicted_clean) / (1 - alpha_t) ** 0.5
        clean = predicted_clean.clamp(-1.0, 1.0)
        return alpha_prev**0.5 * clean + (1 - alpha_prev) ** 0.5 * epsilon

    @staticmethod
    def inference_timesteps(steps: int, span: int) -> list[int]:
        """Timesteps the denoising loop visits, largest first (official: round(arange(steps) * span / steps))."""
        return [int(t) for t in (np.arange(steps) * (span / steps)).round()[::-1]]
