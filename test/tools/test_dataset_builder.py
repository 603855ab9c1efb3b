"""`dataset`: a synthetic drive becomes the node's frames with the odometry's and the world's ground truth."""
from __future__ import annotations

import collections
import contextlib
import io
import os
import shutil

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.features import build_features, lidar_feature
from diffusiondrive_ros.geometry import transform_points, yaw_of_quaternion
from diffusiondrive_ros.model import DiffusionDrive, model_config
from diffusiondrive_ros.planner import Planner
from diffusiondrive_ros.ros.conversions import acceleration_from_imu, stamp_to_ns, velocity_from_odometry
from diffusiondrive_ros.ros.frame_sync import FrameInputs
from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig
from diffusiondrive_ros.tools import replay
from diffusiondrive_ros.tools.bag_io import BagWriter, StaticTransforms, read_bag
from diffusiondrive_ros.tools.dataset_builder import BuildSettings, build_dataset, shard_name
from diffusiondrive_ros.tools.replay import ReplayTopics
from diffusiondrive_ros.tools.synthetic.bag import make_drive
from diffusiondrive_ros.tools.synthetic.config import DriveConfig
from diffusiondrive_ros.tools.synthetic.scene import SyntheticScene
from diffusiondrive_ros.training.dataset import SHARD_DIR, TrajectoryDataset, decode_features, read_index
from diffusiondrive_ros.training.ground_truth import OdometryTrack, derive_command

TOPICS = ReplayTopics()
DRIVE = DriveConfig(duration_s=5.0, lidar_azimuth_steps=500, lidar_beams=32)
"""5 s at 10 Hz: the 10 sweeps of the first second have the 4 s future, the other 40 do not."""
SETTINGS = BuildSettings.for_model(model_config("compact"))
HORIZON_NS = 4_000_000_000


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    path = tmp_path_factory.mktemp("drive") / "drive"
    make_drive(path, DRIVE)
    return path


@pytest.fixture(scope="module")
def messages(drive):
    """(header stamp, message) of every topic of the drive, decoded."""
    by_topic = collections.defaultdict(list)
    for message in read_bag(drive)[2]:
        if message.topic != TOPICS.tf_static:
            msg = message.decode()
            by_topic[message.topic].append((stamp_to_ns(msg.header.stamp) if hasattr(msg, "header") else None, msg))
    return by_topic


@pytest.fixture(scope="module")
def built(drive, tmp_path_factory):
    """The drive's dataset, built with the CLI (compact model, node defaults)."""
    out = tmp_path_factory.mktemp("dataset")
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["dataset", str(drive), "--out", str(out), "--quiet"]) == 0
    return out, stdout.getvalue()


def odometry_samples(messages):
    """(stamp, x, y, yaw) of the bag's odometry, read here without the dataset builder."""
    samples = []
    for stamp, msg in messages[TOPICS.odometry]:
        position, q = msg.pose.pose.position, msg.pose.pose.orientation
        samples.append((stamp, position.x, position.y, yaw_of_quaternion(q.w, q.x, q.y, q.z)))
    return samples


def node_decoder(drive) -> FramePipeline:
    """The node's pipeline (no planner) for the drive's compressed cameras, placing clouds by its /tf_static."""
    static = StaticTransforms()
    for message in read_bag(drive)[2]:
        if message.topic == TOPICS.tf_static:
            static.add_raw(message.raw)
    return FramePipeline(None, PipelineConfig(camera_transport="compressed"),
                         lambda frame, stamp: static.lookup("base_link", frame))


def test_a_frame_per_sweep_with_a_full_future(built, messages):
    out, printed = built
    spec, shards = read_index(out)
    assert (spec.camera_height, spec.camera_width, spec.lidar_resolution, spec.num_poses) == (64, 256, 64, 8)
    last_odometry = max(stamp for stamp, _ in messages[TOPICS.odometry])
    clouds = [stamp for stamp, _ in messages[TOPICS.pointcloud]]
    with_future = [stamp for stamp in clouds if stamp + HORIZON_NS <= last_odometry]
    assert len(clouds) == 50 and len(with_future) == 10
    (shard,) = shards
    assert shard.frames == len(with_future) and shard.skipped == {"no_future": len(clouds) - len(with_future)}
    assert shard.command_source == "recorded"
    dataset = TrajectoryDataset(out)
    np.testing.assert_array_equal(dataset.arrays["stamp_ns"], with_future)
    assert f"{shard.name}: 10 frames from 50 clouds (command recorded); skipped: no_future 40" in printed
    assert "index: 1 shards, 10 frames" in printed


def test_futures_match_the_odometry_and_the_world(built, messages):
    dataset = TrajectoryDataset(built[0])
    track = OdometryTrack.from_samples(odometry_samples(messages))
    scene = SyntheticScene(DRIVE)
    for stamp, future in zip(dataset.arrays["stamp_ns"], dataset.futures):
        np.testing.assert_allclose(future, track.future(int(stamp), 8), atol=1e-5)
        t = (int(stamp) - DRIVE.start_time_ns) / 1e9
        np.testing.assert_allclose(future, scene.ground_truth_future(t), atol=1e-4)


