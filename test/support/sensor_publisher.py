"""Test publisher process: deterministic synthetic sensor frames at a fixed rate, like a vehicle's drivers.

Frame i (stamp T0 + i / rate) is a pure function of i, so tests rebuild the exact messages the node received.
Run as a script: python sensor_publisher.py --duration 20 [--stop-camera-after 5] [--clock] [--transport raw]
[--width 1920 --height 1080] [--odom-rate 1] [--loop-frames N] [--wait-for-subscribers] [--live-stamps]
[--malformed KIND@FIRST[-LAST] ...]
"""
import argparse
import math
import time

import numpy as np

T0_NS = 1_000 * 1_000_000_000
RATE_HZ = 10.0  # a vehicle LiDAR; the node drops frames that arrive while it is busy (CPU: ~1 plan/s)
ODOM_PER_FRAME = 5
SPEED = 6.0
LIDAR_FRAME = "lidar_top"
LIDAR_HEIGHT = 1.8
CAMERAS = ("camera_left", "camera_front", "camera_right")
CAMERA_HEIGHT, CAMERA_WIDTH = 400, 1280
BAD_COMMAND = 9
TOPICS = {name: f"/test/{name}" for name in CAMERAS} | {
    "pointcloud": "/test/points", "odometry": "/test/odom", "command": "/test/command"}
# --malformed kinds: what the frames of that kind carry instead of a good message
MALFORMED = {
    "short_cloud": "PointCloud2 whose data is half of row_step * height bytes",
    "cloud_without_z": "PointCloud2 with fields x and y only",
    "nan_cloud": "PointCloud2 whose points are all NaN",
    "garbage_jpeg": "camera_front CompressedImage of random bytes (--transport compressed)",
    "short_step_image": "camera_front Image with step = width, less than width * 3 (--transport raw)",
    "nan_odometry": "the frame's Odometry samples with a NaN twist",
    "bad_command": f"command {BAD_COMMAND} (valid: 0..3) on the latched command topic",
}


def stamp_ns(i: int, t0_ns: int = T0_NS, rate_hz: float = RATE_HZ) -> int:
    return t0_ns + int(round(i * 1e9 / rate_hz))


def camera_rgb(i: int, index: int, height: int = CAMERA_HEIGHT, width: int = CAMERA_WIDTH) -> np.ndarray:
    """A smooth picture that changes from frame to frame and camera to camera (compresses well).

    Built from one row and one column, so a publisher keeps up with full-HD cameras at the frame rate.
    """
    rows = np.linspace(0, 255, height, dtype=np.float32)
    cols = np.linspace(0, 255, width, dtype=np.float32)
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = rows.astype(np.uint8)[:, None]
    image[..., 1] = ((cols + 20 * i) % 256).astype(np.uint8)[None, :]
    image[..., 2] = min(60 * index + i, 255)
    return image


def cloud_points(i: int) -> np.ndarray:
    """Ground plus a box ahead that comes closer each frame, in the LiDAR frame (z up, 1.8 m above base_link)."""
    rng = np.random.default_rng(i)
    ground = np.column_stack([rng.uniform(-30, 30, (20000, 2)), np.zeros(20000)])
    box = np.column_stack([rng.uniform(20 - 0.5 * i % 15, 24 - 0.5 * i % 15, 3000), rng.uniform(-1, 1, 3000),
                           rng.uniform(0.3, 1.5, 3000)])
    points = np.concatenate([ground, box]).astype(np.float32)
    points[:, 2] -= LIDAR_HEIGHT
    return points


def past_sweeps(i: int, history_s: tuple[float, ...], transport: str = "compressed", t0_ns: int = T0_NS,
                rate_hz: float = RATE_HZ) -> tuple:
    """The earlier sweeps the node pairs with frame i for a model whose LiDAR history is `history_s`: frame
    i - ago x rate with its odometry sample, or None before frame 0 (the node's fallback)."""
    from diffusiondrive_ros.ros.frame_sync import PastSweep

    sweeps = []
    for ago in history_s:
        j = i - round(ago * rate_hz)
        sweeps.append(None if j < 0 else PastSweep(frame_messages(j, transport, t0_ns, rate_hz=rate_hz)[1],
                                                   stamp_ns(j, t0_ns, rate_hz),
                                                   odometry_message(j * ODOM_PER_FRAME, t0_ns, rate_hz=rate_hz)))
    return tuple(sweeps)


