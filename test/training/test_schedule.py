"""Warm-up + cosine learning rate against its closed form."""
from __future__ import annotations

import math

import pytest

from diffusiondrive_ros.training.schedule import WarmupCosineSchedule


def test_linear_warm_up_reaches_the_peak_at_its_last_step():
    schedule = WarmupCosineSchedule(base_lr=1e-3, warmup_steps=4, total_steps=20)
    assert [schedule(s) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])


def test_cosine_decay_matches_the_closed_form():
    schedule = WarmupCosineSchedule(base_lr=2.0, warmup_steps=10, total_steps=110)
    for step in range(10, 110):
        expected = 2.0 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 100))
        assert schedule(step) == pytest.approx(expected, rel=1e-12)
    assert schedule(10) == 2.0
    assert schedule(60) == pytest.approx(1.0)  # half way down the cosine: half the peak
    assert 0 < schedule(109) < 2.0 * 1e-3
    assert schedule(110) == pytest.approx(0.0, abs=1e-15) and schedule(1000) == pytest.approx(0.0, abs=1e-15)


def test_no_warm_up_starts_at_the_peak_and_only_decreases():
    schedule = WarmupCosineSchedule(base_lr=1.0, warmup_steps=0, total_steps=7)
    values = [schedule(s) for s in range(7)]
    assert values[0] == 1.0 and all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kwargs, field", [
    ({"base_lr": 0.0, "warmup_steps": 0, "total_steps": 5}, "base_lr"),
    ({"base_lr": float("nan"), "warmup_steps": 0, "total_steps": 5}, "base_lr"),
    ({"base_lr": 1.0, "warmup_steps": 0, "total_steps": 0}, "total_steps"),
    ({"base_lr": 1.0, "warmup_steps": 5, "total_steps": 5}, "warmup_steps"),
    ({"base_lr": 1.0, "warmup_steps": -1, "total_steps": 5}, "warmup_steps"),
])
def test_invalid_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WarmupCosineSchedule(**kwargs)


def test_negative_step_is_an_error():
    with pytest.raises(ValueError, match="step"):
        WarmupCosineSchedule(1.0, 0, 5)(-1)
