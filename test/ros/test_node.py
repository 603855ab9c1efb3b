"""The node in a real rclpy graph across processes: publisher process -> node process -> this test's listener."""
import re

import numpy as np
import pytest
import sensor_publisher as pub
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Path
from rclpy.qos import QoSProfile
from ros_graph import Listener, live_t0, start_node, start_publisher
from visualization_msgs.msg import Marker, MarkerArray

from diffusiondrive_ros.tools.processes import interrupt

# Processes that need the CPUs for their timing share one xdist worker (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

OUT_PATH, OUT_CANDIDATES = "/test/out/path", "/test/out/candidates"
SEED = 5


def node_params(**overrides):
    # sync_wait_s: under a loaded CPU the odometry of a cloud's instant can arrive after the cloud; waiting for it
    # keeps those frames free of the odometry fallback (a WARN), which this test reads as "not OK".
    params = {"device": "cpu", "seed": SEED, "camera_transport": "compressed", "sync_tolerance_s": 0.05,
              "sync_wait_s": 0.5,
              "lidar_extrinsic": {"z": pub.LIDAR_HEIGHT}, "diagnostics_period_s": 0.5, "stale_timeout_s": 1.5,
              "latency_warn_s": 30.0,
              "min_planning_rate_hz": 0.2}  # CPU inference: ~1 plan/s of the 10 Hz sensor frames
    return params | overrides


REMAPS = {f"~/input/{name}": topic for name, topic in pub.TOPICS.items()} | {
    "~/output/path": OUT_PATH, "~/output/candidates": OUT_CANDIDATES}


def listener():
    keep = QoSProfile(depth=100)  # reliable; deep enough that a busy test process loses nothing
    return Listener({
        "path": (Path, OUT_PATH, keep),
        "markers": (MarkerArray, OUT_CANDIDATES, keep),
        "diagnostics": (DiagnosticArray, "/diagnostics", keep),
    })


def statuses(array: DiagnosticArray):
    return {s.name.split(": ", 1)[1]: s for s in array.status}


def expected_plan(i: int, t0_ns: int):
    """The planner's output for frame i, computed here from the same messages by the same pipeline code."""
    from diffusiondrive_ros.geometry import Extrinsic
    from diffusiondrive_ros.planner import Planner
    from diffusiondrive_ros.ros.frame_sync import FrameInputs
    from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig

    planner = Planner.from_checkpoint(None, device="cpu", seed=SEED)
    config = PipelineConfig(camera_transport="compressed", seed=SEED, lidar_extrinsic=Extrinsic(z=pub.LIDAR_HEIGHT))
    cameras, cloud = pub.frame_messages(i, "compressed", t0_ns)
    inputs = FrameInputs(pub.stamp_ns(i, t0_ns), cloud, tuple(cameras), (pub.SPEED, 0.0), (0.0, 0.0), 1, "odometry",
                         odometry=pub.odometry_message(i * pub.ODOM_PER_FRAME, t0_ns),
                         past_sweeps=pub.past_sweeps(i, planner.lidar_history_s, "compressed", t0_ns))
    return FramePipeline(planner, config).plan(inputs)


def frame_index(stamp, t0_ns: int, rate_hz: float = pub.RATE_HZ) -> int:
    ns = stamp.sec * 10**9 + stamp.nanosec - t0_ns
    i = round(ns * rate_hz / 1e9)
    assert pub.stamp_ns(i, t0_ns, rate_hz) - t0_ns == ns, f"stamp {ns} ns after T0 is not a publisher frame stamp"
    return i


