"""Train DiffusionDrive on a dataset folder (`diffusiondrive-ros dataset`), from scratch or fine-tuning a checkpoint.

The objective is the paper's truncated diffusion: anchors noised to a timestep in [0, 50), both cascade decoder
layers supervised (focal classification of the anchor nearest the ground truth + L1 on its poses), optionally with
--consistency-weight: an L1 between the poses decoded from two noise draws (not in the paper); --noise-scale puts a
factor on that noise, stored with the model, which plans with the same factor (0: the decoder learns to refine the
anchors themselves, as a model shipped with noise scale 0 plans). The agent and BEV-semantic heads have no labels in
our datasets and are not trained. AdamW, linear warm-up + cosine decay per step, gradient clipping, optional EMA of
the weights, autocast (+ GradScaler for fp16) on CUDA.

Global batch: every optimizer step averages the gradients of batch_size x accumulate x world_size samples, where
world_size is the number of processes `torchrun --nproc_per_node N [--nnodes M ...]` starts (1 without torchrun).
Each process holds batch_size samples at a time; rank 0 writes everything under RUN:

  last.pt           our checkpoint (the EMA weights when --ema is on): `--checkpoint`, `Planner.from_checkpoint`
  step_NNNNNN.pt    the same, kept at every save with --keep-checkpoints
  train_state.pt    raw weights, optimizer, scaler, EMA and step: what --resume continues from
  metrics.csv, loss.png, tensorboard/

Every random draw of a step (diffusion timesteps and noise, dropout) is seeded from (seed, step, micro-batch), and
the sample order from (seed, epoch): the same options give the same losses, and a resumed run continues exactly as
an uninterrupted one, with no random-generator state to save.

Examples:
  diffusiondrive-ros train DATA --out RUN                        # compact model from scratch
  diffusiondrive-ros train DATA --out RUN --resume               # continue RUN where it stopped
  diffusiondrive-ros train DATA --out RUN --init official.ckpt --trust-init --lr 1e-4   # fine-tune navsim
  torchrun --nproc_per_node 4 -m diffusiondrive_ros.cli train DATA --out RUN --batch-size 16   # global batch 64
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import report
from ..model import DiffusionDrive, DiffusionDriveConfig, load_model_config
from ..model.anchors import fit_normalization, load_anchors
from ..model.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint, with_lidar_channels
from ..model.loss import trajectory_loss
from ..planner import PRECISIONS, resolve_device
from .anchor_clustering import AnchorClusteringConfig, cluster_anchors
from .balance import balance_weights, format_manoeuvres, manoeuvre
from .dataset import DatasetSpec, TrajectoryDataset
from .distributed import Distributed, GlobalBatchSampler, distributed
from .ema import ExponentialMovingAverage
from .schedule import WarmupCosineSchedule
from .train_log import TrainLog

LAST_CHECKPOINT = "last.pt"
STATE_FILE = "train_state.pt"
STATE_FORMAT = "diffusiondrive_ros.train_state"
STATE_VERSION = 1
OFFICIAL_WARMUP_EPOCHS = 3
"""DiffusionDrive's recipe warms up for 3 epochs (`WarmupCosLR(warmup_epochs=3)`)."""


