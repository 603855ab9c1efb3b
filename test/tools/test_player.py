"""`diffusiondrive-ros play` in a real graph: bag -> live topics with /clock, and the node fed by it.

The key test plays a synthetic drive into the node (use_sim_time) and checks that it plans exactly the frames,
and the Paths, that offline replay plans from the same bag with the same params file.
"""
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_graph import Listener, domain_id, ros_env, start_node
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, PointCloud2
from std_msgs.msg import UInt8
from transforms3d.euler import mat2euler

from diffusiondrive_ros.ros.params import write_params_file
from diffusiondrive_ros.tools.bag_io import StaticTransforms, read_bag
from diffusiondrive_ros.tools.player import Player, PlayOptions, PlaySummary, publisher_qos
from diffusiondrive_ros.tools.processes import interrupt
from diffusiondrive_ros.tools.replay import ReplayTopics
from diffusiondrive_ros.tools.synthetic.bag import DriveSummary, make_drive
from diffusiondrive_ros.tools.synthetic.config import DriveConfig
from diffusiondrive_ros.tools.synthetic.interface import BASE_FRAME, LIDAR_FRAME

# Processes that need the CPUs for their timing share one xdist worker (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

REPO = Path(__file__).resolve().parents[2]
# Publisher-side Fast DDS profile: ~2 MB clouds to the node's best-effort subscription are lost without it.
LARGE_DATA_PROFILE = REPO / "config" / "fastdds_large_data.xml"
# Three clouds (0, 0.4, 0.8 s; cameras at the LiDAR instants, odometry and IMU too) at the default 1920x1080 camera
# size: each cloud costs a CPU inference offline and one in the node, so the key test's time grows with their number.
DRIVE = DriveConfig(duration_s=1.0, lidar_rate_hz=2.5, camera_rate_hz=2.5)
TOPICS = ReplayTopics()
NODE_INPUTS = ("camera_left", "camera_front", "camera_right", "pointcloud", "odometry", "imu", "command")
OUT_PATH = "/player_test/path"
SEED = 3
DEPTH = 1000  # listener queues: the default depth (1) loses messages whenever the spinning thread falls behind
BEST_EFFORT = QoSProfile(depth=DEPTH, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture(scope="module")
def drive(tmp_path_factory) -> DriveSummary:
    return make_drive(tmp_path_factory.mktemp("player") / "drive", DRIVE)


def lidar_extrinsic(bag: Path) -> dict:
    """The LiDAR pose in base_link from the bag's /tf_static, as the node's lidar_extrinsic parameters."""
    static = StaticTransforms()
    for message in read_bag(bag)[2]:
        if message.topic == TOPICS.tf_static:
            static.add_raw(message.raw)
    matrix = static.lookup(BASE_FRAME, LIDAR_FRAME)
    roll, pitch, yaw = mat2euler(matrix[:3, :3], "sxyz")
    x, y, z = matrix[:3, 3]
    return {k: float(v) for k, v in dict(x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw).items()}


def node_params(bag: Path) -> dict:
    """Params for node and replay alike; a long sync wait, since a late camera would silently change a plan."""
    # seeded navsim weights: the node takes seconds to start, so discovery is complete before the three clouds play
    return {"checkpoint": "seeded", "device": "cpu", "seed": SEED, "camera_transport": "compressed",
            "use_sim_time": True,
            "sync_tolerance_s": 0.05, "sync_wait_s": 2.0, "lidar_extrinsic": lidar_extrinsic(bag),
            "diagnostics_period_s": 0.2, "latency_warn_s": 30.0}


def offline_replay(bag: Path, params_file: Path, output: Path):
    """(summary, stamp -> Path) of offline replay with the node's params file."""
    from diffusiondrive_ros.ros.params import load_params_file, pipeline_config, planner_from_parameters
    from diffusiondrive_ros.tools.replay import replay_bag

    params = load_params_file(params_file)
    summary = replay_bag(bag, output, planner_from_parameters(params), pipeline_config(params), TOPICS, progress=False)
    paths = {}
    for message in read_bag(output)[2]:
        if message.topic == TOPICS.path:
            path = message.decode()
            paths[stamp_ns(path.header.stamp)] = path
    return summary, paths


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


def pose_array(path: PathMsg) -> np.ndarray:
    return np.array([[p.pose.position.x, p.pose.position.y, p.pose.orientation.z, p.pose.orientation.w]
                     for p in path.poses])


def playback_rate(latencies_s: list) -> float:
    """Slow enough that the node (one frame at a time, newest wins) finishes each cloud before the next arrives.

    From the median offline model time on this machine, doubled for the player, listener and node sharing it, plus
    a second for decoding three Full-HD JPEGs and for discovery (a small model plans in a few milliseconds).
    """
    wall_per_cloud_s = 2.0 * statistics.median(latencies_s) + 1.0
    return (1.0 / DRIVE.lidar_rate_hz) / wall_per_cloud_s


def play_command(bag: Path, *args: str) -> list:
    return [sys.executable, "-m", "diffusiondrive_ros.cli", "play", str(bag), *args]


def start_player(tmp_path: Path, bag: Path, *args: str) -> subprocess.Popen:
    env = {**ros_env(), "FASTDDS_DEFAULT_PROFILES_FILE": str(LARGE_DATA_PROFILE)}
    log = open(tmp_path / "player.log", "w")
    return subprocess.Popen(play_command(bag, *args), env=env, stdout=log, stderr=subprocess.STDOUT)


def test_node_with_sim_time_plans_the_same_frames_as_offline_replay(tmp_path, drive):
    """Player -> node (use_sim_time) -> Paths equal, frame for frame, to offline replay of the same bag and params."""
    params = node_params(drive.path)
    remaps = {f"~/input/{name}": getattr(TOPICS, name) for name in NODE_INPUTS} | {"~/output/path": OUT_PATH}
    params_file = write_params_file(tmp_path / "params.yaml", params)
    # Offline first: running it beside the node's start-up would slow both down on a small machine.
    replay, expected = offline_replay(drive.path, params_file, tmp_path / "replayed")
    assert len(replay.planned) == replay.clouds == drive.counts[TOPICS.pointcloud], replay.format()
    rate = playback_rate([record.model_time_s for record in replay.planned])
    ears = Listener({"path": (PathMsg, OUT_PATH, DEPTH), "diagnostics": (DiagnosticArray, "/diagnostics", DEPTH)})
    node = start_node(tmp_path, params, remaps)  # writes the same params file again
    player = None
    try:
        # The player waits for the node's subscriptions, but the node's readers may match the player's writers
        # later; best-effort samples sent before that are lost, and this drive has only three clouds.
        ears.wait_for(lambda: "DiffusionDrive ready" in (tmp_path / "node.log").read_text(), 60, "node start", node)
        time.sleep(2.0)
        inputs = [getattr(TOPICS, name) for name in NODE_INPUTS]
        player = start_player(tmp_path, drive.path, "--rate", f"{rate:.4f}", "--topics", *inputs,
                              "--wait-for-subscribers", "60")
        assert player.wait(60 + DRIVE.duration_s / rate + 30) == 0, (tmp_path / "player.log").read_text()
        ears.wait_for(lambda: len(ears.get("path")) >= len(expected), 30, f"{len(expected)} Paths", node)
    finally:
        if player is not None:
            interrupt(player)
        code = interrupt(node)
        ears.close()
    log = (tmp_path / "node.log").read_text()[-3000:]
    assert code == 0, log
    paths = ears.get("path")
    assert (sorted(stamp_ns(p.header.stamp) for p in paths) == sorted(r.stamp_ns for r in replay.planned)
            == sorted(expected)), log
    for path in paths:
        want = expected[stamp_ns(path.header.stamp)]
        assert path.header.frame_id == want.header.frame_id == BASE_FRAME
        np.testing.assert_allclose(pose_array(path), pose_array(want), atol=1e-4)
    sim_stamps = [stamp_ns(d.header.stamp) for d in ears.get("diagnostics")]
    assert any(drive.start_ns <= s <= drive.end_ns
               for s in sim_stamps), f"/diagnostics not on the bag's /clock: {sim_stamps}"


def play_in_thread(options: PlayOptions, bag: Path) -> PlaySummary:
    """Run a Player in a thread, as a test harness would, and return its summary."""
    player = Player(bag, options)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", player.play()))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "player did not finish"
    return result["summary"]


def arrivals(ears: Listener, name: str) -> list:
    """(monotonic arrival time, message) pairs recorded by the listener."""
    with ears.lock:
        return list(ears.messages[name])


def drive_command(drive: DriveSummary) -> int:
    """The drive's only driving command (its first message on /command)."""
    return next(m.decode().data for m in read_bag(drive.path)[2] if m.topic == TOPICS.command)


def test_player_publishes_in_order_with_clock_rate_and_remap(drive):
    """Counts and order per topic, /clock before each message and in between, remap, and --rate 2 taking half."""
    played = [TOPICS.pointcloud, TOPICS.camera_front, TOPICS.odometry, TOPICS.command]
    remapped_odometry = "/player_test/odometry"
    ears = Listener({
        "cloud": (PointCloud2, TOPICS.pointcloud, DEPTH),
        "image": (CompressedImage, TOPICS.camera_front, BEST_EFFORT),  # a reliable publisher reaches it too
        "odometry": (Odometry, remapped_odometry, DEPTH),
        "odometry_original": (Odometry, TOPICS.odometry, DEPTH),
        "command": (UInt8, TOPICS.command, DEPTH),
        "clock": (Clock, "/clock", DEPTH),
    })
    options = PlayOptions(topics=played, remaps={TOPICS.odometry: remapped_odometry}, domain_id=domain_id(),
                          wait_for_subscribers_s=20)
    try:
        summary = play_in_thread(options, drive.path)
        ears.wait_for(lambda: len(ears.get("odometry")) >= drive.counts[TOPICS.odometry]
                      and len(ears.get("clock")) >= summary.clocks, 10, "all odometry and /clock")
        first_pass = {name: arrivals(ears, name) for name in ("cloud", "image", "odometry", "clock")}
        fast = play_in_thread(PlayOptions(rate=2.0, topics=[TOPICS.odometry], remaps=options.remaps,
                                          domain_id=domain_id(), wait_for_subscribers_s=20), drive.path)
        ears.wait_for(lambda: len(ears.get("odometry")) >= 2 * drive.counts[TOPICS.odometry], 10, "all odometry again")
        second_odometry = arrivals(ears, "odometry")[len(first_pass["odometry"]):]
    finally:
        ears.close()

    assert summary.unmatched_topics == [] and not summary.interrupted, summary.format()
    assert dict(summary.messages) == {t: drive.counts[t] for t in played}
    for name, topic in (("cloud", TOPICS.pointcloud), ("image", TOPICS.camera_front), ("odometry", TOPICS.odometry)):
        stamps = [stamp_ns(m.header.stamp) for _, m in first_pass[name]]
        assert len(stamps) == drive.counts[topic], name
        assert stamps == sorted(stamps) and stamps[0] == drive.start_ns, name
    assert [m.data for m in ears.get("command")] == [drive_command(drive)]
    assert ears.get("odometry_original") == [], "remapped topic was also published under its bag name"

    clock = [stamp_ns(m.clock) for _, m in first_pass["clock"]]
    assert clock == sorted(clock) and drive.start_ns <= clock[0] and clock[-1] <= drive.end_ns
    message_stamps = {stamp_ns(m.header.stamp) for name in ("cloud", "image", "odometry") for _, m in first_pass[name]}
    assert message_stamps <= set(clock), "no /clock with a message's bag timestamp before it"
    assert len(clock) > len(message_stamps) + 50, "no /clock ticks between messages"

    span_1 = first_pass["odometry"][-1][0] - first_pass["odometry"][0][0]
    span_2 = second_odometry[-1][0] - second_odometry[0][0]
    bag_span = (drive.end_ns - drive.start_ns) / 1e9
    assert 0.8 * bag_span < span_1 < 1.5 * bag_span, span_1
    assert 0.3 < span_2 / span_1 < 0.75, (span_1, span_2)
    assert fast.messages[TOPICS.odometry] == drive.counts[TOPICS.odometry]
    assert summary.max_lateness_s < 0.5 and fast.max_lateness_s < 0.5


def test_publisher_qos_is_reliable_and_keeps_latching(drive):
    """Offered QoS from the bag: latched stays transient-local; best effort becomes reliable; no TFMessage class."""
    plans = Player(drive.path).plans
    assert (plans[TOPICS.command].qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
            and plans[TOPICS.command].qos.depth == 1)
    assert plans[TOPICS.pointcloud].qos.reliability == ReliabilityPolicy.RELIABLE
    assert (plans[TOPICS.pointcloud].qos.durability == DurabilityPolicy.VOLATILE
            and plans[TOPICS.pointcloud].qos.depth == 10)
    best_effort = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE, QosTime(0, 0),
                      QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)
    qos = publisher_qos("/lidar/points", [best_effort])
    assert qos.reliability == ReliabilityPolicy.RELIABLE and qos.depth == 5
    assert TOPICS.tf_static in Player(drive.path).skipped and TOPICS.tf_static not in plans


