"""Scenery along a road network as boxes: sidewalk slabs, buildings, parked cars and sidewalk pedestrians."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .motion import SpeedProfile
from .network import GridMap, RoadNetwork
from .world import BUILDING_COLORS, CLOTHES_COLORS, Agent, choice, vehicle_row

_SIDEWALK_SLAB_M = 10.0
_MIN_PARKING_STRIP_M = 1.8
_PARKING_KEEP_OUT_M = 15.0
_OCCUPANCY_RESOLUTION = 0.5
# Buildings are tested with their footprint shrunk by this (m), as filled cells reach past polygon edges.
_OCCUPANCY_INSET_M = 0.75


def _tint(rng: np.random.Generator, rgb: tuple, spread: float = 18.0) -> tuple[int, int, int]:
    """``rgb`` with each channel moved by up to ``spread``."""
    return tuple(int(np.clip(c + rng.uniform(-spread, spread), 0, 255)) for c in rgb)


def sidewalk_rows(network: RoadNetwork, color: tuple[int, int, int]) -> list[tuple]:
    """Raised (0.15 m) slabs between kerb and building line, cut back where side roads join."""
    rows = []
    hw, bl = network.half_width, network.building_line
    mid = (hw + bl) / 2
    for road in network.roads:
        for side in (1, -1):
            start, end = road.kerb_range(side, hw)
            if end - start < 0.5:
                continue
            cuts = road.chunk_breaks(start, end, _SIDEWALK_SLAB_M)
            x, y = road.centre.point(cuts, side * mid)
            for i in range(len(cuts) - 1):
                dx, dy = x[i + 1] - x[i], y[i + 1] - y[i]
                rows.append(((x[i] + x[i + 1]) / 2, (y[i] + y[i + 1]) / 2, math.hypot(dx, dy), bl - hw, 0.15,
                             math.atan2(dy, dx), color, 0.3))
    return rows


def _occupancy(network: RoadNetwork, margin: float) -> GridMap:
    """Coarse map with every road corridor (out to the building lines) marked taken."""
    bl = network.building_line
    corridors = [q for road in network.roads for q in road.band(0.0, road.length, (-bl + 0.3, bl - 0.3), 0.0)]
    corners = np.concatenate(corridors)[:, :2]
    grid = GridMap(corners.min(axis=0) - margin, corners.max(axis=0) + margin, _OCCUPANCY_RESOLUTION)
    grid.fill(corridors, 1)
    return grid


def _footprint(x: float, y: float, length: float, depth: float, yaw: float, spacing: float) -> np.ndarray:
    """(N, 2) points on a lattice covering a rectangle, its edges included."""
    u = np.linspace(-length / 2, length / 2, math.ceil(length / spacing) + 1)
    v = np.linspace(-depth / 2, depth / 2, math.ceil(depth / spacing) + 1)
    uu, vv = (a.ravel() for a in np.meshgrid(u, v))
    c, s = math.cos(yaw), math.sin(yaw)
    return np.column_stack([x + c * uu - s * vv, y + s * uu + c * vv])


def building_rows(rngs: Sequence[np.random.Generator], network: RoadNetwork) -> list[tuple]:
    """Blocks of varied size and colour behind the sidewalks, kept off every road and off each other.

    ``rngs[i]`` draws along road i, so the blocks of a road do not depend on the roads drawn after it.
    """
    max_depth = 18.0
    grid = _occupancy(network, network.building_line + max_depth + 2.0)
    rows = []
    bl = network.building_line
    for rng, road in zip(rngs, network.roads):
        for side in (1, -1):
            d, end = road.kerb_range(side, bl)
            while d < end - 4.0:
                length = min(float(rng.uniform(8.0, 24.0)), end - d)
                depth, height = float(rng.uniform(8.0, max_depth)), float(rng.uniform(5.0, 32.0))
                color, intensity = _tint(rng, choice(rng, BUILDING_COLORS)), float(rng.uniform(0.3, 0.45))
                x, y = (float(v) for v in road.centre.point(d + length / 2, side * (bl + depth / 2)))
                yaw = float(road.centre.heading(d + length / 2))
                inset = 2 * _OCCUPANCY_INSET_M
                probe = _footprint(x, y, length - inset, depth - inset, yaw, _OCCUPANCY_RESOLUTION)
                if not grid.lookup(probe[:, 0], probe[:, 1]).any():
                    rows.append((x, y, length, depth, height, yaw, color, intensity))
                    grid.fill([_rectangle(x, y, length, depth, yaw)], 1)
                d += length + float(rng.choice([0.0, rng.uniform(1.0, 6.0)]))
    return rows


def _rectangle(x: float, y: float, length: float, depth: float, yaw: float) -> np.ndarray:
    """(4, 2) corners of a rectangle, in order around it."""
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * (length / 2, depth / 2)
    return np.column_stack([x + c * local[:, 0] - s * local[:, 1], y + s * local[:, 0] + c * local[:, 1]])


def parked_rows(rngs: Sequence[np.random.Generator], network: RoadNetwork) -> list[tuple]:
    """Cars along both parking strips of each road (``rngs[i]`` for road i), away from intersections."""
    if network.parking_width < _MIN_PARKING_STRIP_M:
        return []
    rows, offset = [], network.lane_width + network.parking_width / 2
    for rng, road in zip(rngs, network.roads):
        lo = _PARKING_KEEP_OUT_M if road.start_node else 0.0
        hi = road.length - (_PARKING_KEEP_OUT_M if road.end_node else 0.0)
        for side in (1, -1):
            if rng.random() < 0.25:
                continue
            along = lo + float(rng.uniform(3.0, 10.0))
            while along < hi - 3.0:
                x, y = road.centre.point(along, side * offset)
                heading = float(road.centre.heading(along)) + (math.pi if side > 0 else 0.0)
                rows.append(vehicle_row(rng, float(x), float(y), heading))
                along += 5.5 + float(rng.uniform(1.0, 16.0))
    return rows


def sidewalk_pedestrians(rngs: Sequence[np.random.Generator], network: RoadNetwork,
                         per_100m: float) -> list[Agent]:
    """People on the sidewalks (``rngs[i]`` for road i); about half stand, the others walk along at 1.0-1.6 m/s."""
    agents = []
    mid = (network.half_width + network.building_line) / 2
    for rng, road in zip(rngs, network.roads):
        for side in (1, -1):
            start, end = road.kerb_range(side, network.half_width)
            along = start + float(rng.exponential(200.0 / per_100m))
            while along < end:
                speed = float(rng.choice([0.0, rng.uniform(1.0, 1.6)])) * float(rng.choice([-1.0, 1.0]))
                row = (0.0, 0.0, 0.45, 0.6, float(rng.uniform(1.6, 1.9)), 0.0, choice(rng, CLOTHES_COLORS), 0.35)
                agents.append(Agent(road.centre, SpeedProfile((0.0, 1.0), (speed, speed)), row, offset_s=along,
                                    across=side * (mid + float(rng.uniform(-1.0, 1.0)))))
                along += float(rng.exponential(200.0 / per_100m))
    return agents
