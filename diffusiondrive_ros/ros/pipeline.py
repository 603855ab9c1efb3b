"""One frame from messages to published outputs: decode, transform to the ego frame, plan, check, build Path/markers.

The live node and offline replay both run this, so a bag replayed offline gives the node's exact outputs.
Nothing wrong is ever turned into an output: a cloud without its transform is skipped, an oversized message is
refused before it is copied, and model output that is not finite or not reachable is rejected (`PlanRejected`).
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from nav_msgs.msg import Path
from visualization_msgs.msg import MarkerArray

from ..geometry import Extrinsic, transform_points
from ..planner import ModelInputs, Planner, PlanResult, frame_generator
from .conversions import ConversionError, compressed_to_rgb, image_to_rgb, pointcloud2_to_points
from .frame_sync import CAMERA_NAMES, Fallback, FrameInputs, FrameSkipped, InputSynchronizer, PastSweep, SyncConfig
from .markers import modes_to_markers, trajectory_to_path
from .message_size import oversize
from .path_frame import odometry_matrix_at, path_in_odometry_frame
from .sweep_cache import SweepCache

CAMERA_TRANSPORTS = ("raw", "compressed")
LATENCY_STAGES = ("decode", "features", "model", "publish", "end_to_end_from_receipt", "end_to_end_from_stamp")
"""Stages timed per planned frame; the end-to-end ones run from cloud receipt / cloud stamp to publish."""
# (frame_id, stamp_ns) -> 4x4 pose of that frame in the base frame; None (or FrameSkipped) when unknown.
TransformLookup = Callable[[str, int], np.ndarray | None]


@dataclass(frozen=True)
class PipelineConfig:
    base_frame: str = "base_link"
    camera_transport: str = "raw"
    seed: int = 0
    path_prefix_current_pose: bool = False
    lidar_extrinsic: Extrinsic = Extrinsic()
    sync: SyncConfig = SyncConfig()
    use_tf: bool = True
    """With a transform lookup, a cloud outside base_frame whose transform is unknown is skipped; without one
    (use_tf false, or no tf2), lidar_extrinsic places it."""
    max_message_bytes: int = 64 * 2**20
    """Largest image or cloud payload accepted (declared by its size fields or carried)."""
    max_plan_distance_m: float = 300.0
    """Poses farther than this from the ego are not reachable in the plan's horizon: the output is rejected."""
    path_in_odometry_frame: bool = False
    """Publish the Path in the odometry frame (the matched odometry's pose at the cloud stamp) instead of
    base_frame."""

    def __post_init__(self) -> None:
        if self.camera_transport not in CAMERA_TRANSPORTS:
            raise ValueError(f"camera_transport must be one of {CAMERA_TRANSPORTS}, got {self.camera_transport!r}")
        if self.max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, got {self.max_message_bytes}")
        if not self.max_plan_distance_m > 0:
            raise ValueError(f"max_plan_distance_m must be positive, got {self.max_plan_distance_m}")


class PlanRejected(Exception):
    """Model output that must not be published; `reason` is a short key for counting, the message says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_plan(result: PlanResult, max_distance_m: float) -> None:
    """PlanRejected unless every mode and score is finite and every pose within `max_distance_m` of the ego."""
    modes, scores = np.asarray(result.modes), np.asarray(result.scores)
    if not (np.isfinite(modes).all() and np.isfinite(scores).all()):
        bad = int(np.count_nonzero(~np.isfinite(modes).all(axis=(-2, -1)) | ~np.isfinite(scores)))
        raise PlanRejected("non_finite_output", f"{bad} of {len(scores)} modes have NaN/Inf poses or scores")
    if not 0 <= result.best_index < len(modes):
        raise PlanRejected("bad_output", f"best index {result.best_index} outside 0..{len(modes) - 1}")
    farthest = float(np.hypot(modes[..., 0], modes[..., 1]).max())
    if farthest > max_distance_m:
        raise PlanRejected("unreachable_output", f"a pose {farthest:.1f} m from the ego exceeds max_plan_distance_m "
                                                 f"{max_distance_m}")


@dataclass
class PreparedFrame:
    """A frame decoded and turned into model inputs, waiting for the model; `release()` if it is never planned."""

    inputs: FrameInputs
    model_inputs: ModelInputs
    stage_times_s: dict[str, float]
    """decode and features seconds of this frame."""
    forced_aspects: dict[str, str]

    def release(self) -> None:
        """Hand the feature buffers back to the planner (a frame dropped while it waited)."""
        self.model_inputs.release()


@dataclass
class PlannedFrame:
    inputs: FrameInputs
    result: PlanResult
    path: Path
    markers: MarkerArray
    stage_times_s: dict[str, float] = field(default_factory=dict)
    """decode, features and model seconds of this frame."""
    forced_aspects: dict[str, str] = field(default_factory=dict)
    """Camera -> how its picture was stretched to the rig's aspect ratio (cameras that are not 16:9)."""


