"""Scenario: what a drive holds (ego motion, ground, world, lighting, commands): the demo's, or drawn from a seed.

A random drive: roads from ``route``, a speed plan from ``speed`` (cruise 5-15 m/s, slowing for curves and
turns, stopping for what stands in the lane), traffic and scenery as boxes, and lighting. Every draw comes
from numpy streams keyed by (seed, purpose[, road]), so one seed always gives the same drive.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import DriveConfig, RandomScenarioConfig
from .interface import COMMAND_LEFT, COMMAND_RIGHT, COMMAND_STRAIGHT
from .layout import RoadLayout
from .motion import EgoMotion, SpeedProfile, TurnPath
from .network import RoadNetwork
from .path import TabulatedPath, integrate_path
from .raster import Lighting
from .route import LaneRoute, Route, draw_route
from .scenery import building_rows, parked_rows, sidewalk_pedestrians, sidewalk_rows
from .speed import SpeedPlan, SpeedZone, plan_speed
from .world import CAR_COLORS, CLOTHES_COLORS, EGO_FRONT_OVERHANG, SIDEWALK_COLOR, Agent, BoxSet, World, build_world
from .world import choice as pick

COMMANDS = {"left": COMMAND_LEFT, "straight": COMMAND_STRAIGHT, "right": COMMAND_RIGHT}
# scenario.json (Scenario.summary), version 1. Times are seconds from the drive's start (stamp start_time_ns);
# events the drive does not reach within duration_s are left out, and a null time is never reached.
#   format, version, scenario ("random"), seed, duration_s, start_time_ns, lidar_rate_hz
#   road: lane_width_m, parking_width_m, sidewalk_width_m, roads (count)
#   ego: initial_speed_mps, cruise_speeds_mps (per road), accel_mps2, decel_mps2, lateral_accel_mps2,
#        distance_m (driven in the drive), max_speed_mps
#   lead_vehicle: null | {from_start, time_gap_s, standstill_gap_m}
#   intersections[]: kind ("T" | "four-way"), exits (offered: "left"/"straight"/"right"), decision, command
#        (0 left, 1 straight, 2 right), x, y (map), command_time_s (turn command published; null when straight),
#        approach_time_s, start_time_s, end_time_s (the turn, or crossing the box), heading_change_deg
#   curves[]: direction, radius_m (of the ego lane), deflection_deg, start_time_s, end_time_s
#   stops[]: reason ("vehicle" | "pedestrian" | "lead_vehicle"), start_time_s (standstill), end_time_s (moves
#        on; null: stays stopped to the end), gap_m (front bumper to the obstacle)
#   commands[]: time_s, value: every /command message
#   lighting: exposure, ambient, sun (unit vector to the sun, map frame), sky_top_rgb, terrain_rgb, asphalt_rgb
#   counts: buildings, parked_vehicles, oncoming_vehicles, sidewalk_pedestrians
SUMMARY_FORMAT = "diffusiondrive_ros/synthetic-scenario"
SUMMARY_VERSION = 1

# Demo timeline (s, m/s): cruise, slow for the turn, turn, speed up, cruise, stop behind the vehicle.
_DEMO_SPEED_KNOTS = ((0.0, 10.0), (4.0, 10.0), (6.0, 6.0), (10.0, 6.0), (12.0, 9.0), (14.0, 9.0), (18.0, 0.0))
_DEMO_EGO_START = (0.0, -1.75)
_DEMO_TURN_START_S = 57.0
_DEMO_COMMAND_LEAD_M = 30.0

_START_FROM_REST_PROBABILITY = 0.15
# Route beyond the farthest the ego can drive: more than any braking distance, so what lies past the drive's
# end never changes its motion, and a longer drive of the same seed starts with the same motion and events.
_ROUTE_MARGIN_M = 150.0
_STOP_REASONS = ("vehicle", "pedestrian")
# A pedestrian leaving the ego lane is clear of the ego once this far (m) right of the lane centre.
_PEDESTRIAN_CLEAR_M = 1.7
# Parked cars keep this far (m) from the way such a pedestrian walks to the sidewalk.
_WALK_CLEARANCE_M = 3.5
_ONCOMING_SPEED_MPS = (6.0, 13.0)
_SKIES = (((70, 130, 200), (190, 210, 235)), ((150, 155, 165), (205, 205, 210)), ((90, 85, 140), (240, 175, 125)),
          ((115, 150, 195), (225, 225, 215)))
_TERRAINS = ((96, 102, 82), (70, 110, 60), (130, 115, 85), (105, 105, 100), (150, 140, 110))


@dataclass(frozen=True)
class StopEvent:
    """The ego stands still for something in its lane: a car, a pedestrian, or its lead vehicle stopping.

    Distances are along the ego path: ``stop_s`` of the ego (rear axle), ``gap_m`` from its front bumper to the
    obstacle. Times: ``start_t`` when it stands (None: never reached), ``end_t`` when it moves on (None: never).
    """

    reason: str
    stop_s: float
    gap_m: float
    start_t: float | None
    end_t: float | None


@dataclass(frozen=True)
class LeadVehicle:
    """A vehicle ahead in the ego lane that the ego follows: it drives the ego's own plan ``time_gap_s`` earlier."""

    from_start: bool
    time_gap_s: float
    standstill_gap_m: float


