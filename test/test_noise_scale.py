"""The noise scale: a factor on the anchor noise of the truncated diffusion in training and at inference, stored with
the model config, overridable per planner, node parameter and CLI, 1 (the paper's) unless asked."""
import dataclasses

import pytest
import torch

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.model import DiffusionDriveConfig, model_config
from diffusiondrive_ros.model.checkpoint import load_checkpoint, save_checkpoint
from diffusiondrive_ros.model.config import DiffusionConfig
from diffusiondrive_ros.model.weights import seeded_model
from diffusiondrive_ros.planner import Planner
from diffusiondrive_ros.ros.params import load_params_file, planner_from_parameters


def _small_config(noise_scale: float = 1.0) -> DiffusionDriveConfig:
    compact = model_config("compact")
    return dataclasses.replace(compact, backbone=dataclasses.replace(compact.backbone, depths=(1, 1, 1, 1)),
                               tf_num_layers=1,
                               diffusion=dataclasses.replace(compact.diffusion, noise_scale=noise_scale))


def _inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, 64, 256, generator=generator), torch.rand(1, 1, 64, 64, generator=generator),
            torch.tensor([[0, 1, 0, 0, 6.0, 0.2, 0.1, 0.0]]))


def _noise(seed: int) -> torch.Tensor:
    return torch.randn((1, 20, 8, 2), generator=torch.Generator().manual_seed(seed))


