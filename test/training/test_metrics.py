"""Open-loop metrics, each against hand-computed values: displacement, swept-footprint collision and clearance, boxes,
comfort, progress, stop and turn intent, one frame and the summary."""
from __future__ import annotations

import math

import numpy as np
import pytest

from diffusiondrive_ros.training.baselines import constant_turn_rate, constant_velocity
from diffusiondrive_ros.training.metrics import (
    CollisionConfig,
    ComfortThresholds,
    EgoFootprint,
    FrameMetrics,
    MetricsConfig,
    ObstacleSweep,
    ade,
    box_collision,
    boxes_overlap,
    centre_line_clearance,
    clearance,
    collision,
    comfort,
    evaluate_frame,
    fde,
    footprint_signed_distance,
    headings,
    match_sweeps,
    min_ade,
    min_fde,
    miss,
    obstacle_distances,
    obstacle_points,
    progress,
    segment_distance,
    stops,
    summarize,
    sweep_poses,
    to_plan_frame,
    turn_direction,
)

STRAIGHT = constant_velocity((10.0, 0.0))  # x = 5, 10, ..., 40
QUARTER_LEFT = constant_turn_rate((10 * math.pi / 8, 0.0), math.pi / 8)  # radius 10 m, ends at (10, 10, pi/2)


