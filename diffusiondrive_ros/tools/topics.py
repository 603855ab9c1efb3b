"""Default topic names of the bags the tools read and write: the synthetic drive's sensors (also the launch
file's remap defaults) and the planner's outputs.
"""
from .synthetic.interface import (
    TOPIC_CAMERA_IMAGE,
    TOPIC_CAMERA_INFO,
    TOPIC_COMMAND,
    TOPIC_IMU,
    TOPIC_LIDAR,
    TOPIC_ODOMETRY,
    TOPIC_TF_STATIC,
)

TOPIC_PATH = "/diffusiondrive/path"
TOPIC_CANDIDATES = "/diffusiondrive/candidates"
TOPIC_DIAGNOSTICS = "/diagnostics"

__all__ = ["TOPIC_CAMERA_IMAGE", "TOPIC_CAMERA_INFO", "TOPIC_COMMAND", "TOPIC_IMU", "TOPIC_LIDAR", "TOPIC_ODOMETRY",
           "TOPIC_TF_STATIC", "TOPIC_PATH", "TOPIC_CANDIDATES", "TOPIC_DIAGNOSTICS"]