def _poses(model, noise: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(*_inputs(), noise=noise)["all_poses_reg"]


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    config = _small_config()
    path = tmp_path_factory.mktemp("noise_scale") / "small.pt"
    save_checkpoint(path, seeded_model(config, seed=6), config)
    return path


def test_the_paper_scale_is_the_default_and_checkpoints_without_the_field_load_with_it():
    assert DiffusionConfig().noise_scale == 1.0 and model_config("navsim").diffusion.noise_scale == 1.0
    stored = model_config("compact").to_dict()
    del stored["diffusion"]["noise_scale"]
    assert DiffusionDriveConfig.from_dict(stored).diffusion.noise_scale == 1.0


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.5"])
def test_a_bad_noise_scale_is_refused_naming_the_field(value):
    with pytest.raises(ValueError, match="noise_scale"):
        DiffusionConfig(noise_scale=value)


def test_the_scale_multiplies_the_anchor_noise_and_nothing_else():
    state = seeded_model(_small_config(), seed=1).state_dict()
    models = {}
    for scale in (1.0, 0.5, 0.0):
        models[scale] = seeded_model(_small_config(scale), seed=1)
        models[scale].load_state_dict(state)
    noise, other = _noise(1), _noise(2)
    assert not torch.allclose(_poses(models[1.0], noise), _poses(models[1.0], other), atol=1e-3)
    torch.testing.assert_close(_poses(models[0.5], noise), _poses(models[1.0], 0.5 * noise), rtol=0, atol=1e-6)
    torch.testing.assert_close(_poses(models[0.0], noise), _poses(models[1.0], torch.zeros_like(noise)),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(_poses(models[0.0], noise), _poses(models[0.0], other), rtol=0, atol=0)


def _train_poses(model, seed: int) -> torch.Tensor:
    """Last cascade layer's poses of a training forward whose timesteps and noise come from `seed` (dropout: 0)."""
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.train()(*_inputs(), generator=torch.Generator().manual_seed(seed), aux_heads=False)
    return out["layer_outputs"][-1][0]


def test_training_noises_the_anchors_with_the_same_factor():
    def model(scale):
        config = _small_config(scale)  # every timestep 0, so two seeds differ only in their noise
        config = dataclasses.replace(config, diffusion=dataclasses.replace(config.diffusion, train_max_timestep=1))
        return seeded_model(config, seed=4)

    paper, steady = model(1.0), model(0.0)
    assert not torch.allclose(_train_poses(paper, 1), _train_poses(paper, 2), atol=1e-4)
    torch.testing.assert_close(_train_poses(steady, 1), _train_poses(steady, 2), rtol=0, atol=0)
    assert not torch.allclose(_train_poses(steady, 1), _train_poses(paper, 1), atol=1e-4)


def test_the_planner_override_keeps_the_weights_and_says_so(small_checkpoint):
    stored = Planner.from_checkpoint(small_checkpoint, device="cpu")
    steady = Planner.from_checkpoint(small_checkpoint, device="cpu", noise_scale=0.0)
    assert stored.model.config.diffusion.noise_scale == 1.0 and "noise scale" not in stored.describe()
    assert steady.model.config.diffusion.noise_scale == 0.0 and "noise scale 0)" in steady.describe()
    for name, tensor in stored.model.state_dict().items():
        torch.testing.assert_close(steady.model.state_dict()[name], tensor, rtol=0, atol=0)
    torch.testing.assert_close(_poses(steady.model, _noise(3)), _poses(stored.model, torch.zeros(1, 20, 8, 2)),
                               rtol=0, atol=1e-6)


def test_the_node_parameter_overrides_the_checkpoint_only_when_not_negative(small_checkpoint):
    default = planner_from_parameters(load_params_file(None, {"checkpoint": str(small_checkpoint), "device": "cpu"}))
    assert default.model.config.diffusion.noise_scale == 1.0
    params = load_params_file(None, {"checkpoint": str(small_checkpoint), "device": "cpu", "noise_scale": 0.25})
    assert planner_from_parameters(params).model.config.diffusion.noise_scale == 0.25
    with pytest.raises(ValueError, match="noise_scale"):
        load_params_file(None, {"noise_scale": 11.0})


def test_export_stores_the_scale_with_the_model(tmp_path, small_checkpoint, capsys):
    out = tmp_path / "shipped.pt"
    assert main(["export", "--checkpoint", str(small_checkpoint), "--noise-scale", "0.3", "--fp16", str(out)]) == 0
    _, stored = load_checkpoint(out)
    assert stored == _small_config(0.3)
    assert Planner.from_checkpoint(out, device="cpu").model.config.diffusion.noise_scale == 0.3
    assert main(["export", "--checkpoint", str(small_checkpoint), "--noise-scale", "-2", "--fp16",
                 str(tmp_path / "bad.pt")]) == 1
    assert "noise_scale" in capsys.readouterr().err


def test_an_onnx_graph_of_another_scale_is_refused(tmp_path, small_checkpoint):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the `onnx` extra)")
    graph = tmp_path / "plan.onnx"
    Planner.from_checkpoint(small_checkpoint, device="cpu", backend="onnxruntime", onnx_path=graph)
    with pytest.raises(ValueError, match="another model config"):
        Planner.from_checkpoint(small_checkpoint, device="cpu", backend="onnxruntime", onnx_path=graph,
                                noise_scale=0.5)


def test_an_onnx_plan_without_noise_still_takes_the_noise_input_and_matches_torch(tmp_path, small_checkpoint):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the `onnx` extra)")
    torch_plan = Planner.from_checkpoint(small_checkpoint, device="cpu", noise_scale=0.0)
    onnx_plan = Planner.from_checkpoint(small_checkpoint, device="cpu", noise_scale=0.0, backend="onnxruntime",
                                        onnx_path=tmp_path / "plan.onnx")
    frame = dict(cameras=[torch.randint(0, 256, (270, 480, 3), dtype=torch.uint8).numpy() for _ in range(3)],
                 points=torch.rand(2000, 3).mul(60).sub(30).numpy(), velocity=(4.0, 0.0), acceleration=(0.0, 0.0),
                 command=1)
    expected, got = torch_plan.plan(**frame), onnx_plan.plan(**frame)
    assert got.modes.shape == expected.modes.shape and abs(got.modes - expected.modes).max() < 1e-3
