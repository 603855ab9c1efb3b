"""rosbag2 reading/writing with rclpy message objects (rosbags does the file format; no ROS runtime needed).

A recording that was cut short (recorder killed, disk full: an MCAP without its summary and end magic, a sqlite3
file with a torn last page) or that lost its metadata.yaml is read from the storage files themselves, up to the
break, with one WARN saying how much was recovered. Anything that is not a bag raises BagReadError, one line naming
the path and the reason.
"""
from __future__ import annotations

import functools
import importlib
import logging
import re
import struct
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import numpy as np
from mcap.records import Channel, Footer, Message, Schema
from mcap.stream_reader import StreamReader
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_typestore

from ..errors import InputError
from ..ros.conversions import transform_to_matrix

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TF_STATIC_TYPE = "tf2_msgs/msg/TFMessage"  # no rclpy class on PyPI: decoded with the rosbags typestore
STORAGE_SUFFIXES = (".mcap", ".db3")
MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"

LOG = logging.getLogger(__name__)


class BagReadError(InputError):
    """A path that is not a readable rosbag2 (missing, not a bag, nothing recoverable); one line naming it."""


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


@dataclass(frozen=True)
class BagTopic:
    """A topic of a bag: its message type and the QoS profiles its publishers offered (rosbags `Qos`)."""

    msgtype: str
    offered_qos: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Recovery:
    """What could be read of a recording whose storage files had to be read without rosbags (see `open_bag`)."""

    reason: str
    """Why: e.g. an MCAP without summary and end magic, a torn sqlite3 page, no metadata.yaml."""
    messages: int
    start_ns: int
    end_ns: int
    bytes_read: int
    """Bytes of the storage files up to the break: MCAP to the end of the last complete record, sqlite3 whole pages."""
    bytes_total: int
    breaks: tuple[str, ...] = ()
    """Where and why reading stopped early, one entry per damaged file; empty when the files were read whole."""

    def describe(self, path: Path) -> str:
        """One line for the WARN."""
        span = (self.end_ns - self.start_ns) / 1e9 if self.messages else 0.0
        stop = f"; stopped at {'; '.join(self.breaks)}" if self.breaks else "; files read to their end"
        return (f"{path}: {self.reason}: recovered {self.messages} messages spanning {span:.2f} s "
                f"({self.bytes_read} of {self.bytes_total} bytes){stop}")


@dataclass
class _Progress:
    """Filled while a storage file is read: topics met, bytes of complete records, where reading broke off."""

    topics: dict[str, BagTopic] = field(default_factory=dict)
    bytes_read: int = 0
    breaks: list[str] = field(default_factory=list)


