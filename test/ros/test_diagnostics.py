"""Diagnostics levels: input ages and rejections, planner health from skips, errors and the planning rate."""
from diffusiondrive_ros.ros.diagnostics import (
    ERROR,
    OK,
    WARN,
    InputMonitor,
    InputSpec,
    PlanningHealth,
    input_statuses,
    planner_inputs,
)
from diffusiondrive_ros.ros.frame_sync import Fallback, FrameSkipped, SyncConfig
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
            stats.record_latencies(model=0.3)
            stats.count_planned()
        status = health.status(stats, 10, "cpu", "p", "cpu", now)
    assert status.level == OK, status.message
    for _ in range(3):  # 1 frame/s: slower than min_planning_rate_hz
        now += S
        stats.record_latencies(model=0.3)
        stats.count_planned()
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


def values_of(status):
    return {kv.key: kv.value for kv in status.values}


def test_minor_inputs_missing_are_warnings_and_low_rate_inputs_are_not_stale():
    monitor = InputMonitor(planner_inputs(SyncConfig(acceleration_source="imu", odometry_tolerance_s=1.5)))
    now = 100 * S
    for k in range(4):  # LiDAR at 2 Hz, odometry at 1 Hz, the last of each at `now`
        monitor.record("pointcloud", now - 3 * S // 2 + k * S // 2, now - 3 * S // 2 + k * S // 2)
        monitor.record("odometry", now - 3 * S + k * S, now - 3 * S + k * S)
    got = levels(input_statuses(monitor, now + 600_000_000, 0.5, "p", "cpu"))
    assert got["command"] == (WARN, "no message received (planning with default_command 3)")
    assert got["imu"] == (WARN, "no message received (acceleration from odometry, then zero)")
    assert got["pointcloud"][0] == OK  # 0.6 s old at 2 Hz: within two periods, though over stale_timeout_s
    later = levels(input_statuses(monitor, now + 1_600_000_000, 0.5, "p", "cpu"))
    assert later["odometry"][0] == OK and later["pointcloud"][0] == ERROR  # 1 Hz odometry 1.6 s old is not stale
    stale = levels(input_statuses(monitor, now + 3 * S, 0.5, "p", "cpu"))
    assert stale["pointcloud"][0] == ERROR and "timeout 1.00 s" in stale["pointcloud"][1]
    assert levels(input_statuses(InputMonitor(planner_inputs(SyncConfig())), now, 0.5, "p", "cpu"))["imu"][0] == OK


def test_a_latched_command_is_never_stale_but_warns_when_its_publisher_is_gone():
    monitor = InputMonitor(planner_inputs(SyncConfig()))
    now = 100 * S

    def command(at_ns: int, publishers: int | None) -> tuple[int, str]:
        given = None if publishers is None else {"command": publishers}
        return levels(input_statuses(monitor, at_ns, 0.5, "p", "cpu", given))["command"]

    assert command(now, 0) == (WARN, "no message received (planning with default_command 3); no publisher matched")
    monitor.record("command", now, now)  # published once, latched
    assert command(now + 60 * S, 1) == (OK, "ok")  # a minute old: still the command in force
    assert command(now + 60 * S, None) == (OK, "ok")
    assert command(now + 61 * S, 0) == (WARN, "publisher gone: keeping the last value")


def test_fallbacks_warn_and_rejected_output_is_one_failed_frame():
    stats, health = PipelineStats(), PlanningHealth(latency_warn_s=1.0)
    stats.count_planned([Fallback("acceleration", "zero (odometry: odometry gap 3.00 s > acceleration_max_gap_s 2.0)"),
                         Fallback("command", "no command received: default_command 3")], "zero")
    for stage, seconds in (("decode", 0.01), ("features", 0.02), ("model", 0.1), ("publish", 0.001),
                           ("end_to_end_from_receipt", 0.2), ("end_to_end_from_stamp", 0.25)):
        stats.record_latencies(**{stage: seconds})
    status = health.status(stats, 1, "cpu", "p", "cpu", S)
    assert status.level == WARN and status.message == (
        "planning with fallbacks: acceleration: zero (odometry: odometry gap 3.00 s > acceleration_max_gap_s 2.0); "
        "command: no command received: default_command 3")
    values = values_of(status)
    assert values["acceleration_source"] == "zero" and values["frames_with_fallback_command"] == "1"
    assert values["latency_end_to_end_from_stamp_p50_s"] == "0.2500" and values["latency_decode_max_s"] == "0.0100"

    stats.count_error("output rejected: non_finite_output: 20 of 20 modes have NaN/Inf poses or scores",
                      "non_finite_output")
    status = health.status(stats, 2, "cpu", "p", "cpu", 2 * S)
    values = values_of(status)
    assert status.level == ERROR and "non_finite_output" in status.message
    assert (values["frames_planned"], values["frames_failed"], values["failed_non_finite_output"]) == ("1", "1", "1")


def test_reset_forgets_rates_and_ages():
    monitor, stats = InputMonitor([InputSpec("pointcloud", True)]), PipelineStats()
    health = PlanningHealth(1.0, min_planning_rate_hz=5.0, rate_window_s=2.0)
    for k in range(20):
        monitor.record("pointcloud", 50 * S + k * S // 10, 50 * S + k * S // 10)
    monitor.reset()
    assert monitor.rate_and_age("pointcloud", 10 * S) == (0.0, None)
    for now in (50 * S, 51 * S, 52 * S):
        stats.count_planned()
        health.status(stats, 1, "cpu", "p", "cpu", now)
    health.reset()
    for now in (10 * S, 11 * S, 12 * S):  # after the jump back the rate is measured on the new timeline
        stats.count_planned()
        status = health.status(stats, 1, "cpu", "p", "cpu", now)
    assert values_of(status)["planning_rate_hz"] == "1.00" and status.level == WARN and "slow" in status.message


def test_a_forced_camera_aspect_ratio_is_reported_without_lowering_the_level():
    stats, health = PipelineStats(), PlanningHealth(latency_warn_s=1.0)
    stats.count_planned(forced_aspects={"camera_front": "1280x400 image has aspect ratio 3.200"})
    status = health.status(stats, 1, "cpu", "p", "cpu", S)
    assert status.level == OK
    assert values_of(status)["aspect_ratio_forced_camera_front"] == "1280x400 image has aspect ratio 3.200"
