"""Build a training dataset from rosbag2 recordings: one shard per bag plus the index (`diffusiondrive-ros dataset`).

A frame is a LiDAR sweep as the node plans it: the bag goes through replay's `BagFrames` (the node's
synchronisation, waiting, command latching and acceleration), `FramePipeline.decode` and `build_features` with the
feature configs of the chosen model, so the stored inputs are the node's inputs bit for bit. Its target is the
ego's future from the bag's odometry (`OdometryTrack`: 8 poses at 0.5 s, x, y, heading in the ego frame at the
sweep); a recording cut short gives the frames it holds up to its break (`bag_io.open_bag`). A sweep without a
command message yet (or a bag without the command topic) gets the command
`derive_command` reads off that future; each shard records whether its commands were recorded, derived or mixed.

Sweeps that give no frame are counted per reason in their shard's info and in the printed summary: those of the
pipeline (`camera_front_out_of_sync`, `bad_pointcloud`, `bad_message`, ...), `no_future` (odometry ends before
the horizon) and `bad_input` (features rejected, e.g. images too small for the crop).

A shard is named after its bag folder plus a hash of the bag's path, and its sidecar JSON holds a fingerprint of
the bag's files (size and mtime) and of the build settings: a bag whose shard has the current fingerprint is
skipped, so an interrupted build resumes and adding bags grows the dataset. Bags are built by `--workers`
processes, one bag each, and split between torchrun ranks (RANK, WORLD_SIZE); every rank writes its own shards and
the rank that finds every shard of the run in place rebuilds the index from all sidecars, so no barrier is needed.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import InputError
from ..features import CameraRigConfig, LidarBevConfig, build_features, camera_config_for, lidar_config_for
from ..geometry import yaw_of_quaternion
from ..model import DiffusionDriveConfig, load_model_config
from ..ros.conversions import stamp_to_ns
from ..ros.frame_sync import FrameSkipped
from ..ros.params import camera_rig, load_params_file, pipeline_config
from ..ros.pipeline import FramePipeline, PipelineConfig
from ..training.dataset import (
    FORMAT_VERSION,
    DatasetSpec,
    ShardInfo,
    encode_features,
    read_index,
    read_shard_infos,
    rebuild_index,
    write_shard,
    write_shard_info,
)
from ..training.ground_truth import GROUND_TRUTH_INTERVAL_S, OdometryTrack, derive_command
from .bag_io import BagReadError, open_bag
from .replay import BagFrames, ReplayTopics, SyncedFrame, camera_transport, parse_topics


class BagError(InputError):
    """A bag that cannot be used, with a one-line reason naming it."""


def feature_configs(model_config: DiffusionDriveConfig,
                    rig: CameraRigConfig = CameraRigConfig()) -> tuple[CameraRigConfig, LidarBevConfig]:
    """The camera and LiDAR feature configs the node's planner uses for this model and camera crop."""
    return camera_config_for(model_config, rig), lidar_config_for(model_config)


@dataclass(frozen=True)
class BuildSettings:
    """How frames are built; part of every shard's fingerprint, so changing any of it rebuilds the shards."""

    spec: DatasetSpec
    camera: CameraRigConfig
    lidar: LidarBevConfig
    pipeline: PipelineConfig = PipelineConfig()
    topics: ReplayTopics = ReplayTopics()
    every: int = 1
    """Use every N-th point cloud of a bag (counted as replay counts them)."""

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"BuildSettings.every must be an int >= 1, got {self.every!r}")

    @classmethod
    def for_model(cls, model_config: DiffusionDriveConfig, rig: CameraRigConfig = CameraRigConfig(),
                  pipeline: PipelineConfig = PipelineConfig(), topics: ReplayTopics = ReplayTopics(),
                  every: int = 1) -> BuildSettings:
        """Settings giving the inputs of `model_config` from the node's camera crop, pipeline and topics."""
        camera, lidar = feature_configs(model_config, rig)
        spec = DatasetSpec(camera_height=camera.output_height, camera_width=camera.output_width,
                           lidar_resolution=lidar.x_edges.size - 1, lidar_cap=lidar.hist_max_per_pixel,
                           num_poses=model_config.num_poses, interval_s=GROUND_TRUTH_INTERVAL_S,
                           lidar_channels=model_config.backbone.lidar_channels,
                           lidar_sweep_interval_s=model_config.lidar_sweep_interval_s)
        sync = dataclasses.replace(pipeline.sync, lidar_history_s=model_config.lidar_history_s)
        pipeline = dataclasses.replace(pipeline, sync=sync)
        return cls(spec, camera, lidar, pipeline, topics, every)


