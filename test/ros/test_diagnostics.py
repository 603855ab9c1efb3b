"""Diagnostics levels: input ages and rejections, planner health from skips, errors and the planning rate."""
from diffusiondrive_ros.ros.diagnostics import ERROR, OK, WARN, InputMonitor, InputSpec, PlanningHealth, input_statuses
from diffusiondrive_ros.ros.frame_sync import FrameSkipped
from diffusiondrive_ros.ros.pipeline import PipelineStats

S = 1_000_000_000


def levels(statuses):
    return {s.name.split("input ")[-1]: (s.level, s.message) for s in statuses}


def test_input_levels_follow_age_and_rejections():
    monitor = InputMonitor([InputSpec("camera_front", True), InputSpec("imu", False, "acceleration from odometry"),
                            InputSpec("command", False)])
    for k in range(10):
        monitor.record("camera_front", 100 * S + k * S // 10, 100 * S + k * S // 10)
    now = 100 * S + S
    got = levels(input_statuses(monitor, now, 0.5, "p", "cpu"))
    assert got["camera_front"][0] == OK
    assert got["imu"] == (OK, "no message received (acceleration from odometry)")
    stale = levels(input_statuses(monitor, now + 2 * S, 0.5, "p", "cpu"))
    assert stale["camera_front"][0] == ERROR and "stale" in stale["camera_front"][1]
    monitor.reject("command", "rejected 9, using 1")
    assert levels(input_statuses(monitor, now, 0.5, "p", "cpu"))["command"] == (WARN, "rejected 9, using 1")
    monitor.record("command", now, now)
    assert levels(input_statuses(monitor, now, 0.5, "p", "cpu"))["command"][0] == OK
    rate = {kv.key: kv.value for kv in input_statuses(monitor, now, 0.5, "p", "cpu")[0].values}["rate_hz"]
    assert float(rate) == 10.0


def test_planning_health_levels():
    stats, health = PipelineStats(), PlanningHealth(latency_warn_s=1.0, min_planning_rate_hz=2.0, rate_window_s=2.0)
    assert health.status(stats, 0, "cpu", "p", "cpu", 0).level == WARN  # waiting for the first cloud
    now = 0
    for _ in range(4):  # 3 frames/s for 4 s: OK
        now += S
        for _ in range(3):
            stats.count_planned(0.3)
        status = health.status(stats, 10, "cpu", "p", "cpu", now)
    assert status.level == OK, status.message
    for _ in range(3):  # 1 frame/s: slower than min_planning_rate_hz
        now += S
        stats.count_planned(0.3)
        stats.count_dropped()
        status = health.status(stats, 20, "cpu", "p", "cpu", now)
    assert status.level == WARN and "slow: planning" in status.message
    stats.count_skipped(FrameSkipped("camera_front_out_of_sync", "nearest camera_front message is -0.5 s"))
    status = health.status(stats, 21, "cpu", "p", "cpu", now + S)
    assert status.level == ERROR and "camera_front_out_of_sync" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values["skipped_camera_front_out_of_sync"] == "1" and values["frames_dropped_busy"] == "3"
    stats.count_error("RuntimeError: CUDA out of memory")
    assert health.status(stats, 22, "cpu", "p", "cpu", now + 2 * S).level == ERROR
