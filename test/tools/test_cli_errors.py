"""Each `diffusiondrive-ros` subcommand answers a bad path with one line on stderr and exit code 1, no traceback.

Real processes of the console entry point, on a missing path, a folder that is not what the subcommand reads (a
bag, a dataset) and a file of garbage.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# subcommand -> (arguments with {path} and {out}, garbage file name the subcommand might be handed)
COMMANDS = {
    "replay": (["replay", "{path}", "{out}"], "recording.mcap"),
    "render": (["render", "{path}", "--out", "{out}"], "recording.mcap"),
    "play": (["play", "{path}"], "recording.db3"),
    "dataset": (["dataset", "{path}", "--out", "{out}", "--quiet"], "recording.mcap"),
    "eval": (["eval", "{path}", "--quiet"], "recording.db3"),
    "export": (["export", "--checkpoint", "{path}", "--fp16", "{out}.pt"], "weights.pt"),
    "anchors": (["anchors", "{path}", "--out", "{out}.npy"], "dataset.npz"),
    "train": (["train", "{path}", "--out", "{out}"], "dataset.npz"),
}

# what the line says, by case, or by subcommand for those reading a dataset folder
REASONS = {
    "missing": ("no such file",),
    "folder": ("not a rosbag2 folder", "is a folder, not a checkpoint file"),
    "garbage": ("not an MCAP file", "not a sqlite3 database", "wrong format: not a PyTorch file"),
    "anchors": ("not a dataset (no index.json)",),
    "train": ("not a dataset (no index.json)",),
}


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROS_DOMAIN_ID": str(70 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    return subprocess.run([sys.executable, "-m", "diffusiondrive_ros.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env=env)


def bad_path(case: str, garbage_name: str, root: Path) -> Path:
    if case == "missing":
        return root / "nowhere"
    if case == "folder":
        folder = root / "folder"
        folder.mkdir()
        (folder / "notes.txt").write_text("not a bag, not a dataset\n")
        return folder
    garbage = root / garbage_name
    garbage.write_bytes(bytes(range(256)) * 64)
    return garbage


def assert_one_line_error(done: subprocess.CompletedProcess, command: str, *needles: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"diffusiondrive-ros {command}: ")
    assert all(needle in lines[0] for needle in needles), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", ["missing", "folder", "garbage"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_path_is_one_line_and_exit_code_1(command, case, tmp_path):
    template, garbage_name = COMMANDS[command]
    path = bad_path(case, garbage_name, tmp_path)
    args = [part.format(path=path, out=tmp_path / "out") for part in template]
    line = assert_one_line_error(run_cli(args, tmp_path), command, path.name)
    assert any(text in line for text in REASONS[command if command in REASONS else case]), line


class CreatesFile:
    """Unpickling this object creates `path`: any code could run instead."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_checkpoint_that_needs_unpickling_is_refused_by_the_cli(tmp_path):
    marker = tmp_path / "marker"
    hostile = tmp_path / "hostile.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": CreatesFile(marker)}, hostile)
    done = run_cli(["export", "--checkpoint", str(hostile), "--fp16", str(tmp_path / "out.pt")], tmp_path)
    assert_one_line_error(done, "export", str(hostile), "unpickling", "trusted_checkpoint")
    assert not marker.exists() and not (tmp_path / "out.pt").exists()
