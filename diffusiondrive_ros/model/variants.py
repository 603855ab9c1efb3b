"""Named model variants built by one factory (a timm-style registry), and model configs read from YAML/JSON files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from .config import BackboneConfig, DiffusionDriveConfig

_REGISTRY: dict[str, Callable[[], DiffusionDriveConfig]] = {}


def register_model_config(builder: Callable[[], DiffusionDriveConfig]) -> Callable[[], DiffusionDriveConfig]:
    """Decorator registering `builder` under its function name, which its config carries as `variant`."""
    name = builder.__name__
    if name in _REGISTRY:
        raise ValueError(f"model variant {name!r} is already registered")
    _REGISTRY[name] = builder
    return builder


def model_config_names() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_REGISTRY)


def model_config(name: str) -> DiffusionDriveConfig:
    """The config of the registered variant `name`."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"model variant must be one of {model_config_names()}, got {name!r}")
    return _REGISTRY[name]()


def load_model_config(name_or_path: str | Path) -> DiffusionDriveConfig:
    """A registered variant by name, or a YAML/JSON file of fields.

    A file's fields replace those of the variant named by its `variant` key (default `navsim`); nested configs
    (`backbone`, `diffusion`, `normalization`) merge field by field, so a file can hold only what differs.
    """
    if isinstance(name_or_path, str) and name_or_path in _REGISTRY:
        return model_config(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"model config must be a registered variant {model_config_names()} or a YAML/JSON file, got {str(path)!r}"
        )
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        fields = yaml.safe_load(text)
    elif path.suffix.lower() == ".json":
        fields = json.loads(text)
    else:
        raise ValueError(f"model config file {path}: suffix must be .yaml, .yml or .json, got {path.suffix!r}")
    if not isinstance(fields, dict):
        raise ValueError(f"model config file {path}: expected a mapping of fields, got {type(fields).__name__}")
    try:
        return DiffusionDriveConfig.from_dict(fields, base=model_config(fields.get("variant", "navsim")))
    except ValueError as error:
        raise ValueError(f"model config file {path}: {error}") from error


@register_model_config
def navsim() -> DiffusionDriveConfig:
    """The official NAVSIM DiffusionDrive: ResNet-34 branches on a 1024x256 panorama and a 256x256 LiDAR grid.

    Loads the official checkpoint unchanged.
    """
    return DiffusionDriveConfig(variant="navsim")


@register_model_config
def compact() -> DiffusionDriveConfig:
    """A small DiffusionDrive that trains on a laptop CPU: the same head, anchors and cascade decoder as navsim.

    ResNet-18 depths at half width on a 256x64 panorama and a 64x64 LiDAR grid (1 m cells over the same 64 m),
    one-layer fusion GPTs and a 128-wide query decoder.
    """
    return DiffusionDriveConfig(
        variant="compact",
        backbone=BackboneConfig(
            camera_height=64,
            camera_width=256,
            lidar_resolution=64,
            depths=(2, 2, 2, 2),
            widths=(32, 64, 128, 256),
            gpt_layers=1,
            bev_features_channels=64,
            bev_down_sample_factor=2,
        ),
        tf_d_model=128,
        tf_d_ffn=256,
        tf_num_layers=2,
        tf_num_head=4,
    )
