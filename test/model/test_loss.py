"""Training-mode forward: truncated noise in [0, 50), per-layer focal + L1 loss, and one step lowers it."""
import torch

from diffusiondrive_ros.model.loss import nearest_anchor, sigmoid_focal_loss, trajectory_loss


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
