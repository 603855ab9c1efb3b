"""Open-loop evaluation of the planner on rosbag2 drives beside kinematic baselines (`diffusiondrive-ros eval`).

A frame is a LiDAR sweep as the node plans it: the bag goes through replay's `BagFrames` (the node's
synchronisation, waiting, command latching and acceleration) and `FramePipeline.plan` (decoding, features, the
planner and its per-frame noise), so eval scores exactly the plans that replay writes and the node publishes. Its
ground truth is the ego's future from the bag's odometry (`OdometryTrack`). The same frame is scored for the
constant-velocity and constant-turn-rate (CTRV) baselines from the ego state at the sweep: the planner's velocity and
the yaw rate of the odometry message the synchroniser matched. All of them are checked for collision and clearance
by `training.metrics.evaluate_frame` against the LiDAR obstacle points (z 0.4-2 m in the ego frame) of the time of
each pose: the sweeps from the frame's through its 4 s horizon (`FutureSweeps`), each moved into the frame's ego frame
with the odometry poses that also give the ground truth, so traffic has moved on by the time the plan gets there. A
pose whose time has no sweep within `sweep_tolerance_s` (a dropped sweep, a LiDAR that stops before the odometry) is
not checked; such frames are kept and counted (`num_partial_lidar_frames`).

Sweeps that give no frame are counted per reason: those of the pipeline (`camera_front_out_of_sync`,
`bad_pointcloud`, `bad_input`, ...) and `no_future` (the odometry ends before the horizon; such sweeps are not
planned). A `scenario.json` beside the bag (written by `make-drive --scenario random`) tags the frames for the
intent metrics `turn_agreement`, `stop_rate` and `branch_coverage` (see `scenario_metrics`).
"""
from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import json
import math
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..planner import SEEDED, Planner
from ..ros.conversions import stamp_to_ns
from ..ros.frame_sync import FrameInputs, FrameSkipped
from ..ros.params import load_params_file, pipeline_config, planner_from_parameters
from ..ros.pipeline import FramePipeline, PipelineConfig, PlanRejected
from ..training import baselines
from ..training.ground_truth import GROUND_TRUTH_INTERVAL_S, NS_PER_S, OdometryTrack
from ..training.metrics import (
    CollisionConfig,
    FrameMetrics,
    MetricsConfig,
    ObstacleSweep,
    evaluate_frame,
    obstacle_points,
    path_length,
    summarize,
    to_plan_frame,
    turn_direction,
)
from .bag_io import BagMessage, open_bag
from .dataset_builder import BagError, check_bag, odometry_track
from .rendering.bev import render_bev
from .rendering.drawing import panel, put_text
from .rendering.frame import RenderFrame
from .rendering.picture import write_png
from .replay import BagFrames, ReplayTopics, SyncedFrame, camera_transport, parse_topics
from .synthetic.bag import SCENARIO_FILE, read_scenario

BASELINES = ("constant_velocity", "constant_turn_rate", "recorded")
"""Baselines scored beside the planner on every frame; the JSON's `baselines` keys. `recorded` is the recorded
future itself (ADE 0): its collision, near-obstacle and comfort rates calibrate those metrics on the data."""

RATIO_BASELINES = ("constant_velocity", "constant_turn_rate")
"""Baselines the planner's errors are also reported against as ratios (the recorded future has none)."""

RATIO_METRICS = ("ade", "fde")
"""Metrics also reported as planner / baseline ratios (`ade_vs_constant_velocity`, ...): below 1 beats it."""

BRANCH_DIRECTIONS = {"left": 1, "straight": 0, "right": -1}
"""An intersection exit (scenario.json) as the sign `training.metrics.turn_direction` gives a trajectory taking it."""

INTERSECTION_LOOKAHEAD_S = 2.0
"""A frame is at an intersection when the recorded ego reaches its box within this time, before its manoeuvre."""


@dataclass(frozen=True)
class ScenarioTags:
    """What the bag's scenario.json says about one frame, and how the planner's modes answer it (`scenario_tags`)."""

    turn: int  # +1 / -1: the recorded drive turns left / right at an intersection within the horizon; else 0
    turn_agrees: bool | None  # the best mode turns the same way (None where turn is 0)
    stop: bool  # the recorded ego stands still, for a car or pedestrian standing in its lane, at one of the poses
    stops_short: bool | None  # the best mode stays behind the stop point while the recorded ego stands (None: no stop)
    lead_stop: bool  # as `stop`, but the ego stands behind its lead vehicle, which was still moving at the sweep
    lead_stops_short: bool | None  # as `stops_short` for those lead-vehicle stops
    exits: tuple[str, ...]  # the exits of the intersection just ahead, in scenario.json's words; () when there is none
    covered_exits: tuple[str, ...]  # the exits some mode takes


