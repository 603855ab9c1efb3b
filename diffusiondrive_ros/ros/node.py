"""Run the `diffusiondrive_planner` rclpy node: sensors in, best Path, all candidate modes and diagnostics out."""
from __future__ import annotations

import re
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, Imu, PointCloud2
from std_msgs.msg import UInt8
from visualization_msgs.msg import MarkerArray

from .command_input import CommandInput
from .conversions import ConversionError, stamp_to_ns, transform_to_matrix
from .diagnostics import InputMonitor, PlanningHealth, diagnostic_array, input_statuses, planner_inputs
from .frame_sync import CAMERA_NAMES, ClockWatch, FrameInputs, FrameSkipped, check_stamp_not_future
from .node_parameters import LiveParameters, declare_node_parameters
from .params import NODE_NAME, pipeline_config, pipelined, planner_from_parameters
from .pipeline import FramePipeline, PlanRejected, PreparedFrame
from .worker import SyncThenPlanWorker

THROTTLE_S = 5.0


class TfLookup:
    """cloud frame -> base frame through tf2 (where tf2_ros is installed); a failed lookup skips the frame
    (`tf_unavailable`), never falls back to the parameters. Lookups in the first `startup_wait_s` after start-up
    wait for the transform (/tf_static may arrive after the first cloud).
    """

    def __init__(self, node: Node, base_frame: str, startup_wait_s: float):
        import tf2_ros  # only on a full ROS install

        self._base_frame = base_frame
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)
        self._startup_deadline = time.monotonic() + startup_wait_s

    def __call__(self, frame: str, stamp_ns: int) -> np.ndarray:
        wait = Duration(seconds=max(0.0, self._startup_deadline - time.monotonic()))
        try:
            tf = self._buffer.lookup_transform(self._base_frame, frame, Time(nanoseconds=stamp_ns), timeout=wait)
            return transform_to_matrix(tf.transform)
        except Exception as error:  # tf2 raises several lookup/extrapolation types; a bad quaternion too
            raise FrameSkipped("tf_unavailable", f"TF {frame} -> {self._base_frame}: {error}") from error


