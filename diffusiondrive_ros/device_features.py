"""The model inputs built with torch on the planner's device: the LiDAR splatting and the camera crop and resize run
on the GPU, so that only the raw images and points cross the bus.

The same recipe as `features` (NAVSIM's feature builder): the LiDAR histogram is equal to it exactly (bins from the
same edges in float64); the panorama is resized bilinearly in floating point where OpenCV uses 11-bit fixed point,
so a pixel may differ by one grey level (1/255) from `camera_feature`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .features import CameraRigConfig, LidarBevConfig, camera_crops, check_points, lidar_sweeps, status_feature


def _bin_index(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Cell of each value in [edges[0], edges[-1]] as `np.histogramdd` assigns it (see `features._bin_index`)."""
    cells = edges.numel() - 1
    index = ((values - edges[0]) * (cells / (edges[-1] - edges[0]))).long().clamp_(0, cells - 1)
    index -= (values < edges[index]).long()
    index += (values >= edges[index + 1]).long()
    return index.clamp_(max=cells - 1)


class DeviceFeatureBuilder:
    """`build_features` on `device`: returns unbatched float32 tensors there (camera (3, H, W), LiDAR
    (lidar_channels, R, R), status (8,))."""

    def __init__(self, camera_config: CameraRigConfig, lidar_config: LidarBevConfig, device: torch.device,
                 lidar_channels: int = 1):
        self.camera_config, self.lidar_config, self.device = camera_config, lidar_config, device
        self.lidar_channels = lidar_channels
        self._x_edges = torch.from_numpy(lidar_config.x_edges).to(device)
        self._y_edges = torch.from_numpy(lidar_config.y_edges).to(device)
        cap = lidar_config.hist_max_per_pixel
        self._levels = torch.from_numpy((np.arange(cap + 1) / cap).astype(np.float32)).to(device)

    def camera(self, left: np.ndarray, front: np.ndarray, right: np.ndarray) -> torch.Tensor:
        """The stitched, resized panorama in [0, 1]: crops uploaded as uint8, resized on the device."""
        config = self.camera_config
        crops = [torch.from_numpy(crop).to(self.device, non_blocking=True)
                 for crop in camera_crops(left, front, right, config)]
        stitched = torch.cat(crops, dim=1).permute(2, 0, 1).unsqueeze(0).float()
        resized = F.interpolate(stitched, size=(config.output_height, config.output_width), mode="bilinear",
                                align_corners=False)
        return resized[0].round_().clamp_(0, 255).div_(255)

    def lidar(self, points: np.ndarray) -> torch.Tensor:
        """The BEV count histogram of `lidar_feature`, splatted on the device."""
        check_points(points)
        config = self.lidar_config
        xyz = torch.from_numpy(np.ascontiguousarray(points[:, :3])).to(self.device, non_blocking=True)
        z = xyz[:, 2]  # heights compared in the points' own dtype, as NAVSIM does; x and y against float64 edges
        x, y = xyz[:, 0].double(), xyz[:, 1].double()
        x_edges, y_edges = self._x_edges, self._y_edges
        keep = (z < float(config.max_height)) & (z > float(config.split_height))
        keep &= (x >= x_edges[0]) & (x <= x_edges[-1]) & (y >= y_edges[0]) & (y <= y_edges[-1])
        nx, ny = x_edges.numel() - 1, y_edges.numel() - 1
        flat = _bin_index(x[keep], x_edges) * ny + _bin_index(y[keep], y_edges)
        counts = torch.bincount(flat, minlength=nx * ny).clamp_(max=config.hist_max_per_pixel)
        return self._levels[counts].view(1, nx, ny)

    def build(self, cameras: Sequence[np.ndarray], points: np.ndarray, velocity: Sequence[float],
              acceleration: Sequence[float], command: int,
              past_points: Sequence[np.ndarray] = ()) -> dict[str, torch.Tensor]:
        """All three model inputs on the device, checked as `build_features` checks them."""
        if len(cameras) != 3:
            raise ValueError(f"cameras: expected (left, front, right), got {len(cameras)} images")
        sweeps = lidar_sweeps(points, past_points, self.lidar_channels)
        status = status_feature(command, velocity, acceleration)
        return {
            "camera_feature": self.camera(*cameras),
            "lidar_feature": torch.cat([self.lidar(sweep) for sweep in sweeps]),
            "status_feature": torch.from_numpy(status).to(self.device),
        }