@dataclass(frozen=True, eq=False)
class FrameResult:
    """One evaluated sweep: what the planner planned, the recorded future, and the metrics of planner and baselines."""

    stamp_ns: int
    command: int  # the command the planner got (0 left, 1 straight, 2 right, 3 unknown)
    modes: np.ndarray  # (K, P, 3) the planner's modes in the ego frame
    scores: np.ndarray  # (K,)
    ground_truth: np.ndarray  # (P, 3) the future from odometry in the ego frame
    metrics: FrameMetrics  # the planner's
    baselines: dict[str, FrameMetrics]  # by name, BASELINES
    tags: ScenarioTags | None = None  # from the bag's scenario.json, when it has one


@dataclass
class BagResult:
    """The frames of one bag and the sweeps that gave none, by reason."""

    bag: Path
    clouds: int = 0
    frames: list[FrameResult] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


@dataclass
class EvalReport:
    """Every bag's frames, the planner that planned them and the settings; JSON, markdown and a terminal table."""

    planner: str
    every: int
    metrics_config: MetricsConfig
    bags: list[BagResult] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)  # the --render-worst PNGs, worst first

    @property
    def frames(self) -> list[FrameResult]:
        """The frames of every bag, bag by bag."""
        return [frame for bag in self.bags for frame in bag.frames]

    def overall(self) -> dict:
        """Counts and metrics over every bag's frames together."""
        skipped = sum((bag.skipped for bag in self.bags), Counter())
        return _summary(self.frames, sum(bag.clouds for bag in self.bags), skipped) | {"bags": len(self.bags)}

    def to_dict(self) -> dict:
        """The JSON document: planner, every, metrics_config, bags [{bag, summary, frames}], overall {bags, summary}.

        A summary holds clouds (sweeps read), evaluated (frames), skipped ({reason: sweeps}) and, when there are
        frames, the planner's `training.metrics.summarize` keys (ade, fde, min_ade, min_fde, miss_rate,
        collision_rate, near_obstacle_rate, comfort_rate, progress, ...), `baselines` ({name: the same keys} for
        BASELINES), the ratios `<ade|fde>_vs_<baseline>` of the means and, for bags with a scenario.json, `scenario`
        (`scenario_metrics`). NaN and inf become null (e.g. a ratio to a baseline with zero error).
        """
        bags = [{"bag": str(bag.bag)} | _summary(bag.frames, bag.clouds, bag.skipped)
                | {"frames": [_frame_record(frame) for frame in bag.frames]} for bag in self.bags]
        document = {"planner": self.planner, "every": self.every,
                    "metrics_config": dataclasses.asdict(self.metrics_config), "bags": bags,
                    "overall": self.overall()}
        return _json_safe(document)

    def write_json(self, path: Path) -> Path:
        """Write `to_dict()` as indented JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    def table(self) -> str:
        """Per-bag and overall metrics as a fixed-width terminal table, then the skipped sweeps."""
        rows = [(bag.bag.name, _summary(bag.frames, bag.clouds, bag.skipped)) for bag in self.bags]
        rows.append(("overall", self.overall()))
        cells = [[name] + [_cell(summary, key, fmt) for _, key, fmt in _TABLE_COLUMNS] for name, summary in rows]
        header = ["bag"] + [title for title, _, _ in _TABLE_COLUMNS]
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
        lines = ["  ".join(f"{text:<{w}}" if i == 0 else f"{text:>{w}}" for i, (text, w) in enumerate(zip(row, widths)))
                 for row in [header, *cells]]
        for name, summary in rows:
            if "scenario" in summary:
                lines.append(f"{name}: " + ", ".join(f"{title} {_cell(summary, key, fmt)}"
                                                     for title, key, fmt in _MARKDOWN_SCENARIO))
        for name, summary in rows:
            if summary["skipped"]:
                skipped = ", ".join(f"{reason} {count}" for reason, count in summary["skipped"].items())
                lines.append(f"{name}: skipped {skipped}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """A markdown report: planner, planner metrics, baselines, scenario metrics, skipped sweeps."""
        rows = [(f"`{bag.bag.name}`", _summary(bag.frames, bag.clouds, bag.skipped)) for bag in self.bags]
        rows.append(("**overall**", self.overall()))
        lines = ["# Open-loop evaluation", "", f"Planner: {self.planner}", "",
                 f"Every {self.every}. sweep with a full recorded future; ADE/FDE (m) of the best-scored mode, "
                 "minADE/minFDE (m) of the best of all modes; rates are fractions of frames; CV = constant velocity, "
                 "CTRV = constant turn rate and velocity.", ""]
        lines += _markdown_table("Planner", rows, _MARKDOWN_PLANNER)
        lines += _markdown_table("Baselines", rows, _MARKDOWN_BASELINES)
        if any("scenario" in summary for _, summary in rows):
            lines += _markdown_table("Scenario", rows, _MARKDOWN_SCENARIO)
        skipped = [(name, reason, count) for name, summary in rows[:-1] for reason, count in summary["skipped"].items()]
        if skipped:
            lines += ["## Skipped sweeps", "", "| bag | reason | sweeps |", "|---|---|---:|"]
            lines += [f"| {name} | `{reason}` | {count} |" for name, reason, count in skipped]
            lines.append("")
        return "\n".join(lines)

    def write_markdown(self, path: Path) -> Path:
        """Write `markdown()`; returns the path."""
        path = Path(path)
        path.write_text(self.markdown())
        return path


# --- summaries -----------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    """The ratio of two means, NaN when it is undefined."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def _metrics_summary(frames: Sequence[FrameMetrics]) -> dict:
    """`training.metrics.summarize` with its counts as ints."""
    return {key: int(value) if key.startswith("num_") else value for key, value in summarize(frames).items()}


