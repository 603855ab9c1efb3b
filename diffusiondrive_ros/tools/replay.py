"""Replay a rosbag2 through the planner offline: bag in -> bag out (inputs + Path, MarkerArray, diagnostics).

Uses the live node's synchronisation, conversion and planning code (`FramePipeline`) and parameters, so a bag
replayed here gives the Paths the node publishes for the same messages.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..planner import BACKENDS, Planner
from ..ros.conversions import ConversionError, stamp_to_ns
from ..ros.diagnostics import InputMonitor, PlanningHealth, diagnostic_array, input_statuses, planner_inputs
from ..ros.frame_sync import CAMERA_NAMES, FrameInputs, FrameSkipped
from ..ros.params import load_params_file, pipeline_config, planner_from_parameters
from ..ros.pipeline import FramePipeline, PipelineConfig, PlanRejected
from . import topics
from .bag_io import TF_STATIC_TYPE, BagMessage, BagWriter, StaticTransforms, read_bag

CAMERA_TYPES = {"sensor_msgs/msg/Image": "raw", "sensor_msgs/msg/CompressedImage": "compressed"}


@dataclass(frozen=True)
class ReplayTopics:
    """Input topics read from the bag and output topics written (defaults: the synthetic drive / launch file)."""

    camera_left: str = topics.TOPIC_CAMERA_IMAGE["left"]
    camera_front: str = topics.TOPIC_CAMERA_IMAGE["front"]
    camera_right: str = topics.TOPIC_CAMERA_IMAGE["right"]
    pointcloud: str = topics.TOPIC_LIDAR
    odometry: str = topics.TOPIC_ODOMETRY
    imu: str = topics.TOPIC_IMU
    command: str = topics.TOPIC_COMMAND
    tf_static: str = topics.TOPIC_TF_STATIC
    path: str = topics.TOPIC_PATH
    candidates: str = topics.TOPIC_CANDIDATES
    diagnostics: str = topics.TOPIC_DIAGNOSTICS


@dataclass
class FrameRecord:
    stamp_ns: int
    command: int
    best_index: int
    scores: list[float]
    best: list[list[float]]  # (P, 3) x, y, heading of the best mode
    model_time_s: float
    stage_times_s: dict[str, float] = field(default_factory=dict)
    """decode, features, model, publish (bag write) and end_to_end_from_receipt (frame ready -> written)."""


@dataclass
class FailedRecord:
    """A frame whose model output was rejected (NaN, unreachable poses): nothing was written for it."""

    stamp_ns: int
    reason: str
    detail: str


@dataclass
class ReplaySummary:
    output: Path
    clouds: int = 0
    planned: list[FrameRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    model_time: dict[str, float] = field(default_factory=dict)
    failed: list[FailedRecord] = field(default_factory=list)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    """Stage -> percentiles in seconds (PipelineStats.latency_percentiles)."""
    fallbacks: Counter = field(default_factory=Counter)
    """Input -> frames planned with a fallback for it (docs/degradation.md)."""
    forced_aspects: dict[str, str] = field(default_factory=dict)
    """Camera -> how its picture was stretched to the rig's aspect ratio (cameras that are not 16:9)."""

    def format(self) -> str:
        lines = [f"replayed {self.clouds} point clouds -> {len(self.planned)} planned, "
                 f"{sum(self.skipped.values())} skipped, {len(self.failed)} failed; output bag {self.output}"]
        lines += [f"  skipped {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        failures = Counter(record.reason for record in self.failed)
        lines += [f"  failed {reason}: {count}" for reason, count in sorted(failures.items())]
        lines += [f"  planned with a fallback for {name}: {count}" for name, count in sorted(self.fallbacks.items())]
        lines += [f"  {name} aspect ratio forced: {note}" for name, note in sorted(self.forced_aspects.items())]
        for stage, times in self.latency.items():
            lines.append(f"  {stage} " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items()))
        return "\n".join(lines)


def camera_transport(bag_topics: dict[str, str], topics: ReplayTopics) -> str:
    """Raw or compressed from the camera topics' message types; all three must agree."""
    kinds = {CAMERA_TYPES.get(bag_topics.get(getattr(topics, n), ""), "missing") for n in CAMERA_NAMES}
    if len(kinds) != 1 or "missing" in kinds:
        found = {getattr(topics, n): bag_topics.get(getattr(topics, n), "missing") for n in CAMERA_NAMES}
        raise ValueError(f"camera topics must all be Image or all CompressedImage in the bag, found {found}")
    return kinds.pop()


@dataclass(frozen=True)
class SyncedFrame:
    """A cloud with the inputs the node's synchroniser assembled for it, and the bag record that carried it."""

    message: BagMessage
    inputs: FrameInputs
    command_received: bool
    """False when `inputs.command` is the default command because no valid command message had arrived yet."""


