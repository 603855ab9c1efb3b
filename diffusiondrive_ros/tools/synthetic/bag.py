"""make_drive: schedules every message of a drive and writes them to a new rosbag2 (plus scenario.json)."""
from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from .config import DriveConfig
from .interface import (
    CAMERA_NAMES,
    TOPIC_CAMERA_IMAGE,
    TOPIC_CAMERA_INFO,
    TOPIC_COMMAND,
    TOPIC_IMU,
    TOPIC_LIDAR,
    TOPIC_ODOMETRY,
    TOPIC_TF_STATIC,
    TOPIC_TYPES,
)
from .messages import MessageFactory
from .scenario import SUMMARY_FORMAT
from .scene import SyntheticScene

SCENARIO_FILE = "scenario.json"
"""Sidecar in a random drive's bag directory: Scenario.summary (layout, turns, stops, commands)."""


@dataclass(frozen=True)
class DriveSummary:
    """What ``make_drive`` wrote: bag path, time span and per-topic type and count."""

    path: Path
    storage: str
    duration_s: float
    start_ns: int
    end_ns: int
    topic_types: Mapping[str, str]
    counts: Mapping[str, int]
    wall_time_s: float
    scenario_file: Path | None = None
    """The bag's scenario.json (random drives only)."""

    @property
    def message_count(self) -> int:
        """Total number of messages in the bag."""
        return sum(self.counts.values())

    def format(self) -> str:
        """Human-readable multi-line summary for the CLI."""
        lines = [
            f"bag: {self.path} ({self.storage})",
            f"duration: {self.duration_s:.2f} s, {self.message_count} messages, "
            f"written in {self.wall_time_s:.1f} s",
        ]
        lines += [f"  {t:<34} {self.topic_types[t]:<32} {self.counts[t]:>6}" for t in self.counts]
        if self.scenario_file is not None:
            lines.append(f"scenario: {self.scenario_file}")
        return "\n".join(lines)


_LATCHED_QOS = Qos(
    history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
    durability=QosDurability.TRANSIENT_LOCAL, deadline=QosTime(0, 0), lifespan=QosTime(0, 0),
    liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=QosTime(0, 0),
    avoid_ros_namespace_conventions=False,
)
_LATCHED_TOPICS = (TOPIC_TF_STATIC, TOPIC_COMMAND)
_STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Write order for messages sharing a stamp.
_PRIORITY = {"tf": 0, "command": 1, "odometry": 2, "imu": 3, "lidar": 4, "camera": 5}


def sample_times(rate_hz: float, duration_s: float) -> np.ndarray:
    """Instants k / rate in [0, duration)."""
    count = math.ceil(duration_s * rate_hz - 1e-9)
    return np.arange(count) / rate_hz


def _schedule(scene: SyntheticScene) -> list[tuple[int, int, str, float, int]]:
    """Sorted (stamp_ns, priority, kind, t, payload) of every event in the drive."""
    cfg = scene.config
    events = [(0.0, "tf", 0)]
    events += [(t, "command", value) for t, value in scene.command_changes(cfg.duration_s)]
    for kind, rate in (("odometry", cfg.odom_rate_hz), ("imu", cfg.imu_rate_hz), ("lidar", cfg.lidar_rate_hz),
                       ("camera", cfg.camera_rate_hz)):
        events += [(float(t), kind, 0) for t in sample_times(rate, cfg.duration_s)]
    stamped = [(cfg.start_time_ns + round(t * 1e9), _PRIORITY[kind], kind, t, payload) for t, kind, payload in events]
    return sorted(stamped)


def _prepare_output(out_dir: Path, overwrite: bool) -> None:
    """Refuse an existing path unless ``overwrite``; even then only delete an old bag or an empty dir."""
    if not out_dir.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir} already exists; choose a new directory or pass overwrite=True")
    if not out_dir.is_dir() or not ((out_dir / "metadata.yaml").exists() or not any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and does not look like a rosbag2 directory; not deleting it")
    shutil.rmtree(out_dir)


def make_drive(out_dir: str | Path, config: DriveConfig | None = None, *, overwrite: bool = False,
               progress: Callable[[float], None] | None = None) -> DriveSummary:
    """Write the synthetic drive to a new rosbag2 directory ``out_dir`` and summarise it.

    ``progress`` (optional) is called with the fraction of events written.
    """
    config = config or DriveConfig()
    out_dir = Path(out_dir)
    _prepare_output(out_dir, overwrite)
    started = time.perf_counter()
    scene = SyntheticScene(config)
    factory = MessageFactory(scene)
    events = _schedule(scene)
    counts = dict.fromkeys(TOPIC_TYPES, 0)
    with Writer(out_dir, version=9, storage_plugin=_STORAGE[config.storage]) as writer:
        connections = {
            topic: writer.add_connection(topic, msgtype, typestore=factory.typestore,
                                         offered_qos_profiles=[_LATCHED_QOS] if topic in _LATCHED_TOPICS else [])
            for topic, msgtype in TOPIC_TYPES.items()
        }
        for n, (stamp, _, kind, t, payload) in enumerate(events):
            for topic, msg in _event_messages(factory, scene, kind, stamp, t, payload):
                writer.write(connections[topic], stamp, factory.serialize(msg))
                counts[topic] += 1
            if progress is not None:
                progress((n + 1) / len(events))
    scenario_file = None
    if config.scenario == "random":
        scenario_file = out_dir / SCENARIO_FILE
        scenario_file.write_text(json.dumps(scene.scenario.summary(config), indent=1) + "\n")
    return DriveSummary(
        path=out_dir, storage=config.storage, duration_s=config.duration_s, start_ns=events[0][0],
        end_ns=events[-1][0], topic_types=TOPIC_TYPES, counts=counts, wall_time_s=time.perf_counter() - started,
        scenario_file=scenario_file,
    )


def read_scenario(bag_dir: str | Path) -> dict:
    """The scenario.json of a random drive's bag directory, checked to be one."""
    summary = json.loads((Path(bag_dir) / SCENARIO_FILE).read_text())
    if summary.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"{bag_dir}/{SCENARIO_FILE} is not a {SUMMARY_FORMAT} file")
    return summary


def _event_messages(factory: MessageFactory, scene: SyntheticScene, kind: str, stamp: int, t: float,
                    payload: int) -> list[tuple[str, object]]:
    """(topic, message) pairs produced by one scheduled event."""
    if kind == "tf":
        return [(TOPIC_TF_STATIC, factory.tf_static(stamp))]
    if kind == "command":
        return [(TOPIC_COMMAND, factory.command(payload))]
    if kind == "odometry":
        return [(TOPIC_ODOMETRY, factory.odometry(stamp, scene.ego_state(t)))]
    if kind == "imu":
        return [(TOPIC_IMU, factory.imu(stamp, scene.ego_state(t)))]
    if kind == "lidar":
        return [(TOPIC_LIDAR, factory.pointcloud(stamp, scene.lidar_sweep(t)))]
    messages = []
    for name in CAMERA_NAMES:
        messages.append((TOPIC_CAMERA_INFO[name], factory.camera_info(stamp, name)))
        messages.append((TOPIC_CAMERA_IMAGE[name], factory.compressed_image(stamp, name, scene.render_camera(name, t))))
    return messages
