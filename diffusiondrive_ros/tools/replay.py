"""Replay a rosbag2 through the planner offline: bag in -> bag out (inputs + Path, MarkerArray, diagnostics).

Uses the live node's synchronisation, conversion and planning code (`FramePipeline`) and parameters, so a bag
replayed here gives the Paths the node publishes for the same messages.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from ..conversions import ConversionError, stamp_to_ns
from ..diagnostics import InputMonitor, PlanningHealth, diagnostic_array, input_statuses, planner_inputs
from ..frame_sync import CAMERA_NAMES, FrameSkipped
from ..params import load_params_file, pipeline_config, planner_from_parameters
from ..pipeline import FramePipeline, PipelineConfig
from ..planner import Planner
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
    scores: List[float]
    best: List[List[float]]  # (P, 3) x, y, heading of the best mode
    latency_s: float


@dataclass
class ReplaySummary:
    output: Path
    clouds: int = 0
    planned: List[FrameRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    latency: Dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"replayed {self.clouds} point clouds -> {len(self.planned)} planned, "
                 f"{sum(self.skipped.values())} skipped; output bag {self.output}"]
        lines += [f"  skipped {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        if self.latency:
            lines.append("  planning latency " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.latency.items()))
        return "\n".join(lines)


def camera_transport(bag_topics: Dict[str, str], topics: ReplayTopics) -> str:
    """raw or compressed from the camera topics' message types; all three must agree."""
    kinds = {CAMERA_TYPES.get(bag_topics.get(getattr(topics, n), ""), "missing") for n in CAMERA_NAMES}
    if len(kinds) != 1 or "missing" in kinds:
        found = {getattr(topics, n): bag_topics.get(getattr(topics, n), "missing") for n in CAMERA_NAMES}
        raise ValueError(f"camera topics must all be Image or all CompressedImage in the bag, found {found}")
    return kinds.pop()


class BagReplayer:
    """Feeds bag messages to a FramePipeline in log-time order, planning each cloud once its inputs are in."""

    def __init__(self, pipeline: FramePipeline, topics: ReplayTopics, writer: BagWriter, every: int = 1):
        self.pipeline, self.topics, self.writer, self.every = pipeline, topics, writer, every
        self.static = StaticTransforms()
        pipeline.transform_lookup = lambda frame, stamp: self.static.lookup(pipeline.config.base_frame, frame)
        self.pending: List[Tuple[BagMessage, object]] = []
        self.clouds = 0
        self.records: List[FrameRecord] = []
        self.monitor = InputMonitor(planner_inputs(pipeline.config.sync))
        self.health = PlanningHealth(latency_warn_s=float("inf"))
        self.next_diagnostics_ns: Optional[int] = None
        self.camera_index = {getattr(topics, n): i for i, n in enumerate(CAMERA_NAMES)}

    def feed(self, message: BagMessage) -> None:
        self.writer.write_raw(message.topic, message.msgtype, message.timestamp_ns, message.raw)
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
                self.monitor.record("command", message.timestamp_ns, message.timestamp_ns)
            elif topic == self.topics.pointcloud:
                cloud = self._record("pointcloud", message)
                if self.clouds % self.every == 0:
                    self.pending.append((message, cloud))
                self.clouds += 1
        except ConversionError as error:
            self.pipeline.stats.count_skipped(FrameSkipped("bad_message", f"{topic}: {error}"))
        self._plan_ready(message.timestamp_ns)
        self._diagnostics(message.timestamp_ns)

    def _record(self, name: str, message: BagMessage):
        msg = message.decode()
        self.monitor.record(name, stamp_to_ns(msg.header.stamp), message.timestamp_ns)
        return msg

    def _plan_ready(self, now_ns: int, flush: bool = False) -> None:
        wait_ns = int(self.pipeline.config.sync.sync_wait_s * 1e9)
        while self.pending:
            message, cloud = self.pending[0]
            stamp = stamp_to_ns(cloud.header.stamp)
            if not (flush or self.pipeline.sync.is_complete(stamp) or now_ns - message.timestamp_ns > wait_ns):
                return
            self.pending.pop(0)
            self._plan(message, cloud)

    def _plan(self, message: BagMessage, cloud) -> None:
        try:
            planned = self.pipeline.plan(self.pipeline.assemble(cloud))
        except FrameSkipped:
            return
        self.writer.write(self.topics.path, message.timestamp_ns, planned.path)
        self.writer.write(self.topics.candidates, message.timestamp_ns, planned.markers)
        result = planned.result
        self.records.append(FrameRecord(planned.inputs.stamp_ns, planned.inputs.command, result.best_index,
                                        result.scores.tolist(), result.best.tolist(), result.latency_s))

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
                                           hardware, now_ns))
        self.writer.write(self.topics.diagnostics, now_ns, diagnostic_array(now_ns, statuses))

    def finish(self, end_ns: int) -> None:
        self._plan_ready(end_ns, flush=True)
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
                         pipeline.stats.latency_percentiles())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("output", type=Path, help="output rosbag2 directory (must not exist unless --overwrite)")
    parser.add_argument("--params-file", type=Path, help="the node's ROS params file (same parameters as the node)")
    parser.add_argument("--checkpoint", help="override the params file's checkpoint")
    parser.add_argument("--device", help="override the device (auto, cpu, cuda)")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--every", type=int, default=1, help="plan every N-th point cloud (default: all)")
    parser.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME=TOPIC",
                        help=f"topic mapping, NAME one of {[f.name for f in dataclasses.fields(ReplayTopics)]}")


def parse_topics(pairs: List[str]) -> ReplayTopics:
    names = {f.name for f in dataclasses.fields(ReplayTopics)}
    mapping = dict(pair.split("=", 1) for pair in pairs)
    unknown = set(mapping) - names
    if unknown:
        raise ValueError(f"unknown topic names {sorted(unknown)}; known: {sorted(names)}")
    return ReplayTopics(**mapping)


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("checkpoint", args.checkpoint), ("device", args.device), ("seed", args.seed)) if v is not None}
    params = load_params_file(args.params_file, overrides)
    planner = planner_from_parameters(params)
    print(f"planner: {planner.describe()}")
    summary = replay_bag(args.input, args.output, planner, pipeline_config(params), parse_topics(args.topic),
                         args.storage, args.every, args.overwrite)
    print(summary.format())
    return 0
