"""Manoeuvre-balanced sampling: weights that draw each kind of recorded future (standing, halting, turns) alike.

A fleet's recordings are mostly cruising straight on; the frames a planner must not get wrong (braking to a halt
for something in the lane, turning at an intersection) are few. `--balance` draws frame i with probability
proportional to count(kind_i) ** -balance: 0 keeps the uniform shuffle, 1 draws every kind equally often.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .metrics import MetricsConfig, stops, turn_direction

MANOEUVRES = ("standing", "halting", "left", "right", "straight")
"""Kinds of a recorded future, in the order `manoeuvre` tests them."""

HALT_SPEED_MPS = 0.5
"""A future that moves but whose last pose interval is slower than this ends in a halt."""


def manoeuvre(future: np.ndarray, config: MetricsConfig = MetricsConfig()) -> str:
    """Kind of one future (P, 3): standing (eval's `stops`), halting, else its `turn_direction` left/right/straight."""
    if stops(future, config.stop_threshold_m):
        return "standing"
    if np.linalg.norm(future[-1, :2] - future[-2, :2]) < HALT_SPEED_MPS * config.interval_s:
        return "halting"
    direction = turn_direction(future, config.turn_heading_threshold_rad, config.turn_min_travel_m)
    return {1: "left", -1: "right", 0: "straight"}[direction]


def balance_weights(kinds: Sequence[str], power: float) -> np.ndarray:
    """Sampling weight of each frame from its kind (`manoeuvre`): count(kind) ** -power, normalised to sum 1."""
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"balance must be a finite number >= 0, got {power!r}")
    counts = Counter(kinds)
    weights = np.array([float(counts[kind]) ** -power for kind in kinds])
    return weights / weights.sum()


def format_manoeuvres(kinds: Sequence[str], weights: Sequence[float] | None) -> str:
    """One line for the training log: each kind's frames, and with sampling weights its share of the draws."""
    counts = Counter(kinds)
    shares: Counter[str] = Counter()
    for kind, weight in zip(kinds, weights if weights is not None else ()):
        shares[kind] += float(weight)
    parts = []
    for kind in MANOEUVRES:
        drawn = f" ({counts[kind] / len(kinds):.0%} -> {shares[kind]:.0%} of draws)" if shares[kind] else ""
        parts.append(f"{kind} {counts[kind]}{drawn}")
    return ", ".join(parts)
