"""Test publisher process: a burst of malformed sensor messages of many kinds, then valid frames.

Phase A: frames whose odometry is malformed (every odometry message of the phase, so no neighbour can stand in);
phase B: frames with valid odometry and one malformed camera Image or PointCloud2; malformed commands throughout
A and B. Phase C: valid frames (cameras as bayer_rggb8, as many drivers send them) until stopped. Stamps are the
wall-clock time of sending; each frame is printed as 'malformed STAMP KIND' or 'valid STAMP' for the test.
Run as a script: python malformed_burst.py [--rate 10] [--valid-rate 2] [--duration 120]
"""
import argparse
import math
import time

import numpy as np
import sensor_publisher as pub

WIDTH, HEIGHT = 320, 180
ODOMETRY_KINDS = ("nan_twist", "inf_yaw_rate", "zero_quaternion", "absurd_speed", "nan_position", "absurd_yaw_rate")
CAMERA_KINDS = ("unknown_encoding", "short_step", "long_data", "short_data", "odd_width_yuv", "one_row_bayer",
                "zero_width", "huge_height")
CLOUD_KINDS = ("short_cloud", "cloud_without_z", "overlapping_fields", "unknown_datatype", "offset_beyond_step",
               "nan_cloud", "count_3", "no_frame_id")
BAD_COMMANDS = (4, 9, 200, 255)


def bayer_image(rgb: np.ndarray, stamp_ns: int, frame_id: str):
    """sensor_msgs/Image bayer_rggb8 of an RGB picture: R G / G B, each pixel keeping its colour's value."""
    from sensor_msgs.msg import Image

    from diffusiondrive_ros.ros.conversions import make_header

    mosaic = rgb[..., 1].copy()
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    height, width = mosaic.shape
    return Image(header=make_header(stamp_ns, frame_id), height=height, width=width, encoding="bayer_rggb8",
                 is_bigendian=False, step=width, data=mosaic.tobytes())


def frame(i: int, stamp_ns: int):
    """(cameras, cloud, odometry) of valid frame i stamped `stamp_ns`."""
    from diffusiondrive_ros.ros.conversions import xyz_to_pointcloud2

    cameras = [bayer_image(pub.camera_rgb(i, k, HEIGHT, WIDTH), stamp_ns, name) for k, name in enumerate(pub.CAMERAS)]
    cloud = xyz_to_pointcloud2(pub.cloud_points(i), stamp_ns, pub.LIDAR_FRAME)
    return cameras, cloud, pub.odometry_message(0, stamp_ns)


def break_odometry(kind: str, msg) -> None:
    twist, pose = msg.twist.twist, msg.pose.pose
    if kind == "nan_twist":
        twist.linear.y = math.nan
    elif kind == "inf_yaw_rate":
        twist.angular.z = math.inf
    elif kind == "zero_quaternion":
        pose.orientation.w = 0.0
    elif kind == "absurd_speed":
        twist.linear.x = 1e9
    elif kind == "nan_position":
        pose.position.z = math.nan
    elif kind == "absurd_yaw_rate":
        twist.angular.z = 500.0


def break_camera(kind: str, msg) -> None:
    if kind == "unknown_encoding":
        msg.encoding = "nv12"
    elif kind == "short_step":
        msg.step = msg.width - 1
    elif kind == "long_data":
        msg.data = bytes(msg.data) + bytes(7)
    elif kind == "short_data":
        msg.data = bytes(msg.data)[:-1]
    elif kind == "odd_width_yuv":
        msg.encoding, msg.width, msg.step = "uyvy", 159, 318
        msg.data = bytes(318 * msg.height)
    elif kind == "one_row_bayer":
        msg.height, msg.data = 1, bytes(msg.data)[:msg.step]
    elif kind == "zero_width":
        msg.width = 0
    elif kind == "huge_height":
        msg.height = 2**31


def break_cloud(kind: str, msg) -> None:
    from sensor_msgs.msg import PointField

    if kind == "short_cloud":
        msg.data = bytes(msg.data)[: len(msg.data) // 2]
    elif kind == "cloud_without_z":
        msg.fields = [f for f in msg.fields if f.name != "z"]
    elif kind == "overlapping_fields":
        msg.fields = [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
                      for n, o in (("x", 0), ("y", 2), ("z", 8))]
    elif kind == "unknown_datatype":
        msg.fields = [PointField(name=n, offset=4 * k, datatype=11 if n == "z" else PointField.FLOAT32, count=1)
                      for k, n in enumerate("xyz")]
    elif kind == "offset_beyond_step":
        msg.fields = [PointField(name=n, offset=4 * k + (20 if n == "z" else 0), datatype=PointField.FLOAT32, count=1)
                      for k, n in enumerate("xyz")]
    elif kind == "nan_cloud":
        msg.data = np.full(len(msg.data) // 4, np.nan, np.float32).tobytes()
    elif kind == "count_3":
        msg.fields = [PointField(name=n, offset=4 * k, datatype=PointField.FLOAT32, count=3 if n == "x" else 1)
                      for k, n in enumerate("xyz")]
    elif kind == "no_frame_id":
        msg.header.frame_id = ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second during the burst")
    parser.add_argument("--valid-rate", type=float, default=2.0, help="frames per second after the burst")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of valid frames after the burst")
    args = parser.parse_args()

    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import UInt8

    rclpy.init()
    node = rclpy.create_node("test_malformed_burst")
    cameras = [node.create_publisher(Image, pub.TOPICS[n], qos_profile_sensor_data) for n in pub.CAMERAS]
    clouds = node.create_publisher(PointCloud2, pub.TOPICS["pointcloud"], qos_profile_sensor_data)
    odometry = node.create_publisher(Odometry, pub.TOPICS["odometry"], qos_profile_sensor_data)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    commands = node.create_publisher(UInt8, pub.TOPICS["command"], latched)

    def send(i: int, kind: str, period_s: float) -> None:
        stamp = time.time_ns()
        msgs, cloud, odom = frame(i, stamp)
        if kind in ODOMETRY_KINDS:
            break_odometry(kind, odom)
        elif kind in CAMERA_KINDS:
            break_camera(kind, msgs[i % 3])
        elif kind in CLOUD_KINDS:
            break_cloud(kind, cloud)
        if kind != "valid":
            commands.publish(UInt8(data=BAD_COMMANDS[i % len(BAD_COMMANDS)]))
        print(f"valid {stamp}" if kind == "valid" else f"malformed {stamp} {kind}", flush=True)
        odometry.publish(odom)
        for publisher, msg in zip(cameras, msgs):
            publisher.publish(msg)
        time.sleep(0.005)
        clouds.publish(cloud)
        time.sleep(max(0.0, period_s - (time.time_ns() - stamp) / 1e9))

    try:
        while rclpy.ok() and not all(p.get_subscription_count() for p in [*cameras, clouds, odometry, commands]):
            time.sleep(0.05)
        commands.publish(UInt8(data=1))
        burst = [*ODOMETRY_KINDS * 2, "pause", *(CAMERA_KINDS + CLOUD_KINDS) * 2, "pause"]
        for i, kind in enumerate(burst):
            if kind == "pause":
                time.sleep(0.5)
            else:
                send(i, kind, 1.0 / args.rate)
        commands.publish(UInt8(data=1))
        start, i = time.monotonic(), len(burst)
        while rclpy.ok() and time.monotonic() - start < args.duration:
            send(i, "valid", 1.0 / args.valid_rate)
            i += 1
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