def _summary(frames: Sequence[FrameResult], clouds: int, skipped: Counter) -> dict:
    """Counts, then (with frames) the planner's metrics, the baselines' and the planner / baseline ratios."""
    summary = {"clouds": clouds, "evaluated": len(frames), "skipped": dict(sorted(skipped.items()))}
    if not frames:
        return summary
    summary |= _metrics_summary([frame.metrics for frame in frames])
    summary["baselines"] = {name: _metrics_summary([frame.baselines[name] for frame in frames])
                            for name in BASELINES}
    for name, key in itertools.product(RATIO_BASELINES, RATIO_METRICS):
        summary[f"{key}_vs_{name}"] = _ratio(summary[key], summary["baselines"][name][key])
    tags = [frame.tags for frame in frames if frame.tags is not None]
    if tags:
        summary["scenario"] = scenario_metrics(tags)
    return summary


def _frame_record(frame: FrameResult) -> dict:
    """One frame in the JSON: stamp, command, the planner's metrics and each baseline's displacement and collision."""
    m = frame.metrics
    record = {
        "stamp_ns": frame.stamp_ns, "command": frame.command, "best_index": m.best_index,
        "ade": m.ade, "fde": m.fde, "min_ade": m.min_ade, "min_fde": m.min_fde, "miss": m.miss,
        "collision": m.collision, "clearance_m": m.clearance_m, "centre_line_clearance_m": m.centre_line_clearance_m,
        "near_obstacle": m.near_obstacle, "unchecked_poses": m.unchecked_poses,
        "comfortable": m.comfort.comfortable, "comfort_violations": list(m.comfort.violations),
        "progress": m.progress.ratio, "progress_m": m.progress.along_m, "stops": m.stops, "gt_stops": m.gt_stops,
        "turn_direction": m.turn_direction, "gt_turn_direction": m.gt_turn_direction,
    }
    record["baselines"] = {name: {"ade": b.ade, "fde": b.fde, "collision": b.collision, "clearance_m": b.clearance_m,
                                  "centre_line_clearance_m": b.centre_line_clearance_m,
                                  "near_obstacle": b.near_obstacle}
                           for name, b in frame.baselines.items()}
    if frame.tags is not None:
        record["scenario"] = dataclasses.asdict(frame.tags)
    return record