@dataclass(frozen=True, eq=False)
class Scenario:
    """A drive's content: ego motion, ground, world, lighting and the command windows along the ego path.

    Random drives also carry their route, stops, lead vehicle and drawn facts, which ``summary`` reports.
    """

    motion: EgoMotion
    layout: RoadLayout | RoadNetwork
    world: World
    command_windows: tuple[tuple[float, float, int], ...]
    """(start_s, end_s, command): the command from start_s (inclusive) to end_s; COMMAND_STRAIGHT elsewhere."""
    lighting: Lighting = Lighting()
    route: Route | None = None
    stops: tuple[StopEvent, ...] = ()
    lead: LeadVehicle | None = None
    facts: dict | None = None
    """JSON-ready draws of a random drive that do not depend on time (road, ego limits, lighting, counts)."""

    def command_at(self, s: float) -> int:
        """Command at ego path distance ``s``."""
        for start, end, command in self.command_windows:
            if start <= s < end:
                return command
        return COMMAND_STRAIGHT

    def command_changes(self, t_end: float) -> list[tuple[float, int]]:
        """(time, command) at t=0 and at each change before ``t_end``."""
        speed = self.motion.speed
        changes = [(0.0, self.command_at(float(speed.evaluate(0.0)[0])))]
        for s in (b for window in self.command_windows for b in window[:2]):
            t = speed.time_at_distance(s, t_end)
            if t is not None and 0.0 < t < t_end:
                changes.append((t, self.command_at(float(speed.evaluate(t)[0]))))
        return sorted(changes)

    def summary(self, config: DriveConfig) -> dict:
        """JSON-ready description of a random drive: roads, intersections, curves, stops, commands, lighting.

        Times are seconds from the drive's start; events the drive does not reach within its duration are left out.
        """
        if self.route is None or self.facts is None:
            raise ValueError("only random drives carry a summary")
        duration, speed, path = config.duration_s, self.motion.speed, self.motion.path

        def when(s: float) -> float | None:
            t = speed.time_at_distance(s, duration)
            return None if t is None else round(t, 4)

        windows = {end: start for start, end, _ in self.command_windows}
        intersections = [
            {"kind": i.kind, "exits": list(i.exits), "decision": i.decision, "command": COMMANDS[i.decision],
             "x": round(i.x, 3), "y": round(i.y, 3),
             "command_time_s": when(windows[i.end_s]) if i.end_s in windows else None,
             "approach_time_s": when(i.approach_s), "start_time_s": when(i.start_s), "end_time_s": when(i.end_s),
             "heading_change_deg": round(math.degrees(float(path.heading(i.end_s) - path.heading(i.start_s))), 2)}
            for i in self.route.intersections
            if when(i.approach_s) is not None or (i.end_s in windows and when(windows[i.end_s]) is not None)
        ]
        curves = [
            {"direction": "left" if c.deflection > 0 else "right", "radius_m": round(c.radius, 2),
             "deflection_deg": round(math.degrees(c.deflection), 2), "start_time_s": when(c.start_s),
             "end_time_s": when(c.end_s)}
            for c in self.route.ego.curves if when(c.start_s) is not None
        ]
        stops = [
            {"reason": e.reason, "start_time_s": round(e.start_t, 4),
             "end_time_s": None if e.end_t is None else round(e.end_t, 4), "gap_m": round(e.gap_m, 3)}
            for e in self.stops if e.start_t is not None and e.start_t < duration
        ]
        times = np.linspace(0.0, duration, max(2, math.ceil(duration * 20) + 1))
        ego = {**self.facts["ego"], "distance_m": round(float(speed.evaluate(duration)[0]), 3),
               "max_speed_mps": round(float(speed.evaluate(times)[1].max()), 3)}
        leaves = any(e["reason"] == "vehicle" and e["end_time_s"] is not None for e in stops)
        lead = None if self.lead is None or not (self.lead.from_start or leaves) else {
            "from_start": self.lead.from_start, "time_gap_s": round(self.lead.time_gap_s, 3),
            "standstill_gap_m": round(self.lead.standstill_gap_m, 3)}
        return {
            "format": SUMMARY_FORMAT, "version": SUMMARY_VERSION, "scenario": config.scenario, "seed": config.seed,
            "duration_s": duration, "start_time_ns": config.start_time_ns, "lidar_rate_hz": config.lidar_rate_hz,
            "road": self.facts["road"], "ego": ego, "lead_vehicle": lead, "intersections": intersections,
            "curves": curves, "stops": stops,
            "commands": [{"time_s": round(t, 4), "value": c} for t, c in self.command_changes(duration)],
            "lighting": self.facts["lighting"], "counts": self.facts["counts"],
        }