def shard_name(bag: Path) -> str:
    """Bag folder name plus a short hash of its absolute path, so equally named bags get their own shards."""
    path = Path(bag).resolve()
    return f"{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def fingerprint(bag: Path, settings: BuildSettings) -> str:
    """Hash of the bag's files (relative path, size, mtime) and the build settings."""
    files = sorted((p.relative_to(bag).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in Path(bag).rglob("*") if p.is_file())
    text = json.dumps({"format": FORMAT_VERSION, "files": files, "settings": dataclasses.asdict(settings)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_bag(bag: Path, topics: ReplayTopics) -> dict[str, str]:
    """The bag's topic -> message type, or a BagError saying in one line why the bag cannot be used."""
    try:
        bag_topics = {topic: info.msgtype for topic, info in open_bag(bag).topics.items()}
    except BagReadError as error:
        raise BagError(str(error)) from error
    for name in ("pointcloud", "odometry"):
        if getattr(topics, name) not in bag_topics:
            raise BagError(f"{bag}: no {name} topic {getattr(topics, name)!r} (rename with --topic {name}=TOPIC)")
    try:
        camera_transport(bag_topics, topics)
    except ValueError as error:
        raise BagError(f"{bag}: {error}") from error
    return bag_topics


def odometry_track(bag: Path, topic: str) -> OdometryTrack:
    """Poses of the bag's odometry (header stamps, pose in the odometry frame); undecodable messages are left out.

    The frame pass counts those as `bad_message`.
    """
    samples = []
    for message in open_bag(bag).messages([topic]):
        try:
            msg = message.decode()
        except RuntimeError:  # rclpy's RMWError: bytes that are not an Odometry
            continue
        pose = msg.pose.pose
        q = pose.orientation
        sample = (stamp_to_ns(msg.header.stamp), pose.position.x, pose.position.y,
                  yaw_of_quaternion(q.w, q.x, q.y, q.z))
        if all(math.isfinite(value) for value in sample[1:]):
            samples.append(sample)
    return OdometryTrack.from_samples(samples)


class _ShardFrames:
    """A bag's frames as the shard stores them: node features, ego status and command, ground-truth future."""

    def __init__(self, pipeline: FramePipeline, track: OdometryTrack, settings: BuildSettings):
        self.pipeline, self.track, self.settings = pipeline, track, settings
        self.columns: dict[str, list[np.ndarray]] = {key: [] for key in
                                                     ("camera", "lidar", "status", "future", "command", "stamp_ns")}
        self.skipped: Counter = Counter()
        self.command_sources: Counter = Counter()
        self.without_history = 0

    def add(self, frame: SyncedFrame) -> None:
        """Build one frame, or count why it cannot be built."""
        inputs, spec = frame.inputs, self.settings.spec
        future = self.track.future(inputs.stamp_ns, spec.num_poses, spec.interval_s)
        if future is None:
            self.skipped["no_future"] += 1
            return
        try:
            cameras, points = self.pipeline.decode(inputs)
            past_points = self.pipeline.decode_history(inputs, points)
        except FrameSkipped:  # counted in the pipeline's stats
            return
        command = inputs.command if frame.command_received else derive_command(future)
        try:
            features = build_features(cameras, points, inputs.velocity, inputs.acceleration, command,
                                      self.settings.camera, self.settings.lidar, past_points)
        except ValueError:  # rejected inputs, e.g. images too small for the crop: the node skips these as well
            self.skipped["bad_input"] += 1
            return
        camera, lidar = encode_features(features["camera_feature"], features["lidar_feature"], spec.lidar_cap)
        row = {"camera": camera, "lidar": lidar, "status": features["status_feature"],
               "future": future.astype(np.float32), "command": np.uint8(command), "stamp_ns": np.int64(inputs.stamp_ns)}
        for key, value in row.items():
            self.columns[key].append(value)
        self.command_sources["recorded" if frame.command_received else "derived"] += 1
        self.without_history += any(fallback.input == "lidar_history" for fallback in inputs.fallbacks)

    @property
    def command_source(self) -> str:
        """recorded, derived, mixed, or none for a shard without frames."""
        sources = list(self.command_sources)
        return sources[0] if len(sources) == 1 else "mixed" if sources else "none"

    def arrays(self) -> dict[str, np.ndarray]:
        """The shard's arrays; empty ones keep their per-frame shape."""
        spec = self.settings.spec
        shapes = {"camera": (3, spec.camera_height, spec.camera_width),
                  "lidar": (spec.lidar_channels, spec.lidar_resolution, spec.lidar_resolution), "status": (8,),
                  "future": (spec.num_poses, 3), "command": (), "stamp_ns": ()}
        dtypes = {"camera": np.uint8, "lidar": np.uint8, "status": np.float32, "future": np.float32,
                  "command": np.uint8, "stamp_ns": np.int64}
        return {key: np.stack(values) if values else np.zeros((0,) + shapes[key], dtypes[key])
                for key, values in self.columns.items()}


@dataclass(frozen=True)
class ShardBuild:
    """One bag built: its shard's info, the point clouds read and the seconds it took."""

    info: ShardInfo
    clouds: int
    seconds: float


def build_shard(bag: Path, out: Path, settings: BuildSettings, progress: bool = False) -> ShardBuild:
    """Build the shard of one bag and write it with its sidecar into the dataset folder `out`."""
    started = time.perf_counter()
    bag = Path(bag)
    bag_topics = check_bag(bag, settings.topics)
    info_fingerprint = fingerprint(bag, settings)
    track = odometry_track(bag, settings.topics.odometry)
    config = dataclasses.replace(settings.pipeline, camera_transport=camera_transport(bag_topics, settings.topics))
    pipeline = FramePipeline(None, config)
    frames = BagFrames(pipeline, settings.topics, settings.every)
    shard = _ShardFrames(pipeline, track, settings)
    for frame in frames.read(bag, progress):
        shard.add(frame)
    arrays = shard.arrays()
    skipped = Counter(pipeline.stats.skipped) + shard.skipped
    info = ShardInfo(name=shard_name(bag), source=str(bag.resolve()), fingerprint=info_fingerprint,
                     frames=len(arrays["stamp_ns"]), skipped=dict(sorted(skipped.items())),
                     command_source=shard.command_source, without_history=shard.without_history)
    write_shard(out, info.name, arrays)
    write_shard_info(out, settings.spec, info)
    return ShardBuild(info, frames.clouds, time.perf_counter() - started)


@dataclass
class DatasetSummary:
    """What a `build_dataset` run did; `index` is None when another rank still has shards to write."""

    out: Path
    built: list[ShardBuild] = field(default_factory=list)
    up_to_date: list[ShardInfo] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    """Bags that failed while being built, with the error."""
    index: list[ShardInfo] | None = None
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        """Frames built per second of wall time (all workers together)."""
        frames = sum(build.info.frames for build in self.built)
        return frames / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        """Multi-line summary for the CLI."""
        frames = sum(build.info.frames for build in self.built)
        lines = [f"dataset {self.out}: built {len(self.built)} bags, {len(self.up_to_date)} up to date, "
                 f"{len(self.failed)} failed; {frames} frames in {self.seconds:.1f} s "
                 f"({self.frames_per_second:.1f} frames/s)"]
        for build in self.built:
            info = build.info
            skipped = ", ".join(f"{reason} {count}" for reason, count in info.skipped.items()) or "none"
            history = f"; {info.without_history} without the earlier LiDAR sweep" if info.without_history else ""
            lines.append(f"  {info.name}: {info.frames} frames from {build.clouds} clouds "
                         f"(command {info.command_source}){history}; skipped: {skipped}")
        lines += [f"  up to date: {info.name} ({info.frames} frames)" for info in self.up_to_date]
        lines += [f"  error: {bag}: {error}" for bag, error in self.failed.items()]
        if self.index is None:
            lines.append("index: left to the rank that finishes last")
        else:
            lines.append(f"index: {len(self.index)} shards, {sum(s.frames for s in self.index)} frames")
        return "\n".join(lines)


def _check_spec(out: Path, spec: DatasetSpec) -> None:
    """Refuse a dataset folder whose index or shards were built with another spec."""
    found = [read_index(out)[0]] if (out / "index.json").is_file() else []
    found += [shard_spec for shard_spec, _ in read_shard_infos(out).values()]
    for other in found:
        if other != spec:
            raise ValueError(f"{out} holds a dataset built with {other}, not {spec}; use another --out")


def _build_all(bags: Sequence[Path], out: Path, settings: BuildSettings, workers: int, progress: bool,
               summary: DatasetSummary) -> None:
    """Build the bags' shards, in this process or in `workers` processes; failures are recorded, not raised."""
    bar = tqdm(total=len(bags), desc="dataset", unit="bag", disable=not progress or len(bags) < 2, file=sys.stderr)
    with bar:
        if workers == 1:
            for bag in bags:
                try:
                    summary.built.append(build_shard(bag, out, settings, progress))
                except Exception as error:  # one broken bag must not cost the others their shards
                    summary.failed[bag] = f"{type(error).__name__}: {error}"
                bar.update()
            return
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            jobs = {pool.submit(build_shard, bag, out, settings): bag for bag in bags}
            for job in as_completed(jobs):
                try:
                    summary.built.append(job.result())
                except Exception as error:  # as above; a worker's exception is re-raised here
                    summary.failed[jobs[job]] = f"{type(error).__name__}: {error}"
                bar.update()


def build_dataset(bags: Sequence[Path], out: Path, settings: BuildSettings, workers: int = 1, rank: int = 0,
                  world_size: int = 1, progress: bool = True) -> DatasetSummary:
    """Build the shards of this rank's bags that are not up to date, then the index once every shard is in.

    Every bag is checked first (BagError); bags that fail while being built are listed in `failed` and left out of
    the index, which then holds the shards that could be built.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started = time.perf_counter()
    out = Path(out)
    bags = list(dict.fromkeys(Path(bag).resolve() for bag in bags))
    for bag in bags:
        check_bag(bag, settings.topics)
    _check_spec(out, settings.spec)
    prints = {bag: fingerprint(bag, settings) for bag in bags}
    existing = {name: info for name, (_, info) in read_shard_infos(out).items()}
    summary = DatasetSummary(out)
    todo = []
    for bag in bags[rank::world_size]:
        info = existing.get(shard_name(bag))
        if info is not None and info.fingerprint == prints[bag]:
            summary.up_to_date.append(info)
        else:
            todo.append(bag)
    _build_all(todo, out, settings, min(workers, max(len(todo), 1)), progress, summary)
    current = {name: info for name, (_, info) in read_shard_infos(out).items()}
    if all(shard_name(bag) in current and current[shard_name(bag)].fingerprint == prints[bag]
           for bag in bags if bag not in summary.failed):
        summary.index = rebuild_index(out, settings.spec)
    summary.seconds = time.perf_counter() - started
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dataset` subcommand's options."""
    parser.add_argument("bags", type=Path, nargs="+", metavar="BAG", help="rosbag2 folders (sqlite3 or MCAP)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; rerun to resume or grow)")
    parser.add_argument("--model", default="compact",
                        help="model variant whose inputs to build (compact, navsim) or a model config YAML/JSON")
    parser.add_argument("--lidar-sweeps", type=int, help="LiDAR sweeps per frame, as `train --lidar-sweeps` "
                        "(default: the model's)")
    parser.add_argument("--workers", type=int, default=1, help="processes building bags in parallel, one bag each")
    parser.add_argument("--params-file", type=Path, help="the node's ROS params file (camera crop, sync, frames)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th point cloud (default: all)")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME=TOPIC",
                        help=f"topic mapping, NAME one of {[f.name for f in dataclasses.fields(ReplayTopics)]}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Build the dataset; one-line errors and exit code 1 for unusable bags, options or output folders."""
    try:
        params = load_params_file(args.params_file)
        model_config = load_model_config(args.model).with_lidar_sweeps(args.lidar_sweeps)
        settings = BuildSettings.for_model(model_config, camera_rig(params), pipeline_config(params),
                                           parse_topics(args.topic), args.every)
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        summary = build_dataset(args.bags, args.out, settings, args.workers, rank, world_size, not args.quiet)
    except (BagError, ValueError, OSError) as error:
        print(f"diffusiondrive-ros dataset: error: {error}", file=sys.stderr)
        return 1
    print(summary.format())
    return 1 if summary.failed else 0
