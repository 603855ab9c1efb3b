"""Typed configuration of the DiffusionDrive model; the defaults are the official NAVSIM agent's."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

OUTPUT_STRIDE = 32
"""Downsampling of the ResNet branches from input pixels to the last stage's feature map."""

NUM_STAGES = 4
"""ResNet stages, each followed by a GPT fusion of the camera and LiDAR branches."""


def _fail(owner: object, name: str, allowed: str, value: object) -> NoReturn:
    """Raise the ValueError naming the config field, what it allows and what it got."""
    raise ValueError(f"{type(owner).__name__}.{name} must be {allowed}, got {value!r}")


def _is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(owner: object, name: str, minimum: int = 1, multiple_of: int = 1) -> None:
    """Raise unless the field is an int >= minimum (and a multiple of `multiple_of` when > 1)."""
    value = getattr(owner, name)
    if not _is_int(value) or value < minimum or value % multiple_of:
        allowed = f"an int >= {minimum}" + (f" and a multiple of {multiple_of}" if multiple_of > 1 else "")
        _fail(owner, name, allowed, value)


def _check_float(owner: object, name: str, low: float, high: float = math.inf, low_open: bool = False) -> None:
    """Raise unless the field is a finite number in [low, high) (or (low, high) when low_open)."""
    value = getattr(owner, name)
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < low or (low_open and value == low) or value >= high:
        interval = ("(" if low_open else "[") + f"{low}, {high})"
        _fail(owner, name, f"a finite number in {interval}", value)


def _check_int_tuple(owner: object, name: str) -> None:
    """Coerce a sequence field to a tuple (frozen, hashable) of NUM_STAGES positive ints."""
    value = getattr(owner, name)
    items = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(items) != NUM_STAGES or not all(_is_int(v) and v >= 1 for v in items):
        _fail(owner, name, f"{NUM_STAGES} positive ints (one per ResNet stage)", value)
    object.__setattr__(owner, name, items)


@dataclass(frozen=True)
class BackboneConfig:
    """TransFuser backbone: camera and LiDAR ResNet branches fused by a GPT after every stage, plus a BEV FPN."""

    image_channels: int = 3
    """Channels of the camera input (RGB)."""
    lidar_channels: int = 1
    """Channels of the LiDAR BEV input: one point-count histogram per sweep, the current one first, then each
    earlier sweep (TransFuser's lidar_seq_len; see DiffusionDriveConfig.lidar_sweep_interval_s)."""
    camera_height: int = 256
    """Rows of the stitched camera panorama fed to the network (a multiple of OUTPUT_STRIDE)."""
    camera_width: int = 1024
    """Columns of the stitched camera panorama (a multiple of OUTPUT_STRIDE)."""
    lidar_resolution: int = 256
    """Cells per side of the square LiDAR BEV grid (a multiple of OUTPUT_STRIDE)."""
    depths: tuple[int, ...] = (3, 4, 6, 3)
    """Residual blocks per ResNet stage: (3, 4, 6, 3) is ResNet-34, (2, 2, 2, 2) ResNet-18."""
    widths: tuple[int, ...] = (64, 128, 256, 512)
    """Channels per ResNet stage; the stem has widths[0] channels. Each must be a multiple of gpt_heads."""
    gpt_layers: int = 2
    """Transformer blocks of each stage's fusion GPT."""
    gpt_heads: int = 4
    """Attention heads of the fusion GPTs."""
    gpt_block_exp: int = 4
    """MLP expansion of the fusion GPT blocks."""
    gpt_dropout: float = 0.1
    """Dropout of the fusion GPTs (training only)."""
    bev_features_channels: int = 64
    """Channels of the BEV FPN map used by the semantic head and the trajectory head."""
    bev_down_sample_factor: int = 4
    """The BEV FPN map has lidar_resolution / bev_down_sample_factor cells per side."""
    bev_upsample_factor: int = 2
    """Upsampling of the first FPN step from the last LiDAR stage."""

    def __post_init__(self) -> None:
        for name in ("image_channels", "lidar_channels", "gpt_layers", "gpt_heads", "gpt_block_exp",
                     "bev_features_channels", "bev_down_sample_factor", "bev_upsample_factor"):
            _check_int(self, name)
        for name in ("camera_height", "camera_width", "lidar_resolution"):
            _check_int(self, name, OUTPUT_STRIDE, OUTPUT_STRIDE)
        _check_int_tuple(self, "depths")
        _check_int_tuple(self, "widths")
        if any(width % self.gpt_heads for width in self.widths):
            _fail(self, "widths", f"multiples of gpt_heads ({self.gpt_heads})", self.widths)
        _check_float(self, "gpt_dropout", 0.0, 1.0)
        if self.lidar_resolution % self.bev_down_sample_factor:
            _fail(self, "bev_down_sample_factor", f"a divisor of lidar_resolution ({self.lidar_resolution})",
                  self.bev_down_sample_factor)

    @property
    def img_vert_anchors(self) -> int:
        """Rows of the camera token grid: every stage is pooled to the size of the last stage's map."""
        return self.camera_height // OUTPUT_STRIDE

    @property
    def img_horz_anchors(self) -> int:
        """Columns of the camera token grid."""
        return self.camera_width // OUTPUT_STRIDE

    @property
    def lidar_vert_anchors(self) -> int:
        """Rows of the LiDAR token grid (also the size of the fused LiDAR map the queries attend to)."""
        return self.lidar_resolution // OUTPUT_STRIDE

    @property
    def lidar_horz_anchors(self) -> int:
        """Columns of the LiDAR token grid."""
        return self.lidar_resolution // OUTPUT_STRIDE

    @property
    def bev_feature_size(self) -> int:
        """Cells per side of the BEV FPN map."""
        return self.lidar_resolution // self.bev_down_sample_factor