def _json_safe(value: object) -> object:
    """The value with numpy scalars as Python numbers and NaN/inf floats as None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# (title, summary key, format); a key "a.b" reads summary["a"]["b"].
_TABLE_COLUMNS = (
    ("frames", "evaluated", "d"), ("ADE", "ade", ".2f"), ("FDE", "fde", ".2f"), ("minADE", "min_ade", ".2f"),
    ("minFDE", "min_fde", ".2f"), ("miss", "miss_rate", ".2f"), ("coll", "collision_rate", ".2f"),
    ("near", "near_obstacle_rate", ".2f"), ("comf", "comfort_rate", ".2f"), ("prog", "progress", ".2f"),
    ("CV ADE", "baselines.constant_velocity.ade", ".2f"), ("CTRV ADE", "baselines.constant_turn_rate.ade", ".2f"),
    ("ADE/CV", "ade_vs_constant_velocity", ".2f"), ("ADE/CTRV", "ade_vs_constant_turn_rate", ".2f"),
    ("rec near", "baselines.recorded.near_obstacle_rate", ".2f"),
    ("rec comf", "baselines.recorded.comfort_rate", ".2f"),
)
_MARKDOWN_PLANNER = (
    ("frames", "evaluated", "d"), ("ADE", "ade", ".2f"), ("FDE", "fde", ".2f"), ("minADE", "min_ade", ".2f"),
    ("minFDE", "min_fde", ".2f"), ("miss rate", "miss_rate", ".3f"), ("collision rate", "collision_rate", ".3f"),
    ("near obstacle rate", "near_obstacle_rate", ".3f"), ("comfort rate", "comfort_rate", ".3f"),
    ("progress", "progress", ".3f"),
)
_MARKDOWN_BASELINES = (
    ("ADE", "ade", ".2f"), ("CV ADE", "baselines.constant_velocity.ade", ".2f"),
    ("CTRV ADE", "baselines.constant_turn_rate.ade", ".2f"), ("FDE", "fde", ".2f"),
    ("CV FDE", "baselines.constant_velocity.fde", ".2f"), ("CTRV FDE", "baselines.constant_turn_rate.fde", ".2f"),
    ("ADE / CV", "ade_vs_constant_velocity", ".2f"), ("ADE / CTRV", "ade_vs_constant_turn_rate", ".2f"),
    ("CV collision rate", "baselines.constant_velocity.collision_rate", ".3f"),
    ("CTRV collision rate", "baselines.constant_turn_rate.collision_rate", ".3f"),
    ("recorded collision rate", "baselines.recorded.collision_rate", ".3f"),
    ("recorded near obstacle rate", "baselines.recorded.near_obstacle_rate", ".3f"),
    ("recorded comfort rate", "baselines.recorded.comfort_rate", ".3f"),
)
_MARKDOWN_SCENARIO = (
    ("turn frames", "scenario.num_turn_frames", "d"), ("turn agreement", "scenario.turn_agreement", ".3f"),
    ("stop frames", "scenario.num_stop_frames", "d"), ("stop rate", "scenario.stop_rate", ".3f"),
    ("lead-vehicle stop frames", "scenario.num_lead_stop_frames", "d"),
    ("lead-vehicle stop rate", "scenario.lead_stop_rate", ".3f"),
    ("intersection frames", "scenario.num_intersection_frames", "d"),
    ("branch coverage", "scenario.branch_coverage", ".3f"),
)


def _cell(summary: dict, key: str, fmt: str) -> str:
    """One formatted value of a summary, '-' where it is missing or not a number."""
    value: object = summary
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _markdown_table(title: str, rows: Sequence[tuple[str, dict]], columns: Sequence[tuple[str, str, str]]) -> list[str]:
    """A markdown section with one row per bag and one column per metric."""
    lines = [f"## {title}", "", "| bag | " + " | ".join(c[0] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(_cell(summary, key, fmt) for _, key, fmt in columns) + " |"
              for name, summary in rows]
    return [*lines, ""]


# --- scenario tags -------------------------------------------------------------------------------------------------


def _event_time(value: float | None) -> float:
    """An event time of scenario.json in seconds; None (not within the drive, or never) is infinitely late."""
    return math.inf if value is None else float(value)


def _arc_lengths(trajectory: np.ndarray) -> np.ndarray:
    """Distance travelled (m) from the origin to each pose along the polyline through the poses: (P,)."""
    xy = np.concatenate([np.zeros((1, 2)), np.asarray(trajectory, dtype=np.float64)[:, :2]])
    return np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))


def scenario_tags(scenario: dict, time_s: float, modes: np.ndarray, metrics: FrameMetrics, ground_truth: np.ndarray,
                  config: MetricsConfig = MetricsConfig()) -> ScenarioTags:
    """Tag one frame from scenario.json (`make-drive --scenario random`); times are seconds from the drive's start.

    Pose i of the horizon is at time_s + i * 0.5 s (i = 1..P). With the thresholds of `config`:

    - turn: an intersection whose decision is left or right has its manoeuvre [start_time_s, end_time_s] overlap
      the horizon and the recorded future turns that way (`turn_direction` of the ground truth), so the turn is
      visible in the horizon; turn_agrees: the best mode's `turn_direction` is the same.
    - stop: the standing time [start_time_s, end_time_s] of a stop for a car or pedestrian standing in the lane
      holds one of the poses. stops_short: at every such pose the best mode has travelled (along its poses from the
      origin) no more than the recorded ego had at the stop's first standing pose (the stop point) plus
      `stop_threshold_m`. lead_stop / lead_stops_short: the same for stops behind the lead vehicle, kept apart
      because at the sweep that vehicle may still be moving, and one sweep cannot show that it will halt.
    - exits: the ego reaches an intersection's box (approach_time_s) within INTERSECTION_LOOKAHEAD_S and has not
      begun its manoeuvre (start_time_s); its exits are the open branches. A mode takes exit `left` / `right` when its
      `turn_direction` is +1 / -1, and `straight` when it is 0 and the mode travels at least `turn_min_travel_m`.
    """
    poses = len(ground_truth)
    pose_times = time_s + GROUND_TRUTH_INTERVAL_S * np.arange(1, poses + 1)
    horizon_end = float(pose_times[-1])
    intersections = scenario.get("intersections", [])
    turn = 0
    for crossing in intersections:
        sign = BRANCH_DIRECTIONS.get(crossing["decision"], 0)
        overlaps = _event_time(crossing["start_time_s"]) < horizon_end and _event_time(crossing["end_time_s"]) > time_s
        if sign and overlaps and metrics.gt_turn_direction == sign:
            turn = sign
    best_travel, recorded_travel = _arc_lengths(modes[metrics.best_index]), _arc_lengths(ground_truth)
    short_of: dict[bool, bool | None] = {False: None, True: None}  # lead-vehicle stop? -> stays short of them all
    for stop in scenario.get("stops", []):
        standing = (pose_times >= _event_time(stop["start_time_s"])) & (pose_times <= _event_time(stop["end_time_s"]))
        if standing.any():
            limit = recorded_travel[int(np.argmax(standing))] + config.stop_threshold_m
            short = bool((best_travel[standing] <= limit).all())
            lead = stop["reason"] == "lead_vehicle"
            short_of[lead] = short if short_of[lead] is None else short_of[lead] and short
    exits: tuple[str, ...] = ()
    for crossing in intersections:
        reached = _event_time(crossing["approach_time_s"]) <= time_s + INTERSECTION_LOOKAHEAD_S
        if reached and time_s < _event_time(crossing["start_time_s"]):
            exits = tuple(crossing["exits"])
            break
    taken = set()
    for mode in modes if exits else ():
        direction = turn_direction(mode, config.turn_heading_threshold_rad, config.turn_min_travel_m)
        if direction or path_length(mode) >= config.turn_min_travel_m:
            taken.add(direction)
    return ScenarioTags(turn=turn, turn_agrees=metrics.turn_direction == turn if turn else None,
                        stop=short_of[False] is not None, stops_short=short_of[False],
                        lead_stop=short_of[True] is not None, lead_stops_short=short_of[True], exits=exits,
                        covered_exits=tuple(e for e in exits if BRANCH_DIRECTIONS.get(e) in taken))


def _mean_or_nan(values: Sequence[float]) -> float:
    """Mean of the values, NaN when there are none."""
    return float(np.mean(values)) if len(values) else math.nan


def scenario_metrics(tags: Sequence[ScenarioTags]) -> dict:
    """Intent metrics over tagged frames; each is NaN (null in JSON) when no frame qualifies.

    turn_agreement: fraction of turn frames whose best mode turns the recorded way. stop_rate: fraction of stop
    frames (a car or pedestrian standing in the lane) whose best mode stops short; lead_stop_rate: the same for
    stops behind the lead vehicle. branch_coverage: mean over intersection frames of the fraction of the
    intersection's exits that some mode takes. See `scenario_tags` for the frames and the tests.
    """
    turns = [tag.turn_agrees for tag in tags if tag.turn]
    stops = [tag.stops_short for tag in tags if tag.stop]
    lead_stops = [tag.lead_stops_short for tag in tags if tag.lead_stop]
    branches = [len(tag.covered_exits) / len(tag.exits) for tag in tags if tag.exits]
    return {"turn_agreement": _mean_or_nan(turns), "stop_rate": _mean_or_nan(stops),
            "lead_stop_rate": _mean_or_nan(lead_stops), "num_lead_stop_frames": len(lead_stops),
            "branch_coverage": _mean_or_nan(branches), "num_turn_frames": len(turns), "num_stop_frames": len(stops),
            "num_intersection_frames": len(branches)}


def load_scenario(bag: Path) -> dict | None:
    """The bag's scenario.json, None when it has none (BagError for one that is not a readable scenario file)."""
    path = Path(bag) / SCENARIO_FILE
    if not path.is_file():
        return None
    try:
        return read_scenario(bag)
    except (OSError, ValueError) as error:
        raise BagError(f"{path}: cannot read the scenario ({error})") from error


