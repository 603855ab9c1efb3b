"""Input synchronisation: nearest stamps within tolerance, completeness, ego acceleration, command, skip reasons."""
import math

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage, Imu, PointCloud2

from diffusiondrive_ros.ros.conversions import ConversionError, ns_to_stamp, rgb_to_image
from diffusiondrive_ros.ros.frame_sync import (
    ClockWatch,
    FrameSkipped,
    InputSynchronizer,
    MessageBuffer,
    SyncConfig,
    check_stamp_not_future,
)

T0 = 1_000_000_000_000


def stamped(msg_type, t_ns):
    msg = msg_type()
    msg.header.stamp = ns_to_stamp(t_ns)
    return msg


def odometry(t_ns, vx, vy=0.0, yaw_rate=0.0):
    msg = stamped(Odometry, t_ns)
    msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.angular.z = vx, vy, yaw_rate
    return msg


def imu(t_ns, ax, ay):
    msg = stamped(Imu, t_ns)
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = ax, ay, 9.81
    return msg


def fill(sync, cameras_at, odometry_from_to=(T0 - 300_000_000, T0 + 20_000_000), vx=lambda t: 5.0):
    for index, t in enumerate(cameras_at):
        sync.add_camera(index, stamped(CompressedImage, t))
    for t in range(*odometry_from_to, 20_000_000):
        sync.add_odometry(odometry(t, vx(t)))


def test_nearest_messages_within_tolerance_are_paired():
    sync = InputSynchronizer(SyncConfig(sync_tolerance_s=0.05, acceleration_source="odometry"))
    for index in range(3):
        for dt in (-100_000_000, 0, 100_000_000):
            sync.add_camera(index, stamped(CompressedImage, T0 + dt + index))
    fill(sync, [])
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert [c.header.stamp.nanosec % 10 for c in frame.cameras] == [0, 1, 2]
    assert frame.velocity == (5.0, 0.0) and frame.acceleration == (0.0, 0.0) and frame.command == 3


@pytest.mark.parametrize("missing, reason", [(1, "camera_front_missing"), (None, "odometry_missing")])
def test_missing_inputs_skip_the_frame(missing, reason):
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    for index in range(3):
        if index != missing:
            sync.add_camera(index, stamped(CompressedImage, T0))
    if missing is not None:
        fill(sync, [])
    with pytest.raises(FrameSkipped) as info:
        sync.assemble(stamped(PointCloud2, T0))
    assert info.value.reason == reason


def test_stale_camera_skips_with_the_offset_in_the_message():
    sync = InputSynchronizer(SyncConfig(sync_tolerance_s=0.1, acceleration_source="odometry"))
    fill(sync, [T0, T0 - 400_000_000, T0])
    with pytest.raises(FrameSkipped, match=r"camera_front.*-0\.400 s from the cloud stamp") as info:
        sync.assemble(stamped(PointCloud2, T0))
    assert info.value.reason == "camera_front_out_of_sync"


def test_is_complete_waits_for_messages_at_or_after_the_cloud():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    fill(sync, [T0, T0, T0 - 50_000_000], odometry_from_to=(T0 - 300_000_000, T0 + 1))
    assert not sync.is_complete(T0)  # the right camera of this instant may still be in flight
    sync.add_camera(2, stamped(CompressedImage, T0))
    assert sync.is_complete(T0)


def test_acceleration_from_odometry_includes_the_rotating_frame_term():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry", acceleration_window_s=0.1))
    fill(sync, [T0] * 3, odometry_from_to=(0, 0))
    for t in range(T0 - 300_000_000, T0 + 1, 20_000_000):
        sync.add_odometry(odometry(t, 5.0 + 2.0 * (t - T0) / 1e9, 0.0, yaw_rate=0.5))  # 2 m/s^2 forward, turning
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.acceleration_source == "odometry"
    assert frame.acceleration[0] == pytest.approx(2.0, abs=1e-6)
    assert frame.acceleration[1] == pytest.approx(0.5 * 5.0, abs=1e-6)  # centripetal: yaw rate x speed


def test_imu_is_used_when_it_publishes():
    sync = InputSynchronizer(SyncConfig(acceleration_source="auto"))
    fill(sync, [T0] * 3)
    sync.add_imu(imu(T0 - 5_000_000, 0.7, -0.2))
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.acceleration_source == "imu" and frame.acceleration == (0.7, -0.2)


def test_missing_imu_that_is_preferred_falls_back_to_odometry_with_a_fallback():
    sync = InputSynchronizer(SyncConfig(acceleration_source="imu"))
    fill(sync, [T0] * 3, vx=lambda t: 5.0 + 1.5 * (t - T0) / 1e9)
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.acceleration_source == "odometry" and frame.acceleration[0] == pytest.approx(1.5)
    [fallback] = [f for f in frame.fallbacks if f.input == "acceleration"]
    assert fallback.message.startswith("odometry differenced over 0.10 s") and "imu_missing" in fallback.message