@dataclass(frozen=True)
class DiffusionConfig:
    """Truncated diffusion: anchors noised to `truncation_step`, denoised in `inference_steps` DDIM steps."""

    num_train_timesteps: int = 1000
    """Length of the full noise schedule."""
    beta_start: float = 1e-4
    """First beta of the scaled-linear schedule."""
    beta_end: float = 0.02
    """Last beta of the scaled-linear schedule."""
    truncation_step: int = 8
    """Timestep the anchors are noised to at inference."""
    inference_steps: int = 2
    """DDIM steps at inference."""
    inference_step_span: int = 20
    """The inference steps visit round(arange(inference_steps) * span / inference_steps), largest first."""
    train_max_timestep: int = 50
    """Training noises the anchors to a timestep drawn from [0, train_max_timestep)."""
    noise_scale: float = 1.0
    """Factor on the anchor noise, in training and at inference: 1 is the paper's; below 1 keeps modes nearer their
    anchors."""

    def __post_init__(self) -> None:
        _check_int(self, "num_train_timesteps")
        _check_float(self, "beta_start", 0.0, 1.0, low_open=True)
        _check_float(self, "beta_end", self.beta_start, 1.0, low_open=True)
        _check_int(self, "inference_steps")
        for name in ("truncation_step", "inference_step_span"):
            _check_int(self, name, minimum=0)
            if getattr(self, name) >= self.num_train_timesteps:
                _fail(self, name, f"< num_train_timesteps ({self.num_train_timesteps})", getattr(self, name))
        _check_int(self, "train_max_timestep")
        _check_float(self, "noise_scale", 0.0)
        if self.train_max_timestep > self.num_train_timesteps:
            _fail(self, "train_max_timestep", f"<= num_train_timesteps ({self.num_train_timesteps})",
                  self.train_max_timestep)