def build_scenario(config: DriveConfig) -> Scenario:
    """The scenario ``config`` names: the fixed demo drive or one drawn from ``config.seed``."""
    return demo_scenario(config) if config.scenario == "demo" else random_scenario(config)


def demo_scenario(config: DriveConfig) -> Scenario:
    """Straight road at 10 m/s, the configured turn at a four-way intersection, stop behind a standing car."""
    sign = 1 if config.turn == "left" else -1
    path = TurnPath(_DEMO_EGO_START[0], _DEMO_EGO_START[1], _DEMO_TURN_START_S, sign)
    motion = EgoMotion(SpeedProfile(*zip(*_DEMO_SPEED_KNOTS)), path)
    layout = RoadLayout(center_x=path.end_point[0] - sign * RoadLayout.lane_width / 2)
    world = build_world(np.random.default_rng(config.seed), layout, motion)
    command_start = layout.center_x - layout.half_width - _DEMO_COMMAND_LEAD_M - _DEMO_EGO_START[0]
    command = COMMAND_LEFT if config.turn == "left" else COMMAND_RIGHT
    return Scenario(motion, layout, world, ((command_start, path.turn_end, command),))


def _draw_lighting(rng: np.random.Generator) -> Lighting:
    """Sun position, sky, terrain, asphalt and exposure: clear, overcast, dusk or hazy, brighter or darker."""
    top, horizon = _SKIES[int(rng.integers(len(_SKIES)))]
    jitter = rng.uniform(-15.0, 15.0, 9)
    elevation, azimuth = math.radians(float(rng.uniform(12.0, 70.0))), float(rng.uniform(0.0, 2 * math.pi))
    grey = float(rng.uniform(50.0, 100.0))
    return Lighting(
        sun=(math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)),
        ambient=float(rng.uniform(0.4, 0.7)), diffuse=float(rng.uniform(0.25, 0.55)),
        exposure=float(rng.uniform(0.6, 1.25)),
        sky_top=tuple(float(np.clip(c + j, 0, 255)) for c, j in zip(top, jitter[:3])),
        sky_horizon=tuple(float(np.clip(c + j, 0, 255)) for c, j in zip(horizon, jitter[3:6])),
        terrain=tuple(float(np.clip(c + j, 0, 255)) for c, j in zip(pick(rng, _TERRAINS), jitter[6:])),
        asphalt=(round(grey), round(grey), round(grey + float(rng.uniform(0.0, 6.0)))),
        paint=pick(rng, ((235, 235, 230), (240, 225, 170))),
    )


