"""Our DiffusionDrive equals the official implementation on the reference case (weights by the reference rule)."""

import numpy as np
import pytest
import torch
from conftest import DATA

# Tolerances recommended by the reference README (max abs diff, fp32 CPU).
OUTPUT_ATOL = {
    "trajectory": 1e-4,
    "all_poses_reg": 1e-4,
    "all_poses_cls": 1e-4,
    "agent_states": 5e-4,
    "agent_labels": 3e-5,
    "bev_semantic_map": 5e-5,
}


def _inputs(case):
    return [torch.from_numpy(case[k]) for k in ("camera_feature", "lidar_feature", "status_feature")]


@pytest.fixture(scope="module")
def traced_run(parity_case, parity_model):
    """Run inference with the case's noise, recording the intermediates the reference stores."""
    model, head = parity_model, parity_model._trajectory_head
    trace = {k: [] for k in ("fused", "upscale", "keyval", "query_out", "status", "time", "points", "layer0", "layer1",
                             "prev")}
    def record(**keys):
        """Forward hook storing selected inputs/outputs; returns None so the output is left unchanged."""
        def hook(module, inputs, output):
            for key, pick in keys.items():
                trace[key].append(pick(inputs, output))
        return hook

    hooks = [
        model._backbone.register_forward_hook(record(upscale=lambda i, o: o[0], fused=lambda i, o: o[1])),
        model._tf_decoder.register_forward_hook(record(keyval=lambda i, o: i[1], query_out=lambda i, o: o)),
        model._status_encoding.register_forward_hook(record(status=lambda i, o: o)),
        head.time_mlp.register_forward_hook(record(time=lambda i, o: o)),
        head.diff_decoder.layers[0].register_forward_hook(record(points=lambda i, o: i[1], layer0=lambda i, o: o)),
        head.diff_decoder.layers[1].register_forward_hook(record(layer1=lambda i, o: o)),
    ]
    step = head.scheduler.step

    def recording_step(*args, **kwargs):
        trace["prev"].append(step(*args, **kwargs))
        return trace["prev"][-1]

    head.scheduler.step = recording_step
    try:
        with torch.no_grad():
            out = model(*_inputs(parity_case), noise=torch.from_numpy(parity_case["noise"]))
            cross_bev = model.encode(*_inputs(parity_case))["cross_bev_feature"]
    finally:
        del head.scheduler.step
        for hook in hooks:
            hook.remove()
    return out, trace, cross_bev


def _close(ours, official, atol, name):
    ours = ours.detach().numpy() if torch.is_tensor(ours) else np.asarray(ours)
    assert ours.shape == official.shape, f"{name}: shape {ours.shape} vs official {official.shape}"
    assert np.isfinite(ours).all(), f"{name}: non-finite values"
    err = np.abs(ours - official).max()
    assert err <= atol, f"{name}: max abs diff {err:.3g} > {atol:g}"


@pytest.mark.parametrize("name", sorted(OUTPUT_ATOL))
def test_outputs_equal_official(traced_run, parity_case, name):
    out, _, _ = traced_run
    _close(out[name], parity_case[name], OUTPUT_ATOL[name], name)


def test_best_mode_index_equals_official(traced_run, parity_case):
    out, _, _ = traced_run
    np.testing.assert_array_equal(out["best_index"].numpy(), parity_case["all_poses_cls"].argmax(-1))
    best = out["all_poses_reg"][torch.arange(len(out["best_index"])), out["best_index"]]
    torch.testing.assert_close(out["trajectory"], best, rtol=0, atol=0)


def test_intermediates_equal_official(traced_run, parity_case):
    _, trace, cross_bev = traced_run
    c = parity_case
    _close(trace["fused"][0], c["int_backbone_fused"], 3e-4, "backbone_fused")
    _close(trace["upscale"][0], c["int_bev_feature_upscale"], 1e-4, "bev_feature_upscale")
    _close(trace["keyval"][0], c["int_keyval"], 3e-4, "keyval")
    _close(trace["query_out"][0], c["int_query_out"], 1e-4, "query_out")
    _close(trace["status"][0][:, None], c["int_status_encoding"], 1e-4, "status_encoding")
    _close(cross_bev, c["int_cross_bev_feature"], 1e-4, "cross_bev_feature")
    steps = lambda key, i: torch.stack([t[i] if isinstance(t, tuple) else t for t in trace[key]])  # noqa: E731
    _close(torch.stack(trace["time"])[:, :, None], c["int_step_time_embed"], 1e-4, "step_time_embed")
    _close(torch.stack(trace["points"]), c["int_step_traj_points"], 1e-4, "step_traj_points")
    _close(steps("layer0", 0), c["int_step_layer0_poses_reg"], 1e-4, "step_layer0_poses_reg")
    _close(steps("layer0", 1), c["int_step_layer0_poses_cls"], 1e-4, "step_layer0_poses_cls")
    _close(steps("layer1", 0), c["int_step_poses_reg"], 1e-4, "step_poses_reg")
    _close(steps("layer1", 1), c["int_step_poses_cls"], 1e-4, "step_poses_cls")
    _close(torch.stack(trace["prev"]), c["int_step_prev_sample"], 1e-4, "step_prev_sample")


