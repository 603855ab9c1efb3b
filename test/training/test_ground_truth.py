"""Ground-truth futures from odometry against closed-form drives, and the command derived from a future."""
from __future__ import annotations

import math

import numpy as np
import pytest

from diffusiondrive_ros.training.ground_truth import (
    COMMAND_LEFT,
    COMMAND_RIGHT,
    COMMAND_STRAIGHT,
    NS_PER_S,
    OdometryTrack,
    derive_command,
)

STEP_NS = 10_000_000  # 100 Hz odometry
T0_NS = 1_700_000_000 * NS_PER_S
OFFSETS_S = 0.5 * np.arange(1, 9)


def wrap(angle):
    """Angle(s) into [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def arc_samples(speed: float, yaw_rate: float, x0: float = 3.0, y0: float = -2.0, yaw0: float = 0.7,
                duration_s: float = 6.0) -> list[tuple[int, float, float, float]]:
    """(stamp, x, y, yaw wrapped to [-pi, pi)) of a drive at constant speed and yaw rate (0: a straight line)."""
    samples = []
    for k in range(round(duration_s * NS_PER_S / STEP_NS) + 1):
        t = k * STEP_NS / NS_PER_S
        yaw = yaw0 + yaw_rate * t
        if yaw_rate:
            radius = speed / yaw_rate
            x, y = x0 + radius * (math.sin(yaw) - math.sin(yaw0)), y0 - radius * (math.cos(yaw) - math.cos(yaw0))
        else:
            x, y = x0 + speed * t * math.cos(yaw0), y0 + speed * t * math.sin(yaw0)
        samples.append((T0_NS + k * STEP_NS, x, y, float(wrap(yaw))))
    return samples


def arc_future(speed: float, yaw_rate: float) -> np.ndarray:
    """The closed-form ego-frame future of such a drive: (R sin wt, R (1 - cos wt), wt) or (vt, 0, 0)."""
    if not yaw_rate:
        return np.column_stack([speed * OFFSETS_S, np.zeros(8), np.zeros(8)])
    radius, angle = speed / yaw_rate, yaw_rate * OFFSETS_S
    return np.column_stack([radius * np.sin(angle), radius * (1 - np.cos(angle)), wrap(angle)])


def test_straight_drive_at_constant_speed():
    track = OdometryTrack.from_samples(arc_samples(8.0, 0.0))
    future = track.future(T0_NS + 50 * STEP_NS, 8)
    np.testing.assert_allclose(future, [[4.0 * k, 0.0, 0.0] for k in range(1, 9)], atol=1e-9)
    # Off the sample grid the interpolation of a straight line is still exact.
    np.testing.assert_allclose(track.future(T0_NS + 1_234_567_891, 8), arc_future(8.0, 0.0), atol=1e-9)


@pytest.mark.parametrize("yaw_rate", [0.3, -0.3])
def test_constant_rate_turn_matches_the_circle(yaw_rate):
    track = OdometryTrack.from_samples(arc_samples(10.0, yaw_rate))
    np.testing.assert_allclose(track.future(T0_NS + 70 * STEP_NS, 8), arc_future(10.0, yaw_rate), atol=1e-9)
    # Between samples the odometry is interpolated linearly: chords of 0.1 m on a 33 m circle are off by < 1e-4 m.
    np.testing.assert_allclose(track.future(T0_NS + 70 * STEP_NS + 3_000_000, 8), arc_future(10.0, yaw_rate),
                               atol=1e-4)


@pytest.mark.parametrize(("yaw0", "yaw_rate"), [(3.0, 0.5), (-3.0, -0.5), (3.0, 1.0)])
def test_heading_wraps_across_pi(yaw0, yaw_rate):
    """Yaw wrapped in the samples is unwrapped before interpolating; the future heading is wrapped to [-pi, pi)."""
    samples = arc_samples(6.0, yaw_rate, yaw0=yaw0)
    assert max(s[3] for s in samples) > 3.0 and min(s[3] for s in samples) < -1.0  # the samples do jump by 2 pi
    future = OdometryTrack.from_samples(samples).future(T0_NS + 20 * STEP_NS + 5_000_000, 8)
    expected = arc_future(6.0, yaw_rate)
    np.testing.assert_allclose(future[:, :2], expected[:, :2], atol=1e-3)  # chords of 6 cm on a 6 m circle
    np.testing.assert_allclose(wrap(future[:, 2] - expected[:, 2]), 0.0, atol=1e-9)
    assert np.all((-math.pi <= future[:, 2]) & (future[:, 2] < math.pi))
    if yaw_rate == 1.0:  # 4 rad of turning reads as -2.28 rad
        assert future[-1, 2] == pytest.approx(4.0 - 2 * math.pi)


def test_samples_in_any_order_give_the_same_future():
    samples = arc_samples(10.0, 0.3)
    shuffled = [samples[i] for i in np.random.default_rng(0).permutation(len(samples))]
    stamp = T0_NS + 100 * STEP_NS
    np.testing.assert_array_equal(OdometryTrack.from_samples(shuffled).future(stamp, 8),
                                  OdometryTrack.from_samples(samples).future(stamp, 8))


def test_no_future_outside_the_odometry():
    track = OdometryTrack.from_samples(arc_samples(10.0, 0.0, duration_s=5.0))
    assert track.future(T0_NS - 1, 8) is None
    assert track.future(T0_NS + NS_PER_S, 8) is not None  # 1 s + 4 s horizon = the last sample
    assert track.future(T0_NS + NS_PER_S + 1, 8) is None
    assert OdometryTrack.from_samples([]).future(T0_NS, 8) is None


@pytest.mark.parametrize(("future", "command"), [
    (arc_future(10.0, 0.0), COMMAND_STRAIGHT),
    (np.zeros((8, 3)), COMMAND_STRAIGHT),  # standing still
    (arc_future(10.0, 0.3), COMMAND_LEFT),  # 1.2 rad to the left over 4 s
    (arc_future(10.0, -0.3), COMMAND_RIGHT),
    (arc_future(10.0, 0.02), COMMAND_STRAIGHT),  # a slight bend: 0.08 rad, 1.6 m sideways
    (arc_future(10.0, -0.04), COMMAND_RIGHT),  # a bend of 0.16 rad that leaves the lane (3.2 m to the right)
])
def test_derived_command_of_drives(future, command):
    assert derive_command(future) == command


@pytest.mark.parametrize(("y", "heading", "command"), [
    (0.0, 0.19, COMMAND_STRAIGHT),
    (0.0, 0.2, COMMAND_LEFT),  # the heading threshold is inclusive
    (0.0, -0.2, COMMAND_RIGHT),
    (1.9, 0.1, COMMAND_STRAIGHT),
    (3.5, 0.0, COMMAND_LEFT),  # lane change to the left
    (-3.5, 0.05, COMMAND_RIGHT),  # lane change to the right: y decides while the heading is small
    (-3.0, 0.5, COMMAND_LEFT),  # a turn's heading outweighs the lateral offset
])
def test_derived_command_rule(y, heading, command):
    future = np.zeros((8, 3))
    future[:, 0] = np.arange(1, 9) * 5.0
    future[-1, 1:] = (y, heading)
    assert derive_command(future) == command
    assert derive_command(future, max_heading_rad=10.0, max_lateral_m=10.0) == COMMAND_STRAIGHT