# --- evaluation ----------------------------------------------------------------------------------------------------


def _yaw_rate(pipeline: FramePipeline, stamp_ns: int) -> float:
    """Yaw rate (rad/s) of the odometry message nearest the sweep: the one the synchroniser matched to it."""
    _, odometry = pipeline.sync.odometry.closest(stamp_ns)
    return float(odometry.twist.twist.angular.z)


def baseline_trajectories(velocity: Sequence[float], yaw_rate: float, future: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's (P, 3) poses: constant velocity, CTRV (constant turn rate and speed), the recorded future."""
    num_poses = len(future)
    return {
        "constant_velocity": baselines.constant_velocity(velocity, num_poses, GROUND_TRUTH_INTERVAL_S),
        "constant_turn_rate": baselines.constant_turn_rate(velocity, yaw_rate, 0.0, num_poses, GROUND_TRUTH_INTERVAL_S),
        "recorded": future,
    }


def ego_pose(track: OdometryTrack, stamp_ns: int, at_ns: int) -> np.ndarray | None:
    """The ego's pose (x, y, yaw) at `at_ns` >= `stamp_ns` in the ego frame at `stamp_ns`, from the odometry that
    gives the ground truth: (0, 0, 0) at `stamp_ns` itself; None where the odometry does not cover both."""
    if at_ns == stamp_ns:
        return np.zeros(3)
    future = track.future(stamp_ns, 1, (at_ns - stamp_ns) / NS_PER_S)
    return None if future is None else future[0]


class FutureSweeps:
    """A bag's LiDAR sweeps from a frame's stamp through its horizon, as obstacles in that frame's ego frame.

    A second, cloud-only pass over the bag reads ahead of the frames; every cloud is kept (every-th frame or not) as
    its obstacle points in its own ego frame until the frames have passed it, so memory holds one horizon of sweeps.
    """

    def __init__(self, clouds: Iterator[BagMessage], track: OdometryTrack, horizon_s: float,
                 config: CollisionConfig = CollisionConfig()):
        self.track, self.config = track, config
        self._clouds = clouds
        self._reach_ns = round((horizon_s + config.sweep_tolerance_s) * NS_PER_S)
        self._pending: deque[tuple[int, object]] = deque()  # (header stamp, PointCloud2), log-time order
        self._obstacles: dict[int, np.ndarray | None] = {}  # stamp -> obstacle xy in its own frame; None: unusable
        self._last_ns: int | None = None

    def _read_until(self, end_ns: int) -> None:
        """Read clouds until one is stamped after end_ns or the bag ends."""
        while self._last_ns is None or self._last_ns <= end_ns:
            message = next(self._clouds, None)
            if message is None:
                return
            try:
                cloud = message.decode()
            except RuntimeError:  # rclpy's RMWError: bytes that are not a PointCloud2 (the frame pass counts them)
                continue
            self._last_ns = stamp_to_ns(cloud.header.stamp)
            self._pending.append((self._last_ns, cloud))

    def _obstacle_points(self, pipeline: FramePipeline, inputs: FrameInputs, stamp_ns: int,
                         cloud: object) -> np.ndarray | None:
        """The cloud's obstacle points in its own ego frame, placed as the planner places its frame's cloud."""
        if stamp_ns not in self._obstacles:
            try:
                points = pipeline.cloud_to_base(dataclasses.replace(inputs, stamp_ns=stamp_ns, cloud=cloud))
                self._obstacles[stamp_ns] = obstacle_points(points, self.config)
            except FrameSkipped:  # a cloud the planner could not use: the poses of its time stay unchecked
                self._obstacles[stamp_ns] = None
        return self._obstacles[stamp_ns]

    def around(self, pipeline: FramePipeline, inputs: FrameInputs) -> list[ObstacleSweep]:
        """The sweeps stamped from the frame's stamp through the horizon (plus the tolerance), in its ego frame.

        Frames must come in stamp order: sweeps before the frame are dropped.
        """
        stamp = inputs.stamp_ns
        self._read_until(stamp + self._reach_ns)
        while self._pending and self._pending[0][0] < stamp:
            self._obstacles.pop(self._pending.popleft()[0], None)
        sweeps = []
        for at_ns, cloud in self._pending:
            pose = ego_pose(self.track, stamp, at_ns) if at_ns <= stamp + self._reach_ns else None
            xy = None if pose is None else self._obstacle_points(pipeline, inputs, at_ns, cloud)
            if xy is not None:
                sweeps.append(ObstacleSweep((at_ns - stamp) / NS_PER_S, to_plan_frame(xy, pose)))
        return sweeps


class _BagEvaluator:
    """Plans and scores the synchronised frames of one bag."""

    def __init__(self, pipeline: FramePipeline, track: OdometryTrack, sweeps: FutureSweeps, metrics: MetricsConfig,
                 scenario: dict | None = None):
        self.pipeline, self.track, self.sweeps, self.metrics, self.scenario = pipeline, track, sweeps, metrics, scenario
        self.num_poses = pipeline.planner.model.config.num_poses
        self.skipped: Counter = Counter()

    def add(self, frame: SyncedFrame) -> tuple[FrameResult, np.ndarray] | None:
        """Plan and score one frame; returns it with its cloud (ego frame), or None when it is skipped (counted)."""
        inputs = frame.inputs
        future = self.track.future(inputs.stamp_ns, self.num_poses, GROUND_TRUTH_INTERVAL_S)
        if future is None:
            self.skipped["no_future"] += 1
            return None
        try:
            result = self.pipeline.plan(inputs).result
        except FrameSkipped:  # counted in the pipeline's stats
            return None
        except PlanRejected as rejected:  # non-finite or unreachable output: nothing to score, counted by reason
            self.skipped[f"rejected_{rejected.reason}"] += 1
            return None
        points = self.pipeline.cloud_to_base(inputs)  # the points the planner saw; plan() keeps only its result
        state = {"sweeps": self.sweeps.around(self.pipeline, inputs), "velocity": inputs.velocity,
                 "acceleration": inputs.acceleration,
                 "yaw_rate": _yaw_rate(self.pipeline, inputs.stamp_ns), "config": self.metrics}
        scored = {name: evaluate_frame(trajectory[None], np.zeros(1), future, **state)
                  for name, trajectory in baseline_trajectories(inputs.velocity, state["yaw_rate"], future).items()}
        frame_metrics = evaluate_frame(result.modes, result.scores, future, **state)
        tags = None
        if self.scenario is not None:
            time_s = (inputs.stamp_ns - self.scenario["start_time_ns"]) / 1e9
            tags = scenario_tags(self.scenario, time_s, result.modes, frame_metrics, future, self.metrics)
        planned = FrameResult(inputs.stamp_ns, inputs.command, result.modes, result.scores, future, frame_metrics,
                              scored, tags)
        return planned, points


class _WorstFrames:
    """The `count` frames with the largest ADE seen so far, with their bag and cloud, for pictures."""

    def __init__(self, count: int):
        self.count = count
        self._heap: list[tuple[float, int, Path, FrameResult, np.ndarray]] = []
        self._order = itertools.count()

    def offer(self, bag: Path, frame: FrameResult, points: np.ndarray) -> None:
        """Keep the frame if it is among the worst."""
        if self.count <= 0:
            return
        item = (frame.metrics.ade, next(self._order), bag, frame, points)
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, item)
        elif item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def worst_first(self) -> list[tuple[Path, FrameResult, np.ndarray]]:
        """The kept frames, largest ADE first."""
        return [(bag, frame, points) for _, _, bag, frame, points in sorted(self._heap, key=lambda i: (-i[0], i[1]))]