def test_auto_without_any_imu_uses_odometry_without_a_fallback():
    sync = InputSynchronizer(SyncConfig(acceleration_source="auto"))
    fill(sync, [T0] * 3)
    sync.set_command(1)
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.acceleration_source == "odometry" and frame.fallbacks == ()


def test_short_odometry_history_gives_zero_acceleration_with_a_fallback():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    fill(sync, [T0] * 3, odometry_from_to=(T0 - 40_000_000, T0 + 1), vx=lambda t: 5.0 + (t - T0) / 1e8)
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.acceleration_source == "zero" and frame.acceleration == (0.0, 0.0)
    assert frame.velocity == (5.0, 0.0)
    [fallback] = [f for f in frame.fallbacks if f.input == "acceleration"]
    assert fallback.message == "zero (odometry: no odometry message 0.1 s before the matched one)"


def test_nan_odometry_is_a_bad_ego_state():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    fill(sync, [T0] * 3, vx=lambda t: math.nan)
    with pytest.raises(FrameSkipped) as info:
        sync.assemble(stamped(PointCloud2, T0))
    assert info.value.reason == "bad_ego_state"


def test_command_is_latched_and_validated():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry", default_command=3))
    fill(sync, [T0] * 3)
    sync.set_command(0)
    with pytest.raises(ConversionError, match="command: 7"):
        sync.set_command(7)
    assert sync.assemble(stamped(PointCloud2, T0)).command == 0


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="acceleration_source"):
        SyncConfig(acceleration_source="gps")
    with pytest.raises(ValueError, match="default_command"):
        SyncConfig(default_command=4)
    with pytest.raises(ValueError, match=r"odometry_tolerance_s must be >= sync_tolerance_s \(0.1\), got 0.05"):
        SyncConfig(odometry_tolerance_s=0.05)
    with pytest.raises(ValueError, match="acceleration_max_gap_s must be >= acceleration_window_s"):
        SyncConfig(acceleration_max_gap_s=0.05)
    with pytest.raises(ValueError, match="buffer_window_s"):
        SyncConfig(buffer_window_s=0.01)
    with pytest.raises(ValueError, match="buffer_max_bytes must be positive, got 0"):
        SyncConfig(buffer_max_bytes=0)


S = 1_000_000_000


def test_odometry_at_1_hz_without_imu_plans_with_the_acceleration_over_the_gap():
    """The measured failure: ~1 Hz odometry, no IMU. The cloud is planned: velocity from the odometry 0.4 s away
    (a fallback), acceleration differenced over the 1 s gap."""
    sync = InputSynchronizer(SyncConfig())
    fill(sync, [T0] * 3, odometry_from_to=(0, 0))
    sync.set_command(1)
    for t in (T0 - 2_400_000_000, T0 - 1_400_000_000, T0 - 400_000_000):
        sync.add_odometry(odometry(t, 4.0 + 0.5 * (t - T0) / 1e9))  # 0.5 m/s^2
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.velocity == (pytest.approx(3.8), 0.0)
    assert frame.acceleration_source == "odometry" and frame.acceleration[0] == pytest.approx(0.5)
    [fallback] = frame.fallbacks
    assert fallback.input == "odometry" and "-0.400 s from the cloud stamp" in fallback.message


def test_odometry_beyond_its_tolerance_skips():
    sync = InputSynchronizer(SyncConfig(odometry_tolerance_s=1.0))
    fill(sync, [T0] * 3, odometry_from_to=(0, 0))
    sync.add_odometry(odometry(T0 - 1_200_000_000, 4.0))
    with pytest.raises(FrameSkipped, match=r"odometry message is -1\.200 s") as info:
        sync.assemble(stamped(PointCloud2, T0))
    assert info.value.reason == "odometry_out_of_sync"


def test_odometry_gap_beyond_the_bound_gives_zero_acceleration():
    sync = InputSynchronizer(SyncConfig(acceleration_max_gap_s=1.0))
    fill(sync, [T0] * 3, odometry_from_to=(0, 0))
    sync.add_odometry(odometry(T0 - 1_500_000_000, 1.0))
    sync.add_odometry(odometry(T0, 4.0))
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.acceleration_source == "zero" and frame.acceleration == (0.0, 0.0)
    fallbacks = {f.input: f.message for f in frame.fallbacks}
    assert fallbacks["acceleration"] == "zero (odometry: odometry gap 1.50 s > acceleration_max_gap_s 1.0)"


def test_missing_command_falls_back_to_the_default():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry", default_command=1))
    fill(sync, [T0] * 3)
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert frame.command == 1
    assert [(f.input, f.message) for f in frame.fallbacks] == [("command", "no command received: default_command 1")]


