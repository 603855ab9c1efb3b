"""Test publisher process: deterministic synthetic sensor frames at a fixed rate, like a vehicle's drivers.

Frame i (stamp T0 + i / rate) is a pure function of i, so tests rebuild the exact messages the node received.
Run as a script: python sensor_publisher.py --duration 20 [--stop-camera-after 5] [--clock] [--transport raw]
"""
import argparse
import time

import numpy as np

T0_NS = 1_000 * 1_000_000_000
RATE_HZ = 2.0  # slow enough for CPU inference on a 2-core CI machine without dropping frames
ODOM_PER_FRAME = 10
SPEED = 6.0
LIDAR_FRAME = "lidar_top"
LIDAR_HEIGHT = 1.8
CAMERAS = ("camera_left", "camera_front", "camera_right")
TOPICS = {name: f"/test/{name}" for name in CAMERAS} | {
    "pointcloud": "/test/points", "odometry": "/test/odom", "command": "/test/command"}


def stamp_ns(i: int, t0_ns: int = T0_NS) -> int:
    return t0_ns + int(round(i * 1e9 / RATE_HZ))


def camera_rgb(i: int, index: int, height: int = 400, width: int = 1280) -> np.ndarray:
    """A smooth picture that changes from frame to frame and camera to camera (compresses well)."""
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.stack([rows + 0 * cols, (cols + 20 * i) % 256 + 0 * rows, np.full((height, width), 60.0 * index + i)], -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def cloud_points(i: int) -> np.ndarray:
    """Ground plus a box ahead that comes closer each frame, in the LiDAR frame (z up, 1.8 m above base_link)."""
    rng = np.random.default_rng(i)
    ground = np.column_stack([rng.uniform(-30, 30, (20000, 2)), np.zeros(20000)])
    box = np.column_stack([rng.uniform(20 - 0.5 * i % 15, 24 - 0.5 * i % 15, 3000), rng.uniform(-1, 1, 3000), rng.uniform(0.3, 1.5, 3000)])
    points = np.concatenate([ground, box]).astype(np.float32)
    points[:, 2] -= LIDAR_HEIGHT
    return points


def frame_messages(i: int, transport: str = "compressed", t0_ns: int = T0_NS):
    """(camera messages, cloud message) of frame i."""
    from diffusiondrive_ros.conversions import rgb_to_compressed, rgb_to_image, xyz_to_pointcloud2

    stamp = stamp_ns(i, t0_ns)
    encode = (lambda rgb, n: rgb_to_compressed(rgb, stamp, n)) if transport == "compressed" else (lambda rgb, n: rgb_to_image(rgb, stamp, n))
    cameras = [encode(camera_rgb(i, k), name) for k, name in enumerate(CAMERAS)]
    return cameras, xyz_to_pointcloud2(cloud_points(i), stamp, LIDAR_FRAME)


def odometry_message(j: int, t0_ns: int = T0_NS):
    """Odometry sample j at RATE_HZ * ODOM_PER_FRAME: straight line, constant speed (acceleration 0)."""
    from nav_msgs.msg import Odometry

    from diffusiondrive_ros.conversions import ns_to_stamp

    msg = Odometry()
    t_ns = t0_ns + int(round(j * 1e9 / (RATE_HZ * ODOM_PER_FRAME)))
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = ns_to_stamp(t_ns), "map", "base_link"
    msg.pose.pose.position.x = SPEED * (t_ns - t0_ns) / 1e9
    msg.pose.pose.orientation.w = 1.0
    msg.twist.twist.linear.x = SPEED
    return msg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--stop-camera-after", type=float, default=None, help="stop camera_front after this many seconds")
    parser.add_argument("--clock", action="store_true", help="publish /clock (sim time) from the frame stamps")
    parser.add_argument("--transport", default="compressed", choices=["raw", "compressed"])
    parser.add_argument("--t0-ns", type=int, default=T0_NS, help="stamp of frame 0 (wall-clock now for a live system)")
    args = parser.parse_args()

    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2
    from std_msgs.msg import UInt8

    from diffusiondrive_ros.conversions import ns_to_stamp

    rclpy.init()
    node = rclpy.create_node("test_sensor_publisher")
    image_type = CompressedImage if args.transport == "compressed" else Image
    cams = [node.create_publisher(image_type, TOPICS[n], qos_profile_sensor_data) for n in CAMERAS]
    cloud_pub = node.create_publisher(PointCloud2, TOPICS["pointcloud"], qos_profile_sensor_data)
    odom_pub = node.create_publisher(Odometry, TOPICS["odometry"], qos_profile_sensor_data)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_publisher(UInt8, TOPICS["command"], latched).publish(UInt8(data=1))
    clock_pub = node.create_publisher(Clock, "/clock", 10) if args.clock else None

    start = time.monotonic()
    i = 0
    camera_stopped = False
    try:
        while time.monotonic() - start < args.duration and rclpy.ok():
            elapsed = time.monotonic() - start
            cameras, cloud = frame_messages(i, args.transport, args.t0_ns)
            if clock_pub:
                clock_pub.publish(Clock(clock=ns_to_stamp(stamp_ns(i, args.t0_ns))))
            for j in range(i * ODOM_PER_FRAME - ODOM_PER_FRAME + 1, i * ODOM_PER_FRAME + 1):
                odom_pub.publish(odometry_message(j, args.t0_ns))
            if not camera_stopped and args.stop_camera_after is not None and elapsed > args.stop_camera_after:
                camera_stopped = True
                print(f"camera_front stopped at frame {i}", flush=True)
            for k, (pub, msg) in enumerate(zip(cams, cameras)):
                if not (k == 1 and camera_stopped):
                    pub.publish(msg)
            time.sleep(0.005)
            cloud_pub.publish(cloud)
            i += 1
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
