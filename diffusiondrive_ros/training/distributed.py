"""Data-parallel training set-up: the torchrun process group, and the sampler that splits every global batch.

Launch with `torchrun --nproc_per_node N -m diffusiondrive_ros.cli train ...` (add `--nnodes`, `--rdzv-endpoint`
for several machines: torchrun's rendezvous does the rest). Each process trains on its own micro-batches and
DistributedDataParallel averages the gradients, so one optimizer step sees batch_size x accumulate x world_size
samples: the global batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: rank among world_size processes and the device it trains on."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Several processes: gradients are averaged by DistributedDataParallel."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (e.g. while rank 0 writes a checkpoint); nothing to do alone."""
        if self.enabled:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average of `values` over the processes (for logging losses every rank computed on its own samples)."""
        if not self.enabled:
            return values
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world_size


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[Distributed]:
    """The process group torchrun describes in RANK, LOCAL_RANK and WORLD_SIZE (one process when unset).

    NCCL and cuda:LOCAL_RANK on a CUDA device, gloo on the CPU. The group is destroyed on exit.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size == 1:
        yield Distributed(0, 0, 1, device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=rank, world_size=world_size, device_id=device)
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        yield Distributed(rank, local_rank, world_size, device)
    finally:
        dist.destroy_process_group()


class GlobalBatchSampler(Sampler[list[int]]):
    """This process's micro-batches: optimizer step s of an epoch takes samples [s G, (s + 1) G) of a shuffled order.

    The order is DistributedSampler's: `randperm` seeded with seed + epoch, the same in every process. Each global
    batch of G = batch_size x accumulate x world_size samples is cut into consecutive micro-batches of batch_size;
    micro-batch j = rank x accumulate + a goes to `rank`, as its a-th accumulation step. So the same micro-batches,
    with the same index j, make up a step for any world_size x accumulate of the same product: one process
    accumulating 2 micro-batches computes what 2 processes compute (DistributedSampler, which deals samples to ranks
    in turn, cannot give that). The last G-incomplete part of each epoch is dropped; the next epoch reshuffles.
    With `weights` (one per sample, e.g. `balance.balance_weights`) an epoch's order is instead num_samples draws
    with replacement in proportion to them, from the same seeded generator, so every process still cuts one order.
    """

    def __init__(self, num_samples: int, batch_size: int, accumulate: int, rank: int, world_size: int, seed: int,
                 weights: Sequence[float] | None = None):
        self.global_batch = batch_size * accumulate * world_size
        if num_samples < self.global_batch:
            raise ValueError(f"the dataset holds {num_samples} frames, fewer than one global batch of "
                             f"{self.global_batch} (batch size {batch_size} x accumulate {accumulate} x "
                             f"{world_size} processes)")
        if weights is not None and len(weights) != num_samples:
            raise ValueError(f"{len(weights)} sampling weights for {num_samples} samples")
        self.num_samples = num_samples
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.batch_size = batch_size
        self.accumulate = accumulate
        self.rank = rank
        self.seed = seed
        self.steps_per_epoch = num_samples // self.global_batch
        self.epoch = 0
        self.first_step = 0

    def set_epoch(self, epoch: int, first_step: int = 0) -> None:
        """Shuffle for `epoch` and start at its optimizer step `first_step` (to resume inside an epoch)."""
        if not 0 <= first_step < self.steps_per_epoch:
            raise ValueError(f"first_step must be in [0, {self.steps_per_epoch}), got {first_step}")
        self.epoch = epoch
        self.first_step = first_step

    def micro_batch_index(self, accumulation_step: int) -> int:
        """Index j of this process's `accumulation_step`-th micro-batch within the global batch."""
        return self.rank * self.accumulate + accumulation_step

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator).tolist()
        for step in range(self.first_step, self.steps_per_epoch):
            for accumulation_step in range(self.accumulate):
                start = step * self.global_batch + self.micro_batch_index(accumulation_step) * self.batch_size
                yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.first_step) * self.accumulate
