"""Truncated-diffusion trajectory head with the cascade diffusion decoder (DiffusionDrive, CVPR 2025)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .anchors import denormalize_xy, normalize_xy
from .config import DiffusionDriveConfig
from .layers import SinusoidalPosEmb, linear_relu_ln, sine_position_embedding
from .scheduler import TruncatedDDIMScheduler

POSE_EMBED_DIMS = 64  # sine embedding size of one (x, y) pose fed to the anchor encoder


class GridSampleCrossBEVAttention(nn.Module):
    """Each mode attends to BEV features bilinearly sampled at its own poses (softmax over the poses)."""

    def __init__(self, embed_dims: int, num_points: int, bev_range: tuple[float, float], in_bev_dims: int):
        super().__init__()
        self.num_points = num_points
        self.bev_range = bev_range
        self.attention_weights = nn.Linear(embed_dims, num_points)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(0.1)
        self.value_proj = nn.Sequential(nn.Conv2d(in_bev_dims, embed_dims, 3, padding=1), nn.ReLU(inplace=True))

    def project(self, bev_feature: torch.Tensor) -> torch.Tensor:
        """Values (B, C, H, W) sampled by `forward`; they depend only on the BEV map, so one projection per frame
        serves every denoising step."""
        return self.value_proj(bev_feature)

    def forward(self, queries: torch.Tensor, points: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Queries (B, K, C), points (B, K, P, 2) metres x/y, values (B, C, H, W) from `project`."""
        max_x, max_y = self.bev_range
        # grid_sample takes (width, height) coordinates: ego y runs along the BEV width, ego x along its height.
        grid = torch.stack([points[..., 1] / max_x, points[..., 0] / max_y], dim=-1)
        weights = self.attention_weights(queries).softmax(-1).unsqueeze(1)  # (B, 1, K, P)
        sampled = F.grid_sample(values, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = (weights * sampled).sum(dim=-1).transpose(1, 2)  # (B, K, C)
        return self.dropout(self.output_proj(out)) + queries


class ModulationLayer(nn.Module):
    """FiLM-style timestep modulation: x * (1 + scale) + shift from Linear(Mish(time_embed))."""

    def __init__(self, embed_dims: int, condition_dims: int):
        super().__init__()
        self.scale_shift_mlp = nn.Sequential(nn.Mish(), nn.Linear(condition_dims, embed_dims * 2))

    def forward(self, x: torch.Tensor, time_embed: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift_mlp(time_embed).chunk(2, dim=-1)
        return x * (1 + scale) + shift


class PlanningRefinementModule(nn.Module):
    """Per-mode score (logit) and (x, y, heading) offsets for every pose."""

    def __init__(self, embed_dims: int, num_poses: int):
        super().__init__()
        self.num_poses = num_poses
        self.plan_cls_branch = nn.Sequential(*linear_relu_ln(embed_dims, 1, 2), nn.Linear(embed_dims, 1))
        self.plan_reg_branch = nn.Sequential(
            nn.Linear(embed_dims, embed_dims),
            nn.ReLU(),
            nn.Linear(embed_dims, embed_dims),
            nn.ReLU(),
            nn.Linear(embed_dims, num_poses * 3),
        )

    def forward(self, traj_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, _ = traj_feature.shape
        scores = self.plan_cls_branch(traj_feature).squeeze(-1)
        offsets = self.plan_reg_branch(traj_feature).view(b, k, self.num_poses, 3)
        return offsets, scores


class CascadeDecoderLayer(nn.Module):
    """One cascade stage: BEV grid-sample attention, agent and ego cross-attention, FFN, time modulation, regression."""

    def __init__(self, config: DiffusionDriveConfig):
        super().__init__()
        d, heads = config.tf_d_model, config.tf_num_head
        self.dropout = nn.Dropout(0.1)
        self.dropout1 = nn.Dropout(0.1)
        bev_range = (config.lidar_max_x, config.lidar_max_y)
        self.cross_bev_attention = GridSampleCrossBEVAttention(d, config.num_poses, bev_range, in_bev_dims=d)
        self.cross_agent_attention = nn.MultiheadAttention(d, heads, dropout=config.tf_dropout, batch_first=True)
        self.cross_ego_attention = nn.MultiheadAttention(d, heads, dropout=config.tf_dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, config.tf_d_ffn), nn.ReLU(), nn.Linear(config.tf_d_ffn, d))
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.time_modulation = ModulationLayer(d, d)
        self.task_decoder = PlanningRefinementModule(d, config.num_poses)

    def forward(
        self,
        traj_feature: torch.Tensor,
        points: torch.Tensor,
        bev_values: torch.Tensor,
        agents_query: torch.Tensor,
        ego_query: torch.Tensor,
        time_embed: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """bev_values: this layer's `cross_bev_attention.project` of the BEV map."""
        x = self.cross_bev_attention(traj_feature, points, bev_values)
        agents = self.cross_agent_attention(x, agents_query, agents_query, need_weights=False)[0]
        x = self.norm1(x + self.dropout(agents))
        x = self.norm2(x + self.dropout1(self.cross_ego_attention(x, ego_query, ego_query, need_weights=False)[0]))
        x = self.time_modulation(self.norm3(self.ffn(x)), time_embed)
        offsets, scores = self.task_decoder(x)
        poses = torch.cat([offsets[..., :2] + points, offsets[..., 2:3].tanh() * math.pi], dim=-1)
        return poses, scores


class CascadeDiffusionDecoder(nn.Module):
    """Stacked decoder layers sharing the same trajectory query; each refines the previous layer's poses."""

    def __init__(self, config: DiffusionDriveConfig):
        super().__init__()
        self.layers = nn.ModuleList([CascadeDecoderLayer(config) for _ in range(config.decoder_layers)])

    def project(self, bev_feature: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's BEV values, computed once per frame and shared by the denoising steps."""
        return [layer.cross_bev_attention.project(bev_feature) for layer in self.layers]

    def forward(
        self,
        traj_feature: torch.Tensor,
        points: torch.Tensor,
        bev_values: list[torch.Tensor],
        agents_query: torch.Tensor,
        ego_query: torch.Tensor,
        time_embed: torch.Tensor,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(poses, scores) of every layer; each layer starts from the previous layer's (detached) poses."""
        outputs = []
        for layer, values in zip(self.layers, bev_values):
            poses, scores = layer(traj_feature, points, values, agents_query, ego_query, time_embed)
            outputs.append((poses, scores))
            points = poses[..., :2].detach()
        return outputs


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


class TrajectoryHead(nn.Module):
    """Anchors -> truncated noise -> cascade decoder denoising (DDIM) -> all modes with scores."""

    def __init__(self, config: DiffusionDriveConfig):
        super().__init__()
        d = config.tf_d_model
        self.config = config
        self.plan_anchor = nn.Parameter(torch.zeros(config.num_modes, config.num_poses, 2), requires_grad=False)
        self.plan_anchor_encoder = nn.Sequential(
            *linear_relu_ln(d, 1, 1, POSE_EMBED_DIMS * config.num_poses), nn.Linear(d, d)
        )
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(d), nn.Linear(d, d * 4), nn.Mish(), nn.Linear(d * 4, d))
        self.diff_decoder = CascadeDiffusionDecoder(config)
        diffusion = config.diffusion
        self.scheduler = TruncatedDDIMScheduler(diffusion.num_train_timesteps, diffusion.beta_start, diffusion.beta_end)

    def _decode(
        self,
        points: torch.Tensor,
        timesteps: torch.Tensor,
        bev_values: list[torch.Tensor],
        agents_query: torch.Tensor,
        ego_query: torch.Tensor,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Encode noisy anchor points + timestep and run the cascade decoder on the projected BEV values."""
        b, k = points.shape[:2]
        pose_embedding = sine_position_embedding(points, POSE_EMBED_DIMS).flatten(-2)
        traj_feature = self.plan_anchor_encoder(pose_embedding).view(b, k, -1)
        time_embed = self.time_mlp(timesteps).view(b, 1, -1)
        return self.diff_decoder(traj_feature, points, bev_values, agents_query, ego_query, time_embed)

    def draw_noise(self, batch: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """Anchor noise drawn on the generator's device (reproducible across devices), moved to `device`."""
        shape = (batch,) + tuple(self.plan_anchor.shape)
        return torch.randn(shape, generator=generator, device=_draw_device(generator, device)).to(device)

    def _noised_anchors(self, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The normalised anchors noised to `timesteps` with `noise` x noise_scale, in training as at inference."""
        anchors = normalize_xy(self.plan_anchor.unsqueeze(0).expand(len(timesteps), -1, -1, -1),
                               self.config.normalization)
        noise = noise.to(device=anchors.device, dtype=anchors.dtype) * self.config.diffusion.noise_scale
        return self.scheduler.add_noise(anchors, noise, timesteps)

    @staticmethod
    def _modes(poses: torch.Tensor, scores: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every mode, its score and the best one (argmax of the raw score logits)."""
        best = scores.argmax(dim=-1)
        trajectory = poses[torch.arange(poses.shape[0], device=poses.device), best]
        return {"trajectory": trajectory, "all_poses_reg": poses, "all_poses_cls": scores, "best_index": best}

    def forward_test(
        self,
        ego_query: torch.Tensor,
        agents_query: torch.Tensor,
        bev_feature: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Denoise from the truncation step in `inference_steps` DDIM steps; returns every mode of the last layer."""
        b, device = ego_query.shape[0], ego_query.device
        diffusion = self.config.diffusion
        if noise is None:
            noise = self.draw_noise(b, device, generator)
        truncation = torch.full((b,), diffusion.truncation_step, dtype=torch.long, device=device)
        sample = self._noised_anchors(noise, truncation)
        bev_values = self.diff_decoder.project(bev_feature)
        step_poses = []
        for t in self.scheduler.inference_timesteps(diffusion.inference_steps, diffusion.inference_step_span):
            points = denormalize_xy(sample.clamp(-1, 1), self.config.normalization)
            timesteps = torch.full((b,), t, dtype=torch.long, device=device)
            poses, scores = self._decode(points, timesteps, bev_values, agents_query, ego_query)[-1]
            step_poses.append(poses)
            sample = self.scheduler.step(normalize_xy(poses[..., :2], self.config.normalization), t, sample)
        return self._modes(poses, scores) | {"denoising_poses_reg": torch.stack(step_poses)}

    def forward_train(
        self,
        ego_query: torch.Tensor,
        agents_query: torch.Tensor,
        bev_feature: torch.Tensor,
        generator: torch.Generator | None = None,
        noise_draws: int = 1,
    ) -> dict[str, torch.Tensor]:
        """Noise the anchors (x noise_scale) to a random timestep in [0, train_max_timestep) and decode; returns every
        layer.

        noise_draws=2 also decodes a second noise draw at the same timesteps (`second_draw_layer_outputs`), for
        `loss.noise_consistency_loss`; the first draw's timesteps and noise are those of one draw.
        """
        if noise_draws not in (1, 2):
            raise ValueError(f"noise_draws must be 1 or 2, got {noise_draws!r}")
        b, device = ego_query.shape[0], ego_query.device
        timesteps = torch.randint(0, self.config.diffusion.train_max_timestep, (b,), generator=generator,
                                  device=_draw_device(generator, device)).to(device)
        noisy = torch.cat([self._noised_anchors(self.draw_noise(b, device, generator), timesteps)
                           for _ in range(noise_draws)])
        points = denormalize_xy(noisy.clamp(-1, 1), self.config.normalization)
        bev_values = [values.repeat(noise_draws, *(1,) * (values.ndim - 1))
                      for values in self.diff_decoder.project(bev_feature)]
        layers = self._decode(points, timesteps.repeat(noise_draws), bev_values,
                              agents_query.repeat(noise_draws, 1, 1), ego_query.repeat(noise_draws, 1, 1))
        draws = [[(poses[i * b:(i + 1) * b], scores[i * b:(i + 1) * b]) for poses, scores in layers]
                 for i in range(noise_draws)]
        out = self._modes(*draws[0][-1]) | {"layer_outputs": draws[0]}
        if noise_draws == 2:
            out["second_draw_layer_outputs"] = draws[1]
        return out
