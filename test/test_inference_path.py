"""The inference path: folded batch norms, channels-last, planning heads only, reused feature buffers.

Its outputs must stay equal to the official ones on the parity case within the parity tolerance, and preparing it
must leave the training model (official parameter names, strict loading) untouched.
"""
import numpy as np
import pytest
import torch
from model.test_parity import OUTPUT_ATOL
from torch import nn

from diffusiondrive_ros import Planner
from diffusiondrive_ros.features import FeatureBuilder, build_features
from diffusiondrive_ros.model import DiffusionDrive
from diffusiondrive_ros.model.diffusiondrive import AUX_OUTPUTS
from diffusiondrive_ros.model.inference import fold_batch_norm, prepare_for_inference

PLAN_OUTPUTS = ("trajectory", "all_poses_reg", "all_poses_cls")


def _case_inputs(case, channels_last=False):
    tensors = [torch.from_numpy(case[k]) for k in ("camera_feature", "lidar_feature", "status_feature")]
    if channels_last:
        tensors[:2] = [t.contiguous(memory_format=torch.channels_last) for t in tensors[:2]]
    return tensors


@pytest.fixture(scope="module")
def prepared(parity_model):
    return prepare_for_inference(parity_model)


def test_folded_convolution_equals_batch_norm_closed_form():
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    bn = nn.BatchNorm2d(4, eps=1e-3).eval()
    with torch.no_grad():
        for tensor, low, high in ((bn.weight, 0.5, 2.0), (bn.bias, -1, 1), (bn.running_mean, -1, 1),
                                  (bn.running_var, 0.2, 3.0)):
            tensor.copy_(low + (high - low) * torch.rand(4, generator=generator))
    x = torch.randn(2, 3, 9, 7, generator=generator)
    gamma, beta, mean, var = (t.view(1, -1, 1, 1) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var))
    with torch.no_grad():
        expected = (conv(x) - mean) / torch.sqrt(var + 1e-3) * gamma + beta
        folded = fold_batch_norm(conv, bn)
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-5)
    assert folded.stride == (2, 2) and folded.padding == (1, 1) and folded.bias is not None


def test_preparing_leaves_the_training_model_and_its_names_untouched(parity_model, prepared):
    before = {k: v.clone() for k, v in parity_model.state_dict().items()}
    again = prepare_for_inference(parity_model)
    after = parity_model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in parity_model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in again.modules())
    DiffusionDrive().load_state_dict(after, strict=True)
    conv = prepared._backbone.image_encoder.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.requires_grad


@pytest.mark.parametrize("aux_heads", [True, False])
def test_prepared_model_equals_official_on_the_parity_case(parity_case, prepared, aux_heads):
    with torch.inference_mode():
        out = prepared(*_case_inputs(parity_case, channels_last=True), noise=torch.from_numpy(parity_case["noise"]),
                       aux_heads=aux_heads)
    names = PLAN_OUTPUTS + (AUX_OUTPUTS if aux_heads else ())
    for name in names:
        err = np.abs(out[name].numpy() - parity_case[name]).max()
        assert err <= OUTPUT_ATOL[name], f"{name}: max abs diff {err:.3g} > {OUTPUT_ATOL[name]:g}"
    assert aux_heads or not set(AUX_OUTPUTS) & set(out)


def test_planner_on_the_parity_features_equals_official(parity_case, parity_model):
    planner = Planner(parity_model, device="cpu")
    noise = torch.from_numpy(parity_case["noise"][:1])
    result = planner.plan_features(*(parity_case[k][0] for k in ("camera_feature", "lidar_feature",
                                                                "status_feature")), noise=noise)
    assert np.abs(result.modes - parity_case["all_poses_reg"][0]).max() <= OUTPUT_ATOL["all_poses_reg"]
    assert np.abs(result.scores - parity_case["all_poses_cls"][0]).max() <= OUTPUT_ATOL["all_poses_cls"]
    assert result.best_index == int(parity_case["all_poses_cls"][0].argmax())


def test_bev_values_are_projected_once_per_frame(parity_case, parity_model):
    """The BEV value projection depends only on the map: one per decoder layer, not one per denoising step."""
    head = parity_model._trajectory_head
    calls = []
    hooks = [layer.cross_bev_attention.value_proj.register_forward_hook(lambda *_: calls.append(1))
             for layer in head.diff_decoder.layers]
    try:
        with torch.inference_mode():
            parity_model(*_case_inputs(parity_case), noise=torch.from_numpy(parity_case["noise"]))
    finally:
        for hook in hooks:
            hook.remove()
    assert head.config.diffusion.inference_steps == 2 and len(calls) == len(head.diff_decoder.layers)


def _rig(height, width, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3)]


def test_feature_builder_reuses_its_buffers_and_equals_build_features():
    rng = np.random.default_rng(1)
    builder = FeatureBuilder()
    for cameras, n in ((_rig(540, 960, 0), 5000), (_rig(540, 960, 1), 0), (_rig(360, 640, 2), 20000)):
        points = np.column_stack([rng.normal(0, 15, (n, 2)), rng.uniform(-0.5, 3.0, n)]).astype(np.float32)
        args = (cameras, points, (5.0, 0.1), (0.2, 0.0), 2)
        expected = build_features(*args)
        got = builder.build(*args)
        for name, array in expected.items():
            np.testing.assert_array_equal(got[name], array, err_msg=name)
        camera_buffer, lidar_buffer = got["camera_feature"], got["lidar_feature"]
        if n:  # the second frame wrote into the first frame's arrays
            assert np.shares_memory(camera_buffer, builder.build(*args)["camera_feature"])
            assert np.shares_memory(lidar_buffer, builder.build(*args)["lidar_feature"])
    assert torch.from_numpy(camera_buffer)[None].is_contiguous(memory_format=torch.channels_last)


def test_threads_setting_applies_to_torch(parity_model):
    threads = torch.get_num_threads()
    try:
        Planner(parity_model, device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
