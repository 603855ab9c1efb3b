"""DriveConfig and RandomScenarioConfig: every knob of a synthetic drive, validated up front."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Literal

# Default stamp of the drive's first message: ns since the Unix epoch (November 2023).
EPOCH_NS = 1_700_000_000 * 10**9


@dataclass(frozen=True)
class RandomScenarioConfig:
    """Ranges and odds from which ``scenario='random'`` draws a drive; (lo, hi) ranges are drawn uniformly."""

    cruise_speed_mps: tuple[float, float] = (5.0, 15.0)
    """Ego cruise speed, drawn per road."""
    lane_width_m: tuple[float, float] = (2.9, 4.0)
    parking_width_m: tuple[float, float] = (1.0, 2.5)
    """Strip between lane and kerb; cars park there when it is at least 1.8 m wide."""
    sidewalk_width_m: tuple[float, float] = (2.5, 5.0)
    accel_mps2: tuple[float, float] = (0.8, 2.0)
    """Ego peak acceleration, drawn per drive."""
    decel_mps2: tuple[float, float] = (1.5, 3.5)
    """Ego peak braking, drawn per drive."""
    lateral_accel_mps2: tuple[float, float] = (1.5, 2.5)
    """Lateral acceleration that sets the ego's speed through curves and turns."""
    curve_probability: float = 0.6
    """Odds that a road between intersections bends (a 90 degree curve or an S-bend)."""
    four_way_probability: float = 0.5
    """Odds that an intersection is a four-way one rather than a T."""
    stop_probability: float = 0.45
    """Odds, per road, that a car or pedestrian stands in the ego lane (or the lead vehicle stops)."""
    stays_probability: float = 0.25
    """Odds that what the ego stopped for never moves on, so the ego stays stopped."""
    lead_probability: float = 0.3
    """Odds that the ego follows a lead vehicle from the start."""
    slow_zone_probability: float = 0.3
    """Odds, per road, of braking to a lower speed for a stretch and speeding up again."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_probability"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} must be within [0, 1], got {value!r}")
            elif len(value) != 2 or not 0 < value[0] <= value[1]:
                raise ValueError(f"{f.name} must be a (lo, hi) range with 0 < lo <= hi, got {value!r}")
        if self.cruise_speed_mps[0] < 1.0:
            raise ValueError(f"cruise_speed_mps must start at 1 m/s or more, got {self.cruise_speed_mps!r}")
        if self.lane_width_m[0] < 2.5:
            raise ValueError(f"lane_width_m must start at 2.5 m or more, got {self.lane_width_m!r}")
        if self.parking_width_m[0] < 1.0:
            raise ValueError(f"parking_width_m must start at 1 m or more (room for right turns), "
                             f"got {self.parking_width_m!r}")


@dataclass(frozen=True)
class DriveConfig:
    """Everything that defines a synthetic drive; equal configs give identical bags."""

    seed: int = 0
    duration_s: float = 20.0
    turn: Literal["left", "right"] = "left"
    """The demo drive's turn; random drives draw theirs."""
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
    scenario: Literal["demo", "random"] = "demo"
    """'demo': the fixed drive (straight, ``turn`` at a four-way intersection, stop); 'random': drawn from ``seed``."""
    random: RandomScenarioConfig = RandomScenarioConfig()
    """Ranges and odds of the random scenario."""

    def __post_init__(self) -> None:
        if self.turn not in ("left", "right"):
            raise ValueError(f"turn must be 'left' or 'right', got {self.turn!r}")
        if self.scenario not in ("demo", "random"):
            raise ValueError(f"scenario must be 'demo' or 'random', got {self.scenario!r}")
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


def parse_camera_size(text: str) -> tuple[int, int]:
    """(width, height) from 'WxH', e.g. '1920x1080'; both at least 2 pixels."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or min(int(match[1]), int(match[2])) < 2:
        raise ValueError(f"camera size must look like WIDTHxHEIGHT with both >= 2, e.g. 1920x1080; got {text!r}")
    return int(match[1]), int(match[2])
