"""The node across processes with the inputs a vehicle really sends: raw full-HD cameras, and broken messages.

publisher process (sensor_publisher.py) -> node process -> this test's listener, as in test_node.py.
"""
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sensor_publisher as pub
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Path as PathMsg
from ros_graph import live_t0, start_node, start_publisher
from test_node import REMAPS, SEED, frame_index, listener, node_params, statuses

from diffusiondrive_ros.tools.processes import interrupt

# Processes that need the CPUs for their timing share one xdist worker (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

SLOW_RATE_HZ = 2.0  # every frame planned on a 2-core CPU, so each broken frame surely reaches the planner
LARGE_DATA_PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_large_data.xml"
FULL_HD = {"height": 1080, "width": 1920}

# Each skip reason has its own log throttle, so every problem is logged at once; a problem lasts several frames
# so that at least one of them reaches the planning thread (which drops frames while it is busy).
FRAMES_PER_PROBLEM = 5


@pytest.fixture(scope="module")
def planner():
    """The node's planner (built-in weights, seed SEED, CPU), to compute the plans the node should publish."""
    from diffusiondrive_ros.planner import Planner

    return Planner.from_checkpoint(None, device="cpu", seed=SEED)


def expected_best(planner, frames: Iterable[int], t0_ns: int, transport: str = "compressed", command: int = 1,
                  height: int = pub.CAMERA_HEIGHT, width: int = pub.CAMERA_WIDTH) -> dict[int, np.ndarray]:
    """Frame -> best mode (T, 3) the planner gives it, from the publisher's messages through the node's pipeline
    code."""
    from diffusiondrive_ros.geometry import Extrinsic
    from diffusiondrive_ros.ros.frame_sync import FrameInputs
    from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig

    pipeline = FramePipeline(planner, PipelineConfig(camera_transport=transport, seed=SEED,
                                                     lidar_extrinsic=Extrinsic(z=pub.LIDAR_HEIGHT)))
    best = {}
    for i in frames:
        cameras, cloud = pub.frame_messages(i, transport, t0_ns, height, width, SLOW_RATE_HZ)
        inputs = FrameInputs(pub.stamp_ns(i, t0_ns, SLOW_RATE_HZ), cloud, tuple(cameras), (pub.SPEED, 0.0), (0.0, 0.0),
                             command, "odometry",
                             odometry=pub.odometry_message(i * pub.ODOM_PER_FRAME, t0_ns, rate_hz=SLOW_RATE_HZ),
                             past_sweeps=pub.past_sweeps(i, planner.lidar_history_s, transport, t0_ns, SLOW_RATE_HZ))
        best[i] = pipeline.plan(inputs).result.best
    return best


def assert_path_is(path, best: np.ndarray) -> None:
    """A Path's x, y and heading (yaw of its quaternions) equal the planner's best mode."""
    poses = path_poses(path)
    assert path.header.frame_id == "base_link" and poses.shape == best.shape
    np.testing.assert_allclose(poses[:, :2], best[:, :2], atol=1e-3)
    np.testing.assert_allclose(np.angle(np.exp(1j * (poses[:, 2] - best[:, 2]))), 0.0, atol=1e-3)


@dataclass
class Run:
    """What one node run produced: stamp of frame 0, frame -> Path, every /diagnostics message, the node's log."""

    t0: int
    paths: dict[int, PathMsg]
    diagnostics: list[DiagnosticArray]
    log: str


def run_node(tmp_path: Path, params: dict, publisher_args: Iterable[str], plan_after: int) -> Run:
    """Run the node and the publisher (frame 0 once the node subscribes, live stamps) until a frame after `plan_after`
    is planned and one more /diagnostics arrives; the node must keep running and exit 0 on SIGINT.
    """
    ears = listener()
    node = start_node(tmp_path, params, REMAPS)
    # the node's first plan (warmed up, fast) must not go out before this listener has found its Path publisher
    ears.wait_for(lambda: ears.publishers("path") > 0, 120, "the node's Path publisher", node)
    sensors = start_publisher(tmp_path, "--rate", str(SLOW_RATE_HZ), "--wait-for-subscribers", "--live-stamps",
                              *publisher_args)
    try:
        t0 = live_t0(tmp_path, ears, node, sensors)

        def planned():
            return {frame_index(p.header.stamp, t0, SLOW_RATE_HZ): p for p in ears.get("path")}

        ears.wait_for(lambda: max(planned(), default=-1) > plan_after, 20 + plan_after / SLOW_RATE_HZ,
                      f"a plan after frame {plan_after}", node, sensors)
        seen = len(ears.get("diagnostics"))
        ears.wait_for(lambda: len(ears.get("diagnostics")) > seen, 10, "diagnostics after that plan", node, sensors)
        assert node.poll() is None
        paths, diagnostics = planned(), ears.get("diagnostics")
    finally:
        interrupt(sensors)
        code = interrupt(node)
        ears.close()
    log = (tmp_path / "node.log").read_text()
    assert code == 0, log[-3000:]
    return Run(t0, paths, diagnostics, log)