def _evaluate_bag(bag: Path, scenario: dict | None, planner: Planner, config: PipelineConfig, topics: ReplayTopics,
                  every: int, metrics: MetricsConfig, worst: _WorstFrames, progress: bool) -> BagResult:
    """Plan and score every `every`-th sweep of one bag, tagged from its scenario when it has one."""
    bag_topics = check_bag(bag, topics)
    config = dataclasses.replace(config, camera_transport=camera_transport(bag_topics, topics))
    pipeline = FramePipeline(planner, config)
    frames = BagFrames(pipeline, topics, every)
    track = odometry_track(bag, topics.odometry)
    horizon_s = planner.model.config.num_poses * GROUND_TRUTH_INTERVAL_S
    sweeps = FutureSweeps(open_bag(bag).messages([topics.pointcloud]), track, horizon_s, metrics.collision)
    evaluator = _BagEvaluator(pipeline, track, sweeps, metrics, scenario)
    result = BagResult(bag)

    for synced in frames.read(bag, progress):
        evaluated = evaluator.add(synced)
        if evaluated is not None:
            result.frames.append(evaluated[0])
            worst.offer(bag, *evaluated)
    result.clouds = frames.clouds
    result.skipped = Counter(pipeline.stats.skipped) + evaluator.skipped
    return result


