"""Names a bag consumer relies on: frame ids, camera names, topics, message types, command codes."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

MAP_FRAME = "map"
BASE_FRAME = "base_link"
LIDAR_FRAME = "lidar_top"
CAMERA_NAMES = ("left", "front", "right")

TOPIC_CAMERA_IMAGE: Mapping[str, str] = MappingProxyType(
    {name: f"/camera/{name}/image_raw/compressed" for name in CAMERA_NAMES}
)
TOPIC_CAMERA_INFO: Mapping[str, str] = MappingProxyType(
    {name: f"/camera/{name}/camera_info" for name in CAMERA_NAMES}
)
TOPIC_LIDAR = "/lidar/points"
TOPIC_ODOMETRY = "/odometry"
TOPIC_IMU = "/imu"
TOPIC_COMMAND = "/command"
TOPIC_TF_STATIC = "/tf_static"

COMMAND_LEFT, COMMAND_STRAIGHT, COMMAND_RIGHT, COMMAND_UNKNOWN = 0, 1, 2, 3

TOPIC_TYPES: Mapping[str, str] = MappingProxyType(
    {
        TOPIC_TF_STATIC: "tf2_msgs/msg/TFMessage",
        TOPIC_COMMAND: "std_msgs/msg/UInt8",
        TOPIC_ODOMETRY: "nav_msgs/msg/Odometry",
        TOPIC_IMU: "sensor_msgs/msg/Imu",
        TOPIC_LIDAR: "sensor_msgs/msg/PointCloud2",
        **{TOPIC_CAMERA_INFO[n]: "sensor_msgs/msg/CameraInfo" for n in CAMERA_NAMES},
        **{TOPIC_CAMERA_IMAGE[n]: "sensor_msgs/msg/CompressedImage" for n in CAMERA_NAMES},
    }
)


def camera_frame(name: str) -> str:
    """REP-103 body frame of camera ``name`` (x forward)."""
    return f"camera_{name}"


def optical_frame(name: str) -> str:
    """Optical frame of camera ``name`` (z forward, x right, y down); images use it."""
    return f"camera_{name}_optical"
