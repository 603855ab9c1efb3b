"""`export --fp16` writes a half-size copy of a checkpoint whose plans stay within a few centimetres."""
import torch

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.model.checkpoint import load_checkpoint, save_checkpoint
from diffusiondrive_ros.model.variants import model_config
from diffusiondrive_ros.model.weights import seeded_model
from diffusiondrive_ros.planner import Planner


def test_fp16_export_halves_the_file_and_keeps_the_plans(tmp_path, capsys):
    config = model_config("compact")
    source = tmp_path / "last.pt"
    save_checkpoint(source, seeded_model(config, seed=3), config, step=7)
    out = tmp_path / "shipped.pt"
    assert main(["export", "--checkpoint", str(source), "--fp16", str(out)]) == 0
    assert "max pose difference" in capsys.readouterr().out
    state, stored = load_checkpoint(out)
    assert stored == config and state["_trajectory_head.plan_anchor"].dtype == torch.float16
    assert out.stat().st_size < 0.55 * source.stat().st_size
    noise = torch.randn((1, 20, 8, 2), generator=torch.Generator().manual_seed(0))
    inputs = (torch.rand(1, 3, 64, 256), torch.zeros(1, 1, 64, 64), torch.tensor([[0, 1, 0, 0, 8.0, 0, 0, 0]]))
    with torch.inference_mode():
        before, after = (Planner.from_checkpoint(path, device="cpu").model(*inputs, noise=noise)["all_poses_reg"]
                         for path in (source, out))
    assert after.dtype == torch.float32 and (before - after).abs().max() < 0.1


def test_export_of_a_missing_file_is_one_line_and_exit_1(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--fp16", str(tmp_path / "out.pt")]) == 1
    assert "no such file" in capsys.readouterr().err
