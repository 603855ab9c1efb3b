"""Road network of a random drive: curved roads meeting at intersections, their paint, and a ground map."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .path import TabulatedPath

# Ground classes of GroundMap cells and their LiDAR reflectivity (terrain, asphalt, paint), as in RoadLayout.
TERRAIN, ASPHALT, PAINT = 0, 1, 2
_GROUND_INTENSITY = np.array([0.2, 0.08, 0.85], dtype=np.float32)
# Quads along a bend are at most this far (m) from the true curve; along straights at most _MAX_CHUNK m long.
_SAGITTA = 0.03
_MAX_CHUNK = 40.0


class GridMap:
    """uint8 raster over a map rectangle: polygons are filled in, points are looked up (0 outside)."""

    SUBPIXEL_BITS = 2

    def __init__(self, lo: np.ndarray, hi: np.ndarray, resolution: float, max_cells: int = 40_000_000) -> None:
        extent = np.asarray(hi, dtype=float) - np.asarray(lo, dtype=float)
        self.resolution = max(resolution, math.sqrt(float(extent[0] * extent[1]) / max_cells))
        # Cells sit at multiples of the resolution, so maps of overlapping areas agree cell for cell.
        self.origin = np.floor(np.asarray(lo, dtype=float) / self.resolution) * self.resolution
        width, height = (int(math.ceil(e / self.resolution)) + 2 for e in extent)
        self.grid = np.zeros((height, width), dtype=np.uint8)

    def fill(self, polygons: Sequence[np.ndarray], value: int) -> None:
        """Set the cells covered by each convex polygon (map xy, (K, >=2) arrays) to ``value``."""
        scale = (1 << self.SUBPIXEL_BITS) / self.resolution
        for poly in polygons:
            pixels = np.round((np.asarray(poly)[:, :2] - self.origin) * scale).astype(np.int32)
            cv2.fillConvexPoly(self.grid, pixels, int(value), cv2.LINE_8, self.SUBPIXEL_BITS)

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Cell values at map points; 0 outside the raster."""
        col = np.rint((np.asarray(x) - self.origin[0]) / self.resolution).astype(np.int64)
        row = np.rint((np.asarray(y) - self.origin[1]) / self.resolution).astype(np.int64)
        h, w = self.grid.shape
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        return np.where(inside, self.grid[np.clip(row, 0, h - 1), np.clip(col, 0, w - 1)], 0)


@dataclass(frozen=True, eq=False)
class Road:
    """One road: its centreline (two lanes, one each way) and what meets its ends.

    ``start_node``/``end_node``: whether that end lies at an intersection centre. ``side_roads``: whether a
    crossing road meets the (start-left, start-right, end-left, end-right) side there (left = driving direction).
    """

    centre: TabulatedPath
    start_node: bool = False
    end_node: bool = False
    side_roads: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def length(self) -> float:
        """Centreline length (m)."""
        return self.centre.length

    def node_trim(self, width: float) -> tuple[float, float]:
        """Along-road range left free of paint: ``width`` from each end at an intersection."""
        return (width if self.start_node else 0.0, self.length - (width if self.end_node else 0.0))

    def kerb_range(self, side: int, width: float) -> tuple[float, float]:
        """Along-road range of the kerb on ``side`` (+1 left, -1 right): cut back by ``width`` at side roads."""
        left = side > 0
        start = width if self.side_roads[0 if left else 1] else 0.0
        end = self.length - (width if self.side_roads[2 if left else 3] else 0.0)
        return start, end

    def chunk_breaks(self, start: float, end: float, max_length: float = _MAX_CHUNK) -> np.ndarray:
        """Along-road cuts in [start, end], at most ``max_length`` apart; chords between them stay within _SAGITTA."""
        s = np.linspace(start, end, max(2, math.ceil((end - start) / 0.5) + 1))
        kappa = np.abs(self.centre.curvature(s))
        inv_len = 1.0 / np.minimum(max_length, np.sqrt(8 * _SAGITTA / np.maximum(kappa, 1e-9)))
        budget = np.concatenate([[0.0], np.cumsum(np.diff(s) * (inv_len[1:] + inv_len[:-1]) / 2)])
        count = max(1, math.ceil(budget[-1]))
        return np.interp(np.linspace(0.0, budget[-1], count + 1), budget, s)

    def band(self, start: float, end: float, across: tuple[float, float], z: float) -> list[np.ndarray]:
        """(4, 3) map quads covering along [start, end] x across [a0, a1], chunked along bends."""
        cuts = self.chunk_breaks(start, end)
        x0, y0 = self.centre.point(cuts, across[0])
        x1, y1 = self.centre.point(cuts, across[1])
        quads = []
        for i in range(len(cuts) - 1):
            xs = (x0[i], x0[i + 1], x1[i + 1], x1[i])
            ys = (y0[i], y0[i + 1], y1[i + 1], y1[i])
            quads.append(np.column_stack([xs, ys, np.full(4, z)]))
        return quads


@dataclass(frozen=True, eq=False)
class RoadNetwork:
    """Roads of one cross-section (lane, parking strip, sidewalk) meeting at intersections.

    Offers what cameras and LiDAR need of the ground, like RoadLayout: asphalt and paint quads, and the
    LiDAR reflectivity read from a GridMap painted with those same quads.
    """

    roads: tuple[Road, ...]
    lane_width: float = 3.5
    parking_width: float = 2.0
    sidewalk_width: float = 4.5
    line_width: float = 0.15
    dash_length: float = 3.0
    dash_period: float = 9.0
    dash_offset: float = 1.0
    ground_resolution: float = 0.1
    _ground: GridMap = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.roads:
            raise ValueError("a road network needs at least one road")
        if min(self.lane_width, self.parking_width, self.sidewalk_width) <= 0:
            raise ValueError("lane, parking and sidewalk widths must be positive")
        surface, paint = self.surface_quads(), self.marking_quads()
        corners = np.concatenate(surface)[:, :2]
        ground = GridMap(corners.min(axis=0) - 1.0, corners.max(axis=0) + 1.0, self.ground_resolution)
        ground.fill(surface, ASPHALT)
        ground.fill(paint, PAINT)
        object.__setattr__(self, "_ground", ground)

    @property
    def half_width(self) -> float:
        """Kerb offset from a road axis (lane plus parking strip)."""
        return self.lane_width + self.parking_width

    @property
    def building_line(self) -> float:
        """Offset of building fronts from a road axis."""
        return self.half_width + self.sidewalk_width

    def surface_quads(self) -> list[np.ndarray]:
        """Asphalt of every road, intersection boxes included."""
        hw = self.half_width
        return [q for road in self.roads for q in road.band(0.0, road.length, (-hw, hw), 0.0)]

    def marking_quads(self) -> list[np.ndarray]:
        """Dashed centre lines and solid lane/parking lines, outside the intersection boxes."""
        quads, w = [], self.line_width / 2
        for road in self.roads:
            start, end = road.node_trim(self.half_width)
            for d0 in np.arange(start + self.dash_offset, end - self.dash_length, self.dash_period):
                quads += road.band(float(d0), float(d0) + self.dash_length, (-w, w), 0.01)
            for line in (-self.lane_width, self.lane_width):
                quads += road.band(start, end, (line - w, line + w), 0.01)
        return quads

    def ground_class(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """TERRAIN, ASPHALT or PAINT at map points."""
        return self._ground.lookup(x, y)

    def ground_intensity(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """LiDAR reflectivity of the ground: paint > terrain > asphalt."""
        return _GROUND_INTENSITY[self.ground_class(x, y)]
