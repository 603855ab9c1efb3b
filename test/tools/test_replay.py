"""Offline replay: bag in -> bag out with the inputs plus Path, MarkerArray and diagnostics; bad messages skipped."""
import collections
import dataclasses

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from diffusiondrive_ros.ros.conversions import stamp_to_ns
from diffusiondrive_ros.ros.pipeline import PipelineConfig
from diffusiondrive_ros.tools.bag_io import BagWriter, read_bag
from diffusiondrive_ros.tools.replay import ReplayTopics, replay_bag
from diffusiondrive_ros.tools.synthetic.bag import make_drive
from diffusiondrive_ros.tools.synthetic.config import DriveConfig

TOPICS = ReplayTopics()


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """A 0.6 s synthetic drive: 6 clouds, full-size jpeg cameras, odometry, IMU, command, tf_static."""
    path = tmp_path_factory.mktemp("drive") / "bag"
    make_drive(path, DriveConfig(duration_s=0.6, lidar_azimuth_steps=500, lidar_beams=32))
    return path


@pytest.fixture(scope="module")
def planner(parity_model):
    from diffusiondrive_ros import Planner

    return Planner(parity_model, device="cpu")


def decoded(bag, topic):
    _, _, messages = read_bag(bag)
    return [(m.timestamp_ns, m.decode()) for m in messages if m.topic == topic]


