"""Inference preparation: a copy of a trained DiffusionDrive with batch norms folded into the convolutions before them.

The training model is never modified, so its state_dict keeps the official names and loads checkpoints strictly;
only the copy (whose batch-norm modules become identities) runs the plans.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .diffusiondrive import DiffusionDrive
from .resnet import BasicBlock, ResNetFeatures


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution equal to `bn(conv(x))` in eval mode.

    W' = W * s and b' = (b - m) * s + beta with s = g / sqrt(v + eps), where g, beta are the batch norm's affine
    weight and bias and m, v its running mean and variance.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                       padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                       padding_mode=conv.padding_mode).to(device=conv.weight.device, dtype=conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return folded


def _fold_pair(owner: nn.Module, conv_name: str, bn_name: str) -> None:
    """Replace owner.<conv_name> by its batch-norm-folded version and owner.<bn_name> by an identity."""
    setattr(owner, conv_name, fold_batch_norm(getattr(owner, conv_name), getattr(owner, bn_name)))
    setattr(owner, bn_name, nn.Identity())


def fold_conv_batch_norms(model: nn.Module) -> nn.Module:
    """Fold every ResNet batch norm (stem, both block convolutions, strided shortcuts) in place; returns `model`."""
    for module in model.modules():
        if isinstance(module, ResNetFeatures):
            _fold_pair(module, "conv1", "bn1")
        elif isinstance(module, BasicBlock):
            _fold_pair(module, "conv1", "bn1")
            _fold_pair(module, "conv2", "bn2")
            if module.downsample is not None:
                _fold_pair(module.downsample, "0", "1")
    return model


def prepare_for_inference(model: DiffusionDrive, channels_last: bool = True) -> DiffusionDrive:
    """An eval-mode copy with batch norms folded, frozen weights and, optionally, channels-last convolution weights.

    Channels-last lets oneDNN (CPU) and cuDNN (GPU) run the convolutions without reordering every activation.
    """
    prepared = copy.deepcopy(model).eval()
    fold_conv_batch_norms(prepared)
    prepared.requires_grad_(False)
    if channels_last:
        prepared.to(memory_format=torch.channels_last)
    return prepared