def test_truncated_noising_equals_official(parity_case, parity_model):
    from diffusiondrive_ros.model.anchors import denormalize_xy, normalize_xy

    head = parity_model._trajectory_head
    anchors = normalize_xy(torch.from_numpy(parity_case["plan_anchor"]))[None].expand(
        len(parity_case["noise"]), -1, -1, -1)
    steps = torch.full((anchors.shape[0],), head.config.diffusion.truncation_step)
    noisy = head.scheduler.add_noise(anchors, torch.from_numpy(parity_case["noise"]), steps)
    _close(noisy, parity_case["int_noisy_anchors_norm"], 1e-6, "noisy_anchors_norm")
    _close(denormalize_xy(noisy), parity_case["int_noisy_anchors"], 1e-4, "noisy_anchors")


def test_scheduler_alphas_equal_diffusers_values():
    from diffusiondrive_ros.model.scheduler import TruncatedDDIMScheduler

    alphas = TruncatedDDIMScheduler().alphas_cumprod[8:11].numpy()
    np.testing.assert_allclose(alphas, [0.99900216, 0.99887723, 0.99874932], rtol=0, atol=1e-8)
    assert TruncatedDDIMScheduler.inference_timesteps(2, 20) == [10, 0]


@pytest.mark.parametrize("timestep", [10, 0])
def test_ddim_step_is_bit_equal_to_diffusers_tensor_formula(timestep):
    """The step's coefficients are Python numbers (so a compiled step on a GPU reads no CPU tensors) and still
    give diffusers' float32 result bit for bit: its formula written out with 0-dim float32 alpha tensors."""
    from diffusiondrive_ros.model.scheduler import TruncatedDDIMScheduler

    scheduler = TruncatedDDIMScheduler()
    generator = torch.Generator().manual_seed(timestep)
    clean, sample = (torch.randn(2, 20, 8, 2, generator=generator) * 1.5 for _ in range(2))
    alpha_t = scheduler.alphas_cumprod[timestep]
    alpha_prev = scheduler.alphas_cumprod[timestep - 1] if timestep > 0 else torch.tensor(1.0)
    epsilon = (sample - alpha_t**0.5 * clean) / (1 - alpha_t) ** 0.5
    expected = alpha_prev**0.5 * clean.clamp(-1.0, 1.0) + (1 - alpha_prev) ** 0.5 * epsilon
    assert torch.equal(scheduler.step(clean, timestep, sample), expected)


def test_seeded_weights_equal_reference_rule(parity_model):
    """Our weight rule gives the reference script's tensors: per-key digests of them stored in test/data."""
    digest = np.load(DATA / "weight_rule_digest.npz")
    ours = {k: v.double().numpy().ravel() for k, v in parity_model.state_dict().items()}
    assert list(ours) == digest["keys"].tolist()
    for index, key in enumerate(digest["keys"]):
        values = ours[key]
        np.testing.assert_array_equal(values[:8], digest["head"][index, : min(8, values.size)], err_msg=key)
        np.testing.assert_allclose(values.sum(), digest["sum"][index], rtol=1e-9, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(np.abs(values).sum(), digest["abs_sum"][index], rtol=1e-9, err_msg=key)


def test_state_dict_matches_official_manifest():
    from diffusiondrive_ros.model import DiffusionDrive

    manifest = []
    with open(DATA / "official_state_dict.tsv") as f:
        next(f)
        for line in f:
            key, shape, dtype = line.rstrip("\n").split("\t")
            manifest.append((key, tuple(int(s) for s in shape.split(",")) if shape else (), dtype))
    ours = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in DiffusionDrive().state_dict().items()]
    assert ours == manifest


def test_batching_does_not_change_results(parity_case, parity_model):
    """The case repeated along the batch axis gives the official outputs for every element."""
    repeat = lambda k: torch.from_numpy(np.concatenate([parity_case[k]] * 2))  # noqa: E731
    with torch.no_grad():
        out = parity_model(repeat("camera_feature"), repeat("lidar_feature"), repeat("status_feature"),
                           noise=repeat("noise"))
    for name in ("trajectory", "all_poses_reg", "all_poses_cls"):
        _close(out[name], np.concatenate([parity_case[name]] * 2), OUTPUT_ATOL[name], name)
