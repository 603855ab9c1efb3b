"""Recordings cut short (killed recorder, full disk) and bags without metadata.yaml are read up to the break.

The bags are real synthetic drives; the truncated copies are their first bytes. What a cut keeps is computed here
from the intact file on its own terms: for MCAP with the `mcap` package's non-seeking StreamReader (chunks and
records that end before the cut), for sqlite3 by walking the messages table's b-tree pages in the file (rows whose
pages all lie before the cut, in rowid order, up to the first that does not).
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mcap.records import Channel, Chunk, MessageIndex
from mcap.stream_reader import StreamReader

from diffusiondrive_ros.tools import topics
from diffusiondrive_ros.tools.bag_io import BagReadError, open_bag
from diffusiondrive_ros.tools.synthetic.bag import make_drive
from diffusiondrive_ros.tools.synthetic.config import DriveConfig

DRIVE = dict(duration_s=2.0, image_width=320, image_height=180)


@pytest.fixture(scope="session")
def drives(tmp_path_factory) -> dict[str, Path]:
    """A 2 s drive as MCAP and as sqlite3 (each about 40 MB in ~2 MB MCAP chunks)."""
    root = tmp_path_factory.mktemp("drives")
    return {storage: make_drive(root / storage, DriveConfig(storage=storage, **DRIVE)).path
            for storage in ("mcap", "sqlite3")}


def storage_file(bag: Path) -> Path:
    (file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return file


def cut_copy(bag: Path, size: int, where: Path) -> Path:
    """A bag folder holding the first `size` bytes of `bag`'s storage file and no metadata.yaml (a killed recorder)."""
    source = storage_file(bag)
    where.mkdir(parents=True)
    with source.open("rb") as stream:
        (where / source.name).write_bytes(stream.read(size))
    return where


def recovery_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "recovered" in r.getMessage()]


# --- MCAP ----------------------------------------------------------------------------------------------------------


def mcap_layout(file: Path) -> tuple[list[tuple[int, list[tuple[str, int]]]], list[int]]:
    """([(end offset of a chunk, its (topic, log time) messages from the MessageIndex records after it)], end offsets of
    every top-level record), read sequentially without decoding any chunk."""
    channels: dict[int, str] = {}
    chunks: list[tuple[int, list[tuple[str, int]]]] = []
    record_ends = []
    pending: list[tuple[int, int]] = []
    with file.open("rb") as stream:
        reader = StreamReader(stream, emit_chunks=True)
        for record in reader.records:
            record_ends.append(stream.tell())
            if isinstance(record, Chunk):
                chunks.append((stream.tell(), []))
                pending = []
            elif isinstance(record, MessageIndex):
                pending += [(record.channel_id, t) for t, _ in record.records]
                chunks[-1] = (chunks[-1][0], pending)
            elif isinstance(record, Channel):
                channels[record.id] = record.topic
    resolved = [(end, [(channels[c], t) for c, t in index]) for end, index in chunks]
    return resolved, record_ends


def expected_mcap(file: Path, cut: int) -> tuple[Counter, int]:
    """(topic, log time) of the messages in chunks that end before `cut`; end of the last whole record."""
    chunks, record_ends = mcap_layout(file)
    kept = Counter(item for end, items in chunks if end <= cut for item in items)
    return kept, max((end for end in record_ends if end <= cut), default=0)


def mcap_cuts(file: Path) -> dict[str, int]:
    """Cut points: a third, the demo's 20 MB, right at the end of the 5th chunk, one byte before the end magic."""
    chunks, _ = mcap_layout(file)
    size = file.stat().st_size
    return {"third": size // 3, "20MB": 20_000_000, "chunk_end": chunks[4][0], "chunk_end+1": chunks[4][0] + 1,
            "no_end_magic": size - 1}


@pytest.mark.parametrize("where", ["third", "20MB", "chunk_end", "chunk_end+1", "no_end_magic"])
def test_cut_mcap_gives_the_messages_of_its_complete_chunks(drives, tmp_path, caplog, where):
    intact = storage_file(drives["mcap"])
    cut = mcap_cuts(intact)[where]
    expected, bytes_kept = expected_mcap(intact, cut)
    assert 0 < sum(expected.values()) and (where == "no_end_magic") == (sum(expected.values()) == 342)

    with caplog.at_level(logging.WARNING):
        bag = open_bag(cut_copy(drives["mcap"], cut, tmp_path / "cut"))
        recovered = list(bag.messages())
    assert Counter((m.topic, m.timestamp_ns) for m in recovered) == expected
    assert bag.message_count == len(recovered)
    intact_raw = {(m.topic, m.timestamp_ns): m.raw for m in open_bag(drives["mcap"]).messages()}
    assert all(intact_raw[(m.topic, m.timestamp_ns)] == m.raw for m in recovered)

    times = [t for _, t in expected.elements()]
    (warning,) = recovery_warnings(caplog)
    assert f"recovered {len(recovered)} messages spanning {(max(times) - min(times)) / 1e9:.2f} s" in warning
    assert f"({bytes_kept} of {cut} bytes)" in warning and "MCAP without summary and end magic" in warning


