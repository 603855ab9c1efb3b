"""rosbag2 reading/writing with rclpy message objects (rosbags does the file format; no ROS runtime needed)."""
from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..ros.conversions import transform_to_matrix

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TF_STATIC_TYPE = "tf2_msgs/msg/TFMessage"  # no rclpy class on PyPI: decoded with the rosbags typestore


@functools.cache
def message_class(msgtype: str) -> type:
    """Rclpy message class of a rosbag2 type name such as 'sensor_msgs/msg/PointCloud2'."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise ValueError(f"unexpected message type name {msgtype!r}")
    return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes

    def decode(self) -> Any:
        return deserialize_message(self.raw, message_class(self.msgtype))


def read_bag(path: Path) -> tuple[dict[str, str], int, Iterator[BagMessage]]:
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


class StaticTransforms:
    """The /tf_static tree: rigid transforms between any two connected frames."""

    def __init__(self) -> None:
        self._parents: dict[str, tuple[str, np.ndarray]] = {}

    def add(self, tf_message: object) -> None:
        """Add every TransformStamped of a tf2_msgs/TFMessage."""
        for stamped in tf_message.transforms:
            self._parents[stamped.child_frame_id] = (stamped.header.frame_id, transform_to_matrix(stamped.transform))

    def add_raw(self, raw: bytes) -> None:
        """Add a /tf_static message from its CDR bytes (decoded with rosbags: no tf2_msgs rclpy class on PyPI)."""
        self.add(TYPESTORE.deserialize_cdr(raw, TF_STATIC_TYPE))

    def _ancestors(self, frame: str) -> dict[str, np.ndarray]:
        """Every frame above `frame` (itself included) with ancestor <- frame."""
        chain = {frame: np.eye(4)}
        current, matrix = frame, np.eye(4)
        while current in self._parents and self._parents[current][0] not in chain:
            parent, parent_from_current = self._parents[current]
            matrix = parent_from_current @ matrix
            chain[parent] = matrix
            current = parent
        return chain

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """4x4 target <- source, or None when the frames are not connected."""
        from_source = self._ancestors(source)
        for frame, common_from_target in self._ancestors(target).items():
            if frame in from_source:
                return np.linalg.inv(common_from_target) @ from_source[frame]
        return None



class BagWriter:
    """Writes raw CDR bytes or rclpy messages to a new rosbag2, one connection per topic."""

    def __init__(self, path: Path, storage: str = "mcap"):
        if storage not in STORAGE:
            raise ValueError(f"storage must be one of {sorted(STORAGE)}, got {storage!r}")
        self._writer = Writer(path, version=9, storage_plugin=STORAGE[storage])
        self._connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
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
