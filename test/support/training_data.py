"""Small training datasets and a tiny model config for the training tests (seconds on a laptop CPU)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from diffusiondrive_ros.training.dataset import DatasetSpec, ShardInfo, write_index, write_shard

TINY_MODEL_YAML = """\
variant: compact
backbone: {camera_height: 32, camera_width: 64, lidar_resolution: 32, depths: [1, 1, 1, 1], widths: [8, 8, 16, 16],
           bev_features_channels: 8, bev_down_sample_factor: 2}
num_modes: 4
tf_d_model: 16
tf_d_ffn: 32
tf_num_layers: 1
tf_num_head: 2
num_bounding_boxes: 2
"""
"""A compact-derived model of ~70k parameters on a 64x32 panorama and a 32x32 LiDAR grid, with 4 modes."""


def write_tiny_model(folder: Path) -> Path:
    """TINY_MODEL_YAML as a file `--model` takes."""
    path = Path(folder) / "tiny.yaml"
    path.write_text(TINY_MODEL_YAML)
    return path


def arc_futures(rng: np.random.Generator, frames: int, poses: int = 8, interval_s: float = 0.5) -> np.ndarray:
    """(frames, poses, 3) x, y, heading of constant-speed, constant-yaw-rate drives (0-12 m/s, +-0.2 rad/s)."""
    t = interval_s * np.arange(1, poses + 1)[None, :]
    speed = rng.uniform(0.0, 12.0, (frames, 1))
    yaw_rate = rng.uniform(-0.2, 0.2, (frames, 1))
    heading = yaw_rate * t
    safe = np.where(np.abs(yaw_rate) < 1e-6, 1e-6, yaw_rate)
    x, y = speed / safe * np.sin(heading), speed / safe * (1 - np.cos(heading))
    return np.stack([x, y, heading], axis=-1).astype(np.float32)


def make_dataset(root: Path, frames: int, camera_height: int = 32, camera_width: int = 64,
                 lidar_resolution: int = 32, seed: int = 0, lidar_channels: int = 1) -> Path:
    """A one-shard dataset folder of random images and LiDAR counts (`lidar_channels` sweeps) with plausible
    statuses and arc futures."""
    rng = np.random.default_rng(seed)
    spec = DatasetSpec(camera_height=camera_height, camera_width=camera_width, lidar_resolution=lidar_resolution,
                       lidar_cap=5, lidar_channels=lidar_channels)
    futures = arc_futures(rng, frames)
    command = rng.integers(0, 4, frames).astype(np.uint8)
    status = np.zeros((frames, 8), np.float32)
    status[np.arange(frames), command] = 1.0
    status[:, 4] = futures[:, 0, 0] / 0.5
    status[:, 6:] = rng.normal(0.0, 0.5, (frames, 2))
    arrays = {
        "camera": rng.integers(0, 256, (frames, 3, camera_height, camera_width), dtype=np.uint8),
        "lidar": rng.integers(0, spec.lidar_cap + 1, (frames, lidar_channels, lidar_resolution, lidar_resolution),
                              dtype=np.uint8),
        "status": status, "future": futures, "command": command,
        "stamp_ns": np.arange(frames, dtype=np.int64) * 100_000_000,
    }
    write_shard(root, "drive", arrays)
    write_index(root, spec, [ShardInfo(name="drive", source="synthetic", fingerprint="0" * 16, frames=frames,
                                       skipped={}, command_source="recorded")])
    return Path(root)
