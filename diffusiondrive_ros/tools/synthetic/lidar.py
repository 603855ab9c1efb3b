"""Spinning LiDAR: vectorised ray casting against the ground plane and oriented boxes."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .geometry import rot_z, wrap
from .layout import RoadLayout
from .network import RoadNetwork
from .world import BoxSet

# LiDAR origin in base_link (m); its axes are those of base_link.
LIDAR_MOUNT = (1.0, 0.0, 1.8)


@dataclass(frozen=True, eq=False)
class LidarModel:
    """Spinning LiDAR: ``beams`` rows from ``min_el`` to ``max_el`` times ``azimuth_steps`` columns."""

    base_from_lidar: np.ndarray
    beams: int = 64
    azimuth_steps: int = 2000
    min_elevation_deg: float = -25.0
    max_elevation_deg: float = 15.0
    max_range: float = 80.0
    noise_std: float = 0.02
    _dirs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        el, az = self.elevations, self.azimuths
        dirs = np.stack(np.broadcast_arrays(np.cos(el)[:, None] * np.cos(az)[None],
                                            np.cos(el)[:, None] * np.sin(az)[None],
                                            np.sin(el)[:, None]), axis=-1)
        object.__setattr__(self, "_dirs", dirs.astype(np.float32))

    @property
    def elevations(self) -> np.ndarray:
        """Beam elevation angles (rad), ascending."""
        return np.deg2rad(np.linspace(self.min_elevation_deg, self.max_elevation_deg, self.beams))

    @property
    def azimuths(self) -> np.ndarray:
        """Column azimuths (rad), counter-clockwise from +x."""
        return np.arange(self.azimuth_steps) * (2 * np.pi / self.azimuth_steps)

    def sweep(self, map_from_base: np.ndarray, boxes: BoxSet, layout: RoadLayout | RoadNetwork,
              rng: np.random.Generator) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity in the LiDAR frame: nearest hit per ray, with noise."""
        map_from_lidar = map_from_base @ self.base_from_lidar
        origin = map_from_lidar[:3, 3]
        yaw = math.atan2(map_from_lidar[1, 0], map_from_lidar[0, 0])
        ranges = np.broadcast_to(self._ground_ranges(origin[2])[:, None],
                                 (self.beams, self.azimuth_steps)).copy()
        owner = np.full(ranges.shape, -1, dtype=np.int32)
        for i, rows, cols in self._candidate_blocks(boxes, origin, yaw):
            self._cast_box(ranges, owner, i, rows, cols, boxes, origin, yaw)
        hit = ranges <= self.max_range
        r = ranges[hit] + rng.normal(0.0, self.noise_std, int(hit.sum())).astype(np.float32)
        points = self._dirs[hit] * r[:, None]
        who = owner[hit]
        world = points.astype(float) @ map_from_lidar[:3, :3].T + origin
        intensity = np.where(who >= 0, boxes.intensity[np.maximum(who, 0)],
                             layout.ground_intensity(world[:, 0], world[:, 1]))
        return np.column_stack([points, intensity.astype(np.float32)]).astype(np.float32)

    def _ground_ranges(self, height: float) -> np.ndarray:
        """Per-beam range to the flat ground (inf for beams that never reach it)."""
        sin_el = np.sin(self.elevations)
        with np.errstate(divide="ignore"):
            r = np.where(sin_el < 0, height / -sin_el, np.inf)
        return r.astype(np.float32)

    def _candidate_blocks(self, boxes: BoxSet, origin: np.ndarray,
                          yaw: float) -> Iterator[tuple[int, slice, np.ndarray]]:
        """Yield (box index, row slice, column indices) of rays that may hit each box.

        Azimuth span from the footprint corners is exact for a convex footprint; the elevation
        span uses the nearest/farthest footprint distance, which is conservative.
        """
        if not len(boxes):
            return
        rot = rot_z(-yaw)[:2, :2]
        corners = (boxes.footprints() - origin[:2]) @ rot.T
        center = (boxes.center[:, :2] - origin[:2]) @ rot.T
        ang_c = np.arctan2(center[:, 1], center[:, 0])
        diff = wrap(np.arctan2(corners[..., 1], corners[..., 0]) - ang_c[:, None])
        lo, hi = ang_c + diff.min(axis=1), ang_c + diff.max(axis=1)
        c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
        rel = origin[:2] - boxes.center[:, :2]
        local = np.column_stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]])
        d_min = np.hypot(*np.maximum(np.abs(local) - boxes.size[:, :2] / 2, 0.0).T)
        d_max = np.linalg.norm(corners, axis=-1).max(axis=1)
        z0 = boxes.center[:, 2] - boxes.size[:, 2] / 2 - origin[2]
        z1 = z0 + boxes.size[:, 2]
        el_lo = np.where(z0 < 0, np.arctan2(z0, d_min), np.arctan2(z0, d_max))
        el_hi = np.where(z1 > 0, np.arctan2(z1, d_min), np.arctan2(z1, d_max))
        elevations, step = self.elevations, 2 * np.pi / self.azimuth_steps
        all_cols = np.arange(self.azimuth_steps)
        for i in np.flatnonzero(d_min < self.max_range):
            r0 = int(np.searchsorted(elevations, el_lo[i], side="left"))
            r1 = int(np.searchsorted(elevations, el_hi[i], side="right"))
            if r1 <= r0:
                continue
            if d_min[i] == 0.0:
                cols = all_cols
            else:
                cols = np.arange(math.ceil(lo[i] / step), math.floor(hi[i] / step) + 1) % self.azimuth_steps
            if len(cols):
                yield int(i), slice(r0, r1), cols

    def _cast_box(self, ranges: np.ndarray, owner: np.ndarray, i: int, rows: slice, cols: np.ndarray,
                  boxes: BoxSet, origin: np.ndarray, yaw: float) -> None:
        """Slab-test one box against a block of rays and keep the nearer hits."""
        rel = origin - boxes.center[i]
        c, s = math.cos(boxes.yaw[i]), math.sin(boxes.yaw[i])
        o = (c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2])
        half = boxes.size[i] / 2
        el = self.elevations[rows]
        az = self.azimuths[cols] + (yaw - boxes.yaw[i])
        ce = np.cos(el)[:, None]
        d = (ce * np.cos(az)[None], ce * np.sin(az)[None], np.sin(el)[:, None])
        t_near, t_far = None, None
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis in range(3):
                inv = 1.0 / d[axis]
                t0, t1 = (-half[axis] - o[axis]) * inv, (half[axis] - o[axis]) * inv
                lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
                t_near = lo if t_near is None else np.maximum(t_near, lo)
                t_far = hi if t_far is None else np.minimum(t_far, hi)
            t = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
        block = ranges[rows, cols]
        closer = t < block
        if closer.any():
            ranges[rows, cols] = np.where(closer, t, block)
            owner[rows, cols] = np.where(closer, i, owner[rows, cols])
