"""Every way a checkpoint file can be wrong gives one CheckpointError naming the file and the problem.

The files are real: torch.save output cut short, text, a zip that is not a PyTorch file, a pickle whose
`__reduce__` would create a marker file when unpickled (it must not be, unless the file is trusted).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from diffusiondrive_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from diffusiondrive_ros.model.variants import model_config
from diffusiondrive_ros.model.weights import seeded_model
from diffusiondrive_ros.planner import Planner


class CreatesFile:
    """Unpickling this object opens (creates) `path`: stands for any code a pickle can run."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Path:
    """A real checkpoint in our format (compact model, seeded weights)."""
    path = tmp_path_factory.mktemp("ckpt") / "ours.pt"
    config = model_config("compact")
    save_checkpoint(path, seeded_model(config, seed=1), config)
    return path


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match=rf"checkpoint {tmp_path / 'nope.pt'}: no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match=rf"checkpoint {tmp_path}: is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_file_says_truncated(ours, tmp_path, fraction):
    data = ours.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match=rf"checkpoint {cut}: truncated or damaged: .*no central directory"):
        load_checkpoint(cut)


def test_truncated_legacy_file_says_truncated(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(64)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match=rf"checkpoint {legacy}: truncated or damaged \(RuntimeError"):
        load_checkpoint(legacy)


def test_wrong_formats_are_named(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=r"notes.pt: wrong format: not a PyTorch file .*b'thes'"):
        load_checkpoint(text)
    archive = tmp_path / "archive.pt"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"archive.pt: wrong format: a zip archive but not a PyTorch file"):
        load_checkpoint(archive)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match=r"tensor.pt: checkpoint holds a Tensor, expected a dict"):
        load_checkpoint(tensor)


def test_wrong_keys_and_shapes_are_listed(ours, tmp_path):
    payload = torch.load(ours, weights_only=True)
    state = payload["state_dict"]
    dropped = next(iter(state))
    del state[dropped]
    state["_trajectory_head.plan_anchor"] = torch.zeros(3, 8, 2)
    state["not_a_layer.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError) as raised:
        Planner.from_checkpoint(bad, device="cpu")
    message = str(raised.value)
    assert f"missing keys (1): {dropped}" in message
    assert "unexpected keys (1): not_a_layer.weight" in message
    assert "_trajectory_head.plan_anchor: checkpoint (3, 8, 2) vs model (20, 8, 2)" in message


def test_code_in_a_pickle_never_runs_without_trust(ours, tmp_path):
    marker = tmp_path / "marker"
    payload = torch.load(ours, weights_only=True)
    payload["hook"] = CreatesFile(marker)
    hostile = tmp_path / "hostile.pt"
    torch.save(payload, hostile)
    for load in (lambda: load_checkpoint(hostile), lambda: Planner.from_checkpoint(hostile, device="cpu")):
        with pytest.raises(CheckpointError) as raised:
            load()
        assert not marker.exists()
        message = str(raised.value)
        assert f"checkpoint {hostile}: cannot be read with weights_only=True" in message
        assert "unpickling" in message and "trusted_checkpoint" in message
        assert "Unsupported global: GLOBAL io.open was not an allowed global" in message
        assert "\n" not in message
    load_checkpoint(hostile, trusted=True)  # trust is the one switch that unpickles
    assert marker.exists()


def test_damaged_file_is_not_unpickled_even_when_trusted(tmp_path):
    marker = tmp_path / "marker"
    hostile = tmp_path / "hostile.pt"
    torch.save({"w": torch.zeros(2), "hook": CreatesFile(marker)}, hostile)
    hostile.write_bytes(hostile.read_bytes()[:-30])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(hostile, trusted=True)
    assert not marker.exists()