@dataclass(frozen=True)
class TrainOptions:
    """Everything a run is made of besides the dataset and the run folder."""

    model: str | None = None
    """Registered variant or YAML/JSON model config; None: --init's own config, navsim for an --init that carries
    none (official and plain state_dict checkpoints are navsim), compact when training from scratch."""
    init: str | None = None
    """Checkpoint to fine-tune (ours, official Lightning or plain state_dict); None: train from scratch."""
    trust_init: bool = False
    """Unpickle --init fully (official Lightning files hold Python objects); only for files you trust."""
    reset_head: bool = False
    """Keep --init's backbone and anchors but start the trajectory head afresh (PyTorch's initialisation, `seed`)."""
    consistency_weight: float | None = None
    """Weight of the noise-consistency loss (the model config's `trajectory_consistency_weight`, stored in the
    checkpoints); None: the model's own (0 for a new model: the paper's loss)."""
    anchoring_weight: float | None = None
    """Weight of the mode-anchoring loss (the model config's `trajectory_anchoring_weight`, stored in the
    checkpoints); None: the model's own (0 for a new model: the paper's loss)."""
    noise_scale: float | None = None
    """Factor on the anchor noise (the model config's `diffusion.noise_scale`, stored in the checkpoints: the model
    trains and plans with it); None: the model's own (1 for a new model: the paper's)."""
    anchors: str | None = None
    """K-means anchors (.npy, (num_modes, num_poses, 2)); None: --init's, else K-means over the dataset's futures."""
    lidar_sweeps: int | None = None
    """LiDAR sweeps per frame (the model config's `backbone.lidar_channels`): the current one, then each
    `lidar_sweep_interval_s` earlier. From an --init with fewer, the added sweeps' stem kernels start at zero, so
    training starts from exactly --init's plans. None: the model's own (1 for a new model)."""
    balance: float = 0.0
    """Draw frames by the kind of their future (`balance.manoeuvre`: standing, halting, left, right, straight) with
    weight count(kind) ** -balance; 0: the uniform shuffle (the paper's), 1: every kind equally often."""
    epochs: int = 10
    """Passes over the dataset (ignored when `steps` is set)."""
    steps: int | None = None
    """Optimizer steps of the run; replaces `epochs`."""
    batch_size: int = 16
    """Samples per process and micro-batch (the global batch is batch_size x accumulate x processes)."""
    accumulate: int = 1
    """Micro-batches whose gradients one process accumulates before each optimizer step."""
    lr: float = 6e-4
    """Peak learning rate (DiffusionDrive's NAVSIM recipe)."""
    weight_decay: float = 1e-4
    """AdamW decoupled weight decay of the weight matrices and kernels (not of biases and norm scales)."""
    warmup_steps: int | None = None
    """Linear warm-up steps; None: 3 epochs as DiffusionDrive, at most a tenth of the run."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0: no clipping (the norm is still logged)."""
    ema: float = 0.0
    """Decay of an exponential moving average of the weights, shipped in the checkpoints; 0: off."""
    precision: str = "fp32"
    """fp32, bf16 or fp16 (autocast, with a GradScaler for fp16); CUDA only, fp32 on the CPU."""
    seed: int = 0
    """Seeds the initial weights, K-means, the sample order and every step's noise and dropout."""
    workers: int = 2
    """DataLoader worker processes per training process (0: load in the training process)."""
    save_every: int = 500
    """Write RUN/last.pt and RUN/train_state.pt every this many steps (and at the end)."""
    keep_checkpoints: bool = False
    """Also keep RUN/step_NNNNNN.pt at every save."""
    device: str = "auto"
    """auto, cpu or cuda; under torchrun on CUDA each process takes cuda:LOCAL_RANK."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accumulate", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name, minimum in (("steps", 1), ("warmup_steps", 0)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < minimum):
                raise ValueError(f"{name} must be None or an int >= {minimum}, got {value!r}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {self.workers!r}")
        for name in ("lr", "weight_decay", "grad_clip", "consistency_weight", "anchoring_weight", "noise_scale",
                     "balance"):
            value = getattr(self, name)
            if value is None and name in ("consistency_weight", "anchoring_weight", "noise_scale"):
                continue
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not (isinstance(self.ema, (int, float)) and 0 <= self.ema < 1):
            raise ValueError(f"ema must be a decay in [0, 1) (0: off), got {self.ema!r}")
        if self.lidar_sweeps is not None and (not isinstance(self.lidar_sweeps, int) or self.lidar_sweeps < 1):
            raise ValueError(f"lidar_sweeps must be None or an int >= 1, got {self.lidar_sweeps!r}")
        if self.reset_head and not self.init:
            raise ValueError("reset_head keeps the backbone of --init: give --init")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")


TRAJECTORY_HEAD = "_trajectory_head."
"""State-dict prefix of the trajectory head (`reset_head`)."""

RESUME_MAY_CHANGE = frozenset({"accumulate", "workers", "save_every", "keep_checkpoints", "device", "trust_init"})
"""Options a resumed run may change: they do not change the numbers (accumulate only with the same global batch)."""


@dataclass(frozen=True)
class TrainSummary:
    """What a call to `train` did."""

    first_step: int
    last_step: int
    samples: int
    seconds: float
    loss: float
    checkpoint: Path

    @property
    def samples_per_s(self) -> float:
        """Training throughput of this call (all processes together)."""
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    def format(self) -> str:
        """The one-line summary printed at the end of a run."""
        return (f"trained steps {self.first_step}..{self.last_step}: {self.samples} samples in {self.seconds:.1f} s, "
                f"{self.samples_per_s:.1f} samples/s; last loss {self.loss:.4f}; checkpoint {self.checkpoint}")


def micro_batch_seed(seed: int, step: int, index: int) -> int:
    """Seed of micro-batch `index` of optimizer step `step`: the same in any process layout and after a resume."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def batch_losses(model: nn.Module, batch: dict[str, torch.Tensor], seed: int, anchors: torch.Tensor,
                 config: DiffusionDriveConfig, autocast: contextlib.AbstractContextManager | None = None
                 ) -> torch.Tensor:
    """Per-cascade-layer trajectory losses (decoder_layers,) of a train-mode forward, seeded by `seed`.

    `seed` fixes the diffusion timesteps and noise (drawn on the CPU, so any device gets the same) and dropout
    (the global RNG). `model` may be wrapped in DistributedDataParallel; `anchors` are the model's.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    with autocast or contextlib.nullcontext():
        out = model(batch["camera"], batch["lidar"], batch["status"], generator=generator)
    others = [p.float() for p, _ in out.get("second_draw_layer_outputs", ())] or [None] * len(out["layer_outputs"])
    return torch.stack([
        trajectory_loss(poses.float(), scores.float(), batch["target"], anchors, config.trajectory_cls_weight,
                        config.trajectory_reg_weight, other, config.trajectory_consistency_weight,
                        config.trajectory_anchoring_weight)
        for (poses, scores), other in zip(out["layer_outputs"], others)
    ])


def format_loss(config: DiffusionDriveConfig) -> str:
    """One line for the training log: the loss terms and anchor noise the model trains with (kept by fine-tuning)."""
    terms = [f"focal x {config.trajectory_cls_weight:g}", f"L1 x {config.trajectory_reg_weight:g}"]
    if config.trajectory_consistency_weight:
        terms.append(f"noise consistency x {config.trajectory_consistency_weight:g}")
    if config.trajectory_anchoring_weight:
        terms.append(f"mode anchoring x {config.trajectory_anchoring_weight:g}")
    return f"{' + '.join(terms)} per cascade layer; anchor noise x {config.diffusion.noise_scale:g}"


def check_dataset_fits(spec: DatasetSpec, config: DiffusionDriveConfig, root: Path) -> None:
    """Raise a ValueError naming every input size in which the dataset and the model differ."""
    backbone = config.backbone
    pairs = {"camera_height": (spec.camera_height, backbone.camera_height),
             "camera_width": (spec.camera_width, backbone.camera_width),
             "lidar_resolution": (spec.lidar_resolution, backbone.lidar_resolution),
             "lidar_channels": (spec.lidar_channels, backbone.lidar_channels),
             "num_poses": (spec.num_poses, config.num_poses)}
    if backbone.lidar_channels > 1:
        pairs["lidar_sweep_interval_s"] = (spec.lidar_sweep_interval_s, config.lidar_sweep_interval_s)
    wrong = [f"{name} {data} vs model {model}" for name, (data, model) in pairs.items() if data != model]
    if wrong:
        raise ValueError(f"dataset {root} does not fit the {config.variant} model: {', '.join(wrong)}. Build the "
                         "dataset for this model's input sizes, or pick the --model it was built for")


def _same_network(a: DiffusionDriveConfig, b: DiffusionDriveConfig) -> bool:
    """Equal but for the normalisation (fitted per dataset)."""
    return dataclasses.replace(a, normalization=b.normalization) == b


def initial_model(dataset: TrajectoryDataset, options: TrainOptions) -> tuple[DiffusionDrive, dict[str, str]]:
    """The model to start from, and where its weights, anchors and normalisation came from.

    Fine-tuning (`init`) loads the checkpoint strictly and keeps its normalisation (the official one for official
    checkpoints). From scratch: PyTorch's initialisation seeded by `seed`, anchors from `anchors` or K-means over the
    dataset's futures, normalisation fitted to the futures and anchors.
    """
    state, stored = None, None
    if options.init:
        state, stored = load_checkpoint(options.init, trusted=options.trust_init)
    if stored is not None:
        if options.model and not _same_network(load_model_config(options.model), stored):
            raise ValueError(f"--model {options.model} differs from the model stored in --init {options.init}; "
                             "leave --model unset to fine-tune that model")
        config = stored
    else:
        config = load_model_config(options.model or ("navsim" if options.init else "compact"))
    if options.consistency_weight is not None:
        config = dataclasses.replace(config, trajectory_consistency_weight=float(options.consistency_weight))
    if options.anchoring_weight is not None:
        config = dataclasses.replace(config, trajectory_anchoring_weight=float(options.anchoring_weight))
    config = config.with_noise_scale(options.noise_scale)
    widened = options.lidar_sweeps is not None and options.lidar_sweeps != config.backbone.lidar_channels
    config = config.with_lidar_sweeps(options.lidar_sweeps)
    check_dataset_fits(dataset.spec, config, dataset.root)

    if options.anchors:
        anchors = load_anchors(options.anchors, config.num_modes, config.num_poses)
        anchor_source = str(options.anchors)
    elif state is not None:
        anchors = None
        anchor_source = f"--init {options.init}"
    else:
        clustering = AnchorClusteringConfig(num_anchors=config.num_modes, interval_s=dataset.spec.interval_s)
        anchors = torch.from_numpy(cluster_anchors(dataset.futures, clustering, seed=options.seed))
        anchor_source = f"K-means over {len(dataset)} futures (k = {config.num_modes}, seed {options.seed})"

    if state is None:
        xy = np.concatenate([dataset.futures[..., :2], anchors.numpy()])
        config = dataclasses.replace(config, normalization=fit_normalization(xy))
        normalization_source = "fitted to the dataset's futures and the anchors"
    else:
        normalization_source = f"--init {options.init}" if stored is not None else f"the {config.variant} default"

    torch.manual_seed(options.seed)
    model = DiffusionDrive(config)
    if state is not None:
        if widened:
            state = with_lidar_channels(state, config.backbone.lidar_channels)
        check_compatible(model, state)
        if options.reset_head:
            fresh = model.state_dict()
            state = {key: fresh[key] if key.startswith(TRAJECTORY_HEAD) and not key.endswith("plan_anchor") else value
                     for key, value in state.items()}
        model.load_state_dict(state, strict=True)
    if anchors is not None:
        with torch.no_grad():
            model.anchors.copy_(anchors)
    weights = f"--init {options.init}" if state is not None else f"initialised from seed {options.seed}"
    if options.reset_head:
        weights += f" (trajectory head initialised from seed {options.seed})"
    if widened and state is not None:
        weights += f" (LiDAR input widened to {config.backbone.lidar_channels} sweeps, the added ones at zero)"
    return model, {"initial_weights": weights, "anchors": anchor_source, "normalization": normalization_source}


def _optimizer(model: nn.Module, options: TrainOptions) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices and kernels only (biases and norm scales are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": options.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=options.lr)


def _atomic_save(payload: Any, path: Path) -> None:
    """torch.save next to `path`, then rename: a reader or a resume never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def read_train_state(run: Path) -> dict[str, Any]:
    """RUN/train_state.pt (weights only), checked to be ours."""
    path = Path(run) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} does not exist (nothing to resume in {run})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not a {STATE_FORMAT} version {STATE_VERSION} file")
    return state


