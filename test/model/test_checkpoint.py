"""Checkpoint loading: plain state_dict, official Lightning layout, our own format, anchors, and clear errors."""
import argparse

import numpy as np
import pytest
import torch

from diffusiondrive_ros import Planner
from diffusiondrive_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from diffusiondrive_ros.planner import SEEDED

LIGHTNING_PREFIX = "agent._transfuser_model."


@pytest.fixture(scope="module")
def reference_state(parity_model):
    return {k: v.clone() for k, v in parity_model.state_dict().items()}


def _assert_same_weights(planner, state):
    loaded = planner.model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key].cpu(), value), key


def test_plain_state_dict(tmp_path, reference_state):
    path = tmp_path / "plain.pth"
    torch.save(reference_state, path)
    _assert_same_weights(Planner.from_checkpoint(path, device="cpu"), reference_state)


def test_official_lightning_checkpoint(tmp_path, reference_state):
    path = tmp_path / "diffusiondrive_navsim.ckpt"
    torch.save({
        "epoch": 99,
        "global_step": 12345,
        "pytorch-lightning_version": "2.2.1",
        "state_dict": {LIGHTNING_PREFIX + k: v for k, v in reference_state.items()},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
        "lr_schedulers": [{"milestones": {70: 1}}],
    }, path)
    _assert_same_weights(Planner.from_checkpoint(path, device="cpu"), reference_state)


def test_own_format_round_trip(tmp_path, parity_model, reference_state):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, parity_model, parity_model.config, note="test")
    state, config = load_checkpoint(path)
    assert config == parity_model.config
    _assert_same_weights(Planner.from_checkpoint(path, device="cpu"), reference_state)


def test_anchors_from_npy_override_checkpoint(tmp_path, reference_state):
    path, anchor_file = tmp_path / "plain.pth", tmp_path / "kmeans_navsim_traj_20.npy"
    torch.save(reference_state, path)
    anchors = np.random.default_rng(0).normal(size=(20, 8, 2)).astype(np.float32)
    np.save(anchor_file, anchors)
    planner = Planner.from_checkpoint(path, device="cpu", anchors=anchor_file)
    np.testing.assert_array_equal(planner.model.anchors.numpy(), anchors)


def test_anchor_file_with_wrong_shape_is_rejected(tmp_path, reference_state):
    path, anchor_file = tmp_path / "plain.pth", tmp_path / "bad.npy"
    torch.save(reference_state, path)
    np.save(anchor_file, np.zeros((6, 8, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(20, 8, 2\)"):
        Planner.from_checkpoint(path, device="cpu", anchors=anchor_file)


def test_mismatched_checkpoint_lists_every_problem(tmp_path, reference_state):
    state = dict(reference_state)
    del state["bev_proj.0.weight"]
    state["_agent_head._mlp_label.0.weight"] = torch.zeros(2, 256)
    state["extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        Planner.from_checkpoint(path, device="cpu")
    message = str(info.value)
    assert "missing keys (1): bev_proj.0.weight" in message
    assert "unexpected keys (1): extra_head.weight" in message
    assert "_agent_head._mlp_label.0.weight: checkpoint (2, 256) vs model (1, 256)" in message


def test_unsafe_pickle_is_refused_without_trust(tmp_path, reference_state):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": reference_state, "hyper_parameters": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(path)
    state, _ = load_checkpoint(path, trusted=True)
    assert state.keys() == reference_state.keys()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_file_gives_checkpoint_error(tmp_path, content):
    path = tmp_path / "corrupt.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt.ckpt"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        Planner.from_checkpoint(tmp_path / "nope.ckpt", device="cpu")


def test_state_dict_with_no_tensors(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="no tensors"):
        Planner.from_checkpoint(path, device="cpu")


def test_seeded_weights_are_deterministic():
    first = Planner.from_checkpoint(SEEDED, device="cpu", seed=3).model.state_dict()
    second = Planner.from_checkpoint(SEEDED, device="cpu", seed=3).model.state_dict()
    other = Planner.from_checkpoint(SEEDED, device="cpu", seed=4).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["bev_proj.0.weight"], other["bev_proj.0.weight"])
