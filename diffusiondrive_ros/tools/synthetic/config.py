"""DriveConfig: every knob of a synthetic drive, validated up front."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Default stamp of the drive's first message: ns since the Unix epoch (November 2023).
EPOCH_NS = 1_700_000_000 * 10**9


@dataclass(frozen=True)
class DriveConfig:
    """Everything that defines a synthetic drive; equal configs give identical bags."""

    seed: int = 0
    duration_s: float = 20.0
    turn: Literal["left", "right"] = "left"
    lidar_rate_hz: float = 10.0
    camera_rate_hz: float = 10.0
    odom_rate_hz: float = 50.0
    imu_rate_hz: float = 50.0
    image_width: int = 1920
    image_height: int = 1080
    jpeg_quality: int = 85
    lidar_beams: int = 64
    lidar_azimuth_steps: int = 2000
    lidar_noise_std_m: float = 0.02
    storage: Literal["mcap", "sqlite3"] = "mcap"
    start_time_ns: int = EPOCH_NS

    def __post_init__(self) -> None:
        if self.turn not in ("left", "right"):
            raise ValueError(f"turn must be 'left' or 'right', got {self.turn!r}")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {self.storage!r}")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        rates = (self.lidar_rate_hz, self.camera_rate_hz, self.odom_rate_hz, self.imu_rate_hz)
        if min(rates) <= 0:
            raise ValueError("all sensor rates must be positive")
        if min(self.image_width, self.image_height, self.lidar_beams, self.lidar_azimuth_steps) < 2:
            raise ValueError("image size and LiDAR resolution must be at least 2")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be within 1..100")
