"""Input synchronisation: nearest stamps within tolerance, completeness, ego acceleration, command, skip reasons."""
import math

import pytest
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage, Imu, PointCloud2

from diffusiondrive_ros.ros.conversions import ConversionError, ns_to_stamp
from diffusiondrive_ros.ros.frame_sync import FrameSkipped, InputSynchronizer, SyncConfig

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


def test_required_imu_that_is_missing_skips():
    sync = InputSynchronizer(SyncConfig(acceleration_source="imu"))
    fill(sync, [T0] * 3)
    with pytest.raises(FrameSkipped) as info:
        sync.assemble(stamped(PointCloud2, T0))
    assert info.value.reason == "imu_missing"


def test_short_odometry_history_skips_instead_of_guessing():
    sync = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    fill(sync, [T0] * 3, odometry_from_to=(T0 - 40_000_000, T0 + 1))
    with pytest.raises(FrameSkipped) as info:
        sync.assemble(stamped(PointCloud2, T0))
    assert info.value.reason == "acceleration_unavailable"


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