class BagFrames:
    """Bag messages in log-time order -> synchronised frames, exactly as the node forms them.

    Feeds a FramePipeline's synchroniser (tf_static gives the cloud -> base transform), keeps every `every`-th
    cloud until its inputs are in (or `sync_wait_s` of bag time has passed) and assembles it. Replay plans the
    frames and the dataset builder turns them into training samples, so both see the node's frames. Frames that
    cannot be assembled and messages that cannot be decoded are counted in `pipeline.stats.skipped`.
    """

    def __init__(self, pipeline: FramePipeline, topics: ReplayTopics, every: int = 1,
                 monitor: InputMonitor | None = None):
        self.pipeline, self.topics, self.every, self.monitor = pipeline, topics, every, monitor
        self.static = StaticTransforms()
        pipeline.transform_lookup = lambda frame, stamp: self.static.lookup(pipeline.config.base_frame, frame)
        self.pending: list[tuple[BagMessage, object]] = []
        self.clouds = 0
        self.camera_index = {getattr(topics, n): i for i, n in enumerate(CAMERA_NAMES)}

    def feed(self, message: BagMessage) -> list[SyncedFrame]:
        """Take one message; returns the frames it completed, oldest first."""
        topic, sync = message.topic, self.pipeline.sync
        try:
            if topic == self.topics.tf_static and message.msgtype == TF_STATIC_TYPE:
                self.static.add_raw(message.raw)
            elif topic in self.camera_index:
                index = self.camera_index[topic]
                sync.add_camera(index, self._record(CAMERA_NAMES[index], message))
            elif topic == self.topics.odometry:
                sync.add_odometry(self._record("odometry", message))
            elif topic == self.topics.imu:
                sync.add_imu(self._record("imu", message))
            elif topic == self.topics.command:
                sync.set_command(message.decode().data)
                if self.monitor:
                    self.monitor.record("command", message.timestamp_ns, message.timestamp_ns)
            elif topic == self.topics.pointcloud:
                cloud = self._record("pointcloud", message)
                sync.add_cloud(cloud)  # every cloud, for the LiDAR history of the frames kept
                if self.clouds % self.every == 0:
                    self.pending.append((message, cloud))
                self.clouds += 1
        # rclpy raises RMWError, a RuntimeError, for bytes that are not the CDR of the topic's message type.
        except (ConversionError, RuntimeError) as error:
            self.pipeline.stats.count_skipped(FrameSkipped("bad_message", f"{topic}: {error}"))
        return self._ready(message.timestamp_ns)

    def finish(self, end_ns: int) -> list[SyncedFrame]:
        """The frames still waiting at the end of the bag."""
        return self._ready(end_ns, flush=True)

    def read(self, bag: Path, progress: bool = False) -> Iterator[SyncedFrame]:
        """Every frame of a whole bag, oldest first: each message fed in log-time order, then the bag finished."""
        _, count, messages = read_bag(bag)
        last_ns = 0
        for message in tqdm(messages, total=count, desc=Path(bag).name, unit="msg", disable=not progress,
                            leave=False, file=sys.stderr):
            yield from self.feed(message)
            last_ns = message.timestamp_ns
        yield from self.finish(last_ns)

    def _record(self, name: str, message: BagMessage):
        msg = message.decode()
        if self.monitor:
            self.monitor.record(name, stamp_to_ns(msg.header.stamp), message.timestamp_ns)
        return msg

    def _ready(self, now_ns: int, flush: bool = False) -> list[SyncedFrame]:
        wait_ns = int(self.pipeline.config.sync.sync_wait_s * 1e9)
        frames = []
        while self.pending:
            message, cloud = self.pending[0]
            stamp = stamp_to_ns(cloud.header.stamp)
            if not (flush or self.pipeline.sync.is_complete(stamp) or now_ns - message.timestamp_ns > wait_ns):
                break
            self.pending.pop(0)
            try:
                inputs = self.pipeline.assemble(cloud)
            except FrameSkipped:  # counted by the pipeline
                continue
            frames.append(SyncedFrame(message, inputs, self.pipeline.sync.command is not None))
        return frames


