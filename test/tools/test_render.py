"""Pictures of every candidate mode: reading planner output bags, BEV and camera drawing, PNG/MP4 files."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from diffusiondrive_ros.ros import conversions
from diffusiondrive_ros.ros.markers import modes_to_markers, trajectory_to_path
from diffusiondrive_ros.tools import render
from diffusiondrive_ros.tools.bag_io import BagReadError
from diffusiondrive_ros.tools.rendering.bag_frames import frames_from_bag
from diffusiondrive_ros.tools.rendering.bev import render_bev
from diffusiondrive_ros.tools.rendering.camera_view import render_camera
from diffusiondrive_ros.tools.rendering.drawing import mode_colours
from diffusiondrive_ros.tools.rendering.frame import RenderFrame
from diffusiondrive_ros.tools.rendering.geometry import smooth_curves
from diffusiondrive_ros.tools.rendering.markers import plan_from_markers
from diffusiondrive_ros.tools.rendering.picture import compose, render_frame_png
from diffusiondrive_ros.tools.rendering.video import render_bag
from diffusiondrive_ros.tools.synthetic.bag import DriveSummary, make_drive
from diffusiondrive_ros.tools.synthetic.camera import CAMERA_RIG, CameraModel
from diffusiondrive_ros.tools.synthetic.config import DriveConfig
from diffusiondrive_ros.tools.synthetic.interface import BASE_FRAME, TOPIC_CAMERA_IMAGE, TOPIC_LIDAR
from diffusiondrive_ros.tools.synthetic.lidar import LIDAR_MOUNT
from diffusiondrive_ros.tools.synthetic.scene import ground_truth_future
from diffusiondrive_ros.training.ground_truth import OdometryTrack

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
CANDIDATES, PATH = "/diffusiondrive/candidates", "/diffusiondrive/path"
# 4.1 s so that the first plan (t = 0) has a full 4 s odometry horizon; 2 Hz keeps the bag small.
CONFIG = DriveConfig(duration_s=4.1, lidar_rate_hz=2.0, camera_rate_hz=2.0, image_width=640,
                        image_height=360, lidar_beams=32, lidar_azimuth_steps=720)
NUM_MODES, NUM_POSES, SPEED = 20, 8, 8.0
BASE_SCORES = np.round(np.linspace(-1.9, 1.9, NUM_MODES), 2)  # distinct at the labels' 2 decimals
BEV_SIZE, BEV_RANGE = 800, (-10.0, 60.0, -32.0, 32.0)
BEST_RGB = np.array([253, 231, 37])  # top of the viridis map: the highest score


def arc_modes() -> np.ndarray:
    """(20, 8, 3) constant-speed arcs from a right turn to a left turn (no straight one)."""
    curvature = np.linspace(-0.05, 0.05, NUM_MODES)[:, None]
    s = SPEED * 0.5 * np.arange(1, NUM_POSES + 1)[None, :]
    heading = curvature * s
    return np.stack([np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature, heading], axis=-1)


def plan_scores(frame_number: int) -> np.ndarray:
    """Scores of the n-th plan: the base scores rolled, so the best index is (19 + n) % 20."""
    return np.roll(BASE_SCORES, frame_number)


def bev_pixel(x: float, y: float) -> np.ndarray:
    """(column, row) of an ego-frame point, written out from the spec: x forward up, y left left."""
    scale = BEV_SIZE / (BEV_RANGE[1] - BEV_RANGE[0])
    return np.array([(BEV_RANGE[3] - y) * scale, (BEV_RANGE[1] - x) * scale])


def planner_messages(stamp: int, number: int) -> list[tuple[str, bytes]]:
    """Serialised candidates and path of one hand-made plan, as the node would publish them."""
    modes, scores = arc_modes(), plan_scores(number)
    best = int(np.argmax(scores))
    markers = modes_to_markers(modes, scores, best, stamp, BASE_FRAME)
    path = trajectory_to_path(modes[best], stamp, BASE_FRAME)
    return [(CANDIDATES, serialize_message(markers)), (PATH, serialize_message(path))]


def write_planner_bag(drive: Path, out: Path, with_inputs: bool, image_delay_ns: int = 0,
                      drop_sweep: int | None = None) -> None:
    """Copy of the drive (or only the outputs) plus one plan per LiDAR sweep, without the planner.

    `image_delay_ns` re-stamps the front images (cameras not in step with the LiDAR) and
    `drop_sweep` leaves that LiDAR sweep out (its plan stays).
    """
    with Reader(drive) as reader, Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        copies = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=TYPESTORE,
                                              offered_qos_profiles=c.ext.offered_qos_profiles)
                  for c in reader.connections} if with_inputs else {}
        outputs = {CANDIDATES: writer.add_connection(CANDIDATES, "visualization_msgs/msg/MarkerArray",
                                                     typestore=TYPESTORE),
                   PATH: writer.add_connection(PATH, "nav_msgs/msg/Path", typestore=TYPESTORE)}
        sweeps = 0
        for connection, stamp, raw in reader.messages():
            if connection.topic == TOPIC_LIDAR:
                for topic, data in planner_messages(stamp, sweeps):
                    writer.write(outputs[topic], stamp, data)
                sweeps += 1
                if sweeps - 1 == drop_sweep:
                    continue
            if connection.topic == TOPIC_CAMERA_IMAGE["front"] and image_delay_ns:
                raw, stamp = delayed(raw, connection.msgtype, image_delay_ns), stamp + image_delay_ns
            if with_inputs:
                writer.write(copies[connection.id], stamp, raw)


def delayed(raw: bytes, msgtype: str, delay_ns: int) -> bytes:
    """The message with its header stamp moved by `delay_ns`."""
    msg = TYPESTORE.deserialize_cdr(raw, msgtype)
    total = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec + delay_ns
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(total, 10**9)
    return TYPESTORE.serialize_cdr(msg, msgtype)


@dataclasses.dataclass
class Bags:
    """The synthetic drive, the planner output bag (inputs + outputs) and an outputs-only bag."""

    drive: DriveSummary
    planned: Path
    outputs_only: Path
    frames: list[RenderFrame]


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Bags:
    """Written once for the module (about 1 s)."""
    root = tmp_path_factory.mktemp("render")
    drive = make_drive(root / "drive", CONFIG)
    write_planner_bag(drive.path, root / "planned", with_inputs=True)
    write_planner_bag(drive.path, root / "outputs", with_inputs=False)
    return Bags(drive, root / "planned", root / "outputs", list(frames_from_bag(root / "planned")))


def lidar_stamps(bags: Bags) -> list[int]:
    """Stamps of the 2 Hz LiDAR sweeps (t = 0 .. 4 s)."""
    return list(range(bags.drive.start_ns, bags.drive.start_ns + 4 * 10**9 + 1, 500_000_000))


def raw_sweep(drive: Path, stamp: int) -> np.ndarray:
    """The LiDAR sweep of one stamp as written by the generator (lidar_top frame)."""
    with Reader(drive) as reader:
        connections = [c for c in reader.connections if c.topic == TOPIC_LIDAR]
        for connection, time_ns, raw in reader.messages(connections):
            if time_ns == stamp:
                msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                return np.frombuffer(msg.data.tobytes(), "<f4").reshape(-1, 4)
    raise AssertionError(f"no sweep at {stamp}")


# ---------------------------------------------------------------------------------------------
# Reading the bag
# ---------------------------------------------------------------------------------------------

def test_frames_recover_modes_scores_and_best(bags: Bags) -> None:
    assert [f.stamp_ns for f in bags.frames] == lidar_stamps(bags)
    assert len(bags.frames) == 9
    for number, frame in enumerate(bags.frames):
        assert frame.modes.shape == (NUM_MODES, NUM_POSES, 3)
        np.testing.assert_allclose(frame.modes[..., :2], arc_modes()[..., :2], atol=1e-4)
        np.testing.assert_allclose(frame.scores, plan_scores(number), atol=1e-9)
        assert frame.best_index == (19 + number) % NUM_MODES
    # heading is derived from the polyline: the chord direction, close to the arc's heading
    np.testing.assert_allclose(bags.frames[0].modes[..., 2], arc_modes()[..., 2], atol=0.11)


def test_frames_carry_lidar_in_base_link_and_the_front_camera(bags: Bags) -> None:
    frame = bags.frames[3]
    raw = raw_sweep(bags.drive.path, frame.stamp_ns)
    np.testing.assert_allclose(frame.points_ego[:, :3], raw[:, :3] + np.array(LIDAR_MOUNT), atol=1e-4)
    assert frame.front_image.shape == (CONFIG.image_height, CONFIG.image_width, 3)
    assert frame.front_image.dtype == np.uint8 and frame.front_image.std() > 10

    model = CameraModel.from_mount(CAMERA_RIG[1], CONFIG.image_width, CONFIG.image_height)
    np.testing.assert_allclose(frame.camera.K, model.K)
    np.testing.assert_allclose(frame.camera.base_from_optical, model.base_from_camera, atol=1e-9)
    points = np.random.default_rng(0).uniform([-5, -20, -1], [60, 20, 4], size=(500, 3))
    u, v, expected_valid = model.project(points)
    uv, valid = frame.camera.project(points)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_allclose(uv[valid], np.column_stack([u, v])[valid], atol=1e-6)
    assert np.isnan(uv[points[:, 0] < 1.0]).all()  # behind the camera (mounted at x = 1.6 m)


def test_ground_truth_is_straight_ahead_at_drive_speed(bags: Bags) -> None:
    first = bags.frames[0]  # t = 0: 10 m/s along a straight road for the whole 4 s horizon
    expected = np.column_stack([10.0 * 0.5 * np.arange(1, 9), np.zeros(8), np.zeros(8)])
    np.testing.assert_allclose(first.ground_truth, expected, atol=1e-6)
    np.testing.assert_allclose(first.ground_truth, ground_truth_future(0.0, CONFIG), atol=1e-6)
    assert all(frame.ground_truth is None for frame in bags.frames[1:])  # bag ends before the horizon


def test_outputs_only_bag_with_the_input_bag_gives_the_same_frames(bags: Bags) -> None:
    merged = list(frames_from_bag([bags.drive.path, bags.outputs_only]))
    assert [f.stamp_ns for f in merged] == [f.stamp_ns for f in bags.frames]
    np.testing.assert_array_equal(merged[2].points_ego, bags.frames[2].points_ego)
    np.testing.assert_array_equal(merged[2].front_image, bags.frames[2].front_image)
    alone = list(frames_from_bag(bags.outputs_only))
    assert len(alone) == 9 and all(f.points_ego is None and f.front_image is None for f in alone)


def test_images_matched_by_nearest_stamp_and_missing_sweeps_tolerated(bags: Bags, tmp_path: Path) -> None:
    shifted = tmp_path / "shifted"
    write_planner_bag(bags.drive.path, shifted, with_inputs=True, image_delay_ns=20_000_000, drop_sweep=4)
    frames = list(frames_from_bag(shifted))
    assert [f.stamp_ns for f in frames] == [f.stamp_ns for f in bags.frames]
    assert frames[4].points_ego is None
    assert all(f.points_ego is not None for i, f in enumerate(frames) if i != 4)
    for frame, original in zip(frames, bags.frames):
        np.testing.assert_array_equal(frame.front_image, original.front_image)


def test_odometry_track_future_on_a_circle() -> None:
    radius, speed = 20.0, 10.0  # counter-clockwise around the origin, 100 Hz, starting heading north
    times = np.arange(0, 6.0, 0.01)
    angle = speed / radius * times
    samples = [(round(t * 1e9), radius * np.cos(a), radius * np.sin(a), a + np.pi / 2)
               for t, a in zip(times, angle)]
    track = OdometryTrack.from_samples(samples[::-1])  # any order
    future = track.future(1_000_000_000, 8)
    s = speed * 0.5 * np.arange(1, 9)
    expected = np.column_stack([radius * np.sin(s / radius), radius * (1 - np.cos(s / radius)), s / radius])
    np.testing.assert_allclose(future, expected, atol=1e-3)  # linear interpolation between 10 ms samples
    assert track.future(2_000_000_000, 8) is None  # 2 s + 4 s is past the last sample
    assert track.future(-1, 8) is None


def test_markers_without_matching_labels_are_rejected() -> None:
    markers = modes_to_markers(arc_modes()[:3], np.array([0.1, 0.5, 0.2]), 1, 7, "base_link")
    modes, scores = plan_from_markers(markers)
    np.testing.assert_allclose(modes[..., :2], arc_modes()[:3, :, :2], atol=1e-12)
    np.testing.assert_allclose(scores, [0.1, 0.5, 0.2])
    markers.markers = [m for m in markers.markers if m.id != 6]  # the label of mode 1
    with pytest.raises(conversions.ConversionError, match="do not match"):
        plan_from_markers(markers)


def test_bag_without_candidates_is_rejected(bags: Bags) -> None:
    with pytest.raises(ValueError, match="/diffusiondrive/candidates"):
        next(frames_from_bag(bags.drive.path))
    with pytest.raises(BagReadError, match="missing: no such file or directory"):
        next(frames_from_bag(bags.planned / "missing"))


# ---------------------------------------------------------------------------------------------
# Bird's-eye view
# ---------------------------------------------------------------------------------------------

def near_colour(image: np.ndarray, pixel: np.ndarray, rgb: np.ndarray, radius: int = 2,
                tolerance: int = 40) -> bool:
    """Whether a pixel within `radius` of `pixel` (column, row) has colour `rgb`."""
    column, row = np.round(pixel).astype(int)
    window = image[row - radius:row + radius + 1, column - radius:column + radius + 1].astype(int)
    return bool((np.abs(window - rgb).max(axis=-1) <= tolerance).any())


def test_smooth_curves_pass_through_the_poses_without_loops() -> None:
    arcs = np.concatenate([np.zeros((NUM_MODES, 1, 2)), arc_modes()[..., :2]], axis=1)
    curves = smooth_curves(arcs, 8)
    assert curves.shape == (NUM_MODES, 8 * 8 + 1, 2)
    np.testing.assert_allclose(curves[:, ::8], arcs, atol=1e-12)
    radius = 1 / np.abs(np.linspace(-0.05, 0.05, NUM_MODES))[:, None]
    centre_y = np.sign(np.linspace(-0.05, 0.05, NUM_MODES))[:, None] * radius
    on_circle = np.hypot(curves[..., 0], curves[..., 1] - centre_y) - radius
    chord_error = (SPEED * 0.5) ** 2 / (8 * radius.min())  # straight chords of the tightest arc: 0.1 m
    assert np.abs(on_circle).max() < 0.6 * chord_error  # closer to the arcs between the poses
    corner = smooth_curves(np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 5.0], [5.0, 10.0]]), 16)
    assert corner[:, 0].max() < 5.6 and corner[:, 1].min() > -0.6  # little overshoot at a right angle
    stopped = smooth_curves(np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]]), 8)
    assert np.isfinite(stopped).all() and stopped[:, 0].max() <= 2.0 + 1e-9


def test_bev_draws_the_best_mode_along_its_path(bags: Bags) -> None:
    frame = bags.frames[0]
    image = render_bev(frame, BEV_SIZE, BEV_RANGE)
    assert image.dtype == np.uint8 and image.shape == (800, 732, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 300  # LiDAR, grid, modes, text: not blank

    best = frame.best_index
    curvature = np.linspace(-0.05, 0.05, NUM_MODES)[best]
    for s in np.arange(5.0, 32.0, 1.5):  # along the true arc ahead of the ego box, at and between poses
        x, y = np.sin(curvature * s) / curvature, (1 - np.cos(curvature * s)) / curvature
        assert near_colour(image, bev_pixel(x, y), BEST_RGB), (s, x, y)
    assert not near_colour(image, bev_pixel(30.0, -25.0), BEST_RGB, radius=5)  # right side: no best mode


def test_bev_moving_a_mode_changes_only_its_old_and_new_place(bags: Bags) -> None:
    frame = bags.frames[0]
    moved_index = 10
    modes = frame.modes.copy()
    modes[moved_index, :, 0] = 5.0 * np.arange(1, 9)
    modes[moved_index, :, 1] = 20.0
    before = render_bev(frame)
    after = render_bev(dataclasses.replace(frame, modes=modes))
    changed = np.argwhere((before != after).any(axis=-1))[:, ::-1]  # (column, row)
    assert len(changed) > 200

    def drawn_curve(poses: np.ndarray) -> np.ndarray:
        curve = smooth_curves(np.vstack([[0.0, 0.0], poses[:, :2]]), 40)
        return np.stack([bev_pixel(x, y) for x, y in curve])

    places = np.vstack([drawn_curve(frame.modes[moved_index]), drawn_curve(modes[moved_index])])
    distance = np.min(np.linalg.norm(changed[:, None, :] - places[None], axis=-1), axis=1)
    assert distance.max() < 6.0
    colour = np.array(mode_colours(frame.scores)[moved_index])
    for x in (28.0, 34.0, 40.0):  # the new place, clear of the other modes
        assert near_colour(after, bev_pixel(x, 20.0), colour, radius=1, tolerance=30)
        assert not near_colour(before, bev_pixel(x, 20.0), colour, radius=1, tolerance=30)


def test_bev_without_sensors_or_modes_still_renders(bags: Bags) -> None:
    bare = RenderFrame(stamp_ns=5, modes=np.zeros((0, 8, 3)), scores=np.zeros(0), best_index=0)
    assert render_bev(bare).shape == (800, 732, 3)
    frame = dataclasses.replace(bags.frames[0], points_ego=None, front_image=None, camera=None,
                                ground_truth=None)
    assert compose(frame).shape == compose(bags.frames[0]).shape


# ---------------------------------------------------------------------------------------------
# Camera view
# ---------------------------------------------------------------------------------------------

def test_camera_projects_a_straight_mode_to_the_lower_centre(bags: Bags) -> None:
    frame = bags.frames[0]
    straight = np.column_stack([5.0 * np.arange(1, 9), np.zeros(8), np.zeros(8)])[None]
    drawn = render_camera(dataclasses.replace(frame, modes=straight, scores=np.ones(1), best_index=0))
    original = frame.front_image
    assert drawn.shape == original.shape

    model = CameraModel.from_mount(CAMERA_RIG[1], CONFIG.image_width, CONFIG.image_height)
    for x in (6.0, 10.0, 20.0):  # on the ground straight ahead
        u, v, valid = model.project(np.array([[x, 0.0, 0.0]]))
        assert valid[0] and abs(u[0] - CONFIG.image_width / 2) < 1 and v[0] > CONFIG.image_height / 2
        assert near_colour(drawn, np.array([u[0], v[0]]), BEST_RGB, radius=1)
        assert not near_colour(original, np.array([u[0], v[0]]), BEST_RGB, radius=3)
    row = int(model.project(np.array([[10.0, 0.0, 0.0]]))[1][0])
    side = np.r_[0:CONFIG.image_width // 2 - 40, CONFIG.image_width // 2 + 40:CONFIG.image_width]
    np.testing.assert_array_equal(drawn[row, side], original[row, side])  # only the centre changed


def test_camera_drops_poses_behind_the_camera(bags: Bags) -> None:
    frame = bags.frames[0]
    backwards = np.column_stack([-5.0 * np.arange(1, 9), np.zeros(8), np.zeros(8)])[None]
    drawn = render_camera(dataclasses.replace(frame, modes=backwards, scores=np.ones(1), best_index=0))
    np.testing.assert_array_equal(drawn[40:], frame.front_image[40:])  # all but the label


def test_camera_scaled_to_a_height_and_placeholder_without_image(bags: Bags) -> None:
    frame = bags.frames[0]
    assert render_camera(frame, height=720).shape == (720, 1280, 3)
    placeholder = render_camera(dataclasses.replace(frame, front_image=None), height=400)
    assert placeholder.shape == (400, 711, 3) and len(np.unique(placeholder.reshape(-1, 3), axis=0)) > 20


# ---------------------------------------------------------------------------------------------
# Files and command line
# ---------------------------------------------------------------------------------------------

def test_render_bag_writes_pngs_and_a_playable_mp4(bags: Bags, tmp_path: Path) -> None:
    summary = render_bag(bags.planned, tmp_path / "out", png_every=2, fps=5)
    stamps = lidar_stamps(bags)
    assert summary.frame_count == 9 and summary.frames_with_lidar == 9
    assert summary.frames_with_camera == 9 and summary.frames_with_ground_truth == 1
    assert [p.name for p in summary.png_paths] == [f"frame_{s}.png" for s in stamps[::2]]
    expected_shape = compose(bags.frames[0]).shape
    assert expected_shape[0] % 2 == 0 and expected_shape[1] % 2 == 0
    for path in summary.png_paths:
        png = cv2.imread(str(path))
        assert png is not None and png.shape == expected_shape
    np.testing.assert_array_equal(cv2.imread(str(summary.png_paths[0]))[..., ::-1],
                                  compose(bags.frames[0]))

    assert summary.mp4_path == tmp_path / "out" / "drive.mp4"
    capture = cv2.VideoCapture(str(summary.mp4_path))
    frames = []
    while True:
        ok, picture = capture.read()
        if not ok:
            break
        frames.append(picture)
    capture.release()
    assert len(frames) == 9 and frames[0].shape == expected_shape
    first = cv2.cvtColor(frames[0], cv2.COLOR_BGR2RGB).astype(float)
    assert np.abs(first - compose(bags.frames[0])).mean() < 6  # lossy, but the same picture

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    reader = imageio_ffmpeg.read_frames(str(summary.mp4_path))
    meta = next(reader)
    reader.close()
    assert meta["codec"].startswith("h264") and meta["pix_fmt"].startswith("yuv420p")
    assert tuple(meta["size"]) == (expected_shape[1], expected_shape[0]) and meta["fps"] == 5


def test_render_frame_png(bags: Bags, tmp_path: Path) -> None:
    path = render_frame_png(bags.frames[1], tmp_path / "one.png")
    assert cv2.imread(str(path)).shape == compose(bags.frames[1]).shape


def test_cli_renders_and_reports(bags: Bags, tmp_path: Path, capsys) -> None:
    assert render.__doc__.splitlines()[0].strip()
    parser = argparse.ArgumentParser()
    render.add_arguments(parser)
    args = parser.parse_args([str(bags.planned), "--out", str(tmp_path / "cli"), "--every", "4", "--no-mp4"])
    assert render.run(args) == 0
    assert str(tmp_path / "cli") in capsys.readouterr().out
    assert len(list((tmp_path / "cli").glob("frame_*.png"))) == 3
    assert not (tmp_path / "cli" / "drive.mp4").exists()

    missing = parser.parse_args([str(tmp_path / "nothing"), "--out", str(tmp_path / "none")])
    assert render.run(missing) == 1
    assert f"diffusiondrive-ros render: {tmp_path / 'nothing'}: no such file or directory" in capsys.readouterr().err