def test_messages_out_of_order_are_matched_by_stamp():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    for index in range(3):
        for dt in (80_000_000, -60_000_000, 5_000_000 + index, -20_000_000):  # arrival order is not stamp order
            sync.add_camera(index, stamped(CompressedImage, T0 + dt))
    odom = [odometry(t, 5.0) for t in range(T0 - 300_000_000, T0 + 20_000_000, 20_000_000)]
    for msg in reversed(odom):
        sync.add_odometry(msg)
    frame = sync.assemble(stamped(PointCloud2, T0))
    assert [c.header.stamp.nanosec % 10_000_000 for c in frame.cameras] == [5_000_000, 5_000_001, 5_000_002]
    assert frame.odometry.header.stamp == odom[-1].header.stamp and frame.acceleration == (0.0, 0.0)


def test_a_cloud_not_newer_than_the_previous_one_is_skipped():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    fill(sync, [T0] * 3)
    sync.assemble(stamped(PointCloud2, T0))
    for late in (T0, T0 - 50_000_000):
        with pytest.raises(FrameSkipped) as info:
            sync.assemble(stamped(PointCloud2, late))
        assert info.value.reason == "cloud_out_of_order"


def raw_image(t_ns: int, width: int = 1920, height: int = 1080):
    """A real rgb8 Image as a 1080p camera sends it (6.2 MB)."""
    return rgb_to_image(np.zeros((height, width, 3), np.uint8), t_ns, "camera")


def test_buffer_evicts_by_bytes_before_the_time_window():
    """Raw 1080p images at 30 Hz: a 20 MB budget keeps the newest 3 (not 64 messages, 400 MB)."""
    size = 1920 * 1080 * 3
    buffer = MessageBuffer(window_s=1.0, max_bytes=20 * 2**20)
    stamps = [T0 + k * S // 30 for k in range(8)]
    for t in stamps:
        buffer.add(raw_image(t))
    assert len(buffer) == 3 and buffer.nbytes == 3 * size <= 20 * 2**20
    assert buffer.closest(stamps[0])[0] == stamps[5] and buffer.latest()[0] == stamps[-1]


def test_buffer_evicts_by_time_window_and_keeps_out_of_order_messages_sorted():
    buffer = MessageBuffer(window_s=0.5, max_bytes=2**30)
    for t in (T0, T0 + 300_000_000, T0 + 100_000_000, T0 + 600_000_000):
        buffer.add(stamped(Odometry, t))
    assert len(buffer) == 3 and buffer.closest(T0)[0] == T0 + 100_000_000  # T0 is 0.6 s older than the newest
    assert buffer.newest_at_or_before(T0 + 350_000_000)[0] == T0 + 300_000_000
    buffer.add(stamped(Odometry, T0 - S))  # arrives far too late for the window: not kept
    assert len(buffer) == 3 and buffer.closest(T0 - S)[0] == T0 + 100_000_000


def test_single_message_larger_than_the_budget_is_the_only_one_kept():
    buffer = MessageBuffer(window_s=1.0, max_bytes=2**20)
    buffer.add(raw_image(T0, 640, 480))
    buffer.add(raw_image(T0 + 1, 640, 480))
    assert len(buffer) == 1 and buffer.latest()[0] == T0 + 1


def test_reset_forgets_buffers_imu_and_cloud_order_but_keeps_the_command():
    sync = InputSynchronizer(SyncConfig())
    fill(sync, [T0] * 3)
    sync.add_imu(imu(T0, 1.0, 0.0))
    sync.set_command(2)
    sync.assemble(stamped(PointCloud2, T0))
    assert sync.buffered_bytes() > 0
    sync.reset()
    assert sync.buffered_bytes() == 0 and not sync.imu_seen and sync.command == 2
    with pytest.raises(FrameSkipped) as info:
        sync.assemble(stamped(PointCloud2, T0 - 10 * S))  # an older timeline (a looped bag) after the reset
    assert info.value.reason == "camera_left_missing"  # not cloud_out_of_order: the cloud order was forgotten too


def test_clock_watch_reports_backward_jumps_only():
    watch = ClockWatch(tolerance_s=0.1)
    def jumped_back(now_ns: int) -> int:
        now, jump = watch.read(lambda: now_ns)
        assert now == now_ns
        return jump

    assert [jumped_back(t) for t in (T0, T0 + S, T0 + S - 50_000_000, T0 + 2 * S)] == [0, 0, 0, 0]
    assert jumped_back(T0) == 2 * S  # a looped bag: 2 s back
    assert jumped_back(T0 + 100_000_000) == 0  # the new timeline is the reference now


@pytest.mark.parametrize("ahead_s, rejected", [(0.5, True), (0.15, False), (-3.0, False)])
def test_future_stamps_beyond_the_tolerance_are_rejected(ahead_s, rejected):
    stamp = T0 + int(ahead_s * S)
    if rejected:
        with pytest.raises(FrameSkipped, match=r"pointcloud stamp is 0\.500 s ahead of the node clock") as info:
            check_stamp_not_future("pointcloud", stamp, T0, 0.2)
        assert info.value.reason == "future_stamp"
    else:
        check_stamp_not_future("pointcloud", stamp, T0, 0.2)
    check_stamp_not_future("pointcloud", stamp, 0, 0.2)  # sim time before the first /clock: nothing to compare