def test_node_plans_every_frame_like_the_planner_and_reports_a_stopped_camera(tmp_path):
    ears = listener()
    node = start_node(tmp_path, node_params(), REMAPS)
    sensors = start_publisher(tmp_path, "--duration", "60", "--stop-camera-after", "14", "--wait-for-subscribers",
                              "--live-stamps")
    try:
        t0 = live_t0(tmp_path, ears, node, sensors)  # live stamps: wall-clock time, like a vehicle's drivers

        def paths_with_the_command() -> list[Path]:
            """Paths of clouds stamped after /diagnostics first showed the latched command received: before it the
            node plans with default_command (a fallback), which the expected plans below do not use."""
            received = [d.header.stamp for d in ears.get("diagnostics")
                        if statuses(d)["input command"].level == DiagnosticStatus.OK]
            if not received:
                return []
            since = received[0].sec * 10**9 + received[0].nanosec
            return [p for p in ears.get("path") if p.header.stamp.sec * 10**9 + p.header.stamp.nanosec > since]

        def marker_stamps() -> set[tuple[int, int]]:
            return {(m.markers[-1].header.stamp.sec, m.markers[-1].header.stamp.nanosec) for m in ears.get("markers")}

        ears.wait_for(lambda: len(paths_with_the_command()) >= 2 and all(
            (p.header.stamp.sec, p.header.stamp.nanosec) in marker_stamps() for p in paths_with_the_command()[:2]),
            60, "two frames planned with the command, with their markers", node, sensors)
        ears.wait_for(lambda: any(statuses(d)["planning"].level == DiagnosticStatus.OK
                                  for d in ears.get("diagnostics")),
                      20, "planning OK in /diagnostics", node, sensors)
        ok = next(d for d in ears.get("diagnostics") if statuses(d)["planning"].level == DiagnosticStatus.OK)
        for name in ("camera_left", "camera_front", "camera_right", "pointcloud", "odometry"):
            assert statuses(ok)[f"input {name}"].level == DiagnosticStatus.OK, statuses(ok)[f"input {name}"].message
        assert "cpu fp32" in {kv.key: kv.value for kv in statuses(ok)["planning"].values}["planner"]

        # Outputs match the planner's output for the same inputs.
        by_stamp = {frame_index(m.markers[-1].header.stamp, t0): m for m in ears.get("markers")}
        for path in paths_with_the_command()[:2]:
            i = frame_index(path.header.stamp, t0)
            assert path.header.frame_id == "base_link" and len(path.poses) == 8
            planned = expected_plan(i, t0)
            xy = np.array([[p.pose.position.x, p.pose.position.y] for p in path.poses])
            np.testing.assert_allclose(xy, planned.result.best[:, :2], atol=1e-3)
            got = by_stamp[i].markers
            assert got[0].action == Marker.DELETEALL
            assert len(got) == len(planned.markers.markers) == 1 + 3 * 20
            strips = [m for m in got if m.type == Marker.LINE_STRIP]
            assert len(strips) == 20 and all(m.header.frame_id == "base_link" for m in strips)
            for ours, theirs in zip(strips, [m for m in planned.markers.markers if m.type == Marker.LINE_STRIP]):
                assert ours.id == theirs.id and ours.scale.x == pytest.approx(theirs.scale.x)
                np.testing.assert_allclose([[p.x, p.y] for p in ours.points], [[p.x, p.y] for p in theirs.points],
                                           atol=1e-3)
            texts = [m.text for m in got if m.type == Marker.TEXT_VIEW_FACING]
            assert texts == [m.text for m in planned.markers.markers if m.type == Marker.TEXT_VIEW_FACING]

        # Stop the front camera: planning stops and the diagnostics say why.
        ears.wait_for(lambda: "stopped" in (tmp_path / "publisher.log").read_text(), 40, "camera_front stopped",
                      node, sensors)
        stop_frame = int(re.search(r"camera_front stopped at frame (\d+)",
                                   (tmp_path / "publisher.log").read_text()).group(1))
        since_stop = len(ears.get("diagnostics"))

        def stopped_camera_reported():
            return [d for d in ears.get("diagnostics")[since_stop:]
                    if statuses(d)["input camera_front"].level == DiagnosticStatus.ERROR
                    and "stale" in statuses(d)["input camera_front"].message
                    and statuses(d)["planning"].level == DiagnosticStatus.ERROR]

        ears.wait_for(lambda: stopped_camera_reported(), 20, "camera_front stale ERROR in /diagnostics", node, sensors)
        assert "camera_front_out_of_sync" in statuses(stopped_camera_reported()[0])["planning"].message
        late = [i for i in (frame_index(p.header.stamp, t0) for p in ears.get("path")) if i >= stop_frame]
        assert late == [], f"planned frames {late} after the front camera stopped at frame {stop_frame}"
    finally:
        interrupt(sensors)
        code = interrupt(node)
        ears.close()
    assert code == 0, (tmp_path / "node.log").read_text()[-3000:]


def test_node_follows_sim_time(tmp_path):
    ears = listener()
    node = start_node(tmp_path, node_params(use_sim_time=True), REMAPS)
    sensors = start_publisher(tmp_path, "--duration", "40", "--clock")
    try:
        ears.wait_for(lambda: len(ears.get("path")) >= 1, 60, "a plan", node, sensors)
        # Diagnostics published before the first cloud arrived say "never"; one may still be in flight.
        seen = len(ears.get("diagnostics"))
        ears.wait_for(lambda: len(ears.get("diagnostics")) >= seen + 2, 10, "diagnostics after that plan",
                      node, sensors)
        diag = ears.get("diagnostics")[-1]
        sim_now = diag.header.stamp.sec + diag.header.stamp.nanosec * 1e-9
        assert pub.T0_NS / 1e9 <= sim_now < pub.T0_NS / 1e9 + 120, f"diagnostics stamped {sim_now}, not the /clock time"
        ages = {kv.key: kv.value for kv in statuses(diag)["input pointcloud"].values}
        jumps = [line for line in (tmp_path / "node.log").read_text().splitlines() if "clock jumped" in line]
        assert ages["age_s"] != "never" and float(ages["age_s"]) < 1.0, (ages, jumps)
    finally:
        interrupt(sensors)
        code = interrupt(node)
        ears.close()
    assert code == 0, (tmp_path / "node.log").read_text()[-3000:]