class BagReplayer:
    """Plans each frame of BagFrames and writes the inputs, Paths, markers and diagnostics to the output bag."""

    def __init__(self, pipeline: FramePipeline, topics: ReplayTopics, writer: BagWriter, every: int = 1):
        self.pipeline, self.topics, self.writer = pipeline, topics, writer
        self.monitor = InputMonitor(planner_inputs(pipeline.config.sync))
        self.frames = BagFrames(pipeline, topics, every, self.monitor)
        self.records: list[FrameRecord] = []
        self.failures: list[FailedRecord] = []
        self.health = PlanningHealth(latency_warn_s=float("inf"))
        self.next_diagnostics_ns: int | None = None

    @property
    def clouds(self) -> int:
        """Point clouds read so far."""
        return self.frames.clouds

    def feed(self, message: BagMessage) -> None:
        self.writer.write_raw(message.topic, message.msgtype, message.timestamp_ns, message.raw)
        for frame in self.frames.feed(message):
            self._plan(frame)
        self._diagnostics(message.timestamp_ns)

    def _plan(self, frame: SyncedFrame) -> None:
        ready = time.perf_counter()
        try:
            planned = self.pipeline.plan(frame.inputs)
        except FrameSkipped:  # counted by the pipeline
            return
        except PlanRejected as rejected:  # counted by the pipeline as failed; recorded, nothing written
            self.failures.append(FailedRecord(frame.inputs.stamp_ns, rejected.reason, rejected.detail))
            return
        timestamp_ns = frame.message.timestamp_ns
        write_start = time.perf_counter()
        self.writer.write(self.topics.path, timestamp_ns, planned.path)
        self.writer.write(self.topics.candidates, timestamp_ns, planned.markers)
        written = time.perf_counter()
        times = {"publish": written - write_start, "end_to_end_from_receipt": written - ready}
        self.pipeline.stats.record_latencies(**times)
        result = planned.result
        self.records.append(FrameRecord(planned.inputs.stamp_ns, planned.inputs.command, result.best_index,
                                        result.scores.tolist(), result.best.tolist(), result.latency_s,
                                        planned.stage_times_s | times))

    def _diagnostics(self, now_ns: int, force: bool = False) -> None:
        """DiagnosticArray once per second of bag time (and at the end), as the node's timer would."""
        if self.next_diagnostics_ns is None:
            self.next_diagnostics_ns = now_ns + 10**9
        if now_ns < self.next_diagnostics_ns and not force:
            return
        self.next_diagnostics_ns += 10**9
        prefix, hardware = "/diffusiondrive_replay", str(self.pipeline.planner.device)
        statuses = input_statuses(self.monitor, now_ns, 0.5, prefix, hardware)
        statuses.append(self.health.status(self.pipeline.stats, self.clouds, self.pipeline.planner.describe(), prefix,
                                           hardware, now_ns, seeded=self.pipeline.planner.seeded))
        self.writer.write(self.topics.diagnostics, now_ns, diagnostic_array(now_ns, statuses))

    def finish(self, end_ns: int) -> None:
        for frame in self.frames.finish(end_ns):
            self._plan(frame)
        self._diagnostics(end_ns, force=True)


def replay_bag(
    input_bag: Path,
    output_bag: Path,
    planner: Planner,
    config: PipelineConfig = PipelineConfig(),
    topics: ReplayTopics = ReplayTopics(),
    storage: str = "mcap",
    every: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> ReplaySummary:
    """Plan every `every`-th cloud of `input_bag` and write inputs + outputs to `output_bag`."""
    input_bag, output_bag = Path(input_bag), Path(output_bag)
    if output_bag.exists():
        if not overwrite:
            raise FileExistsError(f"{output_bag} exists (use overwrite)")
        shutil.rmtree(output_bag)
    bag_topics, count, messages = read_bag(input_bag)
    config = dataclasses.replace(config, camera_transport=camera_transport(bag_topics, topics))
    pipeline = FramePipeline(planner, config)
    last_ns = 0
    with BagWriter(output_bag, storage) as writer:
        replayer = BagReplayer(pipeline, topics, writer, every)
        for message in tqdm(messages, total=count, desc="replay", unit="msg", disable=not progress, file=sys.stderr):
            replayer.feed(message)
            last_ns = message.timestamp_ns
        replayer.finish(last_ns)
    return ReplaySummary(output_bag, replayer.clouds, replayer.records, Counter(pipeline.stats.skipped),
                         pipeline.stats.model_time_percentiles(), replayer.failures,
                         pipeline.stats.latency_percentiles(), Counter(pipeline.stats.fallbacks),
                         dict(pipeline.stats.forced_aspects))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("output", type=Path, help="output rosbag2 directory (must not exist unless --overwrite)")
    parser.add_argument("--params-file", type=Path, help="the node's ROS params file (same parameters as the node)")
    parser.add_argument("--checkpoint", help="override the params file's checkpoint")
    parser.add_argument("--device", help="override the device (auto, cpu, cuda)")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--noise-scale", type=float,
                        help="override the factor on the anchor noise (1 = the paper's; default: the checkpoint's)")
    parser.add_argument("--backend", choices=BACKENDS, help="override the backend (torch, onnxruntime)")
    parser.add_argument("--every", type=int, default=1, help="plan every N-th point cloud (default: all)")
    parser.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME=TOPIC",
                        help=f"topic mapping, NAME one of {[f.name for f in dataclasses.fields(ReplayTopics)]}")


def parse_topics(pairs: list[str]) -> ReplayTopics:
    names = {f.name for f in dataclasses.fields(ReplayTopics)}
    mapping = dict(pair.split("=", 1) for pair in pairs)
    unknown = set(mapping) - names
    if unknown:
        raise ValueError(f"unknown topic names {sorted(unknown)}; known: {sorted(names)}")
    return ReplayTopics(**mapping)


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("checkpoint", args.checkpoint), ("device", args.device), ("seed", args.seed),
                                   ("backend", args.backend), ("noise_scale", args.noise_scale))
                 if v is not None}
    params = load_params_file(args.params_file, overrides)
    planner = planner_from_parameters(params)
    print(f"planner: {planner.describe()}")
    summary = replay_bag(args.input, args.output, planner, pipeline_config(params), parse_topics(args.topic),
                         args.storage, args.every, args.overwrite)
    print(summary.format())
    return 0
