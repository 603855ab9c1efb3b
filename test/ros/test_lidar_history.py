"""LiDAR history: each frame of a several-sweep model takes the cloud 0.5 s earlier with the odometry that places it,
and the pipeline moves that sweep into the ego frame at the current cloud's stamp; a missing one is a Fallback."""
import math
from dataclasses import replace

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage

from diffusiondrive_ros.ros.conversions import ns_to_stamp, xyz_to_pointcloud2
from diffusiondrive_ros.ros.frame_sync import FrameSkipped, InputSynchronizer, SyncConfig
from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig

T0 = 1_000_000_000_000
MS = 1_000_000
HISTORY = SyncConfig(acceleration_source="odometry", lidar_history_s=(0.5,))


def cloud(t_ns: int, points: np.ndarray, frame: str = "base_link"):
    return xyz_to_pointcloud2(np.asarray(points, np.float32), ns_to_stamp(t_ns), frame)


def odometry(t_ns: int, x: float = 0.0, y: float = 0.0, yaw: float = 0.0, vx: float = 0.0, yaw_rate: float = 0.0):
    msg = Odometry()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = ns_to_stamp(t_ns), "odom", "base_link"
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = vx, yaw_rate
    return msg


def add_cameras(sync, t_ns: int) -> None:
    for index in range(3):
        msg = CompressedImage()
        msg.header.stamp = ns_to_stamp(t_ns)
        sync.add_camera(index, msg)


def fill(sync, cloud_times_ms, odometry_times_ms=range(-1000, 21, 20)):
    """Cameras at T0, clouds and odometry at the given times (ms from T0); returns the clouds by time."""
    add_cameras(sync, T0)
    for t in odometry_times_ms:
        sync.add_odometry(odometry(T0 + t * MS, vx=5.0))
    clouds = {t: cloud(T0 + t * MS, [[10.0 + t / 1000, 0.0, 1.0]]) for t in cloud_times_ms}
    for msg in clouds.values():
        sync.add_cloud(msg)
    return clouds


def test_each_frame_takes_the_cloud_half_a_second_earlier_with_the_odometry_nearest_it():
    sync = InputSynchronizer(HISTORY)
    clouds = fill(sync, range(-1000, 1, 100))
    frame = sync.assemble(clouds[0])
    (past,) = frame.past_sweeps
    assert past.cloud is clouds[-500] and past.stamp_ns == T0 - 500 * MS
    assert past.odometry.header.stamp == ns_to_stamp(T0 - 500 * MS)
    assert not [f for f in frame.fallbacks if f.input == "lidar_history"]
    # a sweep 40 ms off the 0.5 s mark is still the nearest, within sync_tolerance_s
    sync = InputSynchronizer(HISTORY)
    clouds = fill(sync, [-540, -440, 0])
    assert sync.assemble(clouds[0]).past_sweeps[0].cloud is clouds[-540]


@pytest.mark.parametrize("cloud_times_ms, odometry_times_ms, why", [
    ([-300, -200, -100, 0], range(-1000, 21, 20), "no cloud within 0.1 s of 0.5 s before this one"),  # start-up
    ([-800, -700, -300, 0], range(-1000, 21, 20), "no cloud within 0.1 s of 0.5 s before this one"),  # a LiDAR gap
    ([-500, 0], [-1100, 0], "no odometry within 0.3 s of the cloud 0.5 s before this one"),
])
def test_a_missing_earlier_sweep_is_a_fallback_not_a_skip(cloud_times_ms, odometry_times_ms, why):
    sync = InputSynchronizer(replace(HISTORY, odometry_tolerance_s=0.3))
    clouds = fill(sync, cloud_times_ms, odometry_times_ms)
    frame = sync.assemble(clouds[0])
    assert frame.past_sweeps == (None,)
    assert [(f.input, f.message) for f in frame.fallbacks if f.input == "lidar_history"] == [
        ("lidar_history", f"{why}: the current sweep in its place")]


def test_clouds_are_kept_only_for_a_history_and_only_as_long_as_it_needs():
    plain = InputSynchronizer(SyncConfig(acceleration_source="odometry"))
    clouds = fill(plain, range(-1000, 1, 100))
    assert len(plain.clouds) == 0 and plain.assemble(clouds[0]).past_sweeps == ()
    sync = InputSynchronizer(HISTORY)
    fill(sync, range(-1000, 1, 100))
    assert len(sync.clouds) == 7  # -600 .. 0 ms: 0.5 s and sync_tolerance_s
    sync.reset()
    assert len(sync.clouds) == 0
    with pytest.raises(ValueError, match="lidar_history_s must hold positive seconds"):
        SyncConfig(lidar_history_s=(0.0,))


def test_the_earlier_sweep_is_moved_into_the_current_ego_frame_by_odometry():
    """A world point seen from the earlier pose lands where the current pose sees it; the ego moved 5 m forward,
    1 m left and turned 0.3 rad between the two sweeps."""
    pipeline = FramePipeline(None, PipelineConfig(sync=HISTORY))
    world = np.array([[20.0, 3.0, 1.0], [8.0, -4.0, 0.5], [-6.0, 2.0, 1.5]])  # odom frame; earlier pose at origin
    then_pose, now_pose = (0.0, 0.0, 0.0), (5.0, 1.0, 0.3)
    now_x, now_y, now_yaw = now_pose
    c, s = math.cos(now_yaw), math.sin(now_yaw)
    seen_now = np.column_stack([c * (world[:, 0] - now_x) + s * (world[:, 1] - now_y),
                                -s * (world[:, 0] - now_x) + c * (world[:, 1] - now_y), world[:, 2]])
    sync = pipeline.sync
    add_cameras(sync, T0)
    sync.add_odometry(odometry(T0 - 600 * MS))
    sync.add_odometry(odometry(T0 - 500 * MS, *then_pose))
    sync.add_odometry(odometry(T0, *now_pose))
    sync.add_cloud(cloud(T0 - 500 * MS, world))
    current = cloud(T0, seen_now)
    sync.add_cloud(current)
    inputs = sync.assemble(current)
    points = pipeline.cloud_to_base(inputs)
    (earlier,) = pipeline.decode_history(inputs, points)
    np.testing.assert_allclose(earlier, seen_now, atol=1e-4)

    add_cameras(sync, T0 + 200 * MS)
    without = sync.assemble(cloud(T0 + 200 * MS, seen_now))  # nothing within 0.1 s of 0.5 s before it
    assert without.past_sweeps == (None,)
    assert pipeline.decode_history(without, points)[0] is points


def test_an_earlier_sweep_that_cannot_be_decoded_skips_the_frame_and_is_counted():
    pipeline = FramePipeline(None, PipelineConfig(sync=HISTORY))
    clouds = fill(pipeline.sync, [-500, 0])
    broken = cloud(T0 - 500 * MS, [[math.nan, 0.0, 1.0]])
    pipeline.sync.clouds.clear()
    pipeline.sync.add_cloud(broken)
    inputs = pipeline.sync.assemble(clouds[0])
    why = r"bad_lidar_history: the sweep 0.50 s earlier: pointcloud: no finite points \(1 dropped\)"
    with pytest.raises(FrameSkipped, match=why):
        pipeline.decode_history(inputs, pipeline.cloud_to_base(inputs))
    assert pipeline.stats.skipped["bad_lidar_history"] == 1
