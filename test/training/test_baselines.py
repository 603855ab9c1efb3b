"""Constant-velocity and CTRV/CTRA baselines against hand-computed poses and a numerical integral."""
from __future__ import annotations

import math

import numpy as np
import pytest

from diffusiondrive_ros.training.baselines import constant_turn_rate, constant_velocity


def test_constant_velocity_straight_ahead():
    poses = constant_velocity((10.0, 0.0))
    assert poses.shape == (8, 3)
    np.testing.assert_allclose(poses[:, 0], [5, 10, 15, 20, 25, 30, 35, 40])
    np.testing.assert_allclose(poses[:, 1:], 0.0)


def test_constant_velocity_keeps_a_sideways_component_without_rotating():
    poses = constant_velocity((3.0, 4.0), num_poses=2, interval_s=1.0)
    np.testing.assert_allclose(poses, [[3, 4, 0], [6, 8, 0]])


@pytest.mark.parametrize("num_poses, interval_s", [(0, 0.5), (8, 0.0), (8, -1.0)])
def test_bad_horizon_is_rejected(num_poses, interval_s):
    with pytest.raises(ValueError):
        constant_velocity((1.0, 0.0), num_poses=num_poses, interval_s=interval_s)


def test_zero_turn_rate_is_constant_velocity():
    np.testing.assert_allclose(constant_turn_rate((7.0, 0.0), 0.0), constant_velocity((7.0, 0.0)), atol=1e-12)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_quarter_circle(side):
    # radius 10 m, a quarter turn in the 4 s horizon: w = pi/8 rad/s, v = w R
    radius, w = 10.0, side * math.pi / 8
    poses = constant_turn_rate((abs(w) * radius, 0.0), w)
    t = 0.5 * np.arange(1, 9)
    np.testing.assert_allclose(poses[:, 0], radius * np.sin(abs(w) * t), atol=1e-9)
    np.testing.assert_allclose(poses[:, 1], side * radius * (1 - np.cos(w * t)), atol=1e-9)
    np.testing.assert_allclose(poses[-1], [10.0, side * 10.0, side * math.pi / 2], atol=1e-9)


def test_constant_acceleration_straight():
    poses = constant_turn_rate((5.0, 0.0), 0.0, acceleration=2.0)
    t = 0.5 * np.arange(1, 9)
    np.testing.assert_allclose(poses[:, 0], 5 * t + t**2)
    np.testing.assert_allclose(poses[:, 1:], 0.0)


def test_ctra_matches_the_integral_of_its_motion():
    v0, a, w = 8.0, 1.0, 0.3
    poses = constant_turn_rate((v0, 0.0), w, acceleration=a)
    fine = np.linspace(0.0, 4.0, 400001)
    speed = v0 + a * fine
    dt = fine[1] - fine[0]
    x = np.concatenate([[0.0], np.cumsum((speed * np.cos(w * fine))[:-1] + (speed * np.cos(w * fine))[1:]) * dt / 2])
    y = np.concatenate([[0.0], np.cumsum((speed * np.sin(w * fine))[:-1] + (speed * np.sin(w * fine))[1:]) * dt / 2])
    at = np.arange(1, 9) * 50000
    np.testing.assert_allclose(poses[:, 0], x[at], atol=1e-6)
    np.testing.assert_allclose(poses[:, 1], y[at], atol=1e-6)
    np.testing.assert_allclose(poses[:, 2], w * fine[at])


def test_small_turn_rate_series_joins_the_arc_formula():
    below = constant_turn_rate((12.0, 0.0), 0.99e-4, acceleration=0.5)
    above = constant_turn_rate((12.0, 0.0), 1.01e-4, acceleration=0.5)
    np.testing.assert_allclose(below[:, 0], above[:, 0], atol=1e-6)
    # y is first order in the yaw rate: per unit yaw rate both branches agree
    np.testing.assert_allclose(below[:, 1] / 0.99e-4, above[:, 1] / 1.01e-4, rtol=1e-5)
    assert below[-1, 1] > 0  # a left yaw rate bends left in the series branch too


def test_braking_stops_and_holds_its_pose():
    poses = constant_turn_rate((4.0, 0.0), 0.1, acceleration=-2.0)  # stops at t = 2 s
    stopped = constant_turn_rate((4.0, 0.0), 0.1, acceleration=-2.0, num_poses=4)[-1]
    np.testing.assert_allclose(poses[3:], np.repeat(stopped[None], 5, axis=0))
    np.testing.assert_allclose(stopped[2], 0.2)
    straight = constant_turn_rate((4.0, 0.0), 0.0, acceleration=-2.0)
    np.testing.assert_allclose(straight[3:, 0], 4.0)  # v^2 / (2 |a|)


def test_sideslip_rotates_the_path_not_the_heading():
    poses = constant_turn_rate((0.0, 2.0), 0.0)
    np.testing.assert_allclose(poses[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(poses[:, 1], 2.0 * 0.5 * np.arange(1, 9))
    np.testing.assert_allclose(poses[:, 2], 0.0)


def test_non_finite_state_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        constant_turn_rate((math.nan, 0.0), 0.1)
    with pytest.raises(ValueError, match="finite"):
        constant_turn_rate((1.0, 0.0), math.inf)
