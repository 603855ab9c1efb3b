"""Sensor process of the node benchmark: deterministic synthetic vehicle inputs at a fixed rate, live-stamped.

Per frame: three raw rgb8 camera Images, then one PointCloud2, all stamped with the wall-clock time the frame starts
(ROS time without sim time); Odometry and Imu at their own rate, stamped when sent; the driving command latched.
Each cloud's (stamp, wall-clock time right before it is published) goes to the record file, one line per cloud, so
the benchmark matches every Path (stamp = cloud stamp) to the moment its cloud left this process.

    python -m diffusiondrive_ros.node_bench_sensors --topics /prefix --record clouds.txt --rate 10 --duration 20
"""
import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CAMERAS = ("camera_left", "camera_front", "camera_right")
INPUTS = (*CAMERAS, "pointcloud", "odometry", "imu", "command")
LIDAR_FRAME = "lidar_top"
LIDAR_HEIGHT_M = 1.8
SPEED_MPS = 6.0
COMMAND_STRAIGHT = 1
START_LINE = "streaming"
"""Printed (stdout) once every input topic has a subscriber, right before frame 0."""


@dataclass(frozen=True)
class StreamConfig:
    """What the sensor process sends: frames (cameras + cloud) at `rate_hz`, odometry and IMU at `odometry_hz`,
    for `duration_s`; `variants` distinct frames are built once and re-stamped in turn, so sending stays cheap.
    """

    rate_hz: float = 10.0
    duration_s: float = 20.0
    width: int = 1920
    height: int = 1080
    points: int = 120_000
    odometry_hz: float = 50.0
    variants: int = 4
    subscriber_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("rate_hz", "duration_s", "odometry_hz", "subscriber_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"StreamConfig.{name}: must be > 0, got {getattr(self, name)}")
        for name, low in (("width", 16), ("height", 16), ("points", 100), ("variants", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"StreamConfig.{name}: must be an integer >= {low}, got {getattr(self, name)}")


def camera_picture(variant: int, camera: int, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: a road-like picture (sky, horizon, ground) that differs per variant and camera."""
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    ground = rows > 0.45
    shade = (40 * np.sin(2 * np.pi * (4 * cols + 0.1 * variant + 0.3 * camera)) + 100).astype(np.float32)
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = np.where(ground, shade, 150 + 80 * rows).astype(np.uint8)
    image[..., 1] = np.where(ground, shade, 180 + 60 * rows).astype(np.uint8)
    image[..., 2] = np.where(ground, shade * 0.9, 230).astype(np.uint8)
    return image


def cloud_points(variant: int, count: int) -> np.ndarray:
    """(count, 3) float32 points in the LiDAR frame (z up, LIDAR_HEIGHT_M above the ground): 90 % ground within
    50 m, 10 % on a car-sized box ahead whose distance depends on the variant."""
    rng = np.random.default_rng(variant)
    boxed = count // 10
    radius = 50.0 * np.sqrt(rng.uniform(0.0, 1.0, count - boxed))
    angle = rng.uniform(-np.pi, np.pi, count - boxed)
    ground = np.column_stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(count - boxed)])
    ahead = 15.0 + 2.0 * variant
    box = np.column_stack([rng.uniform(ahead, ahead + 4.5, boxed), rng.uniform(-1.0, 1.0, boxed),
                           rng.uniform(0.2, 1.6, boxed)])
    points = np.concatenate([ground, box]).astype(np.float32)
    points[:, 2] -= LIDAR_HEIGHT_M
    return points


def frame_messages(config: "StreamConfig", variant: int) -> tuple[list, object]:
    """(camera Images, PointCloud2) of a frame variant, stamped 0 (the sender stamps them when it sends them)."""
    from .ros.conversions import rgb_to_image, xyz_to_pointcloud2

    cameras = [rgb_to_image(camera_picture(variant, k, config.height, config.width), 0, name)
               for k, name in enumerate(CAMERAS)]
    return cameras, xyz_to_pointcloud2(cloud_points(variant, config.points), 0, LIDAR_FRAME)


def motion_messages(stamp_ns: int, start_ns: int) -> tuple[object, object]:
    """(Odometry, Imu) at stamp_ns: a straight drive at SPEED_MPS since start_ns, zero acceleration, no
    orientation from the IMU."""
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Imu

    from .ros.conversions import ns_to_stamp

    odometry = Odometry()
    odometry.header.stamp, odometry.header.frame_id = ns_to_stamp(stamp_ns), "odom"
    odometry.child_frame_id = "base_link"
    odometry.pose.pose.position.x = SPEED_MPS * (stamp_ns - start_ns) / 1e9
    odometry.pose.pose.orientation.w = 1.0
    odometry.twist.twist.linear.x = SPEED_MPS
    imu = Imu()
    imu.header.stamp, imu.header.frame_id = ns_to_stamp(stamp_ns), "base_link"
    imu.orientation_covariance[0] = -1.0
    imu.linear_acceleration.z = 9.81
    return odometry, imu


class SensorStream:
    """Publishers of every input on `<prefix>/<input>` and the pre-built frames they send."""

    def __init__(self, node, prefix: str, config: StreamConfig):
        from nav_msgs.msg import Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image, Imu, PointCloud2
        from std_msgs.msg import UInt8

        self.config = config
        self.cameras = [node.create_publisher(Image, f"{prefix}/{name}", qos_profile_sensor_data) for name in CAMERAS]
        self.cloud = node.create_publisher(PointCloud2, f"{prefix}/pointcloud", qos_profile_sensor_data)
        self.odometry = node.create_publisher(Odometry, f"{prefix}/odometry", qos_profile_sensor_data)
        self.imu = node.create_publisher(Imu, f"{prefix}/imu", qos_profile_sensor_data)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.command = node.create_publisher(UInt8, f"{prefix}/command", latched)
        self.command.publish(UInt8(data=COMMAND_STRAIGHT))
        self.frames = [frame_messages(config, v) for v in range(config.variants)]

    def subscribed(self) -> bool:
        return all(p.get_subscription_count() for p in (*self.cameras, self.cloud, self.odometry, self.imu))

    def send_frame(self, i: int) -> tuple[int, int]:
        """Frame i (variant i mod variants) stamped now: cameras, then the cloud; (stamp, cloud publish time) ns."""
        from .ros.conversions import ns_to_stamp

        stamp_ns = time.time_ns()
        cameras, cloud = self.frames[i % len(self.frames)]
        for publisher, msg in zip(self.cameras, cameras):
            msg.header.stamp = ns_to_stamp(stamp_ns)
            publisher.publish(msg)
        cloud.header.stamp = ns_to_stamp(stamp_ns)
        published_ns = time.time_ns()
        self.cloud.publish(cloud)
        return stamp_ns, published_ns

    def send_motion(self, start_ns: int) -> None:
        """Odometry and Imu stamped now."""
        odometry, imu = motion_messages(time.time_ns(), start_ns)
        self.odometry.publish(odometry)
        self.imu.publish(imu)


def send_stream(stream: SensorStream, record: Path) -> int:
    """Send frames and motion on schedule for the configured duration (late sends go out at once, never skipped);
    frames sent."""
    config = stream.config
    frame_period, motion_period = 1.0 / config.rate_hz, 1.0 / config.odometry_hz
    start, start_ns = time.monotonic(), time.time_ns()
    frames = motions = 0
    with record.open("w") as out:
        while True:
            next_frame, next_motion = start + frames * frame_period, start + motions * motion_period
            due = min(next_frame, next_motion)
            if due - start >= config.duration_s:
                return frames
            time.sleep(max(0.0, due - time.monotonic()))
            if next_motion <= next_frame:
                stream.send_motion(start_ns)
                motions += 1
            else:
                stamp_ns, published_ns = stream.send_frame(frames)
                out.write(f"{stamp_ns} {published_ns}\n")
                out.flush()
                frames += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topics", required=True, help="topic prefix: inputs are sent on PREFIX/<input>")
    parser.add_argument("--record", type=Path, required=True, help="file for the 'stamp_ns publish_ns' cloud lines")
    parser.add_argument("--rate", type=float, default=StreamConfig.rate_hz, help="frames per second")
    parser.add_argument("--duration", type=float, default=StreamConfig.duration_s, help="seconds of frames")
    parser.add_argument("--width", type=int, default=StreamConfig.width, help="camera width, pixels")
    parser.add_argument("--height", type=int, default=StreamConfig.height, help="camera height, pixels")
    parser.add_argument("--points", type=int, default=StreamConfig.points, help="points per cloud")
    parser.add_argument("--odometry-rate", type=float, default=StreamConfig.odometry_hz,
                        help="Odometry and Imu messages per second")
    args = parser.parse_args(argv)
    config = StreamConfig(rate_hz=args.rate, duration_s=args.duration, width=args.width, height=args.height,
                          points=args.points, odometry_hz=args.odometry_rate)

    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init()
    node = rclpy.create_node("diffusiondrive_bench_sensors")
    try:
        sensors = SensorStream(node, args.topics, config)
        deadline = time.monotonic() + config.subscriber_timeout_s
        while not sensors.subscribed():
            if time.monotonic() > deadline:
                print(f"no subscriber on every input after {config.subscriber_timeout_s} s", flush=True)
                return 1
            time.sleep(0.05)
        print(START_LINE, flush=True)
        print(f"sent {send_stream(sensors, args.record)} frames", flush=True)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