def evaluate_bags(bags: Sequence[str | Path], planner: Planner, config: PipelineConfig = PipelineConfig(),
                  topics: ReplayTopics = ReplayTopics(), every: int = 1, metrics: MetricsConfig = MetricsConfig(),
                  render_worst: int = 0, render_dir: str | Path | None = None,
                  progress: bool = False) -> EvalReport:
    """Evaluate the planner on every bag; with `render_worst` N, PNGs of the N worst frames by ADE go to render_dir.

    Every bag (and its scenario.json) is checked before any is planned: BagError naming the bag.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    if metrics.interval_s != GROUND_TRUTH_INTERVAL_S:
        raise ValueError(f"metrics.interval_s must be the planner's pose interval {GROUND_TRUTH_INTERVAL_S}, "
                         f"got {metrics.interval_s}")
    if render_worst < 0 or (render_worst and render_dir is None):
        raise ValueError(f"render_worst must be >= 0 and needs a render_dir, got {render_worst}, {render_dir!r}")
    paths = [Path(bag) for bag in bags]
    for bag in paths:
        check_bag(bag, topics)
    scenarios = [load_scenario(bag) for bag in paths]
    worst = _WorstFrames(render_worst)
    report = EvalReport(planner.describe(), every, metrics)
    for bag, scenario in zip(paths, scenarios):
        report.bags.append(_evaluate_bag(bag, scenario, planner, config, topics, every, metrics, worst, progress))
    if render_worst:
        report.pictures = render_frames(worst.worst_first(), Path(render_dir))
    return report


# --- pictures ------------------------------------------------------------------------------------------------------


def render_frames(frames: Sequence[tuple[Path, FrameResult, np.ndarray]], out_dir: Path) -> list[Path]:
    """Bird's-eye PNGs (every mode, the best one, the ground truth, LiDAR) named by rank, bag and stamp."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rank, (bag, frame, points) in enumerate(frames, start=1):
        best = int(frame.metrics.best_index)
        picture = render_bev(RenderFrame(frame.stamp_ns, frame.modes, frame.scores, best, points_ego=points,
                                         ground_truth=frame.ground_truth))
        m, cv = frame.metrics, frame.baselines["constant_velocity"]
        text = (f"#{rank} {bag.name}  ADE {m.ade:.2f} m  FDE {m.fde:.2f} m  minADE {m.min_ade:.2f} m  "
                f"CV ADE {cv.ade:.2f} m  command {frame.command}")
        height = picture.shape[0]
        panel(picture, (6, height - 34), (picture.shape[1] - 6, height - 6))
        put_text(picture, text, (14, height - 14), 0.46)
        written.append(write_png(picture, out_dir / f"worst_{rank:02d}_{bag.name}_{frame.stamp_ns}.png"))
    return written