def test_features_are_the_nodes(built, drive, messages):
    """Every frame equals build_features of the messages of its stamp, decoded by the node's pipeline."""
    dataset = TrajectoryDataset(built[0])
    pipeline = node_decoder(drive)
    planner = Planner(DiffusionDrive(model_config("compact")))  # the node's feature configs for this model
    assert (planner.camera_config, planner.lidar_config) == (SETTINGS.camera, SETTINGS.lidar)
    scene = SyntheticScene(DRIVE)

    def at(topic, stamp):
        return next(msg for s, msg in messages[topic] if s == stamp)

    for index, stamp in enumerate(int(s) for s in dataset.arrays["stamp_ns"]):
        cameras = tuple(at(getattr(TOPICS, name), stamp) for name in ("camera_left", "camera_front", "camera_right"))
        command = scene.command((stamp - DRIVE.start_time_ns) / 1e9)
        velocity = velocity_from_odometry(at(TOPICS.odometry, stamp))
        acceleration = acceleration_from_imu(at(TOPICS.imu, stamp))
        inputs = FrameInputs(stamp, at(TOPICS.pointcloud, stamp), cameras, velocity, acceleration, command, "imu")
        images, points = pipeline.decode(inputs)
        expected = build_features(images, points, velocity, acceleration, command, planner.camera_config,
                                  planner.lidar_config)
        item = dataset[index]
        np.testing.assert_array_equal(item["camera"].numpy(), expected["camera_feature"])
        np.testing.assert_array_equal(item["lidar"].numpy(), expected["lidar_feature"])
        np.testing.assert_array_equal(item["status"].numpy(), expected["status_feature"])
        assert dataset.arrays["command"][index] == command
    camera, lidar = decode_features(dataset.arrays["camera"][0], dataset.arrays["lidar"][0], 5)
    assert 0 < lidar.mean() < 1 and 0.05 < camera.std()


def test_two_sweeps_hold_the_earlier_sweep_where_the_ego_now_sees_it(drive, messages, tmp_path):
    """`--lidar-sweeps 2`: channel 1 of each frame is the sweep 0.5 s earlier, placed by the drive's true ego poses
    (not the odometry the builder used); the frames of the first 0.5 s, which have none, repeat the current sweep."""
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["dataset", str(drive), "--out", str(tmp_path), "--lidar-sweeps", "2", "--quiet"]) == 0
    spec, (shard,) = read_index(tmp_path)
    assert (spec.lidar_channels, spec.lidar_sweep_interval_s) == (2, 0.5)
    assert shard.without_history == 4  # the sweeps at 0-0.3 s
    assert "10 frames from 50 clouds (command recorded); 4 without the earlier LiDAR sweep" in stdout.getvalue()
    dataset = TrajectoryDataset(tmp_path)
    pipeline = node_decoder(drive)
    clouds = dict(messages[TOPICS.pointcloud])
    scene = SyntheticScene(DRIVE)

    def base_points(stamp):
        return pipeline.cloud_to_base(FrameInputs(stamp, clouds[stamp], (None,) * 3, (0, 0), (0, 0), 3, "zero"))

    with_history = 0
    for index, stamp in enumerate(int(s) for s in dataset.arrays["stamp_ns"]):
        lidar = dataset[index]["lidar"].numpy()
        np.testing.assert_array_equal(lidar[0], lidar_feature(base_points(stamp), SETTINGS.lidar)[0])
        earlier = min(clouds, key=lambda s: abs(s - stamp + 500_000_000))
        if abs(earlier - stamp + 500_000_000) > 100_000_000:  # sync_tolerance_s
            np.testing.assert_array_equal(lidar[1], lidar[0])
            continue
        with_history += 1
        now, then = (scene.ego_state((t - DRIVE.start_time_ns) / 1e9).map_from_base() for t in (stamp, earlier))
        moved = transform_points(base_points(earlier), np.linalg.inv(now) @ then)
        expected = lidar_feature(moved, SETTINGS.lidar)[0]
        assert np.count_nonzero(lidar[1] != expected) <= 2, "the earlier sweep is not where the true poses put it"
        assert np.count_nonzero(lidar[1] != lidar[0]) > 20  # the ego moved and the traffic with it
    assert with_history == 6  # from 0.4 s: the first sweep (0 s) is within sync_tolerance_s of 0.5 s before it


