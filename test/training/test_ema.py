"""Exponential moving average of weights against its closed form, buffers included, and its resume state."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusiondrive_ros.training.ema import ExponentialMovingAverage


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_average_follows_the_warmed_up_decay():
    net = model()
    ema = ExponentialMovingAverage(net, decay=0.5)
    expected = net[0].weight.detach().clone()
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            net[0].weight.fill_(value)
        decay = min(0.5, (1 + n) / (10 + n))
        assert ema.current_decay() == decay
        ema.update(net)
        expected = decay * expected + (1 - decay) * value
        torch.testing.assert_close(ema.module[0].weight, expected)
    assert ema.updates == 4
    assert net[0].weight.requires_grad and not ema.module[0].weight.requires_grad


def test_buffers_are_averaged_and_counters_copied():
    net = model()
    ema = ExponentialMovingAverage(net, decay=0.9)
    net.train()(torch.randn(8, 2))  # moves the running statistics, counts one batch
    ema.update(net)
    decay = 2 / 11
    torch.testing.assert_close(ema.module[1].running_mean, (1 - decay) * net[1].running_mean)
    assert int(ema.module[1].num_batches_tracked) == 1


def test_state_round_trip_and_decay_check():
    net = model()
    ema = ExponentialMovingAverage(net, decay=0.9)
    with torch.no_grad():
        net[0].bias.add_(1.0)
    ema.update(net)
    again = ExponentialMovingAverage(model(), decay=0.9)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 1
    torch.testing.assert_close(again.module.state_dict(), ema.module.state_dict())
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(model(), decay=0.8).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(model(), decay=1.0)
