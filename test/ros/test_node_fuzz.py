"""The node across processes under a burst of malformed messages: burst publisher process -> node process -> listener.

test/support/malformed_burst.py sends 44 frames (220 messages, plus 44 out-of-range commands) whose odometry, one
camera Image or the PointCloud2 is malformed in 22 ways, then valid frames. The node must stay up, publish no Path
for a malformed frame, report the rejections in /diagnostics, and then plan the valid frames.
"""
import subprocess
import sys
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from ros_graph import HERE, ros_env, start_node
from test_node import REMAPS, listener, node_params, statuses

from diffusiondrive_ros.tools.processes import interrupt

# Processes that need the CPUs for their timing share one xdist worker (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

# Each malformed frame kind -> the skip reason it must be counted under (huge_height is refused on arrival as
# oversized, so its frame finds no camera of its instant)
EXPECTED_REASONS = {"bad_ego_state", "bad_pointcloud", "empty_pointcloud", "bad_camera_left", "bad_camera_front",
                    "bad_camera_right"}


def start_burst(tmp_path: Path) -> subprocess.Popen:
    log = open(tmp_path / "publisher.log", "w")
    return subprocess.Popen([sys.executable, str(HERE / "malformed_burst.py"), "--duration", "90"], env=ros_env(),
                            stdout=log, stderr=subprocess.STDOUT)


def sent_frames(tmp_path: Path) -> tuple[dict[int, str], set[int]]:
    """(malformed stamp -> kind, valid stamps) the publisher has sent so far."""
    malformed, valid = {}, set()
    for line in (tmp_path / "publisher.log").read_text().splitlines():
        words = line.split()
        if words[:1] == ["malformed"]:
            malformed[int(words[1])] = words[2]
        elif words[:1] == ["valid"]:
            valid.add(int(words[1]))
    return malformed, valid


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_node_survives_a_burst_of_malformed_messages_then_plans(tmp_path):
    ears = listener()
    node = start_node(tmp_path, node_params(camera_transport="raw", stale_timeout_s=3.0), REMAPS)
    burst = start_burst(tmp_path)
    try:
        def planned_valid() -> bool:
            valid = sent_frames(tmp_path)[1]
            return any(stamp_ns(p) in valid for p in ears.get("path"))

        ears.wait_for(planned_valid, 120, "a plan of a valid frame after the burst", node, burst)
        seen = len(ears.get("diagnostics"))
        ears.wait_for(lambda: len(ears.get("diagnostics")) > seen, 10, "diagnostics after that plan", node, burst)
        assert node.poll() is None
    finally:
        interrupt(burst)
        code = interrupt(node)
        ears.close()
    log = (tmp_path / "node.log").read_text()
    assert code == 0, log[-3000:]

    malformed, valid = sent_frames(tmp_path)
    assert len(malformed) == 44 and len(set(malformed.values())) == 22
    paths = {stamp_ns(p) for p in ears.get("path")}
    assert not paths & set(malformed), f"planned malformed frames {[malformed[s] for s in paths & set(malformed)]}"
    assert paths <= valid and paths

    diagnostics = ears.get("diagnostics")
    values = {kv.key: kv.value for kv in statuses(diagnostics[-1])["planning"].values}
    skipped = {key.removeprefix("skipped_"): int(v) for key, v in values.items() if key.startswith("skipped_")}
    assert EXPECTED_REASONS <= set(skipped), f"skip reasons counted: {skipped}; planning status: {values}"
    assert sum(skipped.values()) >= len(malformed) // 2, skipped
    assert values["frames_failed"] == "0", values.get("last_error")
    assert any(statuses(d)["input command"].level == DiagnosticStatus.WARN
               and "rejected" in statuses(d)["input command"].message for d in diagnostics)
    for reason in ("bad_ego_state: Odometry", "bad_pointcloud: pointcloud: PointCloud2", "bad_camera_"):
        assert f"frame skipped: {reason}" in log, f"no warning for {reason}"