def planning_values(array: DiagnosticArray) -> dict[str, str]:
    return {kv.key: kv.value for kv in statuses(array)["planning"].values}


def test_node_plans_raw_full_hd_cameras(tmp_path, monkeypatch, planner):
    """1920x1080 rgb8 Images with sensor-data QoS, as camera drivers send them, arrive at the camera rate and are
    planned exactly as the planner plans them; frames whose front Image has step < width*3 are skipped, not planned.
    """
    # With Fast DDS defaults these 6.2 MB best-effort samples are lost (ROS2_ON_PIP.md): the publisher and the node
    # use the shipped profile (ros_env() copies os.environ; this test's listener gets it too, which does no harm).
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(LARGE_DATA_PROFILE))
    bad = range(12, 16)  # after several plans, > THROTTLE_S after any start-up warning, longer than one inference
    # stale_timeout_s: the publisher, sharing 2 CPU cores with inference, may send a frame late
    run = run_node(tmp_path, node_params(camera_transport="raw", stale_timeout_s=3.0),
                   ["--duration", "40", "--transport", "raw", "--width", str(FULL_HD["width"]),
                    "--height", str(FULL_HD["height"]), "--malformed", f"short_step_image@{bad[0]}-{bad[-1]}"], bad[-1])

    latest = statuses(run.diagnostics[-1])
    for name in pub.CAMERAS:
        rate = float({kv.key: kv.value for kv in latest[f"input {name}"].values}["rate_hz"])
        assert latest[f"input {name}"].level == DiagnosticStatus.OK, (name, latest[f"input {name}"].message)
        assert abs(rate - SLOW_RATE_HZ) <= 0.3 * SLOW_RATE_HZ, f"{name} arrives at {rate} Hz, sent at {SLOW_RATE_HZ} Hz"

    step_error = f"camera_front: Image: step {FULL_HD['width']} is smaller than width*bytes_per_pixel"
    assert not set(run.paths) & set(bad), f"planned frames {sorted(set(run.paths) & set(bad))} with a broken Image"
    assert int(planning_values(run.diagnostics[-1]).get("skipped_bad_camera_front", 0)) >= 1
    assert any(f"not planning: bad_camera_front: {step_error}" in statuses(d)["planning"].message
               for d in run.diagnostics)
    assert f"frame skipped: bad_camera_front: {step_error}" in run.log

    before = sorted(i for i in run.paths if i < bad[0])
    assert len(before) >= 2, f"planned only frames {before} of the first {bad[0]}"
    resumed = min(i for i in run.paths if i > bad[-1])
    for i, best in expected_best(planner, [*before[:2], resumed], run.t0, "raw", **FULL_HD).items():
        assert_path_is(run.paths[i], best)


# (publisher --malformed kind, the node's skip reason, what the node's warning and diagnostics say)
PROBLEMS = [
    ("short_cloud", "bad_pointcloud", "pointcloud: PointCloud2: data has"),
    ("cloud_without_z", "bad_pointcloud", "pointcloud: PointCloud2: no field 'z'"),
    ("nan_cloud", "empty_pointcloud", "pointcloud: no finite points"),
    ("garbage_jpeg", "bad_camera_front", "camera_front: CompressedImage: cannot decode"),
    ("nan_odometry", "bad_ego_state", "Odometry: twist.twist.linear: non-finite value (nan"),
]