def test_start_offset_keeps_the_latched_command(drive):
    """--start-offset skips bag time but still publishes the newest latched /command from before it."""
    ears = Listener({"odometry": (Odometry, TOPICS.odometry, DEPTH), "command": (UInt8, TOPICS.command, DEPTH)})
    offset_s = 0.5
    options = PlayOptions(rate=4.0, start_offset_s=offset_s, topics=[TOPICS.odometry, TOPICS.command],
                          domain_id=domain_id(), wait_for_subscribers_s=20)
    try:
        summary = play_in_thread(options, drive.path)
        ears.wait_for(lambda: len(ears.get("odometry")) >= summary.messages[TOPICS.odometry] and ears.get("command"),
                      10, "odometry and command")
    finally:
        ears.close()
    start = drive.start_ns + int(offset_s * 1e9)
    stamps = [stamp_ns(m.header.stamp) for m in ears.get("odometry")]
    assert stamps[0] == start and len(stamps) == round(DRIVE.odom_rate_hz * (DRIVE.duration_s - offset_s))
    assert [m.data for m in ears.get("command")] == [drive_command(drive)]


def test_ctrl_c_stops_play_cleanly(tmp_path, drive):
    """SIGINT while `diffusiondrive-ros play --loop` is publishing: exit code 0 and the summary, no traceback."""
    ears = Listener({"clock": (Clock, "/clock", DEPTH)})
    player = start_player(tmp_path, drive.path, "--loop", "--topics", TOPICS.odometry)
    try:
        ears.wait_for(lambda: len(ears.get("clock")) >= 20, 30, "/clock from the player", player)
    finally:
        code = interrupt(player)
        ears.close()
    output = (tmp_path / "player.log").read_text()
    assert code == 0, output
    assert "stopped early" in output and "Traceback" not in output, output