@dataclass
class PipelineStats:
    """Counters the diagnostics report; thread-safe because the node updates them from several threads.

    Every frame is counted once: planned, skipped (bad or missing input), failed (planner error or rejected
    output) or dropped while the planner was busy.
    """

    planned: int = 0
    failed: int = 0
    dropped_busy: int = 0
    skipped: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    fallbacks: Counter = field(default_factory=Counter)
    last_fallbacks: dict[str, str] = field(default_factory=dict)
    last_acceleration_source: str = ""
    forced_aspects: dict[str, str] = field(default_factory=dict)
    """Camera -> how its picture is stretched to the rig's aspect ratio, for cameras planned at another one."""
    last_skip: str = ""
    last_error: str = ""
    last_outcome: str = ""
    latencies_s: dict[str, deque[float]] = field(
        default_factory=lambda: {stage: deque(maxlen=200) for stage in LATENCY_STAGES})
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_planned(self, fallbacks: Iterable[Fallback] = (), acceleration_source: str = "",
                      forced_aspects: dict[str, str] | None = None) -> None:
        with self.lock:
            self.planned += 1
            self.forced_aspects.update(forced_aspects or {})
            self.last_fallbacks = {f.input: f.message for f in fallbacks}
            self.fallbacks.update(self.last_fallbacks.keys())
            self.last_acceleration_source = acceleration_source
            self.last_outcome = "planned"

    def record_latencies(self, **seconds: float) -> None:
        """Times of one frame's stages (names from LATENCY_STAGES)."""
        with self.lock:
            for stage, value in seconds.items():
                self.latencies_s[stage].append(value)

    def count_skipped(self, skip: FrameSkipped) -> None:
        with self.lock:
            self.skipped[skip.reason] += 1
            self.last_skip = str(skip)
            self.last_outcome = "skipped"

    def count_dropped(self) -> None:
        with self.lock:
            self.dropped_busy += 1

    def count_error(self, message: str, reason: str = "planner_error") -> None:
        with self.lock:
            self.failed += 1
            self.failures[reason] += 1
            self.last_error = message
            self.last_outcome = "error"

    def latency_percentiles(self) -> dict[str, dict[str, float]]:
        """Stage -> p50, p90, p99 and max seconds over its last 200 frames (stages never timed are left out)."""
        with self.lock:
            values = {stage: np.asarray(times) for stage, times in self.latencies_s.items() if times}
        return {stage: {f"p{q}": float(np.percentile(v, q)) for q in (50, 90, 99)} | {"max": float(v.max())}
                for stage, v in values.items()}

    def model_time_percentiles(self) -> dict[str, float]:
        """Percentiles of the planner's model time (features excluded) over the last 200 frames."""
        return self.latency_percentiles().get("model", {})


