"""Pure-PyTorch DiffusionDrive: no ROS imports here."""

from .config import BackboneConfig, DiffusionConfig, DiffusionDriveConfig, TrajectoryNormalization
from .diffusiondrive import DiffusionDrive
from .variants import load_model_config, model_config, model_config_names, register_model_config

__all__ = [
    "BackboneConfig",
    "DiffusionConfig",
    "DiffusionDrive",
    "DiffusionDriveConfig",
    "TrajectoryNormalization",
    "load_model_config",
    "model_config",
    "model_config_names",
    "register_model_config",
]
