"""Exponential moving average (EMA) of a model's weights: smoother weights to ship than the last optimizer step's."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ExponentialMovingAverage:
    """A frozen copy of the model whose floating-point state follows the trained one: ema <- d ema + (1 - d) model.

    The decay is warmed up as in TensorFlow's `ExponentialMovingAverage(num_updates=...)`: update n (1-based) uses
    d = min(decay, (1 + n) / (10 + n)), so the average tracks the fast early changes instead of the random
    initialisation. Buffers are averaged too (BatchNorm running statistics); integer buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """Decay the next update uses."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model` (same architecture as the one it was made from)."""
        decay = self.current_decay()
        current = model.state_dict()
        for key, average in self.module.state_dict().items():
            value = current[key].detach()
            if average.dtype.is_floating_point:
                average.lerp_(value.to(average.dtype), 1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the averaged weights and the update count."""
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; the decay must be the one this average was made with."""
        if state["decay"] != self.decay:
            raise ValueError(f"EMA state has decay {state['decay']}, this average uses {self.decay}")
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"], strict=True)