def test_resume_skips_a_built_bag_and_a_touched_bag_is_rebuilt(built, drive, tmp_path, capsys):
    out, _ = built
    shard = out / SHARD_DIR / f"{shard_name(drive)}.npz"
    written = shard.stat().st_mtime_ns
    assert main(["dataset", str(drive), "--out", str(out), "--quiet"]) == 0
    assert "built 0 bags, 1 up to date" in capsys.readouterr().out and shard.stat().st_mtime_ns == written
    copy = tmp_path / "drive"
    shutil.copytree(drive, copy)
    other = tmp_path / "other"
    first = build_dataset([copy], other, SETTINGS, progress=False)
    os.utime(next(copy.glob("*.mcap")), ns=(0, 10**18))
    again = build_dataset([copy], other, SETTINGS, progress=False)
    (before,), (after,) = first.built, again.built
    assert before.info.fingerprint != after.info.fingerprint
    assert [s.fingerprint for s in read_index(other)[1]] == [after.info.fingerprint]


def test_ranks_and_workers_split_the_bags_and_the_last_writes_the_index(built, drive, tmp_path):
    bags = [tmp_path / "a", tmp_path / "b"]
    for bag in bags:
        shutil.copytree(drive, bag)
    out = tmp_path / "ranks"
    second = build_dataset(bags, out, SETTINGS, rank=1, world_size=2, progress=False)
    assert [b.info.name for b in second.built] == [shard_name(bags[1])] and second.index is None
    assert not (out / "index.json").exists()
    first = build_dataset(bags, out, SETTINGS, rank=0, world_size=2, progress=False)
    assert [b.info.name for b in first.built] == [shard_name(bags[0])]
    assert sorted(s.name for s in first.index) == sorted(shard_name(b) for b in bags)
    parallel = build_dataset(bags, tmp_path / "workers", SETTINGS, workers=2, progress=False)
    assert len(parallel.built) == 2 and len(parallel.index) == 2 and not parallel.failed
    reference = TrajectoryDataset(built[0]).arrays
    for source in (TrajectoryDataset(out).arrays, TrajectoryDataset(tmp_path / "workers").arrays):
        for key, value in reference.items():
            np.testing.assert_array_equal(source[key], np.concatenate([value, value]))


def corrupt_copy(drive, path):
    """The drive without its command topic, a broken jpeg in the 2nd front image and a 3rd odometry cut short."""
    seen = collections.Counter()
    with BagWriter(path) as writer:
        for m in read_bag(drive)[2]:
            seen[m.topic] += 1
            raw = m.raw
            if m.topic == TOPICS.command:
                continue
            if m.topic == TOPICS.camera_front and seen[m.topic] == 2:
                msg = m.decode()
                msg.data = b"\xff\xd8 definitely not a jpeg"
                raw = serialize_message(msg)
            elif m.topic == TOPICS.odometry and seen[m.topic] == 3:
                raw = raw[:40]
            writer.write_raw(m.topic, m.msgtype, m.timestamp_ns, raw)


def test_bad_messages_are_counted_and_missing_commands_derived(built, drive, tmp_path):
    corrupt_copy(drive, tmp_path / "bad")
    summary = build_dataset([tmp_path / "bad"], tmp_path / "out", SETTINGS, progress=False)
    (build,) = summary.built
    assert build.info.skipped == {"bad_camera_front": 1, "bad_message": 1, "no_future": 40}
    assert build.info.frames == 9 and build.info.command_source == "derived"
    dataset, reference = TrajectoryDataset(tmp_path / "out"), TrajectoryDataset(built[0])
    assert list(dataset.arrays["stamp_ns"]) == [reference.arrays["stamp_ns"][i] for i in (0, *range(2, 10))]
    assert [derive_command(f) for f in dataset.futures] == list(dataset.arrays["command"])
    assert "bad_camera_front 1, bad_message 1, no_future 40" in summary.format()


def test_a_bag_failing_mid_build_is_reported_and_the_others_indexed(drive, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(drive, broken)
    read_bag_of = replay.read_bag  # the bag reader of BagFrames, shared with replay and eval

    def read_bag_failing(path):
        if path.name == "broken":
            raise OSError("disk on fire")
        return read_bag_of(path)

    monkeypatch.setattr(replay, "read_bag", read_bag_failing)
    assert main(["dataset", str(broken), str(drive), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert f"error: {broken}: OSError: disk on fire" in capsys.readouterr().out
    assert [s.name for s in read_index(tmp_path / "out")[1]] == [shard_name(drive)]


@pytest.mark.parametrize("case", ["missing", "not_a_bag", "unreadable"])
def test_unusable_bags_fail_with_one_line(case, tmp_path, capsys):
    bag = tmp_path / "bag"
    if case != "missing":
        bag.mkdir()
    if case == "unreadable":
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, bag]\n")
    assert main(["dataset", str(bag), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    reason = {"missing": "no such file", "not_a_bag": "not a rosbag2 folder", "unreadable": "cannot read the bag"}[case]
    assert len(err) == 1 and reason in err[0] and str(bag) in err[0]
    assert not (tmp_path / "out").exists()
