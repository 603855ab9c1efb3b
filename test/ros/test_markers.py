"""Tests of the planner outputs as ROS messages: nav_msgs/Path of the best trajectory, RViz markers of every mode."""
from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message
from transforms3d.euler import quat2euler
from visualization_msgs.msg import Marker, MarkerArray

from diffusiondrive_ros.ros.conversions import ConversionError
from diffusiondrive_ros.ros.markers import modes_to_markers, score_colors, trajectory_to_path

STAMP = Time(sec=1_700_000_000, nanosec=123_456_789)


def roundtrip(msg):
    """The message after CDR serialisation and back, as bag replay sees it."""
    return deserialize_message(serialize_message(msg), type(msg))


# ---------------------------------------------------------------------------------------------
# Path
# ---------------------------------------------------------------------------------------------

def sample_modes(count: int = 5, seed: int = 3) -> np.ndarray:
    """(K, 8, 3) forward-going trajectories with varied headings."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.uniform(0.5, 2.0, (count, 8)), axis=1)
    y = np.cumsum(rng.uniform(-0.5, 0.5, (count, 8)), axis=1)
    heading = rng.uniform(-math.pi, math.pi, (count, 8))
    return np.stack([x, y, heading], axis=2)


def yaw_of(pose) -> float:
    """Yaw of a PoseStamped, checking that roll and pitch are zero."""
    q = pose.pose.orientation
    roll, pitch, yaw = quat2euler([q.w, q.x, q.y, q.z], "sxyz")
    assert roll == pytest.approx(0.0) and pitch == pytest.approx(0.0)
    return yaw


def test_path_holds_poses_and_headings() -> None:
    best = sample_modes(1)[0]
    path = roundtrip(trajectory_to_path(best, STAMP, "base_link"))
    assert isinstance(path, Path) and path.header.frame_id == "base_link" and path.header.stamp == STAMP
    assert len(path.poses) == 8
    for pose, (x, y, heading) in zip(path.poses, best, strict=True):
        assert pose.header.frame_id == "base_link" and pose.header.stamp == STAMP
        position = pose.pose.position
        assert (position.x, position.y, position.z) == pytest.approx((x, y, 0.0))
        assert yaw_of(pose) == pytest.approx(heading)
        q = pose.pose.orientation
        assert q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 == pytest.approx(1.0)


def test_path_prefix_starts_at_ego() -> None:
    best = sample_modes(1)[0]
    path = trajectory_to_path(best, 5_000_000_000, "base_link", current_pose_prefix=True)
    assert len(path.poses) == 9 and path.header.stamp == Time(sec=5)
    first = path.poses[0].pose
    assert (first.position.x, first.position.y, first.position.z) == (0.0, 0.0, 0.0)
    q = first.orientation
    assert (q.x, q.y, q.z, q.w) == (0, 0, 0, 1)
    assert path.poses[1].pose.position.x == pytest.approx(best[0, 0])


def test_path_rejects_bad_trajectories() -> None:
    with pytest.raises(ConversionError, match=r"expected one trajectory of shape \(T, 3\)"):
        trajectory_to_path(sample_modes(2), STAMP, "base_link")
    bad = sample_modes(1)[0]
    bad[2, 1] = np.nan
    with pytest.raises(ConversionError, match="NaN"):
        trajectory_to_path(bad, STAMP, "base_link")


# ---------------------------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------------------------

def markers_of(array: MarkerArray, marker_type: int) -> list[Marker]:
    """ADD markers of one type, in message order."""
    return [m for m in array.markers if m.type == marker_type and m.action == Marker.ADD]


def test_marker_array_structure() -> None:
    modes, scores = sample_modes(5), np.array([0.3, 2.5, -1.0, 1.25, 0.0])
    array = roundtrip(modes_to_markers(modes, scores, 1, STAMP, "base_link", ns="dd"))
    first = array.markers[0]
    assert first.action == Marker.DELETEALL and first.ns == "dd"
    assert len(array.markers) == 1 + 3 * 5
    assert all(m.action == Marker.ADD for m in array.markers[1:])
    assert len({(m.ns, m.id) for m in array.markers}) == len(array.markers)
    for marker in array.markers:
        assert marker.header.frame_id == "base_link" and marker.header.stamp == STAMP
        assert marker.ns == "dd"
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 0)
    for marker in array.markers[1:]:
        assert marker.scale.x > 0 and marker.scale.z > 0
        assert 0 < marker.color.a <= 1
        assert marker.pose.orientation.w == 1.0
    assert len(markers_of(array, Marker.LINE_STRIP)) == 5
    assert len(markers_of(array, Marker.SPHERE_LIST)) == 5
    assert len(markers_of(array, Marker.TEXT_VIEW_FACING)) == 5


def test_line_strips_start_at_ego_and_follow_modes() -> None:
    modes = sample_modes(3)
    array = modes_to_markers(modes, np.array([1.0, 2.0, 3.0]), 2, STAMP, "base_link")
    for line, spheres, mode in zip(markers_of(array, Marker.LINE_STRIP),
                                   markers_of(array, Marker.SPHERE_LIST), modes, strict=True):
        assert (line.points[0].x, line.points[0].y) == (0.0, 0.0)
        np.testing.assert_allclose([(p.x, p.y) for p in line.points[1:]], mode[:, :2])
        np.testing.assert_allclose([(p.x, p.y) for p in spheres.points], mode[:, :2])


def test_best_mode_is_wider_and_highlighted() -> None:
    array = modes_to_markers(sample_modes(4), np.array([0.1, 0.9, 0.5, 0.2]), 1, STAMP, "base_link")
    lines = markers_of(array, Marker.LINE_STRIP)
    best, others = lines[1], [lines[i] for i in (0, 2, 3)]
    assert best.scale.x == pytest.approx(0.35)
    assert all(m.scale.x == pytest.approx(0.1) for m in others)
    assert best.color.a == 1.0 and all(m.color.a < best.color.a for m in others)
    assert all(best.points[1].z > m.points[1].z for m in others)
    spheres = markers_of(array, Marker.SPHERE_LIST)
    assert spheres[1].scale.x > spheres[0].scale.x


def test_colours_are_ordered_by_score() -> None:
    scores = np.array([0.3, 2.5, -1.0, 1.25, 0.0, 0.9])
    array = modes_to_markers(sample_modes(6), scores, 1, STAMP, "base_link")
    lines = markers_of(array, Marker.LINE_STRIP)
    by_score = [lines[i].color for i in np.argsort(scores)]
    greens = [c.g for c in by_score]
    brightness = [0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b for c in by_score]
    assert greens == sorted(greens) and brightness == sorted(brightness)
    assert len({(c.r, c.g, c.b) for c in by_score}) == len(scores)
    lowest, highest = by_score[0], by_score[-1]
    assert lowest.b > lowest.g and highest.r > 0.9 and highest.b < 0.2


def test_score_colors_min_max_normalised() -> None:
    colours = score_colors(np.array([10.0, 20.0, 15.0]))
    np.testing.assert_allclose(score_colors(np.array([0.0, 1.0, 0.5])), colours)
    assert colours.shape == (3, 3) and ((colours >= 0) & (colours <= 1)).all()
    equal = score_colors(np.array([4.0, 4.0]))
    np.testing.assert_allclose(equal[0], equal[1])


def test_score_text_shows_rank_and_raw_score_at_mode_end() -> None:
    modes = sample_modes(3)
    array = modes_to_markers(modes, np.array([0.123, 2.5, -1.0]), 1, STAMP, "base_link")
    texts = markers_of(array, Marker.TEXT_VIEW_FACING)
    assert [t.text for t in texts] == ["#2 0.12", "#1 2.50", "#3 -1.00"]
    for text, mode in zip(texts, modes, strict=True):
        assert (text.pose.position.x, text.pose.position.y) == pytest.approx(tuple(mode[-1, :2]))
        assert text.scale.z > 0


def test_fewer_modes_give_fewer_markers_after_deleteall() -> None:
    many = modes_to_markers(sample_modes(5), np.arange(5.0), 4, STAMP, "base_link")
    few = modes_to_markers(sample_modes(2), np.arange(2.0), 0, STAMP, "base_link")
    assert few.markers[0].action == Marker.DELETEALL
    assert {m.id for m in few.markers[1:]} < {m.id for m in many.markers[1:]}
    empty = modes_to_markers(np.zeros((0, 8, 3)), np.zeros(0), 0, STAMP, "base_link")
    assert [m.action for m in empty.markers] == [Marker.DELETEALL]


def test_markers_reject_bad_inputs() -> None:
    modes = sample_modes(3)
    with pytest.raises(ConversionError, match=r"best_index 3 outside 0\.\.2"):
        modes_to_markers(modes, np.zeros(3), 3, STAMP, "base_link")
    with pytest.raises(ConversionError, match=r"scores \(K,\)"):
        modes_to_markers(modes, np.zeros(4), 0, STAMP, "base_link")
    with pytest.raises(ConversionError, match="scores contain NaN"):
        modes_to_markers(modes, np.array([0.0, np.nan, 1.0]), 0, STAMP, "base_link")
