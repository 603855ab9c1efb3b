"""TransFuser backbone: camera and LiDAR ResNet branches fused by a GPT after each stage, plus a BEV FPN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NUM_STAGES, BackboneConfig
from .layers import spatial_size
from .resnet import ResNetFeatures


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate key/query/value projections (GPT naming)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_drop = dropout
        self.resid_drop = nn.Dropout(dropout)
        self.n_head = n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        heads = lambda y: y.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, c)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-LN transformer block with a ReLU MLP."""

    def __init__(self, n_embd: int, n_head: int, block_exp: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, block_exp * n_embd),
            nn.ReLU(True),
            nn.Linear(block_exp * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Fusion transformer over the pooled image tokens followed by the pooled LiDAR tokens."""

    def __init__(self, n_embd: int, config: BackboneConfig):
        super().__init__()
        self.n_embd = n_embd
        self.num_image_tokens = config.img_vert_anchors * config.img_horz_anchors
        num_tokens = self.num_image_tokens + config.lidar_vert_anchors * config.lidar_horz_anchors
        self.pos_emb = nn.Parameter(torch.zeros(1, num_tokens, n_embd))
        self.drop = nn.Dropout(config.gpt_dropout)
        block = (n_embd, config.gpt_heads, config.gpt_block_exp, config.gpt_dropout)
        self.blocks = nn.Sequential(*(Block(*block) for _ in range(config.gpt_layers)))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, image: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = lidar.shape[0]
        (img_h, img_w), (lidar_h, lidar_w) = image.shape[2:], lidar.shape[2:]
        tokens = torch.cat([image.flatten(2).transpose(1, 2), lidar.flatten(2).transpose(1, 2)], dim=1)
        x = self.ln_f(self.blocks(self.drop(self.pos_emb + tokens)))
        image_out = x[:, : self.num_image_tokens].transpose(1, 2).reshape(b, -1, img_h, img_w)
        lidar_out = x[:, self.num_image_tokens :].transpose(1, 2).reshape(b, -1, lidar_h, lidar_w)
        return image_out, lidar_out


class TransfuserBackbone(nn.Module):
    """Returns (BEV FPN feature map, fused LiDAR layer-4 feature)."""

    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        self.image_encoder = ResNetFeatures(config.image_channels, config.depths, config.widths)
        self.lidar_encoder = ResNetFeatures(config.lidar_channels, config.depths, config.widths)
        self.avgpool_img = nn.AdaptiveAvgPool2d((config.img_vert_anchors, config.img_horz_anchors))
        self.avgpool_lidar = nn.AdaptiveAvgPool2d((config.lidar_vert_anchors, config.lidar_horz_anchors))
        image_chs, lidar_chs = self.image_encoder.stage_channels, self.lidar_encoder.stage_channels
        self.transformers = nn.ModuleList([GPT(c, config) for c in image_chs])
        self.lidar_channel_to_img = nn.ModuleList([nn.Conv2d(li, im, 1) for li, im in zip(lidar_chs, image_chs)])
        self.img_channel_to_lidar = nn.ModuleList([nn.Conv2d(im, li, 1) for im, li in zip(image_chs, lidar_chs)])

        channel = config.bev_features_channels
        bev_size = config.bev_feature_size
        self.relu = nn.ReLU(inplace=True)
        self.upsample = nn.Upsample(scale_factor=config.bev_upsample_factor, mode="bilinear", align_corners=False)
        self.upsample2 = nn.Upsample(size=(bev_size, bev_size), mode="bilinear", align_corners=False)
        self.up_conv5 = nn.Conv2d(channel, channel, 3, padding=1)
        self.up_conv4 = nn.Conv2d(channel, channel, 3, padding=1)
        self.c5_conv = nn.Conv2d(lidar_chs[-1], channel, 1)

    def top_down(self, x: torch.Tensor) -> torch.Tensor:
        p5 = self.relu(self.c5_conv(x))
        p4 = self.relu(self.up_conv5(self.upsample(p5)))
        return self.relu(self.up_conv4(self.upsample2(p4)))

    def fuse(self, image: torch.Tensor, lidar: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exchange information between the branches through the stage's GPT at anchor resolution."""
        image_tokens = self.avgpool_img(image)
        lidar_tokens = self.lidar_channel_to_img[index](self.avgpool_lidar(lidar))
        image_out, lidar_out = self.transformers[index](image_tokens, lidar_tokens)
        lidar_out = self.img_channel_to_lidar[index](lidar_out)
        image = image + F.interpolate(image_out, size=spatial_size(image), mode="bilinear", align_corners=False)
        lidar = lidar + F.interpolate(lidar_out, size=spatial_size(lidar), mode="bilinear", align_corners=False)
        return image, lidar

    def forward(self, image: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, lidar = self.image_encoder.stem(image), self.lidar_encoder.stem(lidar)
        for index in range(NUM_STAGES):
            image = self.image_encoder.stage(index, image)
            lidar = self.lidar_encoder.stage(index, lidar)
            image, lidar = self.fuse(image, lidar, index)
        return self.top_down(lidar), lidar