def test_mcap_cut_inside_its_first_chunk_is_one_clear_error(drives, tmp_path):
    intact = storage_file(drives["mcap"])
    first_chunk_end = mcap_layout(intact)[0][0][0]
    bag = cut_copy(drives["mcap"], first_chunk_end - 1, tmp_path / "cut")
    with pytest.raises(BagReadError, match=rf"{bag}: .*no complete message to recover"):
        open_bag(bag)


# --- sqlite3 -------------------------------------------------------------------------------------------------------


def varint(buf: bytes, i: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `i`: (value, index after it)."""
    value = 0
    for k in range(8):
        value = (value << 7) | (buf[i + k] & 0x7F)
        if buf[i + k] < 0x80:
            return value, i + k + 1
    return (value << 8) | buf[i + 8], i + 9


def sqlite_row_pages(file: Path) -> tuple[list[set[int]], int]:
    """Pages a table scan of `messages` reads for each row (root-to-leaf path and overflow chain), in rowid order."""
    with sqlite3.connect(file) as db:
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()
    data = file.read_bytes()
    page_size, usable = int.from_bytes(data[16:18], "big"), int.from_bytes(data[16:18], "big") - data[20]
    rows: list[set[int]] = []

    def walk(number: int, above: frozenset[int]) -> None:
        page, h = data[(number - 1) * page_size:number * page_size], 100 if number == 1 else 0
        kind, cells = page[h], int.from_bytes(page[h + 3:h + 5], "big")
        start = h + (12 if kind == 5 else 8)
        pointers = [int.from_bytes(page[start + 2 * c:start + 2 * c + 2], "big") for c in range(cells)]
        path = above | {number}
        if kind == 5:  # interior table page: children left to right, then the right-most pointer
            for pointer in pointers:
                walk(int.from_bytes(page[pointer:pointer + 4], "big"), path)
            walk(int.from_bytes(page[h + 8:h + 12], "big"), path)
            return
        assert kind == 13  # leaf table page
        for pointer in pointers:
            size, i = varint(page, pointer)
            _, i = varint(page, i)  # rowid
            pages, most = set(path), usable - 35
            if size > most:  # payload spills into a chain of overflow pages (file format, "Cell Payload Overflow")
                least = (usable - 12) * 32 // 255 - 23
                local = least + (size - least) % (usable - 4)
                local = local if local <= most else least
                overflow = int.from_bytes(page[i + local:i + local + 4], "big")
                while overflow:
                    pages.add(overflow)
                    overflow = int.from_bytes(data[(overflow - 1) * page_size:(overflow - 1) * page_size + 4], "big")
            rows.append(pages)

    walk(root, frozenset())
    return rows, page_size


def rows_before(file: Path, cut: int) -> int:
    """How many rows, in rowid order, have every page they need among the whole pages before `cut`."""
    rows, page_size = sqlite_row_pages(file)
    whole = cut // page_size
    return next((index for index, pages in enumerate(rows) if max(pages) > whole), len(rows))


@pytest.mark.parametrize("where", ["torn_last_page", "half", "page_boundary"])
def test_torn_sqlite_gives_its_intact_rows(drives, tmp_path, caplog, where):
    intact = storage_file(drives["sqlite3"])
    size = intact.stat().st_size
    cut = {"torn_last_page": size - 100, "half": size // 2 + 1234, "page_boundary": 4096 * 3000}[where]
    expected = rows_before(intact, cut)
    assert 0 < expected <= 342

    with caplog.at_level(logging.WARNING):
        recovered = list(open_bag(cut_copy(drives["sqlite3"], cut, tmp_path / "cut")).messages())
    with sqlite3.connect(intact) as db:
        names = dict(db.execute("SELECT id, name FROM topics"))
        rows = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id LIMIT ?", (expected,))
        prefix = [(names[topic], stamp, bytes(data)) for topic, stamp, data in rows]
    assert [(m.topic, m.timestamp_ns, m.raw) for m in recovered] == prefix
    (warning,) = recovery_warnings(caplog)
    assert f"recovered {expected} messages" in warning and "torn last page" in warning
    assert f"of {cut} bytes" in warning


def test_recordings_without_metadata_are_read_from_their_files(drives, tmp_path, caplog):
    for storage, bag in drives.items():
        copy = tmp_path / storage
        shutil.copytree(bag, copy)
        (copy / "metadata.yaml").unlink()
        with caplog.at_level(logging.WARNING):
            recovered = open_bag(copy)
        intact = open_bag(bag)
        assert {t: i.msgtype for t, i in recovered.topics.items()} == {t: i.msgtype for t, i in intact.topics.items()}
        assert Counter(m.topic for m in recovered.messages()) == Counter(m.topic for m in intact.messages())
        assert (recovered.start_ns, recovered.end_ns) == (intact.start_ns, intact.end_ns - 1)
    assert all("no metadata.yaml" in w and "recovered 342 messages" in w for w in recovery_warnings(caplog))


# --- the tools use what is there -----------------------------------------------------------------------------------


def lidar_count(bag: Path) -> int:
    return sum(m.topic == topics.TOPIC_LIDAR for m in open_bag(bag).messages())


@pytest.fixture(scope="module")
def cut_mcap(drives, tmp_path_factory) -> Path:
    """The demo's case: the first 20 MB of the MCAP."""
    return cut_copy(drives["mcap"], 20_000_000, tmp_path_factory.mktemp("cut") / "mcap20")


def test_replay_and_render_use_a_cut_recording(cut_mcap, tmp_path):
    from diffusiondrive_ros import Planner
    from diffusiondrive_ros.tools.render import render_bag
    from diffusiondrive_ros.tools.replay import replay_bag

    clouds = lidar_count(cut_mcap)
    summary = replay_bag(cut_mcap, tmp_path / "replay", Planner.from_checkpoint(None, device="cpu"), every=5,
                         progress=False)
    assert summary.clouds == clouds and len(summary.planned) == len(range(0, clouds, 5)) > 0
    replayed = Counter(m.topic for m in open_bag(tmp_path / "replay").messages())
    assert replayed[topics.TOPIC_PATH] == len(summary.planned)
    assert replayed - Counter({topics.TOPIC_PATH: replayed[topics.TOPIC_PATH],
                               topics.TOPIC_CANDIDATES: replayed[topics.TOPIC_CANDIDATES],
                               topics.TOPIC_DIAGNOSTICS: replayed[topics.TOPIC_DIAGNOSTICS]}) == Counter(
        m.topic for m in open_bag(cut_mcap).messages())

    # The replay's own output, cut short as well, still renders the plans it holds.
    output = storage_file(tmp_path / "replay")
    cut_output = cut_copy(tmp_path / "replay", output.stat().st_size * 3 // 4, tmp_path / "replay_cut")
    plans = sum(m.topic == topics.TOPIC_CANDIDATES for m in open_bag(cut_output).messages())
    pictures = render_bag(cut_output, tmp_path / "render", png_every=1, mp4=False)
    assert 0 < plans <= len(summary.planned) and len(pictures.png_paths) == plans


def test_dataset_and_eval_use_a_torn_recording(drives, tmp_path):
    from diffusiondrive_ros import Planner
    from diffusiondrive_ros.model import load_model_config
    from diffusiondrive_ros.tools.dataset_builder import BuildSettings, build_dataset
    from diffusiondrive_ros.tools.evaluate import evaluate_bags

    torn = cut_copy(drives["sqlite3"], storage_file(drives["sqlite3"]).stat().st_size // 2, tmp_path / "torn")
    clouds = lidar_count(torn)
    assert 0 < clouds < lidar_count(drives["sqlite3"])
    summary = build_dataset([torn], tmp_path / "dataset", BuildSettings.for_model(load_model_config("compact")),
                            progress=False)
    assert not summary.failed and summary.built[0].clouds == clouds
    report = evaluate_bags([torn], Planner.from_checkpoint(None, device="cpu"))
    assert report.bags[0].clouds == clouds


def test_play_publishes_what_a_cut_recording_holds(cut_mcap):
    """A real `diffusiondrive-ros play` process: every recovered message with an rclpy class is published."""
    playable = Counter(m.topic for m in open_bag(cut_mcap).messages() if m.topic != topics.TOPIC_TF_STATIC)
    env = {**os.environ, "ROS_DOMAIN_ID": str(60 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    done = subprocess.run([sys.executable, "-m", "diffusiondrive_ros.cli", "play", str(cut_mcap), "--rate", "5"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"played {sum(playable.values())} messages" in done.stdout
    assert "WARNING" in done.stderr and f"recovered {sum(playable.values()) + 1} messages" in done.stderr
