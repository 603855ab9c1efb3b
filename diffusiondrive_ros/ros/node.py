"""Run the `diffusiondrive_planner` rclpy node: sensors in, best Path, all candidate modes and diagnostics out."""
from __future__ import annotations

import re
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, Imu, PointCloud2
from std_msgs.msg import UInt8
from visualization_msgs.msg import MarkerArray

from .conversions import ConversionError, stamp_to_ns, transform_to_matrix
from .diagnostics import InputMonitor, PlanningHealth, diagnostic_array, input_statuses, planner_inputs
from .frame_sync import CAMERA_NAMES, FrameSkipped
from .params import NODE_NAME, PARAMETERS, pipeline_config, planner_from_parameters
from .pipeline import FramePipeline
from .worker import LatestFrameWorker

THROTTLE_S = 5.0


class TfLookup:
    """cloud frame -> base frame through tf2 where tf2_ros is installed; None otherwise (use the parameters)."""

    def __init__(self, node: Node, base_frame: str):
        import tf2_ros  # only on a full ROS install

        self._base_frame = base_frame
        self._node = node
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)

    def __call__(self, frame: str, stamp_ns: int) -> np.ndarray | None:
        try:
            tf = self._buffer.lookup_transform(self._base_frame, frame, Time(nanoseconds=stamp_ns))
        except Exception as error:  # tf2 raises several lookup/extrapolation types
            self._node.get_logger().warning(f"TF {frame} -> {self._base_frame} unavailable ({error}); "
                                            "using lidar_extrinsic",
                                            throttle_duration_sec=THROTTLE_S)
            return None
        return transform_to_matrix(tf.transform)


class DiffusionDriveNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        config = pipeline_config(p)
        self.stale_timeout_s = p["stale_timeout_s"]
        planner = planner_from_parameters(p)
        self.pipeline = FramePipeline(planner, config, self._tf_lookup(p["use_tf"], config.base_frame))
        self.get_logger().info(f"DiffusionDrive ready: {planner.describe()}")

        self.monitor = InputMonitor(planner_inputs(config.sync))
        self.health = PlanningHealth(p["latency_warn_s"], p["min_planning_rate_hz"])
        self.clouds_received = 0
        self._last_warning: dict = {}

        self.path_pub = self.create_publisher(Path, "~/output/path", 10)
        self.markers_pub = self.create_publisher(MarkerArray, "~/output/candidates", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        image_type = Image if config.camera_transport == "raw" else CompressedImage
        for index, name in enumerate(CAMERA_NAMES):
            self.create_subscription(image_type, f"~/input/{name}", lambda m, i=index, n=name: self._on_camera(i, n, m),
                                     qos_profile_sensor_data)
        self.create_subscription(PointCloud2, "~/input/pointcloud", self._on_cloud, qos_profile_sensor_data)
        self.create_subscription(Odometry, "~/input/odometry", self._on_odometry, qos_profile_sensor_data)
        self.create_subscription(Imu, "~/input/imu", self._on_imu, qos_profile_sensor_data)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(UInt8, "~/input/command", self._on_command, latched)

        self.worker = LatestFrameWorker(self._plan,
                                        lambda error: self._warn("worker", f"planning thread error: {error!r}"))
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)

    def _tf_lookup(self, use_tf: bool, base_frame: str):
        if not use_tf:
            return None
        try:
            return TfLookup(self, base_frame)
        except ImportError:
            self.get_logger().info("tf2_ros is not installed: the LiDAR pose comes from the lidar_extrinsic parameters")
            return None

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _record(self, name: str, msg) -> None:
        self.monitor.record(name, stamp_to_ns(msg.header.stamp), self._now_ns())

    def _on_camera(self, index: int, name: str, msg) -> None:
        self._record(name, msg)
        self.pipeline.sync.add_camera(index, msg)

    def _on_odometry(self, msg: Odometry) -> None:
        self._record("odometry", msg)
        self.pipeline.sync.add_odometry(msg)

    def _on_imu(self, msg: Imu) -> None:
        self._record("imu", msg)
        self.pipeline.sync.add_imu(msg)

    def _warn(self, key: str, message: str) -> None:
        """A warning throttled per key (e.g. per skip reason), so a new problem is logged at once."""
        now = time.monotonic()
        if now - self._last_warning.get(key, -THROTTLE_S) >= THROTTLE_S:
            self._last_warning[key] = now
            self.get_logger().warning(message)

    def _on_command(self, msg: UInt8) -> None:
        try:
            self.pipeline.sync.set_command(msg.data)
        except ConversionError as error:
            current = self.pipeline.sync.command
            self.monitor.reject("command",
                                f"rejected {msg.data}, using {current if current is not None else 'the default'}")
            self._warn("command", f"~/input/command: {error}; keeping the previous command")
            return
        self.monitor.record("command", self._now_ns(), self._now_ns())

    def _on_cloud(self, msg: PointCloud2) -> None:
        self._record("pointcloud", msg)
        self.clouds_received += 1
        if self.worker.submit(msg):
            self.pipeline.stats.count_dropped()

    def _wait_for_inputs(self, cloud: PointCloud2) -> None:
        """Give the cloud's camera/odometry messages, possibly still in flight, up to sync_wait_s to arrive."""
        stamp, deadline = stamp_to_ns(cloud.header.stamp), time.monotonic() + self.pipeline.config.sync.sync_wait_s
        while not self.pipeline.sync.is_complete(stamp) and time.monotonic() < deadline:
            time.sleep(0.002)

    def _plan(self, cloud: PointCloud2) -> None:
        self._wait_for_inputs(cloud)
        try:
            planned = self.pipeline.plan(self.pipeline.assemble(cloud))
        except FrameSkipped as skip:
            self._warn(re.sub(r"[-+.0-9]+", "#", str(skip)), f"frame skipped: {skip}")  # per kind of problem
            return
        except Exception as error:  # a planner failure must not kill the node; it is reported as ERROR
            self.pipeline.stats.count_error(f"{type(error).__name__}: {error}")
            self._warn("planner_error", f"planning failed: {type(error).__name__}: {error}")
            return
        try:
            self.path_pub.publish(planned.path)
            self.markers_pub.publish(planned.markers)
        except Exception as error:  # at shutdown the context goes away under the worker; otherwise report it
            if self.context.ok():
                self._warn("publish", f"publishing failed: {error}")

    def _publish_diagnostics(self) -> None:
        now = self._now_ns()
        prefix = self.get_fully_qualified_name()
        hardware = str(self.pipeline.planner.device)
        statuses = input_statuses(self.monitor, now, self.stale_timeout_s, prefix, hardware)
        statuses.append(self.health.status(self.pipeline.stats, self.clouds_received, self.pipeline.planner.describe(),
                                           prefix, hardware, now, seeded=self.pipeline.planner.seeded))
        self.diag_pub.publish(diagnostic_array(now, statuses))

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()


def add_arguments(parser) -> None:
    parser.usage = "diffusiondrive-ros node [-h] [--ros-args -p NAME:=VALUE --params-file FILE -r FROM:=TO ...]"
    parser.set_defaults(passes_ros_args=True)


def run(args) -> int:
    return main([sys.argv[0], *args.ros_args])


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = DiffusionDriveNode()
    except (ValueError, RuntimeError, OSError) as error:
        print(f"diffusiondrive_planner: cannot start: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