class Trainer:
    """One process's part of a training run (see the module docstring); `fit()` runs it to the end."""

    def __init__(self, data: Path, out: Path, options: TrainOptions, dist: Distributed, resume: bool = False):
        self.out = Path(out)
        self.dist = dist
        self.dataset = TrajectoryDataset(data)
        state = read_train_state(self.out) if resume else None
        if state is not None:
            self._check_resumable(state, options)
            model = DiffusionDrive(DiffusionDriveConfig.from_dict(state["config"]))
            model.load_state_dict(state["model"], strict=True)
            self.sources = dict(state["sources"])
        else:
            model, self.sources = initial_model(self.dataset, options)
        self.options = options
        self.config = model.config
        self.device = dist.device
        self.model = model.to(self.device)

        # Reduced precision only pays off on a GPU (as in the Planner); CPU autocast kernels are far slower.
        self.precision = options.precision if self.device.type == "cuda" else "fp32"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.optimizer = _optimizer(self.model, options)
        self.ema = ExponentialMovingAverage(self.model, options.ema) if options.ema else None

        self.manoeuvres = [manoeuvre(future) for future in self.dataset.futures]
        weights = balance_weights(self.manoeuvres, options.balance) if options.balance else None
        self.sampler = GlobalBatchSampler(len(self.dataset), options.batch_size, options.accumulate, dist.rank,
                                          dist.world_size, options.seed, weights)
        spe = self.sampler.steps_per_epoch
        self.total_steps = options.steps or options.epochs * spe
        warmup = options.warmup_steps
        if warmup is None:
            warmup = min(OFFICIAL_WARMUP_EPOCHS * spe, self.total_steps // 10)
        self.schedule = WarmupCosineSchedule(options.lr, warmup, self.total_steps)
        self.step = 0
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            self.step = int(state["step"])
        if self.step >= self.total_steps:
            raise ValueError(f"{self.out} already holds all {self.total_steps} steps of this run")
        # The agent and BEV-semantic heads run in every forward but have no labels here, so their parameters get
        # no gradient: DDP must look for unused parameters instead of waiting for their gradients.
        self.net = (DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                                            else None, find_unused_parameters=True)
                    if dist.enabled else self.model)
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=options.workers,
                                 pin_memory=self.device.type == "cuda", persistent_workers=options.workers > 0,
                                 generator=torch.Generator().manual_seed(options.seed))

    def _check_resumable(self, state: dict[str, Any], options: TrainOptions) -> None:
        """Raise unless `options` and the dataset are those of the stored run (apart from RESUME_MAY_CHANGE)."""
        stored = TrainOptions(**state["options"])
        changed = [f"{f.name} {getattr(stored, f.name)!r} -> {getattr(options, f.name)!r}"
                   for f in dataclasses.fields(TrainOptions)
                   if f.name not in RESUME_MAY_CHANGE and getattr(stored, f.name) != getattr(options, f.name)]
        global_batch = options.batch_size * options.accumulate * self.dist.world_size
        if global_batch != state["global_batch"]:
            changed.append(f"global batch {state['global_batch']} -> {global_batch}")
        dataset = {"frames": len(self.dataset), "spec": dataclasses.asdict(self.dataset.spec)}
        if dataset != state["dataset"]:
            changed.append(f"dataset {state['dataset']} -> {dataset}")
        if changed:
            raise ValueError(f"--resume {self.out}: the run was made with other settings: {'; '.join(changed)}")

    def _autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the reduced precision, or nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One optimizer step over this process's micro-batches; returns the step's metrics (averaged over ranks)."""
        self.model.train()
        layer_sums = torch.zeros(self.config.decoder_layers, device=self.device)
        for a, batch in enumerate(micro_batches):
            seed = micro_batch_seed(self.options.seed, self.step, self.sampler.micro_batch_index(a))
            last = a == len(micro_batches) - 1
            # Gradients are averaged across processes once, in the backward of the last micro-batch.
            sync = contextlib.nullcontext() if last or not self.dist.enabled else self.net.no_sync()
            with sync:
                layers = batch_losses(self.net, self._to_device(batch), seed, self.model.anchors, self.config,
                                      self._autocast())
                self.scaler.scale(layers.sum() / len(micro_batches)).backward()
            layer_sums += layers.detach()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.options.grad_clip or float("inf"))
        if not torch.isfinite(grad_norm) and not self.scaler.is_enabled():
            raise FloatingPointError(f"step {self.step + 1}: gradient norm {float(grad_norm)}; lower --lr or clip "
                                     "gradients (--grad-clip)")
        lr = self.schedule(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        layers = self.dist.mean(layer_sums / len(micro_batches)).tolist()
        metrics = {"step": self.step, "epoch": (self.step - 1) // self.sampler.steps_per_epoch,
                   "loss": sum(layers), "lr": lr, "grad_norm": float(grad_norm)}
        metrics.update({f"loss_layer{i}": value for i, value in enumerate(layers)})
        return metrics

    def _micro_batch_groups(self) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Each optimizer step's micro-batches, from the current step to the end of the run, epoch after epoch."""
        spe = self.sampler.steps_per_epoch
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.step // spe, self.step % spe)
            group = []
            for batch in self.loader:
                group.append(batch)
                if len(group) == self.options.accumulate:
                    yield group
                    group = []
                    if self.step >= self.total_steps:
                        return

    def save(self, loss: float) -> None:
        """Rank 0 writes the training state, then RUN/last.pt (and step_NNNNNN.pt); the others wait."""
        if self.dist.is_main:
            state = {
                "format": STATE_FORMAT, "version": STATE_VERSION, "step": self.step,
                "options": dataclasses.asdict(self.options), "config": self.config.to_dict(),
                "global_batch": self.sampler.global_batch, "sources": self.sources,
                "dataset": {"frames": len(self.dataset), "spec": dataclasses.asdict(self.dataset.spec)},
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
            }
            _atomic_save(state, self.out / STATE_FILE)
            shipped = self.ema.module if self.ema is not None else self.model
            metadata = {"step": self.step, "total_steps": self.total_steps, "loss": loss,
                        "dataset": str(self.dataset.root), "dataset_frames": len(self.dataset),
                        "global_batch": self.sampler.global_batch, "seed": self.options.seed,
                        "balance": self.options.balance,
                        "weights": f"EMA (decay {self.options.ema})" if self.ema is not None else "last step",
                        **self.sources}
            save_checkpoint(self.out / LAST_CHECKPOINT, shipped, self.config, **metadata)
            if self.options.keep_checkpoints:
                save_checkpoint(self.out / f"step_{self.step:06d}.pt", shipped, self.config, **metadata)
        self.dist.barrier()

    def fit(self) -> TrainSummary:
        """Train to the last step, logging every step and saving every `save_every` steps and at the end."""
        first_step, loss = self.step, float("nan")
        log = TrainLog(self.out, self.config.decoder_layers, resumed_step=first_step) if self.dist.is_main else None
        progress = tqdm(total=self.total_steps, initial=first_step, unit="step", disable=not self.dist.is_main,
                        dynamic_ncols=True)
        started = tick = time.perf_counter()
        try:
            for group in self._micro_batch_groups():
                metrics = self.train_step(group)
                now = time.perf_counter()
                metrics["samples_per_s"] = self.sampler.global_batch / (now - tick)
                tick, loss = now, metrics["loss"]
                if log is not None:
                    log.write(metrics)
                progress.update()
                progress.set_postfix(loss=f"{loss:.4f}", lr=f"{metrics['lr']:.2e}",
                                     samples_s=f"{metrics['samples_per_s']:.1f}")
                if self.step % self.options.save_every == 0 or self.step == self.total_steps:
                    self.save(loss)
                    if log is not None:
                        log.plot()
                    tick = time.perf_counter()  # the next step's throughput leaves the saving out
        finally:
            progress.close()
            if log is not None:
                log.close()
        seconds = time.perf_counter() - started
        return TrainSummary(first_step, self.step, (self.step - first_step) * self.sampler.global_batch, seconds,
                            loss, self.out / LAST_CHECKPOINT)


