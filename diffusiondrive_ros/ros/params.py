"""The node's parameters (names, defaults, descriptions) and how they configure the planner and pipeline.

Shared by the rclpy node and the offline tools, so a params file means the same thing everywhere.
"""
from pathlib import Path
from typing import Any

import yaml

from ..features import CameraRigConfig
from ..geometry import Extrinsic
from ..planner import Planner
from .frame_sync import SyncConfig
from .pipeline import PipelineConfig

NODE_NAME = "diffusiondrive_planner"

# name -> (default, description); the params file config/diffusiondrive.yaml documents the same list.
PARAMETERS = {
    "checkpoint": ("", "our .pt, official NAVSIM .ckpt or plain state_dict; '' = built-in trained compact model; "
                         "'seeded' = seeded random weights (tests only; WARN in /diagnostics)"),
    "anchors": ("", "K-means anchors .npy (20, 8, 2); '' = from the checkpoint"),
    "trusted_checkpoint": (False, "allow a checkpoint that needs full pickle loading (trusted sources only)"),
    "device": ("auto", "auto | cuda | cpu (auto: CUDA with CPU fallback)"),
    "precision": ("fp32", "fp32 | fp16 | bf16 (reduced precision on CUDA only)"),
    "seed": (0, "seed of the built-in weights and of the per-frame diffusion noise"),
    "base_frame": ("base_link", "ego frame of the outputs (REP-103: x forward, y left)"),
    "camera_transport": ("raw", "raw (sensor_msgs/Image) | compressed (sensor_msgs/CompressedImage)"),
    "sync_tolerance_s": (0.1, "max |camera/odometry/imu stamp - cloud stamp| in seconds"),
    "sync_wait_s": (0.05, "how long a cloud waits for the other inputs of its instant before it is planned"),
    "acceleration_source": ("auto", "imu | odometry | auto (IMU when it arrives, else odometry differencing)"),
    "acceleration_window_s": (0.1, "odometry differencing baseline in seconds"),
    "path_prefix_current_pose": (False, "start the Path with the current pose (0, 0, 0)"),
    "use_tf": (True, "look up cloud frame -> base_frame with tf2 when available, else lidar_extrinsic"),
    "lidar_extrinsic.x": (0.0, "LiDAR position in base_frame, m"),
    "lidar_extrinsic.y": (0.0, "LiDAR position in base_frame, m"),
    "lidar_extrinsic.z": (0.0, "LiDAR position in base_frame, m"),
    "lidar_extrinsic.roll": (0.0, "LiDAR orientation in base_frame, rad"),
    "lidar_extrinsic.pitch": (0.0, "LiDAR orientation in base_frame, rad"),
    "lidar_extrinsic.yaw": (0.0, "LiDAR orientation in base_frame, rad"),
    "camera_crop_top": (28, "rows cropped from the top of every camera image "
                            "(at 1920x1080; scaled with the image size)"),
    "camera_crop_bottom": (28, "rows cropped from the bottom of every camera image "
                               "(at 1920x1080; scaled with the image size)"),
    "camera_side_crop": (416, "columns cropped from both sides of the left and right images "
                              "(at 1920x1080; scaled with the image size)"),
    "default_command": (3, "driving command until one arrives: 0 left, 1 straight, 2 right, 3 unknown"),
    "diagnostics_period_s": (1.0, "period of /diagnostics"),
    "stale_timeout_s": (0.5, "an input older than this is stale"),
    "latency_warn_s": (0.25, "model time (p90, features excluded) above this is reported as WARN"),
    "min_planning_rate_hz": (2.0, "planned frames per second (over 5 s) below this are reported as WARN"),
}


def pipeline_config(p: dict) -> PipelineConfig:
    return PipelineConfig(
        base_frame=p["base_frame"],
        camera_transport=p["camera_transport"],
        seed=p["seed"],
        path_prefix_current_pose=p["path_prefix_current_pose"],
        lidar_extrinsic=Extrinsic(*(p[f"lidar_extrinsic.{k}"] for k in ("x", "y", "z", "roll", "pitch", "yaw"))),
        sync=SyncConfig(p["sync_tolerance_s"], p["acceleration_source"], p["acceleration_window_s"],
                        p["default_command"], p["sync_wait_s"]),
    )


def camera_rig(p: dict) -> CameraRigConfig:
    """The camera crop of the parameters (the output size comes from the model), for the planner and the dataset."""
    return CameraRigConfig(crop_top=p["camera_crop_top"], crop_bottom=p["camera_crop_bottom"],
                           side_crop=p["camera_side_crop"])


def planner_from_parameters(p: dict) -> Planner:
    return Planner.from_checkpoint(p["checkpoint"] or None, device=p["device"], precision=p["precision"],
                                   anchors=p["anchors"] or None, seed=p["seed"], trusted=p["trusted_checkpoint"],
                                   camera_config=camera_rig(p))


def load_params_file(path: str | Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the node's section of a ROS params file (nested keys flattened with '.'), then overrides."""
    values = {name: default for name, (default, _) in PARAMETERS.items()}
    if path:
        document = yaml.safe_load(Path(path).read_text()) or {}
        section = next((v for k, v in document.items() if k.strip("/").split("/")[-1] in (NODE_NAME, "**")), None)
        flat: dict[str, Any] = {}

        def flatten(prefix: str, tree: dict[str, Any]) -> None:
            for key, value in tree.items():
                name = f"{prefix}{key}"
                flatten(f"{name}.", value) if isinstance(value, dict) else flat.__setitem__(name, value)

        flatten("", (section or {}).get("ros__parameters", {}))
        unknown = sorted(set(flat) - set(values) - {"use_sim_time"})
        if unknown:
            raise ValueError(f"{path}: unknown parameters {unknown}")
        values.update({k: v for k, v in flat.items() if k in values})
    values.update(overrides or {})
    return values