def test_node_survives_malformed_messages(tmp_path, planner):
    """Each broken input skips its frames with a log line and a diagnostics reason; an out-of-range command is
    rejected and the previous one kept; the node keeps running and plans the good frames that follow.
    """
    # The bad command before the broken frames: the node's warnings (logged with rclpy's deprecated `warn`, which
    # gives every call the same caller id) share one throttle, so it must not fall on a block's only log line.
    command_at, first = 1, 4
    frames = {kind: range(first + k * FRAMES_PER_PROBLEM, first + (k + 1) * FRAMES_PER_PROBLEM)
              for k, (kind, _, _) in enumerate(PROBLEMS)}
    broken = {i for block in frames.values() for i in block}
    run = run_node(tmp_path, node_params(),
                   ["--duration", "60", "--malformed", f"bad_command@{command_at}",
                    *(f"--malformed={kind}@{block[0]}-{block[-1]}" for kind, block in frames.items())], max(broken))

    assert any(i < first for i in run.paths), f"no plan before the broken frames: {sorted(run.paths)}"
    assert not set(run.paths) & broken, f"planned broken frames {sorted(set(run.paths) & broken)}"
    counts = planning_values(run.diagnostics[-1])
    planning = [statuses(d)["planning"] for d in run.diagnostics]
    for kind, reason, text in PROBLEMS:
        assert int(counts.get(f"skipped_{reason}", 0)) >= 1, f"{kind}: skipped_{reason} not counted: {counts}"
        assert any(s.level == DiagnosticStatus.ERROR and f"not planning: {reason}: {text}" in s.message
                   for s in planning), \
            f"{kind}: not reported in /diagnostics"
        assert f"frame skipped: {reason}: {text}" in run.log, f"{kind}: no warning in the node's log"
    assert f"~/input/command: command: {pub.BAD_COMMAND} is not" in run.log

    # The plan after the rejected command used the one before it (1, straight), not the default (3).
    resumed = min(i for i in run.paths if i > max(broken))
    assert_path_is(run.paths[resumed], expected_best(planner, [resumed], run.t0, command=1)[resumed])


def test_node_plans_a_two_sweep_model_with_the_sweep_half_a_second_earlier(tmp_path, planner):
    """A model with two LiDAR sweeps: the node keeps the clouds and plans each frame with the one 0.5 s earlier
    (the frame before, at 2 Hz), moved back by the 3 m the ego drove since; the first frame, which has none, plans
    with the current sweep in its place and says so in /diagnostics."""
    from diffusiondrive_ros.geometry import Extrinsic
    from diffusiondrive_ros.model import DiffusionDrive
    from diffusiondrive_ros.model.checkpoint import LIDAR_STEM, save_checkpoint, with_lidar_channels
    from diffusiondrive_ros.planner import Planner, frame_generator
    from diffusiondrive_ros.ros.frame_sync import FrameInputs
    from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig

    config = planner.model.config.with_lidar_sweeps(2)
    state = with_lidar_channels(planner.model.state_dict(), 2)
    state[LIDAR_STEM][:, 1] = -2 * state[LIDAR_STEM][:, 0]  # so that the earlier sweep changes the plans
    model = DiffusionDrive(config)
    model.load_state_dict(state)
    save_checkpoint(tmp_path / "two_sweeps.pt", model, config)
    two = Planner.from_checkpoint(tmp_path / "two_sweeps.pt", device="cpu")
    run = run_node(tmp_path, node_params(checkpoint=str(tmp_path / "two_sweeps.pt")), ["--duration", "30"], 4)

    decode = FramePipeline(None, PipelineConfig(camera_transport="compressed",
                                                lidar_extrinsic=Extrinsic(z=pub.LIDAR_HEIGHT))).decode

    def sensors(i):
        cameras, cloud = pub.frame_messages(i, "compressed", run.t0, rate_hz=SLOW_RATE_HZ)
        return decode(FrameInputs(pub.stamp_ns(i, run.t0, SLOW_RATE_HZ), cloud, tuple(cameras), (0, 0), (0, 0), 1,
                                  "odometry"))

    def best(i, earlier):
        images, points = sensors(i)
        generator = frame_generator(SEED, pub.stamp_ns(i, run.t0, SLOW_RATE_HZ))
        return two.plan(images, points, (pub.SPEED, 0.0), (0.0, 0.0), 1, generator=generator,
                        past_points=[points if earlier is None else earlier]).best

    planned = sorted(run.paths)[:4]
    assert len(planned) == 4, f"planned only frames {planned}"
    for i in planned:
        earlier = None
        if i > 0:
            earlier = sensors(i - 1)[1].copy()
            earlier[:, 0] -= pub.SPEED / SLOW_RATE_HZ  # the ego drove straight on: the world is 3 m nearer now
        assert_path_is(run.paths[i], best(i, earlier))
    last = planned[-1]
    assert np.abs(best(last, None) - path_poses(run.paths[last])).max() > 0.01, "the earlier sweep changed nothing"
    counts = planning_values(run.diagnostics[-1])
    assert counts["frames_with_fallback_lidar_history"] == "1" and "skipped_bad_lidar_history" not in counts


def path_poses(path) -> np.ndarray:
    """A Path's (x, y, heading) poses."""
    return np.array([[p.pose.position.x, p.pose.position.y, 2 * math.atan2(p.pose.orientation.z, p.pose.orientation.w)]
                     for p in path.poses])
