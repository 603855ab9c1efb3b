"""Synthetic drive generator: bag contents, sensor realism, determinism and the scene API."""
from __future__ import annotations

import dataclasses
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from transforms3d.quaternions import quat2mat

from diffusiondrive_ros.tools import synthetic_drive as sd
from diffusiondrive_ros.tools.synthetic.bag import DriveSummary, make_drive
from diffusiondrive_ros.tools.synthetic.camera import CAMERA_RIG
from diffusiondrive_ros.tools.synthetic.config import DriveConfig
from diffusiondrive_ros.tools.synthetic.interface import (
    BASE_FRAME,
    CAMERA_NAMES,
    COMMAND_LEFT,
    COMMAND_STRAIGHT,
    LIDAR_FRAME,
    MAP_FRAME,
    TOPIC_CAMERA_IMAGE,
    TOPIC_CAMERA_INFO,
    TOPIC_COMMAND,
    TOPIC_IMU,
    TOPIC_LIDAR,
    TOPIC_ODOMETRY,
    TOPIC_TF_STATIC,
    TOPIC_TYPES,
    optical_frame,
)
from diffusiondrive_ros.tools.synthetic.lidar import LIDAR_MOUNT
from diffusiondrive_ros.tools.synthetic.messages import GRAVITY
from diffusiondrive_ros.tools.synthetic.scene import SyntheticScene, ground_truth_future

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
SMALL = dict(image_width=320, image_height=180, lidar_beams=16, lidar_azimuth_steps=360)
TINY = dict(image_width=64, image_height=36, lidar_beams=8, lidar_azimuth_steps=90)


@dataclasses.dataclass
class Bag:
    """A written bag read back: summary, connections and deserialised messages per topic."""

    summary: DriveSummary
    config: DriveConfig
    connections: dict[str, object]
    messages: dict[str, list[tuple[int, object]]]


