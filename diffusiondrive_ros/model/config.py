"""Typed configuration of the DiffusionDrive (NAVSIM) model, with the paper's defaults."""
from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneConfig:
    """TransFuser backbone: two ResNet-34 branches fused by a GPT after every stage."""

    image_channels: int = 3
    lidar_channels: int = 1
    camera_height: int = 256
    camera_width: int = 1024
    lidar_resolution: int = 256
    img_vert_anchors: int = 256 // 32
    img_horz_anchors: int = 1024 // 32
    lidar_vert_anchors: int = 256 // 32
    lidar_horz_anchors: int = 256 // 32
    gpt_layers: int = 2
    gpt_heads: int = 4
    gpt_block_exp: int = 4
    gpt_dropout: float = 0.1
    bev_features_channels: int = 64
    bev_down_sample_factor: int = 4
    bev_upsample_factor: int = 2


@dataclass(frozen=True)
class DiffusionConfig:
    """Truncated diffusion: anchors noised to `truncation_step`, denoised in `inference_steps` DDIM steps."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    truncation_step: int = 8
    inference_steps: int = 2
    inference_step_span: int = 20
    train_max_timestep: int = 50


@dataclass(frozen=True)
class DiffusionDriveConfig:
    """Whole-model configuration (NAVSIM agent defaults of the official code)."""

    backbone: BackboneConfig = BackboneConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    num_modes: int = 20
    num_poses: int = 8
    pose_interval_s: float = 0.5
    status_dims: int = 4 + 2 + 2
    tf_d_model: int = 256
    tf_d_ffn: int = 1024
    tf_num_layers: int = 3
    tf_num_head: int = 8
    tf_dropout: float = 0.0
    num_bounding_boxes: int = 30
    num_bev_classes: int = 7
    bev_semantic_height: int = 128
    bev_semantic_width: int = 256
    decoder_layers: int = 2
    lidar_max_x: float = 32.0
    lidar_max_y: float = 32.0
    trajectory_cls_weight: float = 10.0
    trajectory_reg_weight: float = 8.0