class FramePipeline:
    """Synchronise, decode and plan frames with one planner; without one (None) it only synchronises and decodes."""

    def __init__(self, planner: Planner | None, config: PipelineConfig = PipelineConfig(),
                 transform_lookup: TransformLookup | None = None):
        self.planner = planner
        self.config = config
        self.transform_lookup = transform_lookup
        history = planner.lidar_history_s if planner is not None else config.sync.lidar_history_s
        self.sync = InputSynchronizer(replace(config.sync, lidar_history_s=history))
        self.sweeps = SweepCache(self.sync.config.cloud_window_s if history else 0.0)
        self.stats = PipelineStats()

    def check_size(self, name: str, msg) -> None:
        """FrameSkipped('oversized_<name>') for an image or cloud over max_message_bytes, before any copy."""
        why = oversize(msg, self.config.max_message_bytes)
        if why:
            raise FrameSkipped(f"oversized_{name}", f"{name}: {why}")

    def _cameras(self, inputs: FrameInputs) -> tuple[np.ndarray, ...]:
        decode = image_to_rgb if self.config.camera_transport == "raw" else compressed_to_rgb
        images = []
        for name, msg in zip(CAMERA_NAMES, inputs.cameras):
            self.check_size(name, msg)
            try:
                images.append(decode(msg))
            except ConversionError as error:
                raise FrameSkipped(f"bad_{name}", f"{name}: {error}") from error
        return tuple(images)

    def _cloud_transform(self, frame: str, stamp_ns: int) -> np.ndarray:
        """4x4 cloud frame -> base frame: from the lookup when use_tf has one (skip when unknown), else the
        lidar_extrinsic parameters."""
        if not (self.config.use_tf and self.transform_lookup):
            return self.config.lidar_extrinsic.matrix()
        matrix = self.transform_lookup(frame, stamp_ns)
        if matrix is None:
            raise FrameSkipped("tf_unavailable", f"no transform {frame} -> {self.config.base_frame} at the cloud stamp "
                                                 "(use_tf is true; set it false to use lidar_extrinsic)")
        return matrix

    def cloud_to_base(self, inputs: FrameInputs) -> np.ndarray:
        """Finite cloud points (N, 3) in the base frame."""
        return self._points_in_base(inputs.cloud, inputs.stamp_ns)

    def _points_in_base(self, cloud, stamp_ns: int) -> np.ndarray:
        """`cloud_to_base` of any cloud (the current one or an earlier one of the LiDAR history), decoded once while
        the history may still need it."""
        points = self.sweeps.get(cloud, stamp_ns)
        if points is None:
            points = self._decode_cloud(cloud, stamp_ns)
            self.sweeps.put(cloud, stamp_ns, points)
        return points

    def _decode_cloud(self, cloud, stamp_ns: int) -> np.ndarray:
        self.check_size("pointcloud", cloud)
        frame = cloud.header.frame_id
        if not frame:
            raise FrameSkipped("bad_pointcloud", "pointcloud: empty header.frame_id, cannot place it in the ego frame")
        matrix = None if frame == self.config.base_frame else self._cloud_transform(frame, stamp_ns)
        try:
            points, dropped = pointcloud2_to_points(cloud)
        except ConversionError as error:
            raise FrameSkipped("bad_pointcloud", f"pointcloud: {error}") from error
        if not len(points):
            raise FrameSkipped("empty_pointcloud", f"pointcloud: no finite points ({dropped} dropped)")
        return points if matrix is None else transform_points(points, matrix)

    def decode(self, inputs: FrameInputs) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """(left, front, right) RGB images and the cloud's points in the base frame; FrameSkipped (counted) if bad."""
        try:
            return self._cameras(inputs), self.cloud_to_base(inputs)
        except FrameSkipped as skip:
            self.stats.count_skipped(skip)
            raise

    def decode_history(self, inputs: FrameInputs, points: np.ndarray) -> list[np.ndarray]:
        """The earlier sweeps of the LiDAR history, moved into the ego frame at the cloud stamp by odometry (the
        current `points` in place of a missing one); FrameSkipped (counted) when one cannot be decoded or placed."""
        try:
            return [points if past is None else self._earlier_sweep(inputs, past) for past in inputs.past_sweeps]
        except FrameSkipped as skip:
            self.stats.count_skipped(skip)
            raise

    def _earlier_sweep(self, inputs: FrameInputs, past: PastSweep) -> np.ndarray:
        ago = (inputs.stamp_ns - past.stamp_ns) / 1e9
        try:
            points = self._points_in_base(past.cloud, past.stamp_ns)
            now = odometry_matrix_at(inputs.odometry, inputs.stamp_ns)
            return transform_points(points, np.linalg.solve(now, odometry_matrix_at(past.odometry, past.stamp_ns)))
        except (FrameSkipped, ConversionError) as error:
            detail = error.detail if isinstance(error, FrameSkipped) else str(error)
            raise FrameSkipped("bad_lidar_history", f"the sweep {ago:.2f} s earlier: {detail}") from error

    def _outputs(self, inputs: FrameInputs, result: PlanResult) -> tuple[Path, MarkerArray]:
        """The Path (base or odometry frame) and markers of a checked result; PlanRejected when they cannot be
        built."""
        stamp, frame = inputs.cloud.header.stamp, self.config.base_frame
        try:
            path = trajectory_to_path(result.best, stamp, frame, self.config.path_prefix_current_pose)
            markers = modes_to_markers(result.modes, result.scores, result.best_index, stamp, frame)
            if self.config.path_in_odometry_frame:
                if inputs.odometry is None:
                    raise ConversionError("path_in_odometry_frame: the frame carries no odometry message")
                path = path_in_odometry_frame(path, inputs.odometry, inputs.stamp_ns)
        except ConversionError as error:
            raise PlanRejected("bad_output", str(error)) from error
        return path, markers

    def prepare(self, inputs: FrameInputs) -> PreparedFrame:
        """Decode a frame and build its model inputs (the first half of `plan`; it can run on another thread while
        the model plans an earlier frame). Raises FrameSkipped for bad inputs, counted once in the stats."""
        start = time.perf_counter()
        cameras, points = self.decode(inputs)
        past_points = self.decode_history(inputs, points)
        decoded = time.perf_counter()
        try:
            model_inputs = self.planner.build_inputs(cameras, points, inputs.velocity, inputs.acceleration,
                                                     inputs.command, past_points)
        except ValueError as error:  # feature builders reject e.g. images too small for the crop
            skip = FrameSkipped("bad_input", str(error))
            self.stats.count_skipped(skip)
            raise skip from error
        times = {"decode": decoded - start, "features": time.perf_counter() - decoded}
        return PreparedFrame(inputs, model_inputs, times, self._forced_aspects(cameras))

    def infer(self, prepared: PreparedFrame) -> PlannedFrame:
        """Plan a prepared frame and check the output (the second half of `plan`); its feature buffers are released.
        Raises PlanRejected for output that must not be published, counted once in the stats, as is a planned frame.
        """
        inputs = prepared.inputs
        try:
            result = self.planner.plan_inputs(prepared.model_inputs,
                                              generator=frame_generator(self.config.seed, inputs.stamp_ns))
        finally:
            prepared.release()
        try:
            check_plan(result, self.config.max_plan_distance_m)
            path, markers = self._outputs(inputs, result)
        except PlanRejected as rejected:
            self.stats.count_error(f"output rejected: {rejected}", rejected.reason)
            raise
        times = {**prepared.stage_times_s, "model": result.latency_s}
        self.stats.record_latencies(**times)
        self.stats.count_planned(inputs.fallbacks, inputs.acceleration_source, prepared.forced_aspects)
        return PlannedFrame(inputs=inputs, result=result, path=path, markers=markers, stage_times_s=times,
                            forced_aspects=prepared.forced_aspects)

    def plan(self, inputs: FrameInputs) -> PlannedFrame:
        """Decode, plan and check one frame: `infer(prepare(inputs))`. Raises FrameSkipped for bad inputs and
        PlanRejected for output that must not be published; either is counted once in the stats, as is a planned
        frame."""
        return self.infer(self.prepare(inputs))

    def _forced_aspects(self, cameras: tuple[np.ndarray, ...]) -> dict[str, str]:
        """Camera -> note, for each camera whose aspect ratio differs from the rig's (stretched, so said, not
        silent; no parameter can change a camera's aspect ratio, so it is a standing note, not a fallback)."""
        rig = self.planner.camera_config
        notes = ((name, rig.aspect_ratio_note(*image.shape[:2])) for name, image in zip(CAMERA_NAMES, cameras))
        return {name: note for name, note in notes if note}

    def assemble(self, cloud) -> FrameInputs:
        """Synchronise a new cloud with the buffered inputs; skips are counted."""
        try:
            return self.sync.assemble(cloud)
        except FrameSkipped as skip:
            self.stats.count_skipped(skip)
            raise

    def reset(self) -> None:
        """After a backward clock jump: forget buffered inputs, acceleration history, cloud order and decoded
        sweeps."""
        self.sync.reset()
        self.sweeps.clear()