def _free_spans(lo: float, hi: float, blocked: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Parts of [lo, hi] outside every blocked range."""
    spans = [(lo, hi)]
    for b0, b1 in blocked:
        spans = [part for a, b in spans for part in ((a, min(b, b0)), (max(a, b1), b)) if part[1] > part[0]]
    return spans


def _place(rng: np.random.Generator, spans: Sequence[tuple[float, float]], length: float) -> float | None:
    """Start of a stretch of ``length`` m inside one of ``spans`` (chosen by room left), or None if none fits."""
    room = np.array([max(b - a - length, 0.0) for a, b in spans])
    if not room.sum():
        return None
    k = int(rng.choice(len(spans), p=room / room.sum()))
    return spans[k][0] + float(rng.uniform(0.0, room[k]))


def _turn_speed(path: TabulatedPath, start: float, end: float, lateral: float) -> float:
    """Speed that keeps the lateral acceleration below ``lateral`` on [start, end] of ``path``."""
    kappa = float(np.abs(path.curvature(np.linspace(start, end, 64))).max())
    return math.sqrt(lateral / max(kappa, 1e-6))


def _route_zones(lanes: LaneRoute, cruise: Sequence[float], lateral: float,
                 straight_factor: Sequence[float]) -> list[SpeedZone]:
    """Zones for the bends and intersection manoeuvres of a lane route; ``cruise[k]`` is road k's cruise."""
    zones = []
    for k, (decision, _, start, end) in enumerate(lanes.manoeuvres):
        speed = cruise[k] * straight_factor[k] if decision == "straight" else _turn_speed(lanes.path, start, end,
                                                                                              lateral)
        zones.append(SpeedZone(start, end, speed, cruise[k + 1]))
    for curve in lanes.curves:
        k = next(i for i, (a, b) in enumerate(lanes.stretches) if a <= curve.start_s <= b)
        zones.append(SpeedZone(curve.start_s, curve.end_s, math.sqrt(lateral * curve.radius), cruise[k]))
    return sorted(zones, key=lambda z: z.start_s)


@dataclass(frozen=True)
class _Stop:
    """A drawn stop before planning: where, why, how long, and the obstacle's box (None for a lead stop)."""

    stretch: int
    reason: str
    stop_s: float
    obstacle_s: float
    dwell_s: float
    stays: bool
    row: tuple | None
    walk: tuple[TabulatedPath, SpeedProfile, float] | None = None
    """Pedestrian: path to the sidewalk, walking profile (starting at 0) and the wait before walking."""
    time_gap_s: float = 0.0
    """Standing car: how long before the ego it drives off (it then drives the ego's plan that much earlier)."""


def _walk_profile(distance: float, speed: float) -> SpeedProfile:
    """Walk ``distance`` m from rest: 0.8 s to reach ``speed``, 0.8 s to stop at the end."""
    cruise = max(distance / speed - 0.8, 1e-3)
    return SpeedProfile((0.0, 0.8, 0.8 + cruise, 1.6 + cruise), (0.0, speed, speed, 0.0))


def random_scenario(config: DriveConfig) -> Scenario:
    """A drive drawn from ``config.seed`` within the ranges of ``config.random``."""
    cfg, seed = config.random, config.seed
    rng = np.random.default_rng([seed, 0])
    widths = tuple(float(rng.uniform(*r)) for r in (cfg.lane_width_m, cfg.parking_width_m, cfg.sidewalk_width_m))
    accel, decel, lateral = (float(rng.uniform(*r)) for r in (cfg.accel_mps2, cfg.decel_mps2,
                                                               cfg.lateral_accel_mps2))
    lighting = _draw_lighting(rng)
    initial = 0.0 if rng.random() < _START_FROM_REST_PROBABILITY else float(rng.uniform(*cfg.cruise_speed_mps))
    lead = None
    if rng.random() < cfg.lead_probability:
        lead = LeadVehicle(True, float(rng.uniform(1.2, 2.5)), float(rng.uniform(2.5, 5.0)))
    lead_row = _car(rng)
    route = draw_route(seed, cfg, widths, config.duration_s * cfg.cruise_speed_mps[1] + _ROUTE_MARGIN_M)
    ego = route.ego
    leg_rngs = [np.random.default_rng([seed, 2, k]) for k in range(len(ego.stretches))]
    cruise = [float(r.uniform(*cfg.cruise_speed_mps)) for r in leg_rngs]
    straight_factor = [float(r.uniform(0.7, 1.0)) for r in leg_rngs]
    zones = _route_zones(ego, cruise, lateral, straight_factor)
    stops, lead = _draw_stops(leg_rngs, cfg, ego, lead, zones, widths)
    zones += [SpeedZone(s.stop_s, s.stop_s, 0.0, cruise[s.stretch], s.dwell_s, s.stays) for s in stops]
    zones = sorted(zones + _slow_zones(leg_rngs, cfg, ego, cruise, zones), key=lambda z: z.start_s)
    plan = plan_speed(zones, initial, cruise[0], accel, decel)
    arrivals = {z.start_s: t for z, t in zip(zones, plan.arrivals) if z.speed == 0}
    agents, events = _stop_agents(stops, arrivals, plan, ego.path, lead, lead_row)

    scenery = np.random.default_rng([seed, 3])
    network = route.network
    sidewalk_color = tuple(int(np.clip(c + scenery.uniform(-25.0, 25.0), 0, 255)) for c in SIDEWALK_COLOR)
    per_100m = float(scenery.uniform(0.5, 2.5))
    road_rngs = [np.random.default_rng([seed, 4, i]) for i in range(len(network.roads))]
    buildings, parked = building_rows(road_rngs, network), parked_rows(road_rngs, network)
    walks = [np.column_stack(s.walk[0].position(np.linspace(0.0, s.walk[0].length, 8))) for s in stops if s.walk]
    parked = [row for row in parked if all(np.hypot(*(w - row[:2]).T).min() > _WALK_CLEARANCE_M for w in walks)]
    pedestrians = sidewalk_pedestrians(road_rngs, network, per_100m)
    oncoming = _oncoming(scenery, route.oncoming, lateral)
    world = World(network, BoxSet.from_rows(sidewalk_rows(network, sidewalk_color)),
                  BoxSet.from_rows(buildings + parked), BoxSet.empty(), np.zeros((0, 3)),
                  tuple(agents + oncoming + pedestrians))

    windows, previous_end = [], -math.inf
    for k, node in enumerate(route.intersections):
        lead_m = float(leg_rngs[k].uniform(20.0, 45.0))
        if node.decision != "straight":
            windows.append((max(node.approach_s - lead_m, previous_end), node.end_s, COMMANDS[node.decision]))
            previous_end = node.end_s
    facts = {
        "road": {"lane_width_m": round(widths[0], 3), "parking_width_m": round(widths[1], 3),
                 "sidewalk_width_m": round(widths[2], 3), "roads": len(network.roads)},
        "ego": {"initial_speed_mps": round(plan.profile.knots_v[0], 3),
                "cruise_speeds_mps": [round(c, 3) for c in cruise], "accel_mps2": round(accel, 3),
                "decel_mps2": round(decel, 3), "lateral_accel_mps2": round(lateral, 3)},
        "lighting": {"exposure": round(lighting.exposure, 3), "ambient": round(lighting.ambient, 3),
                     "sun": [round(v, 3) for v in lighting.sun], "sky_top_rgb": [round(v) for v in lighting.sky_top],
                     "terrain_rgb": [round(v) for v in lighting.terrain], "asphalt_rgb": list(lighting.asphalt)},
        "counts": {"buildings": len(buildings), "parked_vehicles": len(parked), "oncoming_vehicles": len(oncoming),
                   "sidewalk_pedestrians": len(pedestrians)},
    }
    return Scenario(motion=EgoMotion(plan.profile, ego.path), layout=network, world=world,
                    command_windows=tuple(windows), lighting=lighting, route=route, stops=tuple(events), lead=lead,
                    facts=facts)


def _car(rng: np.random.Generator) -> tuple:
    """A car's box row at the origin; its Agent places it."""
    return (0.0, 0.0, float(rng.uniform(4.2, 5.0)), float(rng.uniform(1.75, 1.95)), float(rng.uniform(1.45, 1.75)),
            0.0, pick(rng, CAR_COLORS), float(rng.uniform(0.5, 0.7)))


def _draw_stops(leg_rngs: Sequence[np.random.Generator], cfg: RandomScenarioConfig, lanes: LaneRoute,
                lead: LeadVehicle | None, zones: Sequence[SpeedZone],
                widths: tuple[float, float, float]) -> tuple[list[_Stop], LeadVehicle | None]:
    """At most one stop per road, on a straight stretch: for a standing car or pedestrian, or the lead stopping.

    A standing car that drives off becomes the lead vehicle, so later stops are the lead stopping.
    """
    lane_width, parking_width, sidewalk_width = widths
    stops: list[_Stop] = []
    blocked = [(z.start_s - 10.0, z.end_s + 10.0) for z in zones]
    for k, (a, b) in enumerate(lanes.stretches):
        rng = leg_rngs[k]
        if rng.random() >= cfg.stop_probability:
            continue
        stays = rng.random() < cfg.stays_probability
        reason = "lead_vehicle" if lead is not None else _STOP_REASONS[int(rng.integers(len(_STOP_REASONS)))]
        if reason == "pedestrian":
            row = (0.0, 0.0, 0.45, 0.6, float(rng.uniform(1.6, 1.9)), 0.0, pick(rng, CLOTHES_COLORS), 0.35)
            gap = float(rng.uniform(2.5, 6.0))
        elif reason == "vehicle":
            row, gap = _car(rng), float(rng.uniform(2.0, 5.0))
        else:
            row, gap = None, lead.standstill_gap_m
        half_length = row[2] / 2 if row is not None else 0.0
        start = _place(rng, _free_spans(a + (30.0 if k == 0 else 20.0), b - 30.0, blocked),
                       EGO_FRONT_OVERHANG + gap + 2 * half_length)
        if start is None:
            continue
        obstacle_s = start + EGO_FRONT_OVERHANG + gap + half_length
        walk, time_gap = None, 0.0
        if reason == "pedestrian":
            across = float(rng.uniform(-0.6, 0.6))
            wait, walk_speed = float(rng.uniform(1.0, 4.0)), float(rng.uniform(1.1, 1.6))
            x, y, heading = lanes.path.pose(obstacle_s)
            # From ``across`` left of the lane centre to the middle of the right sidewalk.
            distance = across - lane_width / 2 + lane_width + parking_width + sidewalk_width / 2
            walk_path = integrate_path(x - across * math.sin(heading), y + across * math.cos(heading),
                                       heading - math.pi / 2, [(distance, 0.0, 0.0)], step=1.0)
            profile = _walk_profile(distance, walk_speed)
            clear = profile.time_at_distance(across + _PEDESTRIAN_CLEAR_M, profile.knots_t[-1])
            walk, dwell = (walk_path, profile, wait), wait + clear + 0.7
        elif reason == "vehicle":
            time_gap = float(rng.uniform(1.0, 2.0))
            dwell = time_gap + float(rng.uniform(1.5, 5.0))
            if not stays:
                lead = LeadVehicle(False, time_gap, gap)
        else:
            dwell = float(rng.uniform(2.0, 6.0))
        stops.append(_Stop(k, reason, start, obstacle_s, dwell, stays, row, walk, time_gap))
        blocked.append((start - 20.0, obstacle_s + 20.0))
        if stays:
            break
    return stops, lead


def _slow_zones(leg_rngs: Sequence[np.random.Generator], cfg: RandomScenarioConfig, lanes: LaneRoute,
                cruise: Sequence[float], zones: Sequence[SpeedZone]) -> list[SpeedZone]:
    """Stretches where the ego brakes to 35-70 % of its cruise and speeds up again afterwards."""
    out = []
    blocked = [(z.start_s - 10.0, z.end_s + 10.0) for z in zones]
    for k, (a, b) in enumerate(lanes.stretches):
        rng = leg_rngs[k]
        if rng.random() >= cfg.slow_zone_probability:
            continue
        length = float(rng.uniform(15.0, 40.0))
        start = _place(rng, _free_spans(a + 10.0, b - 20.0, blocked), length)
        if start is not None:
            speed = max(2.0, cruise[k] * float(rng.uniform(0.35, 0.7)))
            out.append(SpeedZone(start, start + length, speed, cruise[k]))
    return out


def _stop_agents(stops: Sequence[_Stop], arrivals: dict[float, float | None], plan: SpeedPlan,
                 path: TabulatedPath, lead: LeadVehicle | None,
                 lead_row: tuple) -> tuple[list[Agent], list[StopEvent]]:
    """Boxes for the lead vehicle and the obstacles, and the stop events with their times."""
    agents, events = [], []
    if lead is not None and lead.from_start:
        offset = EGO_FRONT_OVERHANG + lead.standstill_gap_m + lead_row[2] / 2
        agents.append(Agent(path, plan.profile, lead_row, time_shift=lead.time_gap_s, offset_s=offset))
    for stop in stops:
        arrival = arrivals[stop.stop_s]
        end = None if stop.stays or arrival is None else arrival + stop.dwell_s
        gap = stop.obstacle_s - stop.stop_s - EGO_FRONT_OVERHANG - (stop.row[2] / 2 if stop.row else 0.0)
        events.append(StopEvent(stop.reason, stop.stop_s, gap, arrival, end))
        if stop.reason == "vehicle":
            agents.append(Agent(path, plan.profile, stop.row, time_shift=stop.time_gap_s,
                                offset_s=stop.obstacle_s - stop.stop_s, hold_s=stop.obstacle_s))
        elif stop.reason == "pedestrian":
            walk_path, profile, wait = stop.walk
            if end is None:
                agents.append(Agent(walk_path, SpeedProfile((0.0, 1.0), (0.0, 0.0)), stop.row))
            else:
                agents.append(Agent(walk_path, profile, stop.row, time_shift=-(arrival + wait)))
    return agents, events


def _oncoming(rng: np.random.Generator, lanes: LaneRoute, lateral: float) -> list[Agent]:
    """Cars in the opposite lane, one speed plan for all, spaced 3-12 s apart along the whole route."""
    speed = float(rng.uniform(*_ONCOMING_SPEED_MPS))
    zones = _route_zones(lanes, [speed] * (len(lanes.stretches) + 1), lateral, [1.0] * len(lanes.manoeuvres))
    profile = plan_speed(zones, speed, speed, 1.5, 2.5).profile
    total = profile.time_at_distance(lanes.path.length, 3600.0) or 0.0
    agents, t = [], float(rng.uniform(0.0, 6.0))
    while t < total:
        agents.append(Agent(lanes.path, profile, _car(rng), time_shift=t))
        t += float(rng.uniform(3.0, 12.0))
    return agents
