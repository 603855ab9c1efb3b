"""DiffusionDrive (NAVSIM): TransFuser backbone + transformer queries + truncated-diffusion trajectory head.

Module and parameter names follow the official `V2TransfuserModel`, so the official checkpoint loads strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiffusionDriveConfig
from .diffusion_head import TrajectoryHead
from .heads import AgentHead, bev_semantic_head
from .layers import linear_relu_ln, spatial_size
from .loss import cascade_loss
from .transfuser import TransfuserBackbone

AUX_OUTPUTS = ("bev_semantic_map", "agent_states", "agent_labels")
"""Outputs of the auxiliary heads (trained as perception tasks upstream; nothing downstream of planning reads them)."""


class DiffusionDrive(nn.Module):
    """Camera (B, 3, H, W) + LiDAR BEV (B, 1, R, R) + status (B, 8) -> trajectory modes, scores, agents, BEV map.

    H, W and R are the config's camera_height, camera_width and lidar_resolution (navsim: 256, 1024, 256).
    """

    def __init__(self, config: DiffusionDriveConfig = DiffusionDriveConfig()):
        super().__init__()
        d = config.tf_d_model
        self.config = config
        self._query_splits = [1, config.num_bounding_boxes]
        self._backbone = TransfuserBackbone(config.backbone)
        # One key/value token per cell of the fused last LiDAR stage, plus the ego status.
        bev_tokens = config.backbone.lidar_vert_anchors * config.backbone.lidar_horz_anchors
        self._keyval_embedding = nn.Embedding(bev_tokens + 1, d)
        self._query_embedding = nn.Embedding(sum(self._query_splits), d)
        lidar_chs = self._backbone.lidar_encoder.stage_channels[-1]
        self._bev_downscale = nn.Conv2d(lidar_chs, d, kernel_size=1)
        self._status_encoding = nn.Linear(config.status_dims, d)
        self._bev_semantic_head = bev_semantic_head(
            config.backbone.bev_features_channels,
            config.num_bev_classes,
            config.bev_semantic_height,
            config.bev_semantic_width,
        )
        decoder_layer = nn.TransformerDecoderLayer(
            d, config.tf_num_head, config.tf_d_ffn, config.tf_dropout, batch_first=True
        )
        self._tf_decoder = nn.TransformerDecoder(decoder_layer, config.tf_num_layers)
        self._agent_head = AgentHead(d, config.tf_d_ffn, config.lidar_max_x)
        self._trajectory_head = TrajectoryHead(config)
        self.bev_proj = nn.Sequential(*linear_relu_ln(d, 1, 1, d + config.backbone.bev_features_channels))

    @property
    def anchors(self) -> torch.Tensor:
        """Trajectory anchors (num_modes, num_poses, 2) in metres, part of the state_dict."""
        return self._trajectory_head.plan_anchor

    def encode(
        self, camera: torch.Tensor, lidar: torch.Tensor, status: torch.Tensor, aux_heads: bool = True
    ) -> dict[str, torch.Tensor]:
        """Everything before the trajectory head: queries and the BEV map it attends to; with `aux_heads` also the
        agent boxes and the BEV semantic map, which planning does not consume."""
        b = status.shape[0]
        bev_upscale, fused = self._backbone(camera, lidar)
        bev_h, bev_w = spatial_size(bev_upscale)
        tokens = self._bev_downscale(fused).flatten(2).transpose(1, 2)
        keyval = torch.cat([tokens, self._status_encoding(status)[:, None]], dim=1)
        keyval = keyval + self._keyval_embedding.weight[None]

        token_map = keyval[:, :-1].transpose(1, 2).reshape(b, -1, *fused.shape[2:])
        token_map = F.interpolate(token_map, size=(bev_h, bev_w), mode="bilinear", align_corners=False)
        cross_bev = torch.cat([token_map, bev_upscale], dim=1).flatten(2).transpose(1, 2)
        cross_bev = self.bev_proj(cross_bev).transpose(1, 2).reshape(b, -1, bev_h, bev_w)

        query = self._query_embedding.weight[None].expand(b, -1, -1)
        ego_query, agents_query = self._tf_decoder(query, keyval).split(self._query_splits, dim=1)
        out = {"ego_query": ego_query, "agents_query": agents_query, "cross_bev_feature": cross_bev}
        if aux_heads:
            out["bev_semantic_map"] = self._bev_semantic_head(bev_upscale)
            out.update(self._agent_head(agents_query))
        return out

    def forward(
        self,
        camera: torch.Tensor,
        lidar: torch.Tensor,
        status: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        target_trajectory: torch.Tensor | None = None,
        aux_heads: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Inference in eval mode (truncated DDIM); in train mode also returns `trajectory_loss` when a target is given.

        noise: (B, K, P, 2) normalised-space noise for the anchors; drawn from `generator` when None.
        aux_heads: also run the agent and BEV semantic heads (`AUX_OUTPUTS`); planning needs neither.
        """
        enc = self.encode(camera, lidar, status, aux_heads)
        head = self._trajectory_head
        queries = (enc["ego_query"], enc["agents_query"], enc["cross_bev_feature"])
        out = {k: enc[k] for k in AUX_OUTPUTS if k in enc}
        if self.training:
            consistency = self.config.trajectory_consistency_weight
            traj = head.forward_train(*queries, generator=generator, noise_draws=2 if consistency else 1)
            if target_trajectory is not None:
                traj["trajectory_loss"] = cascade_loss(
                    traj["layer_outputs"],
                    target_trajectory,
                    self.anchors,
                    self.config.trajectory_cls_weight,
                    self.config.trajectory_reg_weight,
                    traj.get("second_draw_layer_outputs"),
                    consistency,
                    self.config.trajectory_anchoring_weight,
                )
        else:
            traj = head.forward_test(*queries, noise=noise, generator=generator)
        out.update(traj)
        return out