def _natural_key(path: Path) -> list[Any]:
    """Sort key putting bag_2 before bag_10 (split recordings)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def storage_files(path: Path) -> list[Path]:
    """The .mcap or .db3 files of a bag folder (or the file itself); BagReadError for anything else."""
    path = Path(path)
    if not path.exists():
        raise BagReadError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix not in STORAGE_SUFFIXES:
            raise BagReadError(f"{path}: not a rosbag2 folder nor a .mcap or .db3 file")
        return [path]
    files = sorted((p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file()), key=_natural_key)
    if not files and (path / "metadata.yaml").is_file():
        raise BagReadError(f"{path}: cannot read the bag: metadata.yaml but no .mcap or .db3 file beside it")
    if not files:
        raise BagReadError(f"{path}: not a rosbag2 folder (no metadata.yaml, no .mcap or .db3 file)")
    if len({p.suffix for p in files}) > 1:
        raise BagReadError(f"{path}: holds both .mcap and .db3 files; pass the one bag to read")
    return files


def _sqlite_sizes(file: Path) -> tuple[int, int, int]:
    """(page size, file size, size its header counts) of a sqlite3 file; a stale header count gives the file size."""
    with file.open("rb") as stream:
        header = stream.read(100)
    size = file.stat().st_size
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise BagReadError(f"{file}: not a sqlite3 database (bad header)")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    # The in-header page count is valid when its "version-valid-for" number equals the change counter.
    pages = struct.unpack(">I", header[28:32])[0] if header[92:96] == header[24:28] else 0
    return page_size, size, max(size, pages * page_size)


def _damage(file: Path) -> str | None:
    """Why a storage file looks cut short (cheap checks of its end), or None when it looks whole."""
    size = file.stat().st_size
    if file.suffix == ".mcap":
        with file.open("rb") as stream:
            stream.seek(max(0, size - len(MCAP_MAGIC)))
            whole = stream.read() == MCAP_MAGIC and size > 2 * len(MCAP_MAGIC)
        return None if whole else "MCAP without summary and end magic (cut short)"
    page_size, size, expected = _sqlite_sizes(file)
    if size % page_size or size < expected:
        return f"sqlite3 file with a torn last page ({size} bytes, its header counts {expected})"
    return None


def _mcap_messages(file: Path, progress: _Progress) -> Iterator[BagMessage]:
    """Messages of an MCAP in file order, read sequentially without its summary, up to the first damaged record.

    A chunk is used only when it is complete: one cut short is lost with every message in it.
    """
    schemas: dict[int, str] = {}
    channels: dict[int, str] = {}
    with file.open("rb") as stream:
        if stream.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            raise BagReadError(f"{file}: not an MCAP file (bad magic)")
        stream.seek(0)
        try:
            for record in StreamReader(stream).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = record.topic
                    progress.topics.setdefault(record.topic, BagTopic(
                        schemas.get(record.schema_id, ""), _qos(record.metadata.get("offered_qos_profiles", ""))))
                elif isinstance(record, Message):
                    topic = channels[record.channel_id]
                    progress.bytes_read = stream.tell()
                    yield BagMessage(topic, progress.topics[topic].msgtype, record.log_time, bytes(record.data))
                elif isinstance(record, Footer):  # the summary was read: everything before it is whole
                    progress.bytes_read = stream.tell()
                    return
                progress.bytes_read = stream.tell()
        # The parser raises EndOfFile, struct.error, KeyError (unknown channel) or decompression errors at a cut or
        # damaged record; nothing after it can be trusted, so reading stops there whatever the error.
        except Exception as error:
            progress.breaks.append(f"{file.name} byte {progress.bytes_read} ({_error_text(error)})")


class _WholePagesFile(apsw.VFSFile):
    """A database file whose size is rounded down to whole pages, so sqlite treats a torn last page as absent."""

    def __init__(self, name: Any, flags: list[int], page_size: int):
        super().__init__("", name, flags)
        self._page_size = page_size

    def xFileSize(self) -> int:  # noqa: N802 - the method name apsw calls
        size = super().xFileSize()
        return size - size % self._page_size


class _WholePagesVFS(apsw.VFS):
    """The default sqlite VFS with `_WholePagesFile` files (sqlite counts a partial page as a page of zeros)."""

    def __init__(self, page_size: int):
        self.page_size, self.name = page_size, f"diffusiondrive_whole_pages_{page_size}"
        super().__init__(self.name, "")

    def xOpen(self, name: Any, flags: list[int]) -> _WholePagesFile:  # noqa: N802 - the method name apsw calls
        return _WholePagesFile(name, flags, self.page_size)


@functools.cache
def _whole_pages_vfs(page_size: int) -> _WholePagesVFS:
    """The VFS for one page size, registered once and kept alive for the process."""
    return _WholePagesVFS(page_size)


def _sqlite_messages(file: Path, progress: _Progress) -> Iterator[BagMessage]:
    """Rows of a rosbag2 sqlite3 file in insertion order, from its whole pages, until sqlite meets a missing page.

    Only the database file is read: rows still in a `-wal` journal beside it (the recorder's resilient preset) are not.
    """
    page_size, size, _ = _sqlite_sizes(file)
    progress.bytes_read = size - size % page_size
    # Read-only and immutable: no lock or journal is written beside a damaged file. writable_schema makes sqlite take
    # the page count from the file instead of refusing a file shorter than its header says.
    connection = apsw.Connection(f"{file.resolve().as_uri()}?mode=ro&immutable=1",
                                 flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI,
                                 vfs=_whole_pages_vfs(page_size).name)
    try:
        try:
            connection.execute("PRAGMA writable_schema=ON")
            columns = {row[1] for row in connection.execute("PRAGMA table_info(topics)")}
            qos = "offered_qos_profiles" if "offered_qos_profiles" in columns else "''"
            topics = {}
            for topic_id, name, msgtype, offered in connection.execute(f"SELECT id, name, type, {qos} FROM topics"):
                topics[topic_id] = name
                progress.topics.setdefault(name, BagTopic(msgtype, _qos(offered)))
        except apsw.Error as error:
            raise BagReadError(f"{file}: not a readable rosbag2 sqlite3 file ({error})") from error
        try:
            for topic_id, timestamp, data in connection.execute("SELECT topic_id, timestamp, data FROM messages "
                                                                "ORDER BY id"):
                topic = topics[topic_id]
                yield BagMessage(topic, progress.topics[topic].msgtype, timestamp, bytes(data))
        except (apsw.Error, KeyError, TypeError) as error:  # missing page, or a row naming no topic / holding no data
            progress.breaks.append(f"{file.name} ({_error_text(error)})")
    finally:
        connection.close()


def _error_text(error: BaseException) -> str:
    """'Type: message', or the type alone when the message is empty (mcap's EndOfFile)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _qos(text: str) -> tuple[Any, ...]:
    """Offered QoS profiles from their YAML text; none when it cannot be parsed (the player then uses defaults)."""
    try:
        return tuple(parse_qos(text))
    # rosbags raises ReaderError, KeyError or ValueError for profiles it does not understand; they are optional.
    except Exception:
        return ()


def _recovered_messages(files: Collection[Path], progress: _Progress) -> Iterator[BagMessage]:
    """Messages of every storage file in turn, each read up to its break."""
    for file in files:
        read = _mcap_messages if file.suffix == ".mcap" else _sqlite_messages
        yield from read(file, progress)


@functools.cache
def _scan(files: tuple[Path, ...], stamps: tuple[tuple[int, int], ...], path: Path, reason: str
          ) -> tuple[dict[str, BagTopic], Recovery]:
    """Topics and what is recoverable of storage files read without rosbags; logs the WARN once per file state."""
    progress = _Progress()
    count, start_ns, end_ns = 0, None, None
    for message in _recovered_messages(files, progress):
        count += 1
        start_ns = message.timestamp_ns if start_ns is None else min(start_ns, message.timestamp_ns)
        end_ns = message.timestamp_ns if end_ns is None else max(end_ns, message.timestamp_ns)
    total = sum(size for size, _ in stamps)
    recovery = Recovery(reason, count, start_ns or 0, end_ns or 0, progress.bytes_read, total, tuple(progress.breaks))
    if count == 0:
        raise BagReadError(f"{path}: {reason}: no complete message to recover ({total} bytes"
                           + (f"; stopped at {'; '.join(progress.breaks)})" if progress.breaks else ")"))
    LOG.warning(recovery.describe(path))
    return progress.topics, recovery


class Bag:
    """An opened rosbag2: topics, message count, time span and the messages (read again on every call).

    Whole bags with metadata.yaml are read with rosbags (log-time order). Others are read from their storage files
    in file order up to the break; `recovery` then says what was recovered.
    """

    def __init__(self, path: Path, topics: dict[str, BagTopic], message_count: int, start_ns: int, end_ns: int,
                 messages: Callable[[Collection[str] | None], Iterator[BagMessage]],
                 recovery: Recovery | None = None):
        self.path, self.topics, self.message_count = path, topics, message_count
        self.start_ns, self.end_ns, self.recovery = start_ns, end_ns, recovery
        self._messages = messages

    def messages(self, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
        """Messages of `topics` (all when None); the files stay open while iterating."""
        return self._messages(None if topics is None else frozenset(topics))


def _rosbags_bag(path: Path) -> Bag:
    """A whole bag read with rosbags (raises whatever rosbags raises when it cannot open it)."""
    with Reader(path) as reader:
        topics: dict[str, BagTopic] = {}
        for connection in reader.connections:
            offered = tuple(getattr(connection.ext, "offered_qos_profiles", None) or ())
            known = topics.get(connection.topic, BagTopic(connection.msgtype))
            topics[connection.topic] = BagTopic(known.msgtype, known.offered_qos + offered)
        count, start_ns, end_ns = reader.message_count, reader.start_time, reader.end_time

    def messages(wanted: Collection[str] | None) -> Iterator[BagMessage]:
        read = 0
        with Reader(path) as reader:
            connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
            iterator = reader.messages(connections) if connections else iter(())
            try:
                for connection, timestamp, raw in iterator:
                    read += 1
                    yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(raw))
            # Damage in the middle of a bag whose ends look whole: rosbags, sqlite, apsw or the decompressors raise
            # their own errors; the messages before it are still used, as for a bag cut short.
            except Exception as error:
                LOG.warning(f"{path}: damaged record after {read} messages ({type(error).__name__}: {error}); "
                            "reading stopped there")

    return Bag(path, topics, count, start_ns, end_ns, messages)


def open_bag(path: str | Path) -> Bag:
    """Open a rosbag2 folder (or a lone .mcap/.db3 file), recovering a recording cut short or without metadata.

    BagReadError (one line naming the path) for a missing path, a folder that is not a bag, a file that is not a
    bag, or a recording of which not one message can be recovered.
    """
    path = Path(path)
    files = storage_files(path)
    damage = [reason for reason in map(_damage, files) if reason]
    if damage:
        reason = damage[0]
    elif not (path / "metadata.yaml").is_file():
        reason = "no metadata.yaml (recording not closed?)"
    else:
        try:
            return _rosbags_bag(path)
        # rosbags raises ReaderError, YAML, sqlite/apsw and OS errors for a bag it cannot open; the storage files
        # are then read directly below, which either recovers them or says why not.
        except Exception as error:
            reason = f"rosbags cannot open it ({type(error).__name__}: {error})"
    files = tuple(file.resolve() for file in files)
    stamps = tuple((file.stat().st_size, file.stat().st_mtime_ns) for file in files)
    topics, recovery = _scan(files, stamps, path, reason)

    def messages(wanted: Collection[str] | None) -> Iterator[BagMessage]:
        for message in _recovered_messages(files, _Progress()):
            if wanted is None or message.topic in wanted:
                yield message

    return Bag(path, topics, recovery.messages, recovery.start_ns, recovery.end_ns, messages, recovery)


def read_bag(path: Path) -> tuple[dict[str, str], int, Iterator[BagMessage]]:
    """(topic -> msgtype, message count, messages); see `open_bag` for damaged bags and the order of messages."""
    bag = open_bag(path)
    return {topic: info.msgtype for topic, info in bag.topics.items()}, bag.message_count, bag.messages()


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
