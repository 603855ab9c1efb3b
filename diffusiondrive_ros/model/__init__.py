"""Pure-PyTorch DiffusionDrive: no ROS imports here."""
from .config import BackboneConfig, DiffusionConfig, DiffusionDriveConfig
from .diffusiondrive import DiffusionDrive

__all__ = ["BackboneConfig", "DiffusionConfig", "DiffusionDriveConfig", "DiffusionDrive"]