def _cloud(*xyz: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(xyz, dtype=np.float64).reshape(-1, 3)


# --- displacement --------------------------------------------------------------------------------------------------


def test_ade_fde_by_hand():
    pred = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    gt = np.array([[1.0, 0.0, 0.3], [2.0, 1.0, 0.0], [3.0, 4.0, 0.0]])  # off by 0, 1, 4 m; heading is ignored
    assert ade(pred, gt) == pytest.approx(5 / 3)
    assert fde(pred, gt) == pytest.approx(4.0)


def test_min_over_modes_picks_each_minimum_on_its_own():
    gt = np.array([[1.0, 0.0], [2.0, 0.0]])
    modes = np.array([
        [[1.0, 0.0], [2.0, 3.0]],  # ADE 1.5, FDE 3
        [[1.0, 2.0], [2.0, 1.0]],  # ADE 1.5, FDE 1
        [[1.0, 0.5], [2.0, 2.0]],  # ADE 1.25, FDE 2
    ])
    assert min_ade(modes, gt) == pytest.approx(1.25)
    assert min_fde(modes, gt) == pytest.approx(1.0)


def test_miss_is_fde_above_the_threshold():
    gt = np.zeros((2, 2))
    assert not miss(np.array([[0.0, 0.0], [2.0, 0.0]]), gt)
    assert miss(np.array([[0.0, 0.0], [2.01, 0.0]]), gt)
    assert not miss(np.array([[0.0, 0.0], [2.01, 0.0]]), gt, threshold_m=3.0)


def test_mismatched_lengths_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="poses"):
        ade(np.zeros((8, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="shape"):
        min_ade(np.zeros((8, 2)), np.zeros((8, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fde(np.full((8, 2), np.nan), np.zeros((8, 2)))


# --- sweep and footprint -------------------------------------------------------------------------------------------


def test_obstacle_points_keep_the_height_band_and_drop_self_returns():
    cloud = _cloud((5, 0, 0.3), (6, 0, 0.4), (7, 0, 1.0), (8, 0, 2.0), (9, 0, 2.1), (10, 0, np.nan), (1, 0, 1.0))
    np.testing.assert_allclose(obstacle_points(cloud), [[6, 0], [7, 0], [8, 0]])  # (1, 0) is inside the ego's box
    keep_all = CollisionConfig(min_z_m=0.0, max_z_m=0.5, exclude_self_returns=False)
    np.testing.assert_allclose(obstacle_points(cloud, keep_all), [[5, 0], [6, 0]])


def test_to_plan_frame_by_hand():
    # The ego was at (2, 1) facing +y at the sweep: what it saw 1 m ahead is at (2, 2), 1 m to its left at (1, 1).
    pose = (2.0, 1.0, math.pi / 2)
    np.testing.assert_allclose(to_plan_frame([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], pose),
                               [[2.0, 2.0], [1.0, 1.0], [2.0, 1.0]], atol=1e-12)
    np.testing.assert_allclose(to_plan_frame([[3.0, -4.0]], (0.0, 0.0, 0.0)), [[3.0, -4.0]])
    turned = to_plan_frame([[10.0, 0.0]], (5.0, 0.0, -math.pi / 6))  # 10 m ahead of an ego turned 30 deg right
    np.testing.assert_allclose(turned, [[5.0 + 10 * math.sqrt(3) / 2, -5.0]], atol=1e-12)


def test_match_sweeps_takes_the_nearest_within_the_tolerance():
    np.testing.assert_array_equal(match_sweeps([0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.26], 0.05), [0, 1, -1, 2])
    np.testing.assert_array_equal(match_sweeps([0.05], [0.1, 0.0], 0.05), [1])  # a tie goes to the earlier sweep
    np.testing.assert_array_equal(match_sweeps([0.0, 4.0], [], 0.05), [-1, -1])


def test_segment_distance_by_hand():
    starts, ends = np.array([[0.0, 0.0], [2.0, 2.0]]), np.array([[4.0, 0.0], [2.0, 2.0]])  # the second is a point
    np.testing.assert_allclose(segment_distance(starts, ends, [[2.0, 3.0], [-3.0, 4.0], [7.0, -4.0]]),
                               [[3.0, 5.0, 5.0], [1.0, math.hypot(5, 2), math.hypot(5, 6)]])


def test_sweep_starts_at_the_origin_and_passes_every_pose():
    poses = sweep_poses(STRAIGHT)
    assert poses.shape == (41, 3)
    np.testing.assert_allclose(poses[:, 0], np.arange(41.0))
    np.testing.assert_allclose(poses[::5], np.vstack([[0, 0, 0], STRAIGHT]), atol=1e-12)


def test_sweep_interpolates_heading_across_pi():
    trajectory = np.array([[1.0, 0.0, 3.0], [2.0, 0.0, -3.0]])  # -3.0 is 3.283 unwrapped
    poses = sweep_poses(trajectory, interval_s=1.0, step_s=0.5)
    assert poses[3, 2] == pytest.approx((3.0 + 2 * math.pi - 3.0) / 2)


def test_headings_from_positions_when_there_is_no_heading_column():
    np.testing.assert_allclose(headings(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])),
                               [0.0, math.pi / 2, math.pi / 2, math.pi])


def test_footprint_signed_distance_by_hand():
    # default footprint: centre 1.5 m ahead of the rear axle, half sizes 2.4 x 1.0
    origin = np.zeros((1, 3))
    points = np.array([[1.5, 0.0], [1.5, 3.0], [3.9 + 3.0, 1.0 + 4.0], [-0.9, 0.0]])
    np.testing.assert_allclose(footprint_signed_distance(origin, points)[0], [-1.0, 2.0, 5.0, 0.0])
    facing_left = np.array([[0.0, 0.0, math.pi / 2]])  # box now spans x in [-1, 1], y in [-0.9, 3.9]
    np.testing.assert_allclose(footprint_signed_distance(facing_left, [[0.0, 5.0], [2.0, 0.0]])[0], [1.1, 1.0])


# --- collision and clearance ---------------------------------------------------------------------------------------


def _standing(cloud: np.ndarray, until_s: float = 4.0) -> list[ObstacleSweep]:
    """10 Hz sweeps from 0 s to until_s of a world that stands still, seen by an ego that stands at the origin."""
    return [ObstacleSweep(k / 10, obstacle_points(cloud)) for k in range(round(until_s * 10) + 1)]


def _moving(start_xy: tuple[float, float], velocity: tuple[float, float]) -> list[ObstacleSweep]:
    """10 Hz sweeps over 4 s of one obstacle point moving at a constant velocity, given in the plan's frame."""
    return [ObstacleSweep(k / 10, np.array([[start_xy[0] + velocity[0] * k / 10, start_xy[1] + velocity[1] * k / 10]]))
            for k in range(41)]


def test_point_in_the_path_collides_only_inside_the_height_band():
    assert collision(STRAIGHT, _standing(_cloud((20, 0, 1.0))))
    assert not collision(STRAIGHT, _standing(_cloud((20, 0, 0.2))))
    assert not collision(STRAIGHT, _standing(_cloud((20, 0, 2.5))))


def test_margin_and_clearance_beside_the_path():
    sweeps = _standing(_cloud((20, 1.5, 1.0)))  # 0.5 m from the ego's left side, 1.5 m from its path
    assert not collision(STRAIGHT, sweeps)
    assert clearance(STRAIGHT, sweeps) == pytest.approx(0.5)
    assert centre_line_clearance(STRAIGHT, sweeps) == pytest.approx(1.5)
    assert collision(STRAIGHT, sweeps, margin_m=0.5)
    assert not collision(STRAIGHT, sweeps, margin_m=0.4)
    assert clearance(STRAIGHT, _standing(_cloud((20, 0, 1.0)))) == 0.0


def test_centre_line_is_the_polyline_through_the_poses():
    # 20 m in 0.5 s: sweep poses 4 m apart, but the segment from the origin passes 0.3 m from a point at 6 m
    one_pose = np.array([[20.0, 0.0, 0.0]])
    assert centre_line_clearance(one_pose, _standing(_cloud((6.0, 0.3, 1.0)), 0.5)) == pytest.approx(0.3)
    # The quarter turn's poses lie on a 10 m circle around (0, 10), pi/16 apart: its chords pass 10 cos(pi/32) from it
    centre = _standing(_cloud((0.0, 10.0, 1.0)))
    assert centre_line_clearance(QUARTER_LEFT, centre) == pytest.approx(10 * math.cos(math.pi / 32))


def test_clearance_is_inf_without_obstacles_in_range():
    assert clearance(STRAIGHT, _standing(np.zeros((0, 3)))) == math.inf
    assert not collision(STRAIGHT, _standing(np.zeros((0, 3))))
    far = _standing(_cloud((20, 30, 1.0)))
    assert clearance(STRAIGHT, far) == math.inf and centre_line_clearance(STRAIGHT, far) == math.inf
    assert clearance(STRAIGHT, far, max_range_m=50.0) == pytest.approx(29.0)
    assert centre_line_clearance(STRAIGHT, far, max_range_m=50.0) == pytest.approx(30.0)


def test_sweep_catches_obstacles_between_poses():
    one_pose = np.array([[20.0, 0.0, 0.0]])  # 20 m in 0.5 s: the boxes at t = 0 and t = 0.5 s leave a gap
    sweeps = _standing(_cloud((11.5, 0, 1.0)), 0.5)
    assert collision(one_pose, sweeps)
    assert not collision(one_pose, sweeps, config=CollisionConfig(step_s=0.5))


def test_a_lead_car_driving_on_is_no_obstacle_but_held_still_it_is():
    # A point on the lead car's tail, 10 m ahead and driving at the plan's 10 m/s: the front bumper (3.9 m ahead of
    # the rear axle) stays 6.1 m behind it. Held where it was at t = 0, the plan drives through it.
    lead = _moving((10.0, 0.0), (10.0, 0.0))
    assert not collision(STRAIGHT, lead)
    assert clearance(STRAIGHT, lead) == pytest.approx(6.1)
    held = CollisionConfig(sweep_tolerance_s=math.inf)  # every pose against the sweep of t = 0
    assert collision(STRAIGHT, lead[:1], config=held)
    # A car coming the other way 3 m to the left passes 2 m from the ego's side and 3 m from its path.
    oncoming = _moving((60.0, 3.0), (-10.0, 0.0))
    assert clearance(STRAIGHT, oncoming) == pytest.approx(2.0)
    assert centre_line_clearance(STRAIGHT, oncoming) == pytest.approx(3.0)


def test_a_standing_obstacle_seen_from_the_moving_ego_is_met_where_it_stands():
    # The recorded ego drives at 5 m/s; each sweep sees the obstacle, 30 m ahead at t = 0, 0.5 m closer per 0.1 s.
    # Moved into the plan's frame by the ego's pose then, it stands at (30, 0): the plan driving on at 10 m/s hits it
    # (front bumper 3.9 m ahead of the rear axle), one that stops at 20 m does not.
    sweeps = [ObstacleSweep(k / 10, to_plan_frame(obstacle_points(_cloud((30.0 - k / 2, 0.0, 1.0))), (k / 2, 0.0, 0.0)))
              for k in range(41)]
    for sweep in sweeps:
        np.testing.assert_allclose(sweep.xy, [[30.0, 0.0]])
    assert collision(STRAIGHT, sweeps)
    stopping = np.array([[min(5.0 * i, 20.0), 0.0, 0.0] for i in range(1, 9)])
    assert not collision(stopping, sweeps) and clearance(stopping, sweeps) == pytest.approx(30.0 - 20.0 - 3.9)


def test_poses_without_a_sweep_are_not_checked_and_counted():
    ahead = _cloud((35, 0, 1.0))  # reached by the front bumper after 3.1 s
    assert collision(STRAIGHT, _standing(ahead))
    partial = obstacle_distances(STRAIGHT, _standing(ahead, until_s=2.0), 20.0)
    assert partial.unchecked_poses == 20 and partial.footprint_m == pytest.approx(35.0 - 20.0 - 3.9)
    # a dropped sweep leaves the poses nearest it unchecked
    dropped = [sweep for sweep in _standing(ahead) if sweep.offset_s != 1.0]
    assert obstacle_distances(STRAIGHT, dropped, 10.0).unchecked_poses == 1


def test_self_returns_inside_the_footprint_of_their_sweep_are_ignored():
    sweeps = _standing(_cloud((1.0, 0.0, 1.0)))
    assert not collision(STRAIGHT, sweeps)
    keep = CollisionConfig(exclude_self_returns=False)
    assert collision(STRAIGHT, [ObstacleSweep(0.0, obstacle_points(_cloud((1.0, 0.0, 1.0)), keep))])


def test_turning_path_hits_what_is_on_the_arc_and_misses_what_is_straight_ahead():
    on_arc = _standing(_cloud((10 * math.sin(math.pi / 4) + 1.5 * math.cos(math.pi / 4),
                               10 * (1 - math.cos(math.pi / 4)) + 1.5 * math.sin(math.pi / 4), 1.0)))
    ahead = _standing(_cloud((18.0, 0.0, 1.0)))
    assert collision(QUARTER_LEFT, on_arc)
    assert not collision(QUARTER_LEFT, ahead)
    assert collision(STRAIGHT, ahead)


def test_footprint_dimensions_are_parameters():
    sweeps = _standing(_cloud((20, 1.5, 1.0)))
    assert collision(STRAIGHT, sweeps, config=CollisionConfig(footprint=EgoFootprint(width_m=3.2)))
    point_at_centre = CollisionConfig(footprint=EgoFootprint(length_m=0, width_m=0))  # box centres 1 m apart
    assert clearance(STRAIGHT, _standing(_cloud((20.5, 1.5, 1.0))), config=point_at_centre) == pytest.approx(1.5)


def test_100k_points_pruned_match_the_brute_force_answer():
    rng = np.random.default_rng(0)
    cloud = rng.uniform([-60, -60, -1], [60, 60, 3], (100_000, 3))
    fast = obstacle_distances(QUARTER_LEFT, _standing(cloud), 3.0)
    xy = obstacle_points(cloud)
    brute_footprint = footprint_signed_distance(sweep_poses(QUARTER_LEFT), xy).min()
    path = np.vstack([[0.0, 0.0], QUARTER_LEFT[:, :2]])
    brute_path = segment_distance(path[:-1], path[1:], xy).min()
    assert fast.footprint_m == pytest.approx(brute_footprint) and fast.centre_line_m == pytest.approx(brute_path)
    assert collision(QUARTER_LEFT, _standing(cloud)) == (brute_footprint <= 0.0)


def test_boxes_overlap_by_separating_axes():
    unit = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    assert boxes_overlap(unit, unit)
    assert not boxes_overlap(unit, [1.2, 0.0, 0.0, 1.0, 1.0])  # 0.5 + 0.5 < 1.2
    assert boxes_overlap(unit, [1.2, 0.0, math.pi / 4, 1.0, 1.0])  # a corner reaches 0.5 + 0.707 > 1.2
    assert not boxes_overlap(unit, [1.25, 0.0, math.pi / 4, 1.0, 1.0])
    assert boxes_overlap(np.stack([unit, unit]), [[0.9, 0.0, 0.0, 1.0, 1.0]]).shape == (2,)


def test_box_collision_along_the_sweep():
    ahead = [20.0, 0.0, 0.0, 4.5, 1.8]
    beside = [20.0, 3.0, 0.0, 4.5, 1.8]
    touching_now = [1.5, 1.5, 0.0, 4.5, 1.8]  # overlaps the ego at t = 0: ignored
    assert box_collision(STRAIGHT, [ahead])
    assert not box_collision(STRAIGHT, [beside, touching_now])
    assert box_collision(STRAIGHT, [touching_now], config=CollisionConfig(exclude_self_returns=False))
    assert not box_collision(STRAIGHT, np.zeros((0, 5)))


# --- comfort -------------------------------------------------------------------------------------------------------


def test_comfort_thresholds_are_nuplans():
    t = ComfortThresholds()
    assert (t.max_abs_lat_accel, t.max_lon_accel, t.min_lon_accel, t.max_abs_yaw_accel, t.max_abs_lon_jerk,
            t.max_abs_yaw_rate, t.max_abs_mag_jerk) == (4.89, 2.40, -4.05, 1.93, 4.13, 0.95, 8.37)
    with pytest.raises(ValueError, match="min_lon_accel"):
        ComfortThresholds(min_lon_accel=1.0)


def test_cruising_is_comfortable_with_zero_derivatives():
    result = comfort(STRAIGHT, velocity=(10.0, 0.0), acceleration=(0.0, 0.0))
    assert result.comfortable and result.violations == ()
    for value in (result.lon_accel_max, result.lon_accel_min, result.lat_accel_max_abs, result.jerk_max_abs,
                  result.lon_jerk_max_abs, result.yaw_rate_max_abs, result.yaw_accel_max_abs):
        assert value == pytest.approx(0.0, abs=1e-9)


def test_constant_acceleration_is_exact():
    gentle = comfort(constant_turn_rate((5.0, 0.0), 0.0, 2.0), velocity=(5.0, 0.0), acceleration=(2.0, 0.0))
    assert gentle.lon_accel_max == pytest.approx(2.0) and gentle.lon_accel_min == pytest.approx(2.0)
    assert gentle.jerk_max_abs == pytest.approx(0.0, abs=1e-9) and gentle.comfortable
    hard = comfort(constant_turn_rate((5.0, 0.0), 0.0, 3.0), velocity=(5.0, 0.0), acceleration=(3.0, 0.0))
    assert hard.violations == ("max_lon_accel",) and not hard.comfortable


def test_hard_braking_breaks_the_deceleration_bound():
    braking = constant_turn_rate((20.0, 0.0), 0.0, -4.5)  # stays above 0 m/s over the 4 s
    result = comfort(braking, velocity=(20.0, 0.0), acceleration=(-4.5, 0.0))
    assert result.lon_accel_min == pytest.approx(-4.5)
    assert result.violations == ("min_lon_accel",)


def test_circle_lateral_acceleration_and_yaw_rate():
    w = 0.2
    circle = constant_turn_rate((10.0, 0.0), w)
    result = comfort(circle, velocity=(10.0, 0.0), acceleration=(0.0, 10.0 * w), yaw_rate=w)
    assert result.lat_accel_max_abs == pytest.approx(10.0 * w, rel=0.05)
    assert result.yaw_rate_max_abs == pytest.approx(w)
    assert result.yaw_accel_max_abs == pytest.approx(0.0, abs=1e-9)
    assert result.comfortable
    tight = comfort(constant_turn_rate((6.0, 0.0), 1.0), velocity=(6.0, 0.0), acceleration=(0.0, 6.0), yaw_rate=1.0)
    assert {"max_abs_yaw_rate", "max_abs_lat_accel"} <= set(tight.violations)


def test_a_plan_that_ignores_the_current_speed_is_uncomfortable():
    standing = np.zeros((8, 3))
    assert comfort(standing, velocity=(0.0, 0.0)).comfortable
    assert "min_lon_accel" in comfort(standing, velocity=(10.0, 0.0)).violations


# --- progress and intent -------------------------------------------------------------------------------------------


def test_progress_along_a_straight_ground_truth():
    half = progress(np.array([[10.0, 0.0], [20.0, 3.0]]), np.array([[20.0, 0.0], [40.0, 0.0]]))
    assert (half.along_m, half.gt_length_m, half.ratio) == pytest.approx((20.0, 40.0, 0.5))
    overshoot = progress(np.array([[10.0, 0.0], [50.0, 0.0]]), np.array([[20.0, 0.0], [40.0, 0.0]]))
    assert overshoot.ratio == pytest.approx(1.0)


def test_progress_projects_onto_the_nearest_segment_of_a_bend():
    gt = np.array([[10.0, 0.0], [10.0, 10.0]])  # origin -> (10, 0) -> (10, 10): 20 m
    result = progress(np.array([[5.0, 0.0], [12.0, 5.0]]), gt)
    assert (result.along_m, result.ratio) == pytest.approx((15.0, 0.75))


def test_progress_ratio_is_one_for_a_standing_ground_truth():
    result = progress(STRAIGHT, np.zeros((8, 3)))
    assert result.gt_length_m == 0.0 and result.ratio == 1.0


def test_stops():
    assert stops(np.zeros((8, 3)))
    assert stops(np.full((8, 2), 0.5), threshold_m=0.75)
    assert not stops(np.full((8, 2), 0.6), threshold_m=0.75)
    assert not stops(STRAIGHT)


def test_turn_direction():
    assert turn_direction(QUARTER_LEFT) == 1
    assert turn_direction(QUARTER_LEFT * [1, -1, -1]) == -1
    assert turn_direction(STRAIGHT) == 0
    assert turn_direction(constant_turn_rate((10.0, 0.0), 0.02)) == 0  # 0.08 rad over 4 s: a bend, not a turn
    assert turn_direction(QUARTER_LEFT[:, :2]) == 1  # headings from the direction of travel
    noisy_stop = np.zeros((8, 3))
    noisy_stop[:, 2] = 1.0
    assert turn_direction(noisy_stop) == 0
    u_turn = constant_turn_rate((4.0, 0.0), 0.9)  # 3.6 rad: wraps past pi but stays a left turn
    wrapped = np.column_stack([u_turn[:, :2], np.angle(np.exp(1j * u_turn[:, 2]))])
    assert wrapped[-1, 2] < 0 and turn_direction(wrapped) == 1


# --- one frame and the summary -------------------------------------------------------------------------------------


def _frame_inputs():
    stop = np.zeros((8, 3))
    modes = np.stack([STRAIGHT, QUARTER_LEFT, stop])
    scores = np.array([0.1, 2.0, -1.0])
    gt = QUARTER_LEFT + [0.0, 0.5, 0.0]
    return modes, scores, gt


def test_evaluate_frame_uses_the_best_scored_mode():
    modes, scores, gt = _frame_inputs()
    result = evaluate_frame(modes, scores, gt, velocity=(10 * math.pi / 8, 0.0))
    assert isinstance(result, FrameMetrics)
    assert result.best_index == 1
    assert (result.ade, result.fde, result.miss) == (pytest.approx(0.5), pytest.approx(0.5), False)
    assert (result.min_ade, result.min_fde) == (pytest.approx(0.5), pytest.approx(0.5))
    assert result.collision is None and result.clearance_m is None and result.near_obstacle is None
    assert result.centre_line_clearance_m is None and result.unchecked_poses is None
    assert result.box_collision is None
    assert result.turn_direction == 1 and result.gt_turn_direction == 1
    assert not result.stops and not result.gt_stops
    assert result.progress.ratio > 0.9
    assert result.comfort.comfortable


def test_evaluate_frame_lidar_checks_only_the_best_mode():
    modes, scores, gt = _frame_inputs()
    in_straight_path = _standing(_cloud((25.0, 0.0, 1.0)))
    result = evaluate_frame(modes, scores, gt, sweeps=in_straight_path)
    assert result.collision is False and result.near_obstacle is False and result.clearance_m > 0.75
    assert result.unchecked_poses == 0
    # just outside the boxes of the turn's last poses (x in [9, 11], y up to 13.9 at the end), 2.05 m from the path's
    # end at (10, 10): near the footprint, but not "near" by the path
    beside_turn = evaluate_frame(modes, scores, gt, sweeps=_standing(_cloud((10.0 + 1.5, 10.0 + 1.4, 1.0))))
    assert 0.0 < beside_turn.clearance_m < 0.5 and beside_turn.collision is False
    assert beside_turn.centre_line_clearance_m == pytest.approx(math.hypot(1.5, 1.4))
    assert beside_turn.near_obstacle is False
    on_arc = evaluate_frame(modes, scores, gt, sweeps=_standing(_cloud((8.1, 4.0, 1.0))))  # 0.08 m off the arc
    assert on_arc.near_obstacle is True and on_arc.collision is True and on_arc.centre_line_clearance_m < 0.2
    boxed = evaluate_frame(modes, scores, gt, boxes=np.array([[25.0, 0.0, 0.0, 4.5, 1.8]]))
    assert boxed.box_collision is False


def test_summarize_means_and_rates():
    modes, scores, gt = _frame_inputs()
    on_arc = _standing(_cloud((8.1, 4.0, 1.0)), until_s=3.0)  # 0.08 m off the left turn's arc, at 2.4 s
    with_points = evaluate_frame(modes, scores, gt, sweeps=on_arc)
    first_mode = evaluate_frame(modes, np.array([5.0, 0.0, 0.0]), gt)
    summary = summarize([with_points, first_mode])
    assert summary["num_frames"] == 2 and summary["num_lidar_frames"] == 1 and math.isnan(summary["box_collision_rate"])
    assert summary["collision_rate"] == 1.0 and summary["near_obstacle_rate"] == 1.0
    assert summary["num_partial_lidar_frames"] == 1  # no sweeps after 3 s
    assert summary["ade"] == pytest.approx((0.5 + ade(STRAIGHT, gt)) / 2)
    assert summary["fde"] == pytest.approx((0.5 + fde(STRAIGHT, gt)) / 2)
    assert summary["miss_rate"] == 0.5 and summary["min_miss_rate"] == 0.0
    assert summary["turn_agreement_rate"] == 0.5
    for key in ("min_ade", "min_fde", "near_obstacle_rate", "comfort_rate", "progress", "progress_m", "stop_rate",
                "stop_agreement_rate"):
        assert key in summary
    with pytest.raises(ValueError):
        summarize([])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="near_obstacle_m"):
        MetricsConfig(near_obstacle_m=-1.0)
    with pytest.raises(ValueError, match="clearance_range_m"):
        MetricsConfig(clearance_range_m=0.5)
    with pytest.raises(ValueError, match="max_z_m"):
        CollisionConfig(min_z_m=1.0, max_z_m=0.5)
    with pytest.raises(ValueError, match="sweep_tolerance_s"):
        CollisionConfig(sweep_tolerance_s=-0.1)
    with pytest.raises(ValueError, match="width_m"):
        EgoFootprint(width_m=-2.0)
    with pytest.raises(ValueError, match="scores"):
        evaluate_frame(np.zeros((3, 8, 3)), np.zeros(2), np.zeros((8, 3)))
