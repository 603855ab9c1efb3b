"""Training-mode forward: truncated noise in [0, 50), per-layer focal + L1 (+ noise consistency); a step lowers it."""
import dataclasses

import pytest
import torch

from diffusiondrive_ros.model.loss import (
    mode_anchoring_loss,
    nearest_anchor,
    noise_consistency_loss,
    sigmoid_focal_loss,
    trajectory_loss,
)


def _batch(parity_case, size=2):
    generator = torch.Generator().manual_seed(0)
    camera = torch.rand((size, 3, 256, 1024), generator=generator)
    lidar = (torch.rand((size, 1, 256, 256), generator=generator) > 0.9).float()
    status = torch.tensor([[0, 1, 0, 0, 6.0, 0.1, 0.3, 0.0]] * size)
    target = torch.from_numpy(parity_case["plan_anchor"][[5, 14]]).clone()
    target = torch.cat([target + 0.5, torch.zeros(size, 8, 1)], dim=-1)
    return camera, lidar, status, target


def _loss(model, batch, seed):
    torch.manual_seed(seed)  # dropout
    return model(*batch[:3], generator=torch.Generator().manual_seed(seed),
                 target_trajectory=batch[3])["trajectory_loss"]


def test_one_optimiser_step_lowers_the_loss(parity_case, parity_model):
    model = parity_model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = _batch(parity_case)
    try:
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        before = _loss(model, batch, seed=1)
        assert before.ndim == 0 and torch.isfinite(before)
        before.backward()
        assert model._trajectory_head.plan_anchor.grad is None
        assert (model._trajectory_head.diff_decoder.layers[0].task_decoder.plan_reg_branch[-1]
                .weight.grad.abs().sum() > 0)
        optimizer.step()
        with torch.no_grad():
            after = _loss(model, batch, seed=1)
        assert after < before * 0.98, (float(before), float(after))
    finally:
        model.load_state_dict(state)
        model.eval()


def test_train_forward_returns_every_cascade_layer(parity_case, parity_model):
    model = parity_model
    batch = _batch(parity_case)
    state = {k: v.clone() for k, v in model.state_dict().items()}  # train mode updates the BatchNorm statistics
    try:
        model.train()
        with torch.no_grad():
            out = model(*batch[:3], generator=torch.Generator().manual_seed(0), target_trajectory=batch[3])
    finally:
        model.load_state_dict(state)
        model.eval()
    assert len(out["layer_outputs"]) == 2
    for poses, scores in out["layer_outputs"]:
        assert poses.shape == (2, 20, 8, 3) and scores.shape == (2, 20)
    manual = sum(trajectory_loss(p, s, batch[3], model.anchors) for p, s in out["layer_outputs"])
    torch.testing.assert_close(out["trajectory_loss"], manual)


def test_train_timesteps_are_truncated(parity_model, monkeypatch):
    head = parity_model._trajectory_head
    seen = []
    add_noise = head.scheduler.add_noise
    monkeypatch.setattr(head.scheduler, "add_noise", lambda x, n, t: (seen.append(t.clone()), add_noise(x, n, t))[1])
    queries = (torch.zeros(32, 1, 256), torch.zeros(32, 30, 256), torch.zeros(32, 256, 8, 8))
    with torch.no_grad():
        head.forward_train(*queries, generator=torch.Generator().manual_seed(0))
    steps = seen[0]
    assert steps.min() >= 0 and steps.max() < 50 and len(steps.unique()) > 8


def test_target_mode_is_the_nearest_anchor(parity_case):
    anchors = torch.from_numpy(parity_case["plan_anchor"])
    target = torch.cat([anchors[[3, 17]] + 0.2, torch.zeros(2, 8, 1)], dim=-1)
    assert nearest_anchor(target, anchors).tolist() == [3, 17]


def test_focal_loss_matches_definition():
    logits, targets = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
    p = torch.sigmoid(logits)
    expected = (-0.25 * (1 - p[0, 0]) ** 2 * torch.log(p[0, 0]) - 0.75 * p[0, 1] ** 2 * torch.log(1 - p[0, 1])) / 2
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), expected)