def write_and_read(path: Path, config: DriveConfig) -> Bag:
    """make_drive into ``path`` then read every message back with rosbags."""
    summary = make_drive(path, config)
    messages: dict[str, list[tuple[int, object]]] = defaultdict(list)
    with Reader(path) as reader:
        connections = {c.topic: c for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            messages[conn.topic].append((stamp, TYPESTORE.deserialize_cdr(raw, conn.msgtype)))
    return Bag(summary, config, connections, dict(messages))


@pytest.fixture(scope="module")
def full_mcap(tmp_path_factory) -> Bag:
    """Default sensors (1920x1080, 64x2000 LiDAR), 1 s, MCAP."""
    return write_and_read(tmp_path_factory.mktemp("drive") / "full", DriveConfig(duration_s=1.0))


@pytest.fixture(scope="module")
def small_sqlite(tmp_path_factory) -> Bag:
    """Reduced sensors, 1.5 s, sqlite3."""
    config = DriveConfig(duration_s=1.5, storage="sqlite3", **SMALL)
    return write_and_read(tmp_path_factory.mktemp("drive") / "small", config)


@pytest.fixture(scope="module")
def through_turn(tmp_path_factory) -> Bag:
    """Tiny sensors at low rates over the whole approach and turn (command changes twice)."""
    config = DriveConfig(duration_s=10.5, lidar_rate_hz=1, camera_rate_hz=1, odom_rate_hz=4, imu_rate_hz=4,
                            storage="sqlite3", **TINY)
    return write_and_read(tmp_path_factory.mktemp("drive") / "turn", config)


@pytest.fixture(params=["full_mcap", "small_sqlite"])
def bag(request) -> Bag:
    return request.getfixturevalue(request.param)


def stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def as_plain(value):
    """Message -> nested plain Python (arrays as dtype/shape/bytes) for exact comparison."""
    if dataclasses.is_dataclass(value):
        return {f.name: as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    return value


def decode_image(msg) -> np.ndarray:
    bgr = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def cloud_points(msg) -> np.ndarray:
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": ["<f4"] * len(msg.fields),
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(np.asarray(msg.data, dtype=np.uint8).tobytes(), dtype=dtype)


def tf_matrix(tf_msg, child: str) -> np.ndarray:
    (tf,) = [t.transform for t in tf_msg.transforms if t.child_frame_id == child]
    m = np.eye(4)
    q = tf.rotation
    m[:3, :3] = quat2mat([q.w, q.x, q.y, q.z])
    m[:3, 3] = (tf.translation.x, tf.translation.y, tf.translation.z)
    return m


def test_bag_has_expected_topics_types_and_counts(bag: Bag):
    cfg = bag.config
    assert {t: c.msgtype for t, c in bag.connections.items()} == dict(TOPIC_TYPES)
    expected = {TOPIC_TF_STATIC: 1, TOPIC_COMMAND: 1, TOPIC_ODOMETRY: round(50 * cfg.duration_s),
                TOPIC_IMU: round(50 * cfg.duration_s), TOPIC_LIDAR: round(10 * cfg.duration_s)}
    for name in CAMERA_NAMES:
        expected[TOPIC_CAMERA_IMAGE[name]] = expected[TOPIC_CAMERA_INFO[name]] = round(10 * cfg.duration_s)
    assert {t: len(m) for t, m in bag.messages.items()} == expected
    assert dict(bag.summary.counts) == expected
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[cfg.storage]
    assert [p.suffix for p in bag.summary.path.iterdir() if p.name != "metadata.yaml"] == [suffix]


def test_stamps_increase_and_equal_header_stamps(bag: Bag):
    start = bag.config.start_time_ns
    for topic, items in bag.messages.items():
        stamps = [s for s, _ in items]
        assert stamps[0] == start, topic
        assert all(b > a for a, b in zip(stamps, stamps[1:])), topic
        for stamp, msg in items:
            headers = [t.header for t in msg.transforms] if topic == TOPIC_TF_STATIC else (
                [msg.header] if hasattr(msg, "header") else [])
            assert all(stamp_ns(h) == stamp for h in headers), topic
    lidar = [s for s, _ in bag.messages[TOPIC_LIDAR]]
    assert np.allclose(np.diff(lidar), 1e8)
    assert lidar == [s for s, _ in bag.messages[TOPIC_CAMERA_IMAGE["front"]]]


def test_latched_topics_are_transient_local(bag: Bag):
    for topic in (TOPIC_COMMAND, TOPIC_TF_STATIC):
        (qos,) = bag.connections[topic].ext.offered_qos_profiles
        assert qos.durability == QosDurability.TRANSIENT_LOCAL


def test_full_resolution_images_show_sky_above_and_road_below(full_mcap: Bag):
    for name in CAMERA_NAMES:
        msg = full_mcap.messages[TOPIC_CAMERA_IMAGE[name]][0][1]
        assert msg.format == "jpeg" and msg.header.frame_id == optical_frame(name)
        image = decode_image(msg).astype(float)
        assert image.shape == (1080, 1920, 3)
        assert image.std() > 20
    front = decode_image(full_mcap.messages[TOPIC_CAMERA_IMAGE["front"]][5][1]).astype(float)
    sky = front[:150, 860:1060].reshape(-1, 3).mean(axis=0)
    road = front[950:, 760:1160].reshape(-1, 3).mean(axis=0)
    assert front[540:].mean() < front[:540].mean()
    assert sky[2] > sky[0] + 30 and sky.mean() > 120
    assert road.max() - road.min() < 15 and road.mean() < sky.mean() - 50


def test_camera_info_matches_camera_model(full_mcap: Bag):
    scene = SyntheticScene(full_mcap.config)
    for name in CAMERA_NAMES:
        info = full_mcap.messages[TOPIC_CAMERA_INFO[name]][0][1]
        cam = scene.cameras[name]
        assert (info.width, info.height, info.distortion_model) == (1920, 1080, "plumb_bob")
        assert info.header.frame_id == optical_frame(name)
        np.testing.assert_allclose(info.k.reshape(3, 3), cam.K)
        np.testing.assert_allclose(info.p.reshape(3, 4), cam.P)
        assert not info.d.any()
        tf = tf_matrix(full_mcap.messages[TOPIC_TF_STATIC][0][1], optical_frame(name))
        np.testing.assert_allclose(tf, cam.base_from_camera, atol=1e-9)


def test_pointcloud_is_dense_finite_and_ground_is_flat_in_base_link(full_mcap: Bag):
    base_from_lidar = tf_matrix(full_mcap.messages[TOPIC_TF_STATIC][0][1], LIDAR_FRAME)
    np.testing.assert_allclose(base_from_lidar[:3, 3], LIDAR_MOUNT)
    for _, msg in full_mcap.messages[TOPIC_LIDAR]:
        assert msg.header.frame_id == LIDAR_FRAME
        assert [f.name for f in msg.fields] == ["x", "y", "z", "intensity"] and msg.point_step == 16
        cloud = cloud_points(msg)
        assert msg.width == len(cloud) >= 100_000
        xyz = np.column_stack([cloud["x"], cloud["y"], cloud["z"]]).astype(float)
        assert np.isfinite(xyz).all() and np.isfinite(cloud["intensity"]).all()
        assert np.linalg.norm(xyz, axis=1).max() <= 80.5
        base = xyz @ base_from_lidar[:3, :3].T + base_from_lidar[:3, 3]
        ahead = (np.abs(base[:, 1]) < 1.5) & (base[:, 0] > 4) & (base[:, 0] < 25)
        assert ahead.sum() > 1000
        assert np.median(np.abs(base[ahead, 2])) < 0.02 and np.percentile(np.abs(base[ahead, 2]), 99) < 0.08


def test_same_seed_gives_identical_messages(tmp_path: Path):
    runs = [write_and_read(tmp_path / f"run{i}", DriveConfig(seed=seed, duration_s=0.3, **SMALL))
            for i, seed in enumerate((7, 7, 8))]
    first, again, other = ([as_plain(m) for t in sorted(r.messages) for _, m in r.messages[t]] for r in runs)
    assert first == again
    lidar = [cloud_points(r.messages[TOPIC_LIDAR][0][1]) for r in (runs[0], runs[2])]
    assert len(lidar[0]) != len(lidar[1]) or not np.array_equal(lidar[0], lidar[1])
    assert first != other


@pytest.mark.parametrize("turn", ["left", "right"])
def test_command_switches_to_the_turn_before_turning(turn: str):
    scene = SyntheticScene(DriveConfig(turn=turn))
    changes = scene.command_changes(20.0)
    assert [c for _, c in changes] == [COMMAND_STRAIGHT, scene.turn_command, COMMAND_STRAIGHT]
    turn_start = scene.motion.speed.time_at_distance(scene.motion.path.turn_start, 20.0)
    switch, done = changes[1][0], changes[2][0]
    assert 1.5 < turn_start - switch < 5.0
    x_at_switch = scene.ego_state(switch).x
    assert scene.layout.center_x - x_at_switch == pytest.approx(30 + scene.layout.half_width, abs=0.1)
    during = np.linspace(turn_start + 0.05, done - 0.05, 20)
    assert all(scene.command(t) == scene.turn_command for t in during)
    assert all(abs(scene.ego_state(t).yaw_rate) > 0 for t in during)
    end_yaw = scene.ego_state(done + 0.1).yaw
    assert end_yaw == pytest.approx(np.pi / 2 if turn == "left" else -np.pi / 2)


def test_bag_command_and_kinematics_through_the_turn(through_turn: Bag):
    commands = [(s, m.data) for s, m in through_turn.messages[TOPIC_COMMAND]]
    assert [c for _, c in commands] == [COMMAND_STRAIGHT, COMMAND_LEFT, COMMAND_STRAIGHT]
    odometry = [(s, m) for s, m in through_turn.messages[TOPIC_ODOMETRY]]
    turning = [s for s, m in odometry if abs(m.twist.twist.angular.z) > 1e-6]
    assert commands[1][0] < turning[0] and turning[-1] < commands[2][0]
    for (_, odo), (_, imu) in zip(odometry, through_turn.messages[TOPIC_IMU]):
        assert odo.header.frame_id == MAP_FRAME and odo.child_frame_id == BASE_FRAME
        assert odo.twist.twist.linear.y == 0.0
        v, w = odo.twist.twist.linear.x, odo.twist.twist.angular.z
        assert imu.angular_velocity.z == pytest.approx(w)
        assert imu.linear_acceleration.y == pytest.approx(v * w, abs=1e-9)
        assert imu.linear_acceleration.z == pytest.approx(GRAVITY)
        assert (imu.orientation.z, imu.orientation.w) == pytest.approx((odo.pose.pose.orientation.z,
                                                                        odo.pose.pose.orientation.w))
    last = odometry[-1][1]
    assert last.pose.pose.position.y > 10 and last.pose.pose.orientation.z == pytest.approx(np.sin(np.pi / 4))


def test_ground_truth_future_on_the_straight_road():
    scene = SyntheticScene()
    future = scene.ground_truth_future(0.0)
    assert future.shape == (8, 3)
    np.testing.assert_allclose(future[:, 0], 5.0 * np.arange(1, 9), atol=1e-9)
    np.testing.assert_allclose(future[:, 1:], 0.0, atol=1e-9)
    assert scene.ego_state(0.0).velocity == (10.0, 0.0)
    np.testing.assert_allclose(ground_truth_future(0.0), future)
    turning = scene.ground_truth_future(6.5)
    assert (np.diff(turning[:, 2]) >= 0).all() and turning[-1, 2] > 1.4 and turning[-1, 1] > 5


def test_camera_model_projects_like_the_renderer():
    scene = SyntheticScene()
    front = scene.cameras["front"]
    mount = CAMERA_RIG[1]
    u, v, valid = front.project(np.array([[mount.x + 10, mount.y, mount.z], [-5.0, 0.0, 0.0]]))
    assert (u[0], v[0]) == pytest.approx((front.cx, front.cy)) and valid.tolist() == [True, False]
    lane = np.column_stack([scene.ground_truth_future(0.0)[1:, :2], np.zeros(7)])
    u, v, valid = front.project(lane)
    assert valid.all() and (v > front.cy).all()
    image = scene.render_camera("front", 0.0)
    pixels = image[np.round(v).astype(int), np.round(u).astype(int)].astype(int)
    assert (np.abs(pixels - [72, 72, 75]) <= 2).all()


def test_mcap_is_readable_by_foxglove_reader(full_mcap: Bag):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # mcap_ros2 imports a deprecated mcap_ros1 module
        from mcap_ros2.reader import read_ros2_messages
    (mcap_file,) = full_mcap.summary.path.glob("*.mcap")
    counts: dict[str, int] = defaultdict(int)
    for item in read_ros2_messages(str(mcap_file)):
        counts[item.channel.topic] += 1
        if item.channel.topic == TOPIC_ODOMETRY:
            assert item.ros_msg.child_frame_id == BASE_FRAME
    assert dict(counts) == dict(full_mcap.summary.counts)


def test_existing_output_is_refused_unless_it_is_a_bag_and_overwrite(tmp_path: Path):
    config = DriveConfig(duration_s=0.1, **TINY)
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_drive(tmp_path, config)
    with pytest.raises(FileExistsError):
        make_drive(tmp_path, config, overwrite=True)
    assert (tmp_path / "notes.txt").exists()
    out = tmp_path / "bag"
    make_drive(out, config)
    assert make_drive(out, config, overwrite=True).counts[TOPIC_LIDAR] == 1


def test_config_rejects_bad_values():
    for bad in (dict(turn="up"), dict(storage="rosbag1"), dict(duration_s=0), dict(jpeg_quality=0)):
        with pytest.raises(ValueError):
            DriveConfig(**bad)


def test_cli_writes_a_bag_and_prints_the_summary(tmp_path: Path, capsys):
    out = tmp_path / "cli_bag"
    assert sd.main([str(out), "--duration", "0.1", "--storage", "sqlite3", "--turn", "right", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert TOPIC_LIDAR in printed and str(out) in printed
    assert (out / "metadata.yaml").exists() and list(out.glob("*.db3"))
