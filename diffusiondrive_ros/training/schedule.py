"""Learning-rate schedule of training: linear warm-up, then half a cosine down to zero, evaluated per optimizer step.

A plain object and a closed form of the step number (as DiffusionDrive's `WarmupCosLR`, but per step, not per epoch),
so a resumed run needs only the step count to continue the schedule exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupCosineSchedule:
    """lr(s) for optimizer steps s = 0 .. total_steps - 1.

    Warm-up, s < warmup_steps: lr = base_lr * (s + 1) / warmup_steps, reaching base_lr at the last warm-up step.
    Then lr = base_lr * (1 + cos(pi * (s - warmup_steps) / (total_steps - warmup_steps))) / 2 (SGDR, Loshchilov and
    Hutter 2017, formula (5) with eta_min = 0 and one cycle), which starts at base_lr and reaches zero at total_steps.
    """

    base_lr: float
    """Peak learning rate, reached at the end of the warm-up."""
    warmup_steps: int
    """Steps of the linear warm-up (0: start at base_lr)."""
    total_steps: int
    """Optimizer steps of the whole run; the cosine ends at zero here."""

    def __post_init__(self) -> None:
        if not (isinstance(self.base_lr, (int, float)) and math.isfinite(self.base_lr) and self.base_lr > 0):
            raise ValueError(f"WarmupCosineSchedule.base_lr must be a finite number > 0, got {self.base_lr!r}")
        if not isinstance(self.total_steps, int) or self.total_steps < 1:
            raise ValueError(f"WarmupCosineSchedule.total_steps must be an int >= 1, got {self.total_steps!r}")
        if not isinstance(self.warmup_steps, int) or not 0 <= self.warmup_steps < self.total_steps:
            raise ValueError(f"WarmupCosineSchedule.warmup_steps must be an int in [0, total_steps={self.total_steps}),"
                             f" got {self.warmup_steps!r}")

    def __call__(self, step: int) -> float:
        """Learning rate of optimizer step `step` (0-based); steps past the end get 0."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        progress = min((step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 1.0)
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
