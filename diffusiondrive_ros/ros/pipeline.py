"""One frame from messages to published outputs: decode, transform to the ego frame, plan, build Path/markers.

The live node and offline replay both run this, so a bag replayed offline gives the node's exact outputs.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from nav_msgs.msg import Path
from visualization_msgs.msg import MarkerArray

from ..geometry import Extrinsic, transform_points
from ..planner import Planner, PlanResult, frame_generator
from .conversions import ConversionError, compressed_to_rgb, image_to_rgb, pointcloud2_to_points
from .frame_sync import CAMERA_NAMES, FrameInputs, FrameSkipped, InputSynchronizer, SyncConfig
from .markers import modes_to_markers, trajectory_to_path

CAMERA_TRANSPORTS = ("raw", "compressed")
# (frame_id, stamp_ns) -> 4x4 pose of that frame in the base frame, or None when unknown.
TransformLookup = Callable[[str, int], np.ndarray | None]


@dataclass(frozen=True)
class PipelineConfig:
    base_frame: str = "base_link"
    camera_transport: str = "raw"
    seed: int = 0
    path_prefix_current_pose: bool = False
    lidar_extrinsic: Extrinsic = Extrinsic()
    sync: SyncConfig = SyncConfig()

    def __post_init__(self) -> None:
        if self.camera_transport not in CAMERA_TRANSPORTS:
            raise ValueError(f"camera_transport must be one of {CAMERA_TRANSPORTS}, got {self.camera_transport!r}")


@dataclass
class PlannedFrame:
    inputs: FrameInputs
    result: PlanResult
    path: Path
    markers: MarkerArray


@dataclass
class PipelineStats:
    """Counters the diagnostics report; thread-safe because the node updates them from two threads."""

    planned: int = 0
    failed: int = 0
    dropped_busy: int = 0
    skipped: Counter = field(default_factory=Counter)
    last_skip: str = ""
    last_error: str = ""
    last_outcome: str = ""
    model_times_s: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_planned(self, model_time_s: float) -> None:
        with self.lock:
            self.planned += 1
            self.model_times_s.append(model_time_s)
            self.last_outcome = "planned"

    def count_skipped(self, skip: FrameSkipped) -> None:
        with self.lock:
            self.skipped[skip.reason] += 1
            self.last_skip = str(skip)
            self.last_outcome = "skipped"

    def count_dropped(self) -> None:
        with self.lock:
            self.dropped_busy += 1

    def count_error(self, message: str) -> None:
        with self.lock:
            self.failed += 1
            self.last_error = message
            self.last_outcome = "error"

    def model_time_percentiles(self) -> dict[str, float]:
        """Percentiles of the planner's model time (features excluded) over the last 200 frames."""
        with self.lock:
            values = np.asarray(self.model_times_s)
        if not len(values):
            return {}
        return {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99)} | {"max": float(values.max())}


class FramePipeline:
    """Synchronise, decode and plan frames with one planner; without one (None) it only synchronises and decodes."""

    def __init__(self, planner: Planner | None, config: PipelineConfig = PipelineConfig(),
                 transform_lookup: TransformLookup | None = None):
        self.planner = planner
        self.config = config
        self.transform_lookup = transform_lookup
        self.sync = InputSynchronizer(config.sync)
        self.stats = PipelineStats()

    def _cameras(self, inputs: FrameInputs) -> tuple[np.ndarray, ...]:
        decode = image_to_rgb if self.config.camera_transport == "raw" else compressed_to_rgb
        images = []
        for name, msg in zip(CAMERA_NAMES, inputs.cameras):
            try:
                images.append(decode(msg))
            except ConversionError as error:
                raise FrameSkipped(f"bad_{name}", f"{name}: {error}") from error
        return tuple(images)

    def cloud_to_base(self, inputs: FrameInputs) -> np.ndarray:
        """Finite cloud points (N, 3) in the base frame."""
        cloud = inputs.cloud
        try:
            points, dropped = pointcloud2_to_points(cloud)
        except ConversionError as error:
            raise FrameSkipped("bad_pointcloud", f"pointcloud: {error}") from error
        if not len(points):
            raise FrameSkipped("empty_pointcloud", f"pointcloud: no finite points ({dropped} dropped)")
        frame = cloud.header.frame_id
        if not frame:
            raise FrameSkipped("bad_pointcloud", "pointcloud: empty header.frame_id, cannot place it in the ego frame")
        if frame == self.config.base_frame:
            return points
        matrix = self.transform_lookup(frame, inputs.stamp_ns) if self.transform_lookup else None
        return transform_points(points, self.config.lidar_extrinsic.matrix() if matrix is None else matrix)

    def decode(self, inputs: FrameInputs) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """(left, front, right) RGB images and the cloud's points in the base frame; FrameSkipped (counted) if bad."""
        try:
            return self._cameras(inputs), self.cloud_to_base(inputs)
        except FrameSkipped as skip:
            self.stats.count_skipped(skip)
            raise

    def plan(self, inputs: FrameInputs) -> PlannedFrame:
        """Decode and plan one frame; raises FrameSkipped for bad inputs (counted in the stats)."""
        cameras, points = self.decode(inputs)
        try:
            result = self.planner.plan(
                cameras, points, inputs.velocity, inputs.acceleration, inputs.command,
                generator=frame_generator(self.config.seed, inputs.stamp_ns),
            )
        except ValueError as error:  # feature builders reject e.g. images too small for the crop
            skip = FrameSkipped("bad_input", str(error))
            self.stats.count_skipped(skip)
            raise skip from error
        self.stats.count_planned(result.latency_s)
        stamp, frame = inputs.cloud.header.stamp, self.config.base_frame
        return PlannedFrame(
            inputs=inputs,
            result=result,
            path=trajectory_to_path(result.best, stamp, frame, self.config.path_prefix_current_pose),
            markers=modes_to_markers(result.modes, result.scores, result.best_index, stamp, frame),
        )

    def assemble(self, cloud) -> FrameInputs:
        """Synchronise a new cloud with the buffered inputs; skips are counted."""
        try:
            return self.sync.assemble(cloud)
        except FrameSkipped as skip:
            self.stats.count_skipped(skip)
            raise
