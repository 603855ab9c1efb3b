"""Road layout: a main road crossed by a second one, their paint and the ground's reflectivity."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RoadLayout:
    """Main road along map x (axis y=0) crossed at ``center_x`` by a road along map y."""

    center_x: float
    lane_width: float = 3.5
    parking_width: float = 2.0
    sidewalk_width: float = 4.5
    behind: float = 120.0
    ahead: float = 120.0
    cross_half_length: float = 150.0
    line_width: float = 0.15
    dash_length: float = 3.0
    dash_period: float = 9.0
    dash_offset: float = 1.0

    @property
    def half_width(self) -> float:
        """Kerb offset from a road axis (lane plus parking strip)."""
        return self.lane_width + self.parking_width

    @property
    def building_line(self) -> float:
        """Offset of building fronts from a road axis."""
        return self.half_width + self.sidewalk_width

    def extent(self, road: str) -> tuple[float, float]:
        """Along-road range of ``road`` ('main' or 'cross') relative to the intersection."""
        if road == "main":
            return (-self.center_x - self.behind, self.ahead)
        return (-self.cross_half_length, self.cross_half_length)

    def to_map(self, road: str, along: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Road-local (along, across) to map (x, y); cross road 'across' grows toward +x."""
        if road == "main":
            return along + self.center_x, across
        return across + self.center_x, along

    def rect(self, road: str, along: tuple[float, float], across: tuple[float, float], z: float) -> np.ndarray:
        """(4, 3) map corners of a road-aligned rectangle at height ``z``."""
        a = np.array([along[0], along[1], along[1], along[0]])
        c = np.array([across[0], across[0], across[1], across[1]])
        x, y = self.to_map(road, a, c)
        return np.column_stack([x, y, np.full(4, z)])

    def surface_quads(self) -> list[np.ndarray]:
        """Asphalt rectangles of both roads."""
        return [self.rect(r, self.extent(r), (-self.half_width, self.half_width), 0.0) for r in ("main", "cross")]

    def marking_quads(self) -> list[np.ndarray]:
        """Dashed centre lines and solid lane/parking lines, outside the intersection box."""
        quads, w = [], self.line_width / 2
        for road in ("main", "cross"):
            for side, limit in ((-1, -self.extent(road)[0]), (1, self.extent(road)[1])):
                start = self.half_width + self.dash_offset
                for d0 in np.arange(start, limit - self.dash_length, self.dash_period):
                    along = sorted((side * d0, side * (d0 + self.dash_length)))
                    quads.append(self.rect(road, tuple(along), (-w, w), 0.01))
                for line in (-self.lane_width, self.lane_width):
                    along = sorted((side * self.half_width, side * limit))
                    quads.append(self.rect(road, tuple(along), (line - w, line + w), 0.01))
        return quads

    def _local(self, road: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map (x, y) to road-local (along, across)."""
        if road == "main":
            return x - self.center_x, y
        return y, x - self.center_x

    def on_road(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether map points lie on asphalt."""
        result = np.zeros(np.shape(x), dtype=bool)
        for road in ("main", "cross"):
            along, across = self._local(road, x, y)
            lo, hi = self.extent(road)
            result |= (np.abs(across) <= self.half_width) & (along >= lo) & (along <= hi)
        return result

    def on_marking(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether map points lie on a painted line; same geometry as ``marking_quads``."""
        result = np.zeros(np.shape(x), dtype=bool)
        w = self.line_width / 2
        for road in ("main", "cross"):
            along, across = self._local(road, x, y)
            lo, hi = self.extent(road)
            outside = (np.abs(along) >= self.half_width) & (along >= lo) & (along <= hi)
            d = np.abs(along) - self.half_width - self.dash_offset
            dash = (np.abs(across) < w) & (d >= 0) & (np.mod(d, self.dash_period) < self.dash_length)
            solid = np.abs(np.abs(across) - self.lane_width) < w
            result |= outside & (dash | solid)
        return result

    def ground_intensity(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """LiDAR reflectivity of the ground: paint > terrain > asphalt."""
        out = np.where(self.on_road(x, y), 0.08, 0.2).astype(np.float32)
        return np.where(self.on_marking(x, y), np.float32(0.85), out)