def train(data: str | Path, out: str | Path, options: TrainOptions | None = None, resume: bool = False
          ) -> TrainSummary:
    """Train on dataset folder `data`, writing under `out`; under torchrun every process calls this.

    options: None = the defaults, or the stored ones with `resume`. resume: continue RUN/train_state.pt exactly
    (the options must be the stored ones, apart from RESUME_MAY_CHANGE).
    """
    out = Path(out)
    if options is None:
        options = TrainOptions(**read_train_state(out)["options"]) if resume else TrainOptions()
    with distributed(resolve_device(options.device)) as dist:
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            requested = options.precision
            if requested != "fp32" and dist.device.type != "cuda":
                print(f"precision: {requested} requested, fp32 on the CPU")
        dist.barrier()
        trainer = Trainer(Path(data), out, options, dist, resume=resume)
        if dist.is_main:
            config, spec, sources = trainer.config, trainer.dataset.spec, trainer.sources
            print(f"model: {config.variant}, camera {spec.camera_width}x{spec.camera_height}, LiDAR "
                  f"{spec.lidar_resolution}x{spec.lidar_resolution}; weights {sources['initial_weights']}; anchors "
                  f"{sources['anchors']}; normalisation {sources['normalization']}")
            print(f"data: {len(trainer.dataset)} frames, global batch {trainer.sampler.global_batch} = "
                  f"{options.batch_size} x accumulate {options.accumulate} x {dist.world_size} processes, "
                  f"{trainer.sampler.steps_per_epoch} steps/epoch, steps {trainer.step}..{trainer.total_steps} on "
                  f"{dist.device} {trainer.precision}")
            print(f"futures: {format_manoeuvres(trainer.manoeuvres, trainer.sampler.weights)}")
            print(f"loss: {format_loss(config)}")
        summary = trainer.fit()
        if dist.is_main:
            print(summary.format())
        return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train` subcommand's options; unset ones take TrainOptions' defaults (or the stored ones on --resume)."""
    defaults = TrainOptions()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the module docstring's layout

    def default(name: str) -> str:
        return f"(default: {getattr(defaults, name)})"

    parser.add_argument("data", type=Path, help="dataset folder made by `diffusiondrive-ros dataset`")
    parser.add_argument("--out", type=Path, required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--model", help="variant (compact, navsim) or YAML/JSON model config (default: --init's, "
                        "navsim for an official --init, else compact)")
    parser.add_argument("--init", help="checkpoint to fine-tune: ours, official Lightning, or a plain state_dict")
    parser.add_argument("--trust-init", action="store_true", default=None,
                        help="unpickle --init fully (official Lightning files hold Python objects; trusted files only)")
    parser.add_argument("--reset-head", action="store_true", default=None,
                        help="keep --init's backbone and anchors, start the trajectory head afresh (seeded by --seed)")
    parser.add_argument("--consistency-weight", type=float, help="weight of an L1 between the poses decoded from two "
                        "noise draws, which teaches the decoder to cancel the anchor noise (default: the model's; 0 "
                        "for a new model, the paper's loss)")
    parser.add_argument("--anchoring-weight", type=float, help="weight of an L1 between every mode but the one "
                        "nearest the ground truth and its own anchor, which keeps the modes on their anchors' "
                        "manoeuvres (default: the model's; 0 for a new model, the paper's loss)")
    parser.add_argument("--lidar-sweeps", type=int, help="LiDAR sweeps per frame, the current one and each 0.5 s "
                        "earlier in the current ego frame, so standing and moving things differ; from an --init with "
                        "fewer, the added ones start at zero (default: the model's; 1 for a new model)")
    parser.add_argument("--noise-scale", type=float, help="factor on the anchor noise, stored with the model, which "
                        "then plans with it too (default: the model's; 1 for a new model, the paper's)")
    parser.add_argument("--balance", type=float, help="draw frames by the kind of their future (standing, halting, "
                        "left, right, straight) with weight count(kind)^-BALANCE: 0 = uniform shuffle (default), "
                        "1 = every kind equally often")
    parser.add_argument("--anchors", help="anchors .npy (default: --init's, else K-means over the dataset's futures)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help=f"passes over the dataset {default('epochs')}")
    length.add_argument("--steps", type=int, help="optimizer steps (instead of --epochs)")
    parser.add_argument("--batch-size", type=int, help=f"samples per process and micro-batch {default('batch_size')}; "
                        "global batch = batch size x accumulate x processes (torchrun --nproc_per_node x --nnodes)")
    parser.add_argument("--accumulate", type=int, help=f"micro-batches per optimizer step {default('accumulate')}")
    parser.add_argument("--lr", type=float, help=f"peak learning rate {default('lr')}")
    parser.add_argument("--weight-decay", type=float, help=f"AdamW weight decay {default('weight_decay')}")
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default: 3 epochs, at most a tenth "
                        "of the run)")
    parser.add_argument("--grad-clip", type=float, help=f"gradient norm clip, 0 = off {default('grad_clip')}")
    parser.add_argument("--ema", type=float, help="EMA decay of the weights (e.g. 0.999), shipped in the checkpoints; "
                        "0 = off (default)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), help=f"CUDA autocast {default('precision')}")
    parser.add_argument("--seed", type=int, help=f"seed of everything random {default('seed')}")
    parser.add_argument("--workers", type=int, help=f"DataLoader workers per process {default('workers')}")
    parser.add_argument("--save-every", type=int, help=f"steps between checkpoints {default('save_every')}")
    parser.add_argument("--keep-checkpoints", action="store_true", default=None,
                        help="also keep RUN/step_NNNNNN.pt at every save")
    parser.add_argument("--device", help=f"auto, cpu or cuda {default('device')}")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")


def run(args: argparse.Namespace) -> int:
    """Run the `train` subcommand; bad paths and settings print one line on stderr and return 1."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainOptions)
             if getattr(args, f.name, None) is not None}
    if "epochs" in given:  # --epochs replaces a stored --steps
        given["steps"] = None
    try:
        base = TrainOptions(**read_train_state(args.out)["options"]) if args.resume else TrainOptions()
        train(args.data, args.out, dataclasses.replace(base, **given), resume=args.resume)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        return report("train", error)
    return 0
