"""Data parallelism: the global-batch sampler, and a real 2-process torchrun (gloo, CPU) against one process.

Why one process with `--accumulate 2` is the reference for 2 processes: BatchNorm normalises each forward's batch
with that batch's statistics, so 2 processes x batch B compute the same numbers as one process accumulating 2
micro-batches of B, not one batch of 2B. Dropout and the diffusion noise are seeded per micro-batch (seed, step,
micro-batch index), so they are the same in both layouts too. What differs is only the rounding of the gradient
average and the BatchNorm running statistics, which DDP takes from rank 0 (its default `broadcast_buffers`) and
which do not enter training-mode forwards: losses and parameters must match, running statistics need not.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training_data import make_dataset, write_tiny_model

from diffusiondrive_ros.model import DiffusionDrive, load_model_config
from diffusiondrive_ros.training.distributed import GlobalBatchSampler
from diffusiondrive_ros.training.train import TrainOptions, train

# Processes that need the CPUs for their timing share one xdist worker (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

REPO = Path(__file__).resolve().parents[2]


def steps(sampler: GlobalBatchSampler) -> list[list[list[int]]]:
    """The sampler's micro-batches grouped by optimizer step."""
    batches = list(sampler)
    return [batches[i:i + sampler.accumulate] for i in range(0, len(batches), sampler.accumulate)]


def test_same_micro_batches_for_any_split_of_the_global_batch():
    one = GlobalBatchSampler(26, batch_size=3, accumulate=4, rank=0, world_size=1, seed=7)
    two = [GlobalBatchSampler(26, batch_size=3, accumulate=2, rank=r, world_size=2, seed=7) for r in range(2)]
    four = [GlobalBatchSampler(26, batch_size=3, accumulate=1, rank=r, world_size=4, seed=7) for r in range(4)]
    assert one.global_batch == 12 and one.steps_per_epoch == 2  # 26 frames: the last 2 wait for the next epoch
    reference = steps(one)
    assert [sum((s[i] for s in map(steps, two)), []) for i in range(2)] == reference
    assert [sum((s[i] for s in map(steps, four)), []) for i in range(2)] == reference
    flat = [index for step in reference for batch in step for index in batch]
    assert len(set(flat)) == 24 and all(len(batch) == 3 for step in reference for batch in step)
    assert [two[1].micro_batch_index(a) for a in range(2)] == [2, 3]


def test_epochs_reshuffle_like_distributed_sampler_and_resume_skips_steps():
    sampler = GlobalBatchSampler(10, batch_size=2, accumulate=1, rank=0, world_size=1, seed=3)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3 + 1)).tolist()
    sampler.set_epoch(1)
    assert [i for batch in sampler for i in batch] == order
    sampler.set_epoch(1, first_step=3)
    assert list(sampler) == [order[6:8], order[8:10]] and len(sampler) == 2
    sampler.set_epoch(2)
    assert [i for batch in sampler for i in batch] != order
    with pytest.raises(ValueError, match="first_step"):
        sampler.set_epoch(0, first_step=5)


def test_weighted_epochs_draw_in_proportion_and_split_like_the_shuffle():
    weights = [3.0, 1.0, 0.0, 0.0]
    one = GlobalBatchSampler(4, batch_size=2, accumulate=2, rank=0, world_size=1, seed=5, weights=weights)
    two = [GlobalBatchSampler(4, batch_size=2, accumulate=1, rank=r, world_size=2, seed=5, weights=weights)
           for r in range(2)]
    drawn = []
    for epoch in range(500):
        for sampler in (one, *two):
            sampler.set_epoch(epoch)
        reference = steps(one)
        assert [sum((steps(s)[0] for s in two), [])] == reference
        drawn += [i for batch in reference[0] for i in batch]
    counts = np.bincount(drawn, minlength=4)
    assert counts[2] == counts[3] == 0  # weight 0: never drawn
    assert counts[0] / len(drawn) == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError, match="3 sampling weights for 4 samples"):
        GlobalBatchSampler(4, batch_size=2, accumulate=1, rank=0, world_size=1, seed=0, weights=[1.0] * 3)


def test_too_few_frames_for_one_global_batch():
    with pytest.raises(ValueError, match="5 frames, fewer than one global batch of 6"):
        GlobalBatchSampler(5, batch_size=3, accumulate=1, rank=0, world_size=2, seed=0)


def rows(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    data = make_dataset(tmp_path / "data", frames=8)
    model = write_tiny_model(tmp_path)
    common = ["--model", str(model), "--steps", "3", "--batch-size", "2", "--lr", "1e-3", "--workers", "0"]
    # One thread, as each torchrun process below: the same kernels, so that only data parallelism differs (the
    # tiny model's BatchNorm over 2 samples x 2 cells amplifies the rounding of other thread counts in its gradients).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(data, tmp_path / "one", TrainOptions(model=str(model), steps=3, batch_size=2, accumulate=2, lr=1e-3,
                                                   workers=0))
    finally:
        torch.set_num_threads(threads)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "diffusiondrive_ros.cli", "train", str(data), "--out", str(tmp_path / "two"), *common]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "global batch 4 = 2 x accumulate 1 x 2 processes" in done.stdout
    assert done.stdout.count("trained steps 0..3") == 1  # rank 0 alone reports (and writes)

    one, two = rows(tmp_path / "one"), rows(tmp_path / "two")
    assert [row["step"] for row in two] == [1, 2, 3]
    for a, b in zip(one, two):
        for key in ("loss", "loss_layer0", "loss_layer1", "grad_norm", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (key, a, b)
    parameters = {name for name, _ in DiffusionDrive(load_model_config(model)).named_parameters()}
    weights = [torch.load(tmp_path / run / "last.pt", weights_only=True)["state_dict"] for run in ("one", "two")]
    for name in parameters:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-4, atol=1e-5, msg=name)