@dataclass(frozen=True)
class TrajectoryNormalization:
    """Affine map of trajectory (x, y) in metres onto [-1, 1], where the head adds noise and clamps.

    x in [-x_offset, x_range - x_offset] maps to [-1, 1], y likewise. The defaults are the official ones
    (x in [-1.2, 55.7] m, y in [-20, 26] m); `anchors.fit_normalization` fits them to another dataset.
    """

    x_offset: float = 1.2
    """Minus the smallest x (metres) that maps inside [-1, 1]."""
    x_range: float = 56.9
    """Extent (metres) of x mapped onto [-1, 1]."""
    y_offset: float = 20.0
    """Minus the smallest y (metres) that maps inside [-1, 1]."""
    y_range: float = 46.0
    """Extent (metres) of y mapped onto [-1, 1]."""

    def __post_init__(self) -> None:
        for name in ("x_offset", "y_offset"):
            _check_float(self, name, -math.inf)
        for name in ("x_range", "y_range"):
            _check_float(self, name, 0.0, low_open=True)


@dataclass(frozen=True)
class DiffusionDriveConfig:
    """Whole-model configuration; the defaults are the official NAVSIM agent (the `navsim` variant)."""

    variant: str = "navsim"
    """Registered variant these values start from (see `variants.py`); a label, the other fields decide the net."""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    """Camera/LiDAR encoders and their fusion."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Noise schedule of the trajectory head."""
    normalization: TrajectoryNormalization = field(default_factory=TrajectoryNormalization)
    """Metres <-> [-1, 1] map of the trajectory head; fitted to the training data's futures."""
    num_modes: int = 20
    """Trajectory anchors = candidate modes."""
    num_poses: int = 8
    """Future poses per mode."""
    status_dims: int = 4 + 2 + 2
    """Ego status features: one-hot command, velocity, acceleration."""
    tf_d_model: int = 256
    """Width of the queries, the BEV tokens and the trajectory head."""
    tf_d_ffn: int = 1024
    """Feed-forward width of the query decoder, the agent head and the trajectory decoder."""
    tf_num_layers: int = 3
    """Layers of the query transformer decoder."""
    tf_num_head: int = 8
    """Attention heads of the query decoder and of the trajectory decoder."""
    tf_dropout: float = 0.0
    """Dropout of the query decoder and of the trajectory decoder's attention."""
    num_bounding_boxes: int = 30
    """Agent queries (boxes) of the auxiliary agent head."""
    num_bev_classes: int = 7
    """Classes of the auxiliary BEV semantic map."""
    decoder_layers: int = 2
    """Cascade stages of the trajectory decoder."""
    lidar_max_x: float = 32.0
    """Half the extent (metres) of the LiDAR BEV grid along x; the grid is centred on the ego."""
    lidar_max_y: float = 32.0
    """Half the extent (metres) along y; equal to lidar_max_x (the grid has square cells)."""
    lidar_sweep_interval_s: float = 0.5
    """With several LiDAR channels, channel k holds the sweep k x this earlier, moved into the current ego frame by
    odometry, so that standing and moving things look different; unused with one channel."""
    trajectory_cls_weight: float = 10.0
    """Weight of the focal mode-classification loss."""
    trajectory_reg_weight: float = 8.0
    """Weight of the L1 pose regression loss."""
    trajectory_consistency_weight: float = 0.0
    """Weight of `loss.noise_consistency_loss` (training decodes two noise draws); 0: the paper's loss, one draw."""
    trajectory_anchoring_weight: float = 0.0
    """Weight of `loss.mode_anchoring_loss` (the modes other than the positive one stay near their anchors); 0: the
    paper's loss."""

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or not self.variant:
            _fail(self, "variant", "a non-empty string", self.variant)
        for name, kind in (("backbone", BackboneConfig), ("diffusion", DiffusionConfig),
                           ("normalization", TrajectoryNormalization)):
            if not isinstance(getattr(self, name), kind):
                _fail(self, name, f"a {kind.__name__}", getattr(self, name))
        for name in ("num_modes", "num_poses", "status_dims", "tf_d_ffn", "tf_num_layers", "tf_num_head",
                     "num_bounding_boxes", "num_bev_classes", "decoder_layers"):
            _check_int(self, name)
        # Even: the timestep embedding is [sin, cos] of d / 2 frequencies; whole heads: attention splits d.
        _check_int(self, "tf_d_model", minimum=4, multiple_of=2)
        if self.tf_d_model % self.tf_num_head:
            _fail(self, "tf_d_model", f"a multiple of tf_num_head ({self.tf_num_head})", self.tf_d_model)
        _check_float(self, "tf_dropout", 0.0, 1.0)
        _check_float(self, "lidar_max_x", 0.0, low_open=True)
        _check_float(self, "lidar_sweep_interval_s", 0.0, low_open=True)
        if self.lidar_max_y != self.lidar_max_x:
            _fail(self, "lidar_max_y", f"equal to lidar_max_x ({self.lidar_max_x}, square cells)", self.lidar_max_y)
        for name in ("trajectory_cls_weight", "trajectory_reg_weight", "trajectory_consistency_weight",
                     "trajectory_anchoring_weight"):
            _check_float(self, name, 0.0)

    @property
    def bev_semantic_height(self) -> int:
        """Rows of the BEV semantic map: the front half of the LiDAR grid, as in NAVSIM."""
        return self.backbone.lidar_resolution // 2

    @property
    def bev_semantic_width(self) -> int:
        """Columns of the BEV semantic map: the full LiDAR grid width."""
        return self.backbone.lidar_resolution

    @property
    def lidar_history_s(self) -> tuple[float, ...]:
        """How long before the current sweep each earlier LiDAR channel's sweep was taken (empty for one channel)."""
        return tuple(k * self.lidar_sweep_interval_s for k in range(1, self.backbone.lidar_channels))

    @property
    def lidar_pixels_per_meter(self) -> float:
        """LiDAR BEV cells per metre."""
        return self.backbone.lidar_resolution / (2 * self.lidar_max_x)

    def with_noise_scale(self, noise_scale: float | None) -> DiffusionDriveConfig:
        """This config with `noise_scale` as the diffusion's noise scale (validated); None keeps its own."""
        if noise_scale is None:
            return self
        return DiffusionDriveConfig.from_dict({"diffusion": {"noise_scale": noise_scale}}, base=self)

    def with_lidar_sweeps(self, sweeps: int | None) -> DiffusionDriveConfig:
        """This config with `sweeps` LiDAR input channels (validated); None keeps its own."""
        if sweeps is None:
            return self
        return DiffusionDriveConfig.from_dict({"backbone": {"lidar_channels": sweeps}}, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Primitive types only (dicts, lists, str, numbers): for checkpoints, YAML and JSON."""
        return _primitive(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any], base: DiffusionDriveConfig | None = None) -> DiffusionDriveConfig:
        """`base` (default: the navsim config) with the given fields replaced; nested configs merge field-wise."""
        return _replace(cls() if base is None else base, fields)


def _primitive(value: Any) -> Any:
    """Tuples to lists, recursively, so the dict dumps as YAML and JSON."""
    if isinstance(value, dict):
        return {key: _primitive(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_primitive(item) for item in value]
    return value


def _replace(config: Any, fields: Mapping[str, Any]) -> Any:
    """`dataclasses.replace` that recurses into nested configs and names unknown fields."""
    if not isinstance(fields, Mapping):
        raise ValueError(f"{type(config).__name__}: expected a mapping of fields, got {type(fields).__name__}")
    known = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for name, value in fields.items():
        if name not in known:
            raise ValueError(f"{type(config).__name__} has no field {name!r}; fields: {', '.join(known)}")
        current = getattr(config, name)
        changes[name] = _replace(current, value) if dataclasses.is_dataclass(current) else value
    return dataclasses.replace(config, **changes)