def test_noise_consistency_compares_the_positions_of_every_mode():
    poses = torch.zeros(2, 20, 8, 3)
    other = poses.clone()
    other[..., 2] = 1.0  # headings are not compared
    assert noise_consistency_loss(poses, other) == 0
    other[0, 3, :, 0] = 0.5  # sample 0, mode 3: x differs by 0.5 m at every pose
    other[1, 7, 2, 1] = -2.0  # sample 1, mode 7, pose 2: y differs by 2 m
    # mean over 2 samples x 20 modes x 8 poses x 2 coordinates of |difference|
    torch.testing.assert_close(noise_consistency_loss(poses, other), torch.tensor((8 * 0.5 + 2.0) / 640))


def test_mode_anchoring_measures_every_mode_but_the_positive_from_its_own_anchor():
    anchors = torch.zeros(4, 8, 2)
    anchors[1, :, 0] = torch.arange(1.0, 9.0)  # mode 1: straight on, 1 m a pose
    poses = torch.cat([anchors, torch.zeros(4, 8, 1)], dim=-1)[None].repeat(2, 1, 1, 1)
    poses[..., 2] = 3.0  # headings are not compared
    positive = torch.tensor([2, 1])
    assert mode_anchoring_loss(poses, anchors, positive) == 0
    poses[0, 2, :, 1] = 5.0  # sample 0's positive mode is free to leave its anchor
    assert mode_anchoring_loss(poses, anchors, positive) == 0
    poses[1, 3, :, 0] = 0.6  # sample 1, mode 3 (not positive): x off by 0.6 m at every pose
    poses[0, 1, 4, 1] = -1.6  # sample 0, mode 1 (not positive): y off by 1.6 m at one pose
    # mean over the 6 non-positive modes of each mode's mean |error| over 8 poses x 2 coordinates
    torch.testing.assert_close(mode_anchoring_loss(poses, anchors, positive), torch.tensor((0.3 + 0.1) / 6))


def test_anchoring_weight_adds_the_anchoring_term_to_the_paper_loss():
    generator = torch.Generator().manual_seed(1)
    anchors = torch.randn(5, 8, 2, generator=generator) * 4
    poses, scores = torch.randn(3, 5, 8, 3, generator=generator) * 4, torch.randn(3, 5, generator=generator)
    target = torch.randn(3, 8, 3, generator=generator) * 4
    paper = trajectory_loss(poses, scores, target, anchors)
    positive = nearest_anchor(target, anchors)
    torch.testing.assert_close(trajectory_loss(poses, scores, target, anchors, anchoring_weight=2.0),
                               paper + 2.0 * mode_anchoring_loss(poses, anchors, positive))


def _two_draws(model, batch, weight):
    model.config = dataclasses.replace(model.config, trajectory_consistency_weight=weight)
    return model(*batch[:3], generator=torch.Generator().manual_seed(3), target_trajectory=batch[3])


def test_consistency_weight_adds_a_second_noise_draw_to_the_loss(parity_case, parity_model):
    model, batch = parity_model, _batch(parity_case)
    state, config = {k: v.clone() for k, v in model.state_dict().items()}, model.config
    try:
        model.train()
        with torch.no_grad():
            one = _two_draws(model, batch, 0.0)
            two = _two_draws(model, batch, 4.0)
    finally:
        model.config = config
        model.load_state_dict(state)
        model.eval()
    assert "second_draw_layer_outputs" not in one
    for p, q in zip(two["layer_outputs"], two["second_draw_layer_outputs"]):  # the second draw's noise differs
        assert p[0].shape == q[0].shape == (2, 20, 8, 3) and (p[0] - q[0]).abs().max() > 1e-3
    extra = sum((p[..., :2] - q[..., :2]).abs().mean()
                for (p, _), (q, _) in zip(two["layer_outputs"], two["second_draw_layer_outputs"]))
    assert extra > 0
    paper = sum(trajectory_loss(p, s, batch[3], model.anchors) for p, s in two["layer_outputs"])
    torch.testing.assert_close(two["trajectory_loss"], paper + 4.0 * extra, rtol=1e-5, atol=1e-5)


def test_noise_draws_are_one_or_two(parity_model):
    queries = (torch.zeros(1, 1, 256), torch.zeros(1, 30, 256), torch.zeros(1, 256, 8, 8))
    with pytest.raises(ValueError, match="noise_draws"):
        parity_model._trajectory_head.forward_train(*queries, noise_draws=3)
