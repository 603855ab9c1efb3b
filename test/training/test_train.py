"""Training: a step lowers the loss, seeded runs repeat, resume is exact, checkpoints plan, official fine-tuning."""
from __future__ import annotations

import csv
import dataclasses
import importlib.util

import cv2
import numpy as np
import pytest
import torch
from training_data import make_dataset, write_tiny_model

from diffusiondrive_ros import cli
from diffusiondrive_ros.model import TrajectoryNormalization, load_model_config, model_config
from diffusiondrive_ros.model.checkpoint import CheckpointError, load_checkpoint
from diffusiondrive_ros.model.weights import seeded_model
from diffusiondrive_ros.planner import Planner
from diffusiondrive_ros.training.anchor_clustering import AnchorClusteringConfig, cluster_anchors
from diffusiondrive_ros.training.balance import manoeuvre
from diffusiondrive_ros.training.dataset import TrajectoryDataset
from diffusiondrive_ros.training.distributed import Distributed
from diffusiondrive_ros.training.train import (
    Trainer,
    TrainOptions,
    batch_losses,
    initial_model,
    micro_batch_seed,
    train,
)

ONE_PROCESS = Distributed(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(dataset folder of 8 frames, tiny model config file)."""
    folder = tmp_path_factory.mktemp("tiny")
    return make_dataset(folder / "data", frames=8), write_tiny_model(folder)


def options(tiny, **changes) -> TrainOptions:
    settings = {"model": str(tiny[1]), "batch_size": 2, "steps": 3, "lr": 1e-3, "workers": 0}
    return TrainOptions(**(settings | changes))


def metrics(run) -> list[dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as stream:
        return [{k: float(v) for k, v in row.items() if k != "samples_per_s"} for row in csv.DictReader(stream)]


def test_one_step_lowers_the_loss_on_a_fixed_batch(tiny, tmp_path):
    trainer = Trainer(tiny[0], tmp_path, options(tiny, warmup_steps=0), ONE_PROCESS)
    batch = torch.utils.data.default_collate([trainer.dataset[i] for i in range(4)])
    seed = micro_batch_seed(0, 0, 0)  # the noise and dropout of the step itself

    def loss() -> float:
        trainer.model.train()
        with torch.no_grad():
            return float(batch_losses(trainer.model, batch, seed, trainer.model.anchors, trainer.config).sum())

    before = loss()
    metrics = trainer.train_step([batch])
    assert metrics["loss"] == pytest.approx(before, rel=1e-5)
    assert metrics["step"] == 1 and metrics["lr"] == 1e-3 and metrics["grad_norm"] > 0
    assert loss() < before
    unused = [p.grad for p in trainer.model._agent_head.parameters()]  # no labels: never trained
    assert all(g is None for g in unused)


def test_seeded_runs_give_the_same_losses(tiny, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(tiny[0], tmp_path / name, options(tiny, seed=seed))
    a, b, c = (metrics(tmp_path / name) for name in "abc")
    assert len(a) == 3 and a == b
    assert [row["loss"] for row in a] != [row["loss"] for row in c]
    state_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    state_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    torch.testing.assert_close(state_a, state_b, rtol=0, atol=0)


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny, tmp_path, monkeypatch):
    # 2 steps per epoch: the run resumes inside epoch 1 and goes on into epoch 2; EMA and accumulation included.
    settings = options(tiny, accumulate=2, steps=6, save_every=3, ema=0.9)
    train(tiny[0], tmp_path / "whole", settings)

    step = Trainer.train_step

    def crash_before_step_5(self, micro_batches):
        if self.step == 4:
            raise KeyboardInterrupt
        return step(self, micro_batches)

    monkeypatch.setattr(Trainer, "train_step", crash_before_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(tiny[0], tmp_path / "cut", settings)
    assert [row["step"] for row in metrics(tmp_path / "cut")] == [1, 2, 3, 4]
    assert torch.load(tmp_path / "cut" / "train_state.pt", weights_only=True)["step"] == 3
    monkeypatch.undo()

    assert cli.main(["train", str(tiny[0]), "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")  # steps 1-3 kept, 4 redone, 5-6 new
    for name in ("last.pt", "train_state.pt"):
        whole = torch.load(tmp_path / "whole" / name, weights_only=True)
        cut = torch.load(tmp_path / "cut" / name, weights_only=True)
        key = "state_dict" if name == "last.pt" else "model"
        torch.testing.assert_close(cut[key], whole[key], rtol=0, atol=0)
    torch.testing.assert_close(cut["optimizer"], whole["optimizer"], rtol=0, atol=0)
    torch.testing.assert_close(cut["ema"], whole["ema"], rtol=0, atol=0)


def test_resume_refuses_other_settings_and_a_finished_run(tiny, tmp_path, capsys):
    train(tiny[0], tmp_path, options(tiny, steps=1))
    with pytest.raises(ValueError, match="lr 0.001 -> 0.01"):
        train(tiny[0], tmp_path, options(tiny, steps=1, lr=1e-2), resume=True)
    assert cli.main(["train", str(tiny[0]), "--out", str(tmp_path), "--resume"]) == 1
    assert "already holds all 1 steps" in capsys.readouterr().err
    assert cli.main(["train", str(tiny[0]), "--out", str(tmp_path / "none"), "--resume"]) == 1


def test_checkpoint_alone_rebuilds_a_planner_that_plans_from_raw_sensors(tiny, tmp_path):
    summary = train(tiny[0], tmp_path, options(tiny, steps=2))
    assert summary.last_step == 2 and summary.samples == 4 and summary.checkpoint == tmp_path / "last.pt"
    payload = torch.load(summary.checkpoint, weights_only=True)
    assert payload["metadata"]["step"] == 2 and payload["metadata"]["weights"] == "last step"

    planner = Planner.from_checkpoint(summary.checkpoint, device="cpu")
    config = planner.model.config
    assert config.backbone == load_model_config(tiny[1]).backbone and config.num_modes == 4
    futures = TrajectoryDataset(tiny[0]).futures
    low = -np.array([config.normalization.x_offset, config.normalization.y_offset])
    high = low + np.array([config.normalization.x_range, config.normalization.y_range])
    assert (futures[..., :2] > low).all() and (futures[..., :2] < high).all()  # fitted to the data, not the default
    kmeans = cluster_anchors(futures, AnchorClusteringConfig(num_anchors=4), seed=0)
    np.testing.assert_array_equal(planner.model.anchors.numpy(), kmeans)

    rng = np.random.default_rng(0)
    cameras = [rng.integers(0, 256, (360, 960, 3), dtype=np.uint8) for _ in range(3)]  # default rig crop
    points = rng.uniform(-20, 20, (500, 3)).astype(np.float32)
    result = planner.plan(cameras, points, velocity=(5.0, 0.0), command=1, generator=torch.Generator().manual_seed(0))
    assert result.modes.shape == (4, 8, 3) and np.isfinite(result.modes).all()
    assert result.scores.shape == (4,)


def test_anchors_file_and_ema_weights_are_what_ships(tiny, tmp_path):
    anchors = cluster_anchors(TrajectoryDataset(tiny[0]).futures, AnchorClusteringConfig(num_anchors=4), seed=5)
    np.save(tmp_path / "anchors.npy", anchors)
    train(tiny[0], tmp_path / "run", options(tiny, anchors=str(tmp_path / "anchors.npy"), ema=0.5))
    shipped = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    np.testing.assert_array_equal(shipped["state_dict"]["_trajectory_head.plan_anchor"].numpy(), anchors)
    torch.testing.assert_close(shipped["state_dict"], state["ema"]["module"], rtol=0, atol=0)
    key = "_trajectory_head.plan_anchor_encoder.0.weight"
    assert not torch.equal(shipped["state_dict"][key], state["model"][key])
    assert shipped["metadata"]["weights"] == "EMA (decay 0.5)"


def test_dataset_must_fit_the_model(tiny, tmp_path):
    with pytest.raises(ValueError, match="camera_height 32 vs model 64, camera_width 64 vs model 256"):
        train(tiny[0], tmp_path, options(tiny, model="compact"))


def test_cli_writes_metrics_loss_curve_and_a_summary(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", str(tiny[0]), "--out", str(run), "--model", str(tiny[1]), "--steps", "2", "--batch-size", "2",
            "--workers", "0", "--keep-checkpoints", "--save-every", "1"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "global batch 2 = 2 x accumulate 1 x 1 processes" in out
    with (run / "metrics.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["step", "epoch", "loss", "loss_layer0", "loss_layer1", "lr", "grad_norm",
                             "samples_per_s"]
    assert [row["step"] for row in rows] == ["1", "2"]
    for row in rows:
        assert float(row["loss"]) == pytest.approx(float(row["loss_layer0"]) + float(row["loss_layer1"]), rel=1e-5)
        assert float(row["samples_per_s"]) > 0
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    else:
        assert "TensorBoard: not installed" in out
    image = cv2.imread(str(run / "loss.png"))
    assert image is not None and image.shape[2] == 3
    assert {p.name for p in run.glob("*.pt")} == {"last.pt", "train_state.pt", "step_000001.pt", "step_000002.pt"}
    assert cli.main(["train", str(tiny[0]), "--out", str(run), "--steps", "0"]) == 1


def test_balance_draws_each_kind_of_future_alike(tiny, tmp_path, capsys):
    trainer = Trainer(tiny[0], tmp_path / "run", options(tiny, balance=1.0), ONE_PROCESS)
    kinds = trainer.manoeuvres
    assert kinds == [manoeuvre(future) for future in TrajectoryDataset(tiny[0]).futures]
    drawn = []
    for epoch in range(400):
        trainer.sampler.set_epoch(epoch)
        drawn += [kinds[i] for batch in trainer.sampler for i in batch]
    present = sorted(set(kinds))
    assert len(present) >= 2 and len({kinds.count(kind) for kind in present}) >= 2  # unequal counts to balance
    for kind in present:
        assert drawn.count(kind) / len(drawn) == pytest.approx(1 / len(present), abs=0.04)
    run = tmp_path / "cli"
    argv = ["train", str(tiny[0]), "--out", str(run), "--model", str(tiny[1]), "--steps", "1", "--batch-size", "2",
            "--workers", "0", "--balance", "1"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "futures: standing" in out and "of draws)" in out
    assert torch.load(run / "last.pt", weights_only=True)["metadata"]["balance"] == 1.0


def test_lidar_sweeps_widen_init_so_that_training_starts_from_its_plans(tiny, tmp_path, capsys):
    """`--lidar-sweeps 2` from a one-sweep --init: the earlier sweep's stem kernels start at zero, so the widened
    model computes exactly --init's outputs whatever the earlier sweep holds; the dataset must carry two sweeps."""
    one = train(tiny[0], tmp_path / "one", options(tiny, steps=1)).checkpoint
    two_data = make_dataset(tmp_path / "two_data", frames=8, lidar_channels=2)
    with pytest.raises(ValueError, match="lidar_channels 2 vs model 1"):
        train(two_data, tmp_path / "unwidened", options(tiny, init=str(one), model=None))

    widened, sources = initial_model(TrajectoryDataset(two_data), options(tiny, init=str(one), model=None,
                                                                         lidar_sweeps=2))
    assert widened.config.backbone.lidar_channels == 2 and widened.config.lidar_history_s == (0.5,)
    assert "LiDAR input widened to 2 sweeps, the added ones at zero" in sources["initial_weights"]
    original = Planner.from_checkpoint(one, device="cpu").model.eval()
    item = TrajectoryDataset(two_data)[0]
    camera, lidar, status = item["camera"][None], item["lidar"][None], item["status"][None]
    noise = torch.randn(1, 4, 8, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = original(camera, lidar[:, :1], status, noise=noise)
        for earlier in (lidar[:, 1:], torch.rand_like(lidar[:, 1:])):
            got = widened.eval()(camera, torch.cat([lidar[:, :1], earlier], dim=1), status, noise=noise)
            for key in ("all_poses_reg", "all_poses_cls"):
                torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)

    assert cli.main(["train", str(two_data), "--out", str(tmp_path / "two"), "--init", str(one), "--lidar-sweeps",
                     "2", "--steps", "1", "--batch-size", "2", "--workers", "0"]) == 0
    assert "(LiDAR input widened to 2 sweeps, the added ones at zero)" in capsys.readouterr().out
    stored = load_checkpoint(tmp_path / "two" / "last.pt")[1]
    assert stored.backbone.lidar_channels == 2
    planner = Planner.from_checkpoint(tmp_path / "two" / "last.pt", device="cpu")
    rng = np.random.default_rng(0)
    cameras = [rng.integers(0, 256, (360, 960, 3), dtype=np.uint8) for _ in range(3)]
    points = rng.uniform(-20, 20, (500, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"the model takes 1 earlier LiDAR sweep\(s\), got 0"):
        planner.plan(cameras, points)
    assert np.isfinite(planner.plan(cameras, points, past_points=[points]).modes).all()
    with pytest.raises(CheckpointError, match="LiDAR input has 2 sweeps, more than 1"):
        train(tiny[0], tmp_path / "cut", options(tiny, init=str(tmp_path / "two" / "last.pt"), model=None,
                                                 lidar_sweeps=1))


@pytest.mark.parametrize("flag", ["consistency", "anchoring"])
def test_extra_loss_weights_are_stored_with_the_model_and_kept_by_fine_tuning(tiny, tmp_path, capsys, flag):
    def run(name, *extra):
        return cli.main(["train", str(tiny[0]), "--out", str(tmp_path / name), "--steps", "1", "--batch-size", "2",
                         "--workers", "0", *extra])

    def weight(name):
        return getattr(load_checkpoint(tmp_path / name / "last.pt")[1], f"trajectory_{flag}_weight")

    assert run("paper", "--model", str(tiny[1])) == 0
    assert weight("paper") == 0.0
    assert run("weighted", "--init", str(tmp_path / "paper" / "last.pt"), f"--{flag}-weight", "2") == 0
    assert weight("weighted") == 2.0
    assert run("kept", "--init", str(tmp_path / "weighted" / "last.pt")) == 0
    assert weight("kept") == 2.0
    term = {"consistency": "noise consistency", "anchoring": "mode anchoring"}[flag]
    assert f"loss: focal x 10 + L1 x 8 + {term} x 2 per cascade layer; anchor noise x 1" in capsys.readouterr().out
    assert run("negative", "--model", str(tiny[1]), f"--{flag}-weight", "-1") == 1
    assert f"{flag}_weight must be a finite number >= 0, got -1.0" in capsys.readouterr().err


def test_anchoring_weight_enters_the_training_loss(tiny, tmp_path):
    trainer = Trainer(tiny[0], tmp_path, options(tiny), ONE_PROCESS)
    batch = torch.utils.data.default_collate([trainer.dataset[i] for i in range(4)])
    trainer.model.train()
    with torch.no_grad():
        paper = batch_losses(trainer.model, batch, 7, trainer.model.anchors, trainer.config)
        anchored = batch_losses(trainer.model, batch, 7, trainer.model.anchors,
                                dataclasses.replace(trainer.config, trajectory_anchoring_weight=3.0))
    assert (anchored > paper).all()  # every cascade layer: the random decoder's modes are off their anchors


def test_noise_scale_is_stored_with_the_model_and_kept_by_fine_tuning(tiny, tmp_path, capsys):
    def run(name, *extra):
        return cli.main(["train", str(tiny[0]), "--out", str(tmp_path / name), "--steps", "1", "--batch-size", "2",
                         "--workers", "0", *extra])

    def scale(name):
        return load_checkpoint(tmp_path / name / "last.pt")[1].diffusion.noise_scale

    assert run("paper", "--model", str(tiny[1])) == 0
    assert scale("paper") == 1.0
    assert run("steady", "--init", str(tmp_path / "paper" / "last.pt"), "--noise-scale", "0") == 0
    assert scale("steady") == 0.0
    planner = Planner.from_checkpoint(tmp_path / "steady" / "last.pt", device="cpu")
    assert planner.model.config.diffusion.noise_scale == 0.0
    assert run("kept", "--init", str(tmp_path / "steady" / "last.pt")) == 0
    assert scale("kept") == 0.0
    capsys.readouterr()
    assert run("negative", "--model", str(tiny[1]), "--noise-scale", "-1") == 1
    assert "noise_scale must be a finite number >= 0, got -1.0" in capsys.readouterr().err


def test_reset_head_keeps_the_backbone_and_anchors_of_init(tiny, tmp_path):
    train(tiny[0], tmp_path / "base", options(tiny, steps=1))
    base = torch.load(tmp_path / "base" / "last.pt", weights_only=True)["state_dict"]
    dataset = TrajectoryDataset(tiny[0])
    init = str(tmp_path / "base" / "last.pt")

    def start(**changes):
        model, sources = initial_model(dataset, TrainOptions(init=init, reset_head=True, **changes))
        return model.state_dict(), sources

    (state, sources), (again, _), (other, _) = start(), start(), start(seed=1)
    head = [key for key in base if key.startswith("_trajectory_head.") and not key.endswith("plan_anchor")]
    assert head and len(head) < len(base)
    for key, value in base.items():
        if key in head and value.is_floating_point() and value.numel() > 1:
            assert not torch.equal(state[key], value), key
            torch.testing.assert_close(state[key], again[key], rtol=0, atol=0)
        elif key not in head:
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    assert not torch.equal(state[head[0]], other[head[0]])
    assert sources["initial_weights"] == f"--init {init} (trajectory head initialised from seed 0)"
    with pytest.raises(ValueError, match="reset_head keeps the backbone of --init"):
        TrainOptions(reset_head=True)


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    """A navsim model with seeded weights saved as the official Lightning checkpoint is laid out."""
    path = tmp_path_factory.mktemp("official") / "official.ckpt"
    model = seeded_model(model_config("navsim"), seed=3)
    state = {f"agent._transfuser_model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 99, "global_step": 12345}, path)
    return path, model.state_dict()


def test_fine_tunes_the_official_lightning_checkpoint(official_checkpoint, tmp_path):
    path, official = official_checkpoint
    data = make_dataset(tmp_path / "data", frames=1, camera_height=256, camera_width=1024, lidar_resolution=256)
    train(data, tmp_path / "run", TrainOptions(init=str(path), steps=1, batch_size=1, workers=0))

    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert payload["config"]["variant"] == "navsim"
    assert payload["config"]["normalization"] == dataclasses.asdict(TrajectoryNormalization())  # the official one
    tuned = payload["state_dict"]
    assert tuned.keys() == official.keys()
    torch.testing.assert_close(tuned["_trajectory_head.plan_anchor"], official["_trajectory_head.plan_anchor"])
    key = "_trajectory_head.diff_decoder.layers.0.task_decoder.plan_reg_branch.4.weight"
    assert not torch.equal(tuned[key], official[key])  # trained
    torch.testing.assert_close(tuned["_agent_head._mlp_states.0.weight"], official["_agent_head._mlp_states.0.weight"])
    assert Planner.from_checkpoint(tmp_path / "run" / "last.pt", device="cpu").model.config.variant == "navsim"


def test_init_loads_strictly(tiny, tmp_path):
    model = seeded_model(load_model_config(tiny[1]), seed=1)
    state = {f"agent._transfuser_model.{key}": value for key, value in model.state_dict().items()}
    del state["agent._transfuser_model._status_encoding.bias"]
    torch.save({"state_dict": state}, tmp_path / "partial.ckpt")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): _status_encoding.bias"):
        train(tiny[0], tmp_path / "run", options(tiny, init=str(tmp_path / "partial.ckpt")))