# --- command line --------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `eval` subcommand's options."""
    parser.add_argument("bags", type=Path, nargs="+", metavar="BAG", help="rosbag2 folders (sqlite3 or MCAP)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="weights to evaluate (overrides the params file's checkpoint)")
    weights.add_argument("--model-seeded", action="store_true",
                         help="evaluate the deterministic seeded (untrained) weights, e.g. as a floor")
    parser.add_argument("--params-file", type=Path, help="the node's ROS params file (same parameters as the node)")
    parser.add_argument("--device", help="override the device (auto, cpu, cuda)")
    parser.add_argument("--seed", type=int, help="override the seed of the per-frame noise (and seeded weights)")
    parser.add_argument("--noise-scale", type=float,
                        help="override the factor on the anchor noise (1 = the paper's; default: the checkpoint's)")
    parser.add_argument("--every", type=int, default=1, help="evaluate every N-th point cloud (default: all)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the metrics as JSON")
    parser.add_argument("--markdown", type=Path, metavar="OUT", help="write the metrics as a markdown report")
    parser.add_argument("--render-worst", type=int, default=0, metavar="N",
                        help="write bird's-eye PNGs of the N frames with the largest ADE (needs --render-dir)")
    parser.add_argument("--render-dir", type=Path, metavar="DIR", help="folder for the --render-worst PNGs")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME=TOPIC",
                        help=f"topic mapping, NAME one of {[f.name for f in dataclasses.fields(ReplayTopics)]}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table; one-line errors and exit code 1 for unusable bags or options."""
    overrides = {"checkpoint": SEEDED if args.model_seeded else args.checkpoint, "device": args.device,
                 "seed": args.seed, "noise_scale": args.noise_scale}
    try:
        if args.render_worst and args.render_dir is None:
            raise ValueError("--render-worst needs --render-dir")
        topics = parse_topics(args.topic)
        for bag in args.bags:  # before the planner is built, so a wrong path fails fast
            check_bag(bag, topics)
            load_scenario(bag)
        params = load_params_file(args.params_file, {k: v for k, v in overrides.items() if v is not None})
        planner = planner_from_parameters(params)
        print(f"planner: {planner.describe()}")
        report = evaluate_bags(args.bags, planner, pipeline_config(params), topics, args.every,
                               render_worst=args.render_worst, render_dir=args.render_dir, progress=not args.quiet)
        print(report.table())
        if args.json:
            print(f"wrote {report.write_json(args.json)}")
        if args.markdown:
            print(f"wrote {report.write_markdown(args.markdown)}")
    except (BagError, ValueError, OSError) as error:
        print(f"diffusiondrive-ros eval: error: {error}", file=sys.stderr)
        return 1
    if args.render_worst:
        print(f"wrote {len(report.pictures)} pictures of the worst frames by ADE to {args.render_dir}")
    if not report.frames:
        print("diffusiondrive-ros eval: error: no frame could be evaluated (see the skipped sweeps)", file=sys.stderr)
        return 1
    return 0
