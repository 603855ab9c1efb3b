"""Manoeuvre-balanced sampling: each recorded future's kind, and weights that draw the kinds alike."""
from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.training.balance import balance_weights, format_manoeuvres, manoeuvre

T = 0.5 * np.arange(1, 9)


def drive(speeds: np.ndarray, yaw_rate: float = 0.0) -> np.ndarray:
    """(8, 3) future of a car driving the given speed at each 0.5 s interval and turning at yaw_rate (rad/s)."""
    heading = yaw_rate * T
    steps = 0.5 * speeds
    x = np.cumsum(steps * np.cos(heading))
    y = np.cumsum(steps * np.sin(heading))
    return np.stack([x, y, heading], axis=-1)


def test_each_kind_of_future_is_named():
    assert manoeuvre(np.zeros((8, 3))) == "standing"
    assert manoeuvre(drive(np.full(8, 0.2))) == "standing"  # creeps 0.8 m: within the 1 m of eval's `stops`
    assert manoeuvre(drive(np.array([8.0, 7, 5, 3, 1, 0.5, 0, 0]))) == "halting"
    assert manoeuvre(drive(np.array([8.0, 7, 5, 3, 2, 1.5, 1.2, 1.1]))) == "straight"  # still rolling at 1.1 m/s
    assert manoeuvre(drive(np.full(8, 6.0), yaw_rate=0.3)) == "left"  # 1.2 rad over 4 s
    assert manoeuvre(drive(np.full(8, 6.0), yaw_rate=-0.3)) == "right"
    assert manoeuvre(drive(np.full(8, 10.0), yaw_rate=0.02)) == "straight"  # 0.08 rad: a bend, not a turn


def test_power_one_draws_every_kind_equally_and_zero_uniformly():
    kinds = ["straight"] * 6 + ["halting"] * 2 + ["left"]
    equal = balance_weights(kinds, 1.0)
    assert equal[:6].sum() == pytest.approx(1 / 3) and equal[6:8].sum() == pytest.approx(1 / 3)
    assert equal[8] == pytest.approx(1 / 3)
    np.testing.assert_allclose(balance_weights(kinds, 0.0), np.full(9, 1 / 9))
    half = balance_weights(kinds, 0.5)
    assert half[8] / half[0] == pytest.approx(6 ** 0.5)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="balance must be a finite number >= 0"):
            balance_weights(kinds, bad)


def test_log_line_gives_counts_and_shares_of_the_draws():
    kinds = ["straight"] * 3 + ["halting"]
    assert format_manoeuvres(kinds, None) == "standing 0, halting 1, left 0, right 0, straight 3"
    assert format_manoeuvres(kinds, balance_weights(kinds, 1.0)) == (
        "standing 0, halting 1 (25% -> 50% of draws), left 0, right 0, straight 3 (75% -> 50% of draws)")