def frame_messages(i: int, transport: str = "compressed", t0_ns: int = T0_NS, height: int = CAMERA_HEIGHT,
                   width: int = CAMERA_WIDTH, rate_hz: float = RATE_HZ):
    """(camera messages, cloud message) of frame i."""
    from diffusiondrive_ros.ros.conversions import rgb_to_compressed, rgb_to_image, xyz_to_pointcloud2

    stamp = stamp_ns(i, t0_ns, rate_hz)
    encode = ((lambda rgb, n: rgb_to_compressed(rgb, stamp, n)) if transport == "compressed"
              else (lambda rgb, n: rgb_to_image(rgb, stamp, n)))
    cameras = [encode(camera_rgb(i, k, height, width), name) for k, name in enumerate(CAMERAS)]
    return cameras, xyz_to_pointcloud2(cloud_points(i), stamp, LIDAR_FRAME)


def break_frame(kind: str, i: int, cameras: list, cloud) -> tuple[list, object]:
    """Frame i's (cameras, cloud) with the defect `kind` (a MALFORMED key; odometry and command kinds change
    neither)."""
    from diffusiondrive_ros.ros.conversions import xyz_to_pointcloud2

    cameras = list(cameras)
    if kind == "short_cloud":
        cloud.data = cloud.data[: len(cloud.data) // 2]
    elif kind == "cloud_without_z":
        cloud.fields = [field for field in cloud.fields if field.name != "z"]
    elif kind == "nan_cloud":
        cloud = xyz_to_pointcloud2(np.full((cloud.width, 3), np.nan, np.float32), cloud.header.stamp,
                                   cloud.header.frame_id)
    elif kind == "garbage_jpeg":
        cameras[1].data = np.random.default_rng(i).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    elif kind == "short_step_image":
        cameras[1].step = cameras[1].width
    return cameras, cloud


def malformed_arg(text: str) -> tuple[str, range]:
    """'KIND@FRAME' or 'KIND@FIRST-LAST' (inclusive) -> (kind, frames)."""
    kind, _, frames = text.partition("@")
    if kind not in MALFORMED:
        raise argparse.ArgumentTypeError(f"unknown kind {kind!r}; kinds: {', '.join(MALFORMED)}")
    first, _, last = frames.partition("-")
    return kind, range(int(first), int(last or first) + 1)


def odometry_message(j: int, t0_ns: int = T0_NS, nan_twist: bool = False, rate_hz: float = RATE_HZ):
    """Odometry sample j at rate_hz * ODOM_PER_FRAME: straight line, constant speed (acceleration 0)."""
    from nav_msgs.msg import Odometry

    from diffusiondrive_ros.ros.conversions import ns_to_stamp

    msg = Odometry()
    t_ns = t0_ns + int(round(j * 1e9 / (rate_hz * ODOM_PER_FRAME)))
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = ns_to_stamp(t_ns), "map", "base_link"
    msg.pose.pose.position.x = SPEED * (t_ns - t0_ns) / 1e9
    msg.pose.pose.orientation.w = 1.0
    msg.twist.twist.linear.x = float("nan") if nan_twist else SPEED
    return msg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=RATE_HZ, help="frames per second (odometry: ODOM_PER_FRAME x)")
    parser.add_argument("--odom-rate", type=float, default=None,
                        help="odometry messages per second (default: ODOM_PER_FRAME per frame)")
    parser.add_argument("--loop-frames", type=int, default=0,
                        help="start again at frame 0 (stamps and /clock jump back) every N frames, like a looped bag")
    parser.add_argument("--stop-camera-after", type=float, default=None,
                        help="stop camera_front after this many seconds")
    parser.add_argument("--clock", action="store_true", help="publish /clock (sim time) from the frame stamps")
    parser.add_argument("--transport", default="compressed", choices=["raw", "compressed"])
    parser.add_argument("--t0-ns", type=int, default=T0_NS, help="stamp of frame 0 (wall-clock now for a live system)")
    parser.add_argument("--width", type=int, default=CAMERA_WIDTH, help="camera image width in pixels")
    parser.add_argument("--height", type=int, default=CAMERA_HEIGHT, help="camera image height in pixels")
    parser.add_argument("--wait-for-subscribers", action="store_true",
                        help="send frame 0 only once every camera, cloud, odometry and command topic has a subscriber "
                             "and the node has acknowledged the latched command")
    parser.add_argument("--live-stamps", action="store_true",
                        help="stamp frame 0 with the wall-clock time it is sent at, printed as 't0_ns=...' "
                             "(not --t0-ns)")
    parser.add_argument("--malformed", type=malformed_arg, action="append", default=[], metavar="KIND@FIRST[-LAST]",
                        help="send frames FIRST..LAST broken, repeatable; kinds: "
                             + "; ".join(f"{kind}: {what}" for kind, what in MALFORMED.items()))
    args = parser.parse_args()
    schedule: dict[int, set[str]] = {}
    for kind, frames in args.malformed:
        if (kind, args.transport) in (("garbage_jpeg", "raw"), ("short_step_image", "compressed")):
            parser.error(f"--malformed {kind} does not apply to --transport {args.transport}")
        for i in frames:
            schedule.setdefault(i, set()).add(kind)

    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2
    from std_msgs.msg import UInt8

    from diffusiondrive_ros.ros.conversions import ns_to_stamp

    rclpy.init()
    node = rclpy.create_node("test_sensor_publisher")
    image_type = CompressedImage if args.transport == "compressed" else Image
    cams = [node.create_publisher(image_type, TOPICS[n], qos_profile_sensor_data) for n in CAMERAS]
    cloud_pub = node.create_publisher(PointCloud2, TOPICS["pointcloud"], qos_profile_sensor_data)
    odom_pub = node.create_publisher(Odometry, TOPICS["odometry"], qos_profile_sensor_data)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    command_pub = node.create_publisher(UInt8, TOPICS["command"], latched)
    command_pub.publish(UInt8(data=1))
    clock_pub = node.create_publisher(Clock, "/clock", 10) if args.clock else None

    i = 0
    camera_stopped = False
    try:
        sensor_pubs = [*cams, cloud_pub, odom_pub, command_pub]
        while args.wait_for_subscribers and rclpy.ok() and not all(p.get_subscription_count() for p in sensor_pubs):
            time.sleep(0.05)
        if args.wait_for_subscribers:  # frame 0 is then planned with the latched command, not the default one
            command_pub.wait_for_all_acked(Duration(seconds=10))
        start = time.monotonic()
        t0_ns = time.time_ns() if args.live_stamps else args.t0_ns
        if args.live_stamps:
            print(f"t0_ns={t0_ns}", flush=True)
        while time.monotonic() - start < args.duration and rclpy.ok():
            elapsed = time.monotonic() - start
            kinds = schedule.get(i, set())
            f = i % args.loop_frames if args.loop_frames else i  # the frame sent: i unless looping
            if i and not f:
                print(f"loop: back to frame 0 after frame {i - 1}", flush=True)
            cameras, cloud = frame_messages(f, args.transport, t0_ns, args.height, args.width, args.rate)
            for kind in sorted(kinds):
                print(f"frame {i}: malformed {kind}", flush=True)
                cameras, cloud = break_frame(kind, i, cameras, cloud)
            if "bad_command" in kinds:
                command_pub.publish(UInt8(data=BAD_COMMAND))
            if clock_pub:
                clock_pub.publish(Clock(clock=ns_to_stamp(stamp_ns(f, t0_ns, args.rate))))
            per_frame = (args.odom_rate or args.rate * ODOM_PER_FRAME) / args.rate  # odometry j at j / odom rate
            for j in range(math.floor((f - 1) * per_frame + 1e-9) + 1, math.floor(f * per_frame + 1e-9) + 1):
                odom_pub.publish(odometry_message(j, t0_ns, "nan_odometry" in kinds,
                                                  args.rate * per_frame / ODOM_PER_FRAME))
            if not camera_stopped and args.stop_camera_after is not None and elapsed > args.stop_camera_after:
                camera_stopped = True
                print(f"camera_front stopped at frame {i}", flush=True)
            for k, (pub, msg) in enumerate(zip(cams, cameras)):
                if not (k == 1 and camera_stopped):
                    pub.publish(msg)
            time.sleep(0.005)
            cloud_pub.publish(cloud)
            i += 1
            time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
