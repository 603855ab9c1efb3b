"""LiDAR history: each frame of a several-sweep model takes the cloud 0.5 s earlier with the odometry that places it,
and the pipeline moves that sweep into the ego frame at the current cloud's stamp; a missing one is a Fallback."""
import math
from dataclasses import replace

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage

from diffusiondrive_ros.ros.conversions import ns_to_stamp, pointcloud2_to_points, xyz_to_pointcloud2
from diffusiondrive_ros.ros.frame_sync import FrameSkipped, InputSynchronizer, SyncConfig
from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig
from diffusiondrive_ros.ros.sweep_cache import SweepCache

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


def drive_frames(pipeline, times_ms):
    """Plan-side decoding of one frame per cloud at `times_ms` (ms from T0), the ego at 5 m/s; returns the clouds
    by time and, per frame, the current points and the earlier sweeps."""
    clouds, decoded = {}, []
    for t in times_ms:
        add_cameras(pipeline.sync, T0 + t * MS)
        pipeline.sync.add_odometry(odometry(T0 + t * MS, x=0.005 * t, vx=5.0))
        clouds[t] = cloud(T0 + t * MS, [[10.0 - 0.005 * t, 1.0, 1.0], [30.0, -2.0, 0.5]])
        pipeline.sync.add_cloud(clouds[t])
        inputs = pipeline.sync.assemble(clouds[t])
        points = pipeline.cloud_to_base(inputs)
        decoded.append((points, *pipeline.decode_history(inputs, points)))
    return clouds, decoded


def counting_decoder(monkeypatch):
    import diffusiondrive_ros.ros.pipeline as pipeline_module
    decoded = []

    def count(msg):
        decoded.append(msg)
        return pointcloud2_to_points(msg)
    monkeypatch.setattr(pipeline_module, "pointcloud2_to_points", count)
    return decoded


def test_each_cloud_is_decoded_once_and_its_points_serve_as_the_earlier_sweep_later(monkeypatch):
    decoded = counting_decoder(monkeypatch)
    pipeline = FramePipeline(None, PipelineConfig(sync=HISTORY))
    clouds, frames = drive_frames(pipeline, range(0, 1001, 100))
    assert decoded == list(clouds.values())  # 11 clouds, 11 decodes: none again as an earlier sweep
    # the same frames decoded without the cache (every earlier sweep decoded again) give the same sweeps
    uncached = FramePipeline(None, PipelineConfig(sync=HISTORY))
    uncached.sweeps = SweepCache(0.0)
    _, reference = drive_frames(uncached, range(0, 1001, 100))
    assert len(decoded) == 11 + 11 + 7  # frames from 0.4 s on have an earlier sweep (within sync_tolerance_s)
    for (points, earlier), (points_ref, earlier_ref) in zip(frames, reference):
        np.testing.assert_array_equal(points, points_ref)
        np.testing.assert_array_equal(earlier, earlier_ref)
    # the last frame's earlier sweep is the cloud 0.5 s before it, seen from the current pose: 2.5 m nearer
    np.testing.assert_allclose(frames[-1][1], [[5.0, 1.0, 1.0], [27.5, -2.0, 0.5]], atol=1e-4)
    with pytest.raises(ValueError, match="read-only"):
        frames[-1][0][0, 0] = 0.0  # later frames share these points: nothing may write into them


def test_decoded_sweeps_are_kept_for_the_history_span_and_only_for_that_very_message(monkeypatch):
    decoded = counting_decoder(monkeypatch)
    pipeline = FramePipeline(None, PipelineConfig(sync=HISTORY))
    clouds, _ = drive_frames(pipeline, range(0, 1001, 100))
    kept = [t for t, msg in clouds.items() if pipeline.sweeps.get(msg, T0 + t * MS) is not None]
    assert kept == list(range(400, 1001, 100))  # 0.5 s and sync_tolerance_s behind the newest
    resent = cloud(T0 + 1000 * MS, [[50.0, 0.0, 1.0]])  # the same stamp, another message: decoded itself
    assert pipeline.sweeps.get(resent, T0 + 1000 * MS) is None
    pipeline.reset()  # a clock jump forgets them
    assert all(pipeline.sweeps.get(msg, T0 + t * MS) is None for t, msg in clouds.items())
    plain = FramePipeline(None, PipelineConfig(sync=SyncConfig(acceleration_source="odometry")))
    before = len(decoded)
    drive_frames(plain, [0, 100])
    assert plain.sweeps.get(clouds[0], T0) is None and len(decoded) == before + 2  # a one-sweep model keeps none
