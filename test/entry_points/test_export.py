"""`export --fp16` writes a half-size copy of a checkpoint whose plans stay within a few centimetres; `export --onnx`
writes the whole plan as ONNX and checks it with ONNX Runtime."""
import dataclasses

import pytest
import torch

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.export import ONNX_ATOL
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


def test_onnx_export_writes_the_plan_graph_checked_against_torch(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the `onnx` extra)")
    from diffusiondrive_ros.onnx_backend import OnnxPlan

    compact = model_config("compact")
    config = dataclasses.replace(compact, backbone=dataclasses.replace(compact.backbone, depths=(1, 1, 1, 1)),
                                 tf_num_layers=1)
    source = tmp_path / "small.pt"
    save_checkpoint(source, seeded_model(config, seed=2), config)
    out = tmp_path / "deploy" / "plan.onnx"
    assert main(["export", "--checkpoint", str(source), "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch on a seeded frame, max abs difference: poses" in printed
    difference = float(printed.split("poses ")[1].split(" m")[0])
    assert difference <= ONNX_ATOL
    plan = OnnxPlan(out)
    assert plan.config == config and [i.name for i in plan.session.get_inputs()] == ["camera", "lidar", "status",
                                                                                    "noise"]


def test_export_needs_exactly_one_target(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", "--fp16", str(tmp_path / "a.pt"), "--onnx", str(tmp_path / "a.onnx")])
    assert "not allowed with argument" in capsys.readouterr().err
