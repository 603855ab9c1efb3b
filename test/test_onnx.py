"""ONNX export of the whole plan and the ONNX Runtime backend: equal to PyTorch within the export tolerance.

A small model (the compact variant with one block per stage) keeps the export quick; the navsim graph is the same
code with more layers and is checked by `diffusiondrive-ros export --onnx` (bench/README.md).
"""
import dataclasses

import numpy as np
import pytest

from diffusiondrive_ros import Planner
from diffusiondrive_ros.export import ONNX_ATOL
from diffusiondrive_ros.model import DiffusionDrive, model_config
from diffusiondrive_ros.model.weights import seeded_model
from diffusiondrive_ros.onnx_backend import select_providers
from diffusiondrive_ros.planner import frame_generator

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the `onnx` extra)")



def small_config():
    compact = model_config("compact")
    backbone = dataclasses.replace(compact.backbone, depths=(1, 1, 1, 1))
    return dataclasses.replace(compact, variant="compact", backbone=backbone, tf_num_layers=1)


@pytest.fixture(scope="module")
def model():
    return seeded_model(small_config(), seed=5)


@pytest.fixture(scope="module")
def onnx_planner(model, tmp_path_factory):
    return Planner(model, device="cpu", backend="onnxruntime", onnx_path=tmp_path_factory.mktemp("onnx") / "plan.onnx")


def _frame(seed):
    rng = np.random.default_rng(seed)
    cameras = [rng.integers(0, 256, (270, 480, 3), dtype=np.uint8) for _ in range(3)]
    points = np.column_stack([rng.normal(0, 12, (4000, 2)), rng.uniform(-0.5, 3.0, 4000)]).astype(np.float32)
    return dict(cameras=cameras, points=points, velocity=(6.0, 0.0), acceleration=(0.1, 0.0), command=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_onnxruntime_plan_equals_torch(onnx_planner, model, seed):
    torch_planner = Planner(model, device="cpu", optimize=False)
    frame = _frame(seed)
    ours = onnx_planner.plan(**frame, generator=frame_generator(seed, 10))
    reference = torch_planner.plan(**frame, generator=frame_generator(seed, 10))
    assert np.abs(ours.modes - reference.modes).max() <= ONNX_ATOL
    assert np.abs(ours.scores - reference.scores).max() <= ONNX_ATOL
    assert np.abs(ours.denoising - reference.denoising).max() <= ONNX_ATOL
    assert ours.best_index == reference.best_index and ours.denoising.shape == (2, 20, 8, 3)
    np.testing.assert_array_equal(ours.denoising[-1], ours.modes)


def test_noise_is_an_input_of_the_graph(onnx_planner):
    frame = _frame(0)
    first, again, other = (onnx_planner.plan(**frame, generator=frame_generator(0, stamp)) for stamp in (1, 1, 2))
    np.testing.assert_array_equal(first.modes, again.modes)
    assert np.abs(first.modes - other.modes).max() > 1e-3


def test_an_existing_graph_is_reused_only_for_its_own_weights(onnx_planner, model):
    path = onnx_planner._onnx.path
    stamp = path.stat().st_mtime_ns
    Planner(model, device="cpu", backend="onnxruntime", onnx_path=path)
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="exported from other weights"):
        Planner(seeded_model(small_config(), seed=6), device="cpu", backend="onnxruntime", onnx_path=path)
    assert "backend: onnxruntime (CPUExecutionProvider)" in onnx_planner.describe()


def test_providers_follow_the_device_and_what_is_installed():
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(everything, "cuda") == everything
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda") == everything[1:]
    assert select_providers(everything, "cpu") == ["CPUExecutionProvider"]
    assert select_providers(["AzureExecutionProvider", "CPUExecutionProvider"], "cuda") == ["CPUExecutionProvider"]


def test_the_training_model_keeps_its_names_after_the_export(onnx_planner, model):
    assert list(model.state_dict()) == list(DiffusionDrive(model.config).state_dict())