class DiffusionDriveNode(Node):
    def __init__(self, **kwargs):
        # every override is declared as given, so declare_node_parameters checks its type and spots unknown names
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **kwargs)
        self.worker: SyncThenPlanWorker | None = None  # until it starts, so destroying a half-built node works
        p = declare_node_parameters(self)
        config = pipeline_config(p)
        self.stale_timeout_s = p["stale_timeout_s"]
        planner = planner_from_parameters(p)
        warm_up = planner.warm_up()  # the first real frame then runs at full speed (compiled, graphs captured)
        self.pipeline = FramePipeline(planner, config, self._tf_lookup(p["use_tf"], config.base_frame))
        self.get_logger().info(f"DiffusionDrive ready: {planner.describe()}; warm-up {len(warm_up)} frame(s): "
                               f"{', '.join(f'{t * 1e3:.0f}' for t in warm_up)} ms")

        self.monitor = InputMonitor(planner_inputs(config.sync))
        self.health = PlanningHealth(p["latency_warn_s"], p["min_planning_rate_hz"])
        self.clouds_received = 0
        self._last_warning: dict = {}
        self._aspect_notes: dict[str, str] = {}

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
        self.command_input = CommandInput(self, "~/input/command", self._on_command)

        self.clock_watch = ClockWatch()
        self.future_stamp_tolerance_s = p["future_stamp_tolerance_s"]
        self.pipelined = pipelined(p, planner)
        self.worker = SyncThenPlanWorker(self._prepare, self._plan,
                                         lambda error: self._warn("worker", f"planning thread error: {error!r}"),
                                         self._drop)
        self.diagnostics_timer = self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        self.live_parameters = LiveParameters(self, p, pipeline_config, self._apply_live_parameters)

    def _apply_live_parameters(self, p: dict) -> None:
        """Make changed live parameters take effect (LiveParameters has checked them with pipeline_config)."""
        config = pipeline_config(p)
        self.pipeline.config = config
        self.pipeline.sync.config = config.sync
        self.stale_timeout_s = p["stale_timeout_s"]
        self.health.latency_warn_s, self.health.min_planning_rate_hz = p["latency_warn_s"], p["min_planning_rate_hz"]
        self.diagnostics_timer.timer_period_ns = round(p["diagnostics_period_s"] * 1e9)

    def _tf_lookup(self, use_tf: bool, base_frame: str):
        if not use_tf:
            return None
        try:
            return TfLookup(self, base_frame, self.get_parameter("tf_startup_wait_s").value)
        except ImportError:
            self.get_logger().info("tf2_ros is not installed: the LiDAR pose comes from the lidar_extrinsic parameters")
            return None

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _checked_now_ns(self) -> int:
        """The node clock; after a backward jump (a looped bag with /clock) all time-keyed state is forgotten,
        logged once."""
        now_ns, jump_ns = self.clock_watch.read(self._now_ns)
        if jump_ns:
            self.pipeline.reset()
            self.monitor.reset()
            self.health.reset()
            self.get_logger().warning(f"clock jumped back by {jump_ns / 1e9:.3f} s: input buffers, acceleration "
                                      "history and rate statistics reset")
        return now_ns

    def _admit(self, name: str, msg) -> bool:
        """Record an input message and say whether it may be used: not stamped ahead of the clock (beyond
        future_stamp_tolerance_s) and, for images and clouds, not over max_message_mb (checked before any copy).
        A rejected message is reported on its input in /diagnostics and logged (throttled per input and reason).
        """
        now = self._checked_now_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            check_stamp_not_future(name, stamp, now, self.future_stamp_tolerance_s)
            if name not in ("odometry", "imu"):
                self.pipeline.check_size(name, msg)
        except FrameSkipped as skip:
            self.monitor.reject(name, f"rejected: {skip}")
            self._warn(f"{name}_{skip.reason}", f"~/input/{name}: message rejected: {skip}")
            if name == "pointcloud":
                self.pipeline.stats.count_skipped(skip)
            return False
        self.monitor.record(name, stamp, now)
        return True

    def _on_camera(self, index: int, name: str, msg) -> None:
        if self._admit(name, msg):
            self.pipeline.sync.add_camera(index, msg)

    def _on_odometry(self, msg: Odometry) -> None:
        if self._admit("odometry", msg):
            self.pipeline.sync.add_odometry(msg)

    def _on_imu(self, msg: Imu) -> None:
        if self._admit("imu", msg):
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
        received = time.monotonic()
        self.clouds_received += 1
        if self._admit("pointcloud", msg):
            self.pipeline.sync.add_cloud(msg)  # for the LiDAR history of later frames, planned or not
            self.worker.submit((msg, received))

    def _drop(self, item) -> None:
        """A frame replaced by a newer one before it was planned: counted, its feature buffers handed back."""
        self.pipeline.stats.count_dropped()
        if isinstance(item[0], PreparedFrame):
            item[0].release()

    def _warn_skip(self, skip: FrameSkipped) -> None:
        self._warn(re.sub(r"[-+.0-9]+", "#", str(skip)), f"frame skipped: {skip}")  # per kind of problem

    def _prepare(self, item: tuple[PointCloud2, float]) -> tuple[PreparedFrame | FrameInputs, float] | None:
        """Sync thread: give the cloud's camera/odometry messages, possibly still in flight, up to sync_wait_s to
        arrive and pair them with it; when pipelined, decode them and build the model inputs too (while the planning
        thread runs the model on the frame before). None when the frame is skipped."""
        cloud, received = item
        stamp, deadline = stamp_to_ns(cloud.header.stamp), time.monotonic() + self.pipeline.config.sync.sync_wait_s
        while not self.pipeline.sync.is_complete(stamp) and time.monotonic() < deadline:
            time.sleep(0.002)
        try:
            # Checked again: if the clock jumped back while this cloud waited, it belongs to the old timeline and
            # must not set the cloud order of the new one.
            check_stamp_not_future("pointcloud", stamp, self._checked_now_ns(), self.future_stamp_tolerance_s)
        except FrameSkipped as skip:
            self.pipeline.stats.count_skipped(skip)
            self._warn_skip(skip)
            return None
        try:
            inputs = self.pipeline.assemble(cloud)
            return (self.pipeline.prepare(inputs) if self.pipelined else inputs), received
        except FrameSkipped as skip:
            self._warn_skip(skip)
        except Exception as error:  # a decoding or feature failure must not kill the node; reported as ERROR
            self._count_failure(error)
        return None

    def _count_failure(self, error: Exception) -> None:
        self.pipeline.stats.count_error(f"{type(error).__name__}: {error}")
        self._warn("planner_error", f"planning failed: {type(error).__name__}: {error}")

    def _plan(self, item: tuple[PreparedFrame | FrameInputs, float]) -> None:
        """Planning thread: (decode and build the model inputs unless pipelined,) run the model, publish, and time
        the frame end to end (from cloud receipt and cloud stamp)."""
        frame, received = item
        try:
            prepared = frame if self.pipelined else self.pipeline.prepare(frame)
            planned = self.pipeline.infer(prepared)
        except FrameSkipped as skip:
            self._warn_skip(skip)
            return
        except PlanRejected as rejected:  # counted once as failed by the pipeline; never published
            self._warn(f"rejected_{rejected.reason}", f"model output not published: {rejected}")
            return
        except Exception as error:  # a planner failure must not kill the node; it is reported as ERROR
            self._count_failure(error)
            return
        for name, note in planned.forced_aspects.items():
            if self._aspect_notes.get(name) != note:  # once per camera and image size
                self._aspect_notes[name] = note
                self.get_logger().warning(f"~/input/{name}: aspect ratio forced: {note}")
        for fallback in planned.inputs.fallbacks:
            self._warn(f"fallback_{fallback.input}", f"planning with a fallback: {fallback.input}: {fallback.message}")
        publish_start = time.monotonic()
        try:
            self.path_pub.publish(planned.path)
            self.markers_pub.publish(planned.markers)
        except Exception as error:  # at shutdown the context goes away under the worker; otherwise report it
            if self.context.ok():
                self._warn("publish", f"publishing failed: {error}")
            return
        published = time.monotonic()
        self.pipeline.stats.record_latencies(publish=published - publish_start,
                                             end_to_end_from_receipt=published - received,
                                             end_to_end_from_stamp=(self._now_ns() - planned.inputs.stamp_ns) / 1e9)

    def _publish_diagnostics(self) -> None:
        now = self._checked_now_ns()
        prefix = self.get_fully_qualified_name()
        hardware = str(self.pipeline.planner.device)
        statuses = input_statuses(self.monitor, now, self.stale_timeout_s, prefix, hardware,
                                  {"command": self.command_input.publisher_count()})
        statuses.append(self.health.status(self.pipeline.stats, self.clouds_received, self.pipeline.planner.describe(),
                                           prefix, hardware, now, seeded=self.pipeline.planner.seeded))
        self.diag_pub.publish(diagnostic_array(now, statuses))

    def destroy_node(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        super().destroy_node()


def add_arguments(parser) -> None:
    parser.usage = "diffusiondrive-ros node [-h] [--ros-args -p NAME:=VALUE --params-file FILE -r FROM:=TO ...]"
    parser.set_defaults(passes_ros_args=True)


def run(args) -> int:
    return main([sys.argv[0], *args.ros_args])


def main(args: list[str] | None = None) -> int:
    try:
        rclpy.init(args=args)
        node = DiffusionDriveNode()
    except KeyboardInterrupt:  # Ctrl-C while the model loads: a normal stop
        rclpy.try_shutdown()
        return 0
    except (ValueError, RuntimeError, OSError, ParameterException) as error:
        # start-up errors (parameters, checkpoint, device, ROS arguments) name their cause; shutting the context
        # down destroys the half-built node
        print(f"{NODE_NAME}: cannot start: {' '.join(str(error).split())}", file=sys.stderr)  # one line
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