@pytest.fixture(scope="module")
def replayed(drive, planner, tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "out"
    return out, replay_bag(drive, out, planner, PipelineConfig(seed=3), progress=False)


def test_every_cloud_is_planned_and_written(drive, replayed):
    out, summary = replayed
    clouds = decoded(drive, TOPICS.pointcloud)
    assert summary.clouds == len(clouds) == 6
    # The IMU (50 Hz) gives the acceleration from the first cloud on, so every cloud is planned.
    assert len(summary.planned) == 6 and not summary.skipped
    paths = decoded(out, TOPICS.path)
    markers = decoded(out, TOPICS.candidates)
    assert [stamp_to_ns(p.header.stamp) for _, p in paths] == [stamp_to_ns(c.header.stamp) for _, c in clouds]
    assert [t for t, _ in paths] == [t for t, _ in clouds]
    for (_, path), (_, array), record in zip(paths, markers, summary.planned):
        assert path.header.frame_id == "base_link" and len(path.poses) == 8
        strips = [m for m in array.markers if m.type == m.LINE_STRIP]
        assert len(strips) == 20
        best = strips[record.best_index]
        np.testing.assert_allclose([[p.x, p.y] for p in best.points[1:]],
                                   [[p.pose.position.x, p.pose.position.y] for p in path.poses], atol=1e-5)
    assert summary.model_time["p50"] > 0


def test_output_bag_keeps_every_input_message(drive, replayed):
    out, _ = replayed
    in_topics, in_count, in_messages = read_bag(drive)
    out_topics, _, out_messages = read_bag(out)
    assert set(in_topics.items()) <= set(out_topics.items())
    assert out_topics[TOPICS.path] == "nav_msgs/msg/Path"
    assert out_topics[TOPICS.candidates] == "visualization_msgs/msg/MarkerArray"
    assert out_topics[TOPICS.diagnostics] == "diagnostic_msgs/msg/DiagnosticArray"
    copied = collections.Counter(m.topic for m in out_messages if m.topic in in_topics)
    assert copied == collections.Counter(m.topic for m in in_messages)


def test_foxglove_reader_decodes_the_outputs(replayed):
    from mcap_ros2.reader import read_ros2_messages

    out, summary = replayed
    counts = collections.Counter(m.schema.name for m in read_ros2_messages(next(out.glob("*.mcap"))))
    assert counts["nav_msgs/msg/Path"] == len(summary.planned)
    assert counts["visualization_msgs/msg/MarkerArray"] == len(summary.planned)


def test_replay_is_deterministic_for_a_seed(drive, planner, replayed, tmp_path):
    _, first = replayed
    again = replay_bag(drive, tmp_path / "again", planner, PipelineConfig(seed=3), progress=False)
    other = replay_bag(drive, tmp_path / "other", planner, PipelineConfig(seed=4), progress=False)
    assert [r.scores for r in again.planned] == [r.scores for r in first.planned]
    assert [r.scores for r in other.planned] != [r.scores for r in first.planned]


def test_every_n_plans_a_subset(drive, planner, tmp_path):
    summary = replay_bag(drive, tmp_path / "sub", planner, PipelineConfig(), every=3, progress=False)
    assert summary.clouds == 6 and len(summary.planned) == 2


def test_existing_output_is_not_overwritten(drive, planner, replayed):
    out, _ = replayed
    with pytest.raises(FileExistsError):
        replay_bag(drive, out, planner, PipelineConfig(), progress=False)


def _corrupt(drive, path):
    """Copy of the drive with a broken jpeg in the 2nd front image and a truncated 4th cloud."""
    seen = collections.Counter()
    _, _, messages = read_bag(drive)
    with BagWriter(path) as writer:
        for m in messages:
            seen[m.topic] += 1
            if m.topic == TOPICS.camera_front and seen[m.topic] == 2:
                msg = m.decode()
                msg.data = b"\xff\xd8 definitely not a jpeg"
                writer.write_raw(m.topic, m.msgtype, m.timestamp_ns, serialize_message(msg))
            elif m.topic == TOPICS.pointcloud and seen[m.topic] == 4:
                msg = m.decode()
                msg.data = msg.data[: len(msg.data) // 2]
                writer.write_raw(m.topic, m.msgtype, m.timestamp_ns, serialize_message(msg))
            else:
                writer.write_raw(m.topic, m.msgtype, m.timestamp_ns, m.raw)


def test_malformed_messages_are_skipped_with_reasons(drive, planner, tmp_path):
    _corrupt(drive, tmp_path / "bad")
    summary = replay_bag(tmp_path / "bad", tmp_path / "out", planner, PipelineConfig(), progress=False)
    assert summary.skipped == {"bad_camera_front": 1, "bad_pointcloud": 1}
    assert len(summary.planned) == 4
    clouds = [stamp_to_ns(c.header.stamp) for _, c in decoded(drive, TOPICS.pointcloud)]
    assert [r.stamp_ns for r in summary.planned] == [clouds[i] for i in (0, 2, 4, 5)]
    diagnostics = [d for _, d in decoded(tmp_path / "out", TOPICS.diagnostics)]
    values = {kv.key: kv.value for d in diagnostics for s in d.status for kv in s.values}
    assert values.get("skipped_bad_camera_front") == "1" and values.get("skipped_bad_pointcloud") == "1"


class FirstOutputNaN:
    """The real planner, with NaN poses in its first result (as broken weights give) and its later results as is."""

    def __init__(self, planner):
        self.planner, self.calls = planner, 0

    def plan_inputs(self, *args, **kwargs):
        result = self.planner.plan_inputs(*args, **kwargs)
        self.calls += 1
        return dataclasses.replace(result, modes=np.full_like(result.modes, np.nan)) if self.calls == 1 else result

    def __getattr__(self, name):  # build_inputs(), describe(), device, seeded: the real planner's
        return getattr(self.planner, name)


def test_rejected_output_is_recorded_and_the_replay_goes_on_with_latencies(drive, planner, tmp_path):
    summary = replay_bag(drive, tmp_path / "nan", FirstOutputNaN(planner), PipelineConfig(), every=3,
                         progress=False)
    clouds = [stamp_to_ns(c.header.stamp) for _, c in decoded(drive, TOPICS.pointcloud)]
    assert [(f.stamp_ns, f.reason) for f in summary.failed] == [(clouds[0], "non_finite_output")]
    assert [r.stamp_ns for r in summary.planned] == [clouds[3]] and not summary.skipped
    assert [stamp_to_ns(p.header.stamp) for _, p in decoded(tmp_path / "nan", TOPICS.path)] == [clouds[3]]
    statuses = [s for _, d in decoded(tmp_path / "nan", TOPICS.diagnostics) for s in d.status if "planning" in s.name]
    values = {kv.key: kv.value for kv in statuses[-1].values}  # one /diagnostics at the end of this 0.6 s drive
    assert (values["frames_failed"], values["failed_non_finite_output"], values["frames_planned"]) == ("1", "1", "1")

    stages = ("decode", "features", "model", "publish", "end_to_end_from_receipt")
    assert set(summary.latency) == set(stages) and set(summary.planned[0].stage_times_s) == set(stages)
    record = summary.planned[0].stage_times_s
    assert record["end_to_end_from_receipt"] >= record["model"] + record["decode"] + record["publish"]
    text = summary.format()
    assert "1 planned, 0 skipped, 1 failed" in text and "failed non_finite_output: 1" in text
    assert all(f"  {stage} p50" in text for stage in stages)


def test_cameras_off_the_rig_aspect_ratio_are_planned_and_the_stretch_is_reported(replayed, planner, tmp_path):
    _, full_hd = replayed
    assert full_hd.forced_aspects == {}
    square = tmp_path / "square"
    make_drive(square, DriveConfig(duration_s=0.3, image_width=240, image_height=240, lidar_azimuth_steps=500,
                                   lidar_beams=32))
    summary = replay_bag(square, tmp_path / "out", planner, PipelineConfig(), progress=False)
    assert len(summary.planned) == 3
    assert sorted(summary.forced_aspects) == ["camera_front", "camera_left", "camera_right"]
    assert "240x240 image has aspect ratio 1.000" in summary.forced_aspects["camera_front"]
    assert "camera_front aspect ratio forced: 240x240 image" in summary.format()
