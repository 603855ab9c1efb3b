"""Speed planning along a path: cruise, slow for zones (curves, turns), stop and wait; gives a SpeedProfile."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .motion import SpeedProfile


@dataclass(frozen=True)
class SpeedZone:
    """Stretch [start_s, end_s] of the path driven at ``speed`` at most; speed 0 is a stop at start_s.

    A stop is held ``dwell_s`` seconds, or for good when ``stays``; afterwards the ego speeds up to ``cruise_after``.
    """

    start_s: float
    end_s: float
    speed: float
    cruise_after: float
    dwell_s: float = 0.0
    stays: bool = False

    def __post_init__(self) -> None:
        if self.end_s < self.start_s:
            raise ValueError(f"end_s must be >= start_s, got [{self.start_s}, {self.end_s}]")
        if self.speed < 0 or self.cruise_after <= 0:
            raise ValueError(f"speed must be >= 0 and cruise_after > 0, got {self.speed}, {self.cruise_after}")
        if self.speed == 0 and (self.end_s != self.start_s or (self.dwell_s <= 0 and not self.stays)):
            raise ValueError("a stop zone has end_s == start_s and a positive dwell_s unless it stays")


@dataclass(frozen=True)
class SpeedPlan:
    """A planned profile and, per zone, the time the ego reaches its start (None: never, after a final stop)."""

    profile: SpeedProfile
    arrivals: tuple[float | None, ...]


def _blend_distance(v0: float, v1: float, accel: float, decel: float) -> float:
    """Distance of a cosine speed blend v0 -> v1 whose peak acceleration is ``accel`` (or ``decel``)."""
    rate = accel if v1 > v0 else decel
    return math.pi * abs(v1 * v1 - v0 * v0) / (4 * rate)


def plan_speed(zones: Sequence[SpeedZone], initial_speed: float, cruise: float, accel: float,
               decel: float) -> SpeedPlan:
    """Cosine-blended profile that meets every zone; zones must be sorted and must not overlap.

    Peak acceleration of a blend over Δv in T seconds is π Δv / (2 T), so a blend covers π |v1² - v0²| / (4 a).
    Speeds that cannot be braked away in time are lowered beforehand (backward pass), so no limit is broken.
    """
    for a, b in zip(zones, zones[1:]):
        if b.start_s < a.end_s:
            raise ValueError(f"zones overlap or are unsorted: [{a.start_s}, {a.end_s}] then [{b.start_s}, {b.end_s}]")
    zones = list(zones)
    last = next((i for i, z in enumerate(zones) if z.speed == 0 and z.stays), len(zones) - 1)
    cruise_before = [cruise] + [z.cruise_after for z in zones[:-1]]
    speeds = [min(z.speed, c) for z, c in zip(zones[:last + 1], cruise_before)]
    for i in range(last - 1, -1, -1):
        gap = zones[i + 1].start_s - zones[i].end_s
        speeds[i] = min(speeds[i], math.sqrt(speeds[i + 1] ** 2 + 4 * decel * gap / math.pi))
    v = initial_speed
    if speeds:
        v = min(v, math.sqrt(speeds[0] ** 2 + 4 * decel * max(zones[0].start_s, 0.0) / math.pi))
    t, s, c = 0.0, 0.0, cruise
    knots = [(0.0, v)]

    def blend(target: float) -> None:
        nonlocal t, s, v
        duration = math.pi * abs(target - v) / (2 * (accel if target > v else decel))
        if duration > 1e-9:
            t, s, v = t + duration, s + duration * (v + target) / 2, target
            knots.append((t, v))

    def hold_until(target_s: float) -> None:
        nonlocal t, s
        if target_s - s > 1e-9 and v > 0:
            t, s = t + (target_s - s) / v, target_s
            knots.append((t, v))

    arrivals: list[float | None] = []
    for zone, vz in zip(zones, speeds):
        gap = max(zone.start_s - s, 0.0)
        vz = min(vz, math.sqrt(v * v + 4 * accel * gap / math.pi))
        if c >= v:
            peak_sq = (gap + math.pi * v * v / (4 * accel) + math.pi * vz * vz / (4 * decel)) / (
                math.pi / (4 * accel) + math.pi / (4 * decel))
            peak = max(min(c, math.sqrt(peak_sq)), v, vz)
        else:
            peak = max(c, vz)
        blend(peak)
        hold_until(zone.start_s - _blend_distance(peak, vz, accel, decel))
        blend(vz)
        s = max(s, zone.start_s)
        arrivals.append(t)
        if vz > 0:
            hold_until(zone.end_s)
        elif zone.stays:
            break
        else:
            t += zone.dwell_s
            knots.append((t, 0.0))
        c = zone.cruise_after
    else:
        blend(c)
    if len(knots) == 1:
        knots.append((1.0, v))
    arrivals += [None] * (len(zones) - len(arrivals))
    return SpeedPlan(SpeedProfile(*zip(*knots)), tuple(arrivals))
