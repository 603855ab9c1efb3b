"""ResNet (BasicBlock) feature extractor with timm's parameter names.

The default depths and widths are `timm.create_model('resnet34', features_only=True)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (timm `BasicBlock`)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class ResNetFeatures(nn.Module):
    """ResNet trunk without classifier; `stem()` and `stage(i)` run one part at a time so TransFuser can fuse between.

    depths = blocks per stage ((3, 4, 6, 3) is ResNet-34, (2, 2, 2, 2) ResNet-18); the stem has widths[0] channels.
    """

    def __init__(
        self, in_chans: int = 3, depths: Sequence[int] = (3, 4, 6, 3), widths: Sequence[int] = (64, 128, 256, 512)
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = widths[0]
        for index, (depth, width) in enumerate(zip(depths, widths)):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(in_channels, width, stride)] + [BasicBlock(width, width) for _ in range(depth - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
            in_channels = width
        self.stage_channels: list[int] = list(widths)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Strided 7x7 convolution, batch norm and ReLU (half resolution)."""
        return self.act1(self.bn1(self.conv1(x)))

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage `index` (0..3); the max-pool belongs to the first stage as in timm's feature hooks."""
        if index == 0:
            x = self.maxpool(x)
        return getattr(self, f"layer{index + 1}")(x)

