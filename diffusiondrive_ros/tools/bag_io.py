"""rosbag2 reading/writing with rclpy message objects (rosbags does the file format; no ROS runtime needed)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from transforms3d.quaternions import quat2mat

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TF_STATIC_TYPE = "tf2_msgs/msg/TFMessage"  # no rclpy class on PyPI: decoded with the rosbags typestore


def message_class(msgtype: str):
    """'sensor_msgs/msg/PointCloud2' -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes

    def decode(self) -> Any:
        return deserialize_message(self.raw, message_class(self.msgtype))


def read_bag(path: Path) -> Tuple[Dict[str, str], int, Iterator[BagMessage]]:
    """(topic -> msgtype, message count, messages in log-time order); the reader stays open while iterating."""
    reader = Reader(path)
    reader.open()
    topics = {c.topic: c.msgtype for c in reader.connections}

    def messages() -> Iterator[BagMessage]:
        try:
            for connection, timestamp, raw in reader.messages():
                yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(raw))
        finally:
            reader.close()

    return topics, reader.message_count, messages()


@dataclass
class StaticTransforms:
    """Poses of frames relative to their parents from /tf_static, chained to any ancestor frame."""

    parents: Dict[str, Tuple[str, np.ndarray]] = field(default_factory=dict)

    def add_raw(self, raw: bytes) -> None:
        for tf in TYPESTORE.deserialize_cdr(raw, TF_STATIC_TYPE).transforms:
            r, t = tf.transform.rotation, tf.transform.translation
            matrix = np.eye(4)
            matrix[:3, :3] = quat2mat([r.w, r.x, r.y, r.z])
            matrix[:3, 3] = [t.x, t.y, t.z]
            self.parents[tf.child_frame_id] = (tf.header.frame_id, matrix)

    def lookup(self, target: str, frame: str) -> Optional[np.ndarray]:
        """4x4 pose of `frame` in `target` (maps points in `frame` to `target`), or None if not connected."""
        matrix, current = np.eye(4), frame
        for _ in range(64):
            if current == target:
                return matrix
            if current not in self.parents:
                return None
            current, step = self.parents[current]
            matrix = step @ matrix
        return None


class BagWriter:
    """Writes raw CDR bytes or rclpy messages to a new rosbag2, one connection per topic."""

    def __init__(self, path: Path, storage: str = "mcap"):
        if storage not in STORAGE:
            raise ValueError(f"storage must be one of {sorted(STORAGE)}, got {storage!r}")
        self._writer = Writer(path, version=9, storage_plugin=STORAGE[storage])
        self._connections: Dict[str, Any] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, raw: bytes) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        self._writer.write(self._connections[topic], timestamp_ns, raw)

    def write(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        msgtype = type(msg).__module__.split(".")[0] + "/msg/" + type(msg).__name__
        self.write_raw(topic, msgtype, timestamp_ns, serialize_message(msg))
