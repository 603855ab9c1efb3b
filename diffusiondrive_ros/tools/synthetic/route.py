"""Random route: roads drawn one by one (straight, 90 degree curve or S-bend) joined at T and four-way intersections.

Right-hand traffic. The ego starts at the map origin heading +x in the right lane of the first road; at each
intersection it turns left, right or goes straight. Headings at intersections stay within +-90 degrees of the
start, so the route never doubles back onto itself; roads that would still come too close are drawn again.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import RandomScenarioConfig
from .network import Road, RoadNetwork
from .path import TabulatedPath, curve_pieces, integrate_path

# Quarter turns of each choice at an intersection; 2 is the road the ego arrives on.
DIRECTIONS = {"left": 1, "straight": 0, "right": -1}
_EXIT_SETS = {"four-way": (("left", "straight", "right"),),
              "T": (("left", "right"), ("left", "straight"), ("straight", "right"))}
BEHIND_M = 150.0
"""Road behind the ego's start position."""
_FIRST_STRAIGHT_M = (15.0, 70.0)
"""Straight road ahead of the ego's start before anything else, so short drives reach an intersection."""
_STRAIGHT_M = (20.0, 50.0)
_ARM_M = (60.0, 120.0)
_MIN_ARM_M = 15.0
_FINAL_EXTRA_M = 150.0
_STRAIGHT_WEIGHT = 0.5
"""Odds of going straight relative to each turn offered, so that turns (and their commands) are common."""
_TURN_TRANSITION = 0.35
"""Clothoid length of an intersection turn, as a fraction of its quarter circle (the demo's turn uses ~0.38)."""


@dataclass(frozen=True)
class Intersection:
    """An intersection the ego crosses: centre, kind, the exits it offers and the one the ego takes.

    Distances are along the ego path: ``approach_s`` where the ego reaches the intersection box (or starts
    turning, if earlier) and [``start_s``, ``end_s``] its manoeuvre: the turn, or crossing the box.
    """

    kind: str
    x: float
    y: float
    exits: tuple[str, ...]
    decision: str
    approach_s: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Curve:
    """A bend along a lane route: [start_s, end_s], deflection (rad, positive left), radius of the lane (m)."""

    start_s: float
    end_s: float
    deflection: float
    radius: float


@dataclass(frozen=True, eq=False)
class LaneRoute:
    """A path through consecutive lanes with its intersection manoeuvres, curves and per-road stretches."""

    path: TabulatedPath
    manoeuvres: tuple[tuple[str, float, float, float], ...]
    """(decision, approach_s, start_s, end_s) per intersection, as in Intersection."""
    curves: tuple[Curve, ...]
    stretches: tuple[tuple[float, float], ...]
    """Path range driven in each road's lane, between the manoeuvres."""


@dataclass(frozen=True, eq=False)
class Route:
    """The drawn roads, the intersections on the way, and the lane routes of the ego and of oncoming traffic."""

    network: RoadNetwork
    intersections: tuple[Intersection, ...]
    ego: LaneRoute
    oncoming: LaneRoute


@dataclass(frozen=True, eq=False)
class _Leg:
    """A road between intersections while the route is drawn: centreline and its bends in road distance."""

    centre: TabulatedPath
    bends: tuple[tuple[float, float, float, float], ...]
    """(start, end, deflection, centreline radius)."""


def _leg_pieces(rng: np.random.Generator, cfg: RandomScenarioConfig, quarter: int,
                first: bool) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float, float]], int]:
    """Curvature pieces of one road, its bends and the heading (in quarter turns) at its end."""
    pieces: list[tuple[float, float, float]] = []
    bends: list[tuple[float, float, float, float]] = []

    def add(new: list[tuple[float, float, float]], deflection: float = 0.0, radius: float = 0.0) -> None:
        start = sum(p[0] for p in pieces)
        pieces.extend(new)
        if deflection:
            bends.append((start, start + sum(p[0] for p in new), deflection, radius))

    def bend(deflection: float, radius: float) -> None:
        add(curve_pieces(deflection, radius, min(0.3 * radius * abs(deflection), 20.0)), deflection, radius)

    add([(BEHIND_M + float(rng.uniform(*_FIRST_STRAIGHT_M)) if first else float(rng.uniform(*_STRAIGHT_M)), 0.0, 0.0)])
    if rng.random() < cfg.curve_probability:
        turns = [sign for sign in (1, -1) if abs(quarter + sign) <= 1]
        if rng.random() < 0.5:
            sign = turns[int(rng.integers(len(turns)))]
            bend(sign * math.pi / 2, float(rng.uniform(20.0, 50.0)))
            quarter += sign
        else:
            deflection = math.radians(float(rng.uniform(12.0, 30.0))) * float(rng.choice([-1.0, 1.0]))
            bend(deflection, float(rng.uniform(30.0, 90.0)))
            add([(float(rng.uniform(2.0, 20.0)), 0.0, 0.0)])
            bend(-deflection, float(rng.uniform(30.0, 90.0)))
    add([(float(rng.uniform(*_STRAIGHT_M)), 0.0, 0.0)])
    return pieces, bends, quarter


def _far_points(path: TabulatedPath, keep_out: float) -> np.ndarray:
    """(N, 2) points every 2 m of ``path`` farther than ``keep_out`` along it from its start."""
    s = np.arange(keep_out, path.length, 2.0)
    return np.column_stack(path.position(s)) if len(s) else np.zeros((0, 2))


def _min_distance(points: np.ndarray, others: Sequence[np.ndarray]) -> float:
    """Smallest distance between ``points`` and any of ``others`` (inf if either is empty)."""
    if not len(points) or not others:
        return math.inf
    other = np.concatenate(others)
    return float(np.sqrt(((points[:, None, :] - other[None]) ** 2).sum(-1)).min())


def turn_radii(lane_width: float, parking_width: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(lo, hi) radii of left and right intersection turns that keep a car's half width off the kerb corners.

    Intersections have square kerb corners at (±half_width, ±half_width). A quarter circle from lane to lane
    passes a corner with room m = R - √2 (R - q): q = lane/2 + parking (right turn), 1.5 lane + parking (left).
    """
    margin, root2 = 1.0, math.sqrt(2.0)
    right_hi = min(8.0, (root2 * (lane_width / 2 + parking_width) - margin) / (root2 - 1))
    left_lo = (margin + root2 * (1.5 * lane_width + parking_width)) / (root2 + 1)
    return (max(6.0, left_lo), max(12.0, left_lo)), (min(5.0, right_hi), right_hi)


def _turn(lane: TabulatedPath, direction: str, radius: float, lane_width: float) -> tuple[TabulatedPath, float, float]:
    """Turn from the end of ``lane`` into the right lane of the road to the left/right.

    Returns the turn path, how far before the intersection centre it starts (d) and how far after the centre,
    along the new road, it ends (e).
    """
    pieces = curve_pieces(DIRECTIONS[direction] * math.pi / 2, radius, _TURN_TRANSITION * radius * math.pi / 2)
    template = integrate_path(0.0, 0.0, 0.0, pieces, step=0.1)
    x, y = (float(v) for v in template.position(template.length))
    d, e = (x - lane_width / 2, y - lane_width / 2) if direction == "left" else (x + lane_width / 2, lane_width / 2 - y)
    return integrate_path(*lane.pose(lane.length - d), pieces, step=0.1), d, e


def lane_route(lanes: Sequence[TabulatedPath], lane_bends: Sequence[Sequence[tuple[float, float, float, float]]],
               turns: Sequence[tuple[str, float]], start_s: float, lane_width: float,
               half_width: float) -> LaneRoute:
    """Chain lanes (each straight at both ends) through the intersections between them.

    ``lane_bends`` are (start, end, deflection, lane radius) in each lane's distance; ``turns[k]`` is the
    (decision, radius) at the intersection after lane k.
    """
    parts, manoeuvres, curves, stretches = [], [], [], []
    base, enter = 0.0, start_s
    for k, lane in enumerate(lanes):
        decision, radius = turns[k] if k < len(turns) else ("straight", 0.0)
        turn, d, e = _turn(lane, decision, radius, lane_width) if decision != "straight" else (None, 0.0, 0.0)
        part = lane.slice(enter, lane.length - d)
        parts.append(part)
        stretches.append((base, base + part.length))
        for b0, b1, deflection, lane_radius in lane_bends[k]:
            if b1 > enter:
                curves.append(Curve(base + max(b0, enter) - enter, base + b1 - enter, deflection, lane_radius))
        base += part.length
        if k < len(turns):
            if turn is None:
                manoeuvres.append((decision, base - half_width, base - half_width, base + half_width))
            else:
                manoeuvres.append((decision, min(base, base + d - half_width), base, base + turn.length))
                parts.append(turn)
                base += turn.length
        enter = e
    return LaneRoute(TabulatedPath.concat(parts), tuple(manoeuvres), tuple(curves), tuple(stretches))


def _lane(centre: TabulatedPath, bends: Sequence[tuple[float, float, float, float]], reverse: bool,
          lane_width: float) -> tuple[TabulatedPath, list[tuple[float, float, float, float]]]:
    """Right lane of a road in one driving direction, with the road's bends in that lane's distance."""
    road = centre.reversed() if reverse else centre
    lane = road.offset(-lane_width / 2)
    out = []
    for b0, b1, deflection, radius in bends:
        if reverse:
            b0, b1, deflection = centre.length - b1, centre.length - b0, -deflection
        s0, s1 = np.interp([b0, b1], road.s, lane.s)
        out.append((float(s0), float(s1), deflection, radius + math.copysign(lane_width / 2, deflection)))
    return lane, sorted(out)


def draw_route(seed: int, cfg: RandomScenarioConfig, widths: tuple[float, float, float], min_length: float) -> Route:
    """Draw roads until the ego route is at least ``min_length`` m long; road k uses its own random stream."""
    lane_width, parking_width, sidewalk_width = widths
    half_width = lane_width + parking_width
    clearance = 2 * (half_width + sidewalk_width) + 4.0
    keep_out = clearance + 5.0
    (left_lo, left_hi), (right_lo, right_hi) = turn_radii(lane_width, parking_width)
    legs: list[_Leg] = []
    arms: list[tuple[TabulatedPath, int]] = []
    nodes: list[tuple[str, tuple[str, ...], str, float, float]] = []
    samples: list[np.ndarray] = []
    pose, quarter, covered = (-BEHIND_M, lane_width / 2, 0.0), 0, -BEHIND_M
    while True:
        rng = np.random.default_rng([seed, 1, len(legs)])
        for _ in range(20):
            pieces, bends, end_quarter = _leg_pieces(rng, cfg, quarter, first=not legs)
            centre = integrate_path(*pose, pieces)
            if not legs or _min_distance(_far_points(centre, keep_out), samples) >= clearance:
                break
        covered += centre.length
        if covered >= min_length:
            pieces[-1] = (pieces[-1][0] + _FINAL_EXTRA_M, 0.0, 0.0)
            legs.append(_Leg(integrate_path(*pose, pieces), tuple(bends)))
            break
        legs.append(_Leg(centre, tuple(bends)))
        samples.append(_far_points(centre, 0.0))
        kind = "four-way" if rng.random() < cfg.four_way_probability else "T"
        exits = _EXIT_SETS[kind][int(rng.integers(len(_EXIT_SETS[kind])))]
        valid = [e for e in exits if abs(end_quarter + DIRECTIONS[e]) <= 1]
        weights = np.array([_STRAIGHT_WEIGHT if e == "straight" else 1.0 for e in valid])
        decision = valid[int(rng.choice(len(valid), p=weights / weights.sum()))]
        radius = float(rng.uniform(left_lo, left_hi) if decision == "left" else rng.uniform(right_lo, right_hi))
        x, y, _ = centre.pose(centre.length)
        heading = end_quarter * math.pi / 2
        for exit_ in exits:
            if exit_ != decision:
                g = DIRECTIONS[exit_]
                arm = integrate_path(x, y, heading + g * math.pi / 2, [(float(rng.uniform(*_ARM_M)), 0.0, 0.0)], 1.0)
                far = _far_points(arm, keep_out)
                room = [i for i, p in enumerate(far) if _min_distance(p[None], samples) < clearance]
                if room:
                    arm = arm.slice(0.0, max(_MIN_ARM_M, keep_out + 2.0 * room[0] - 4.0))
                arms.append((arm, len(nodes)))
                samples.append(_far_points(arm, keep_out))
        nodes.append((kind, exits, decision, radius, heading))
        pose, quarter = (x, y, heading + DIRECTIONS[decision] * math.pi / 2), end_quarter + DIRECTIONS[decision]
    return _assemble(legs, arms, nodes, widths)


def _assemble(legs: list[_Leg], arms: list[tuple[TabulatedPath, int]],
              nodes: list[tuple[str, tuple[str, ...], str, float, float]],
              widths: tuple[float, float, float]) -> Route:
    """Roads (in drawing order: each leg, then the arms of the intersection it ends at), the network, lane routes."""
    lane_width, parking_width, sidewalk_width = widths
    half_width = lane_width + parking_width
    present = [{2} | {DIRECTIONS[e] % 4 for e in exits} for _, exits, _, _, _ in nodes]

    def outward(node: int, g: int) -> tuple[bool, bool]:
        """Side roads (left, right) at the start of a road leaving ``node`` in quarter turn ``g``."""
        return (g + 1) % 4 in present[node], (g - 1) % 4 in present[node]

    roads = []
    for k, leg in enumerate(legs):
        start = outward(k - 1, DIRECTIONS[nodes[k - 1][2]] % 4) if k else (False, False)
        end = (1 in present[k], 3 in present[k]) if k < len(nodes) else (False, False)
        roads.append(Road(leg.centre, start_node=k > 0, end_node=k < len(nodes), side_roads=start + end))
        for arm, node in arms:
            if node == k:
                g = round((float(arm.heading(0.0)) - nodes[node][4]) / (math.pi / 2)) % 4
                roads.append(Road(arm, start_node=True, side_roads=outward(node, g) + (False, False)))
    network = RoadNetwork(tuple(roads), lane_width, parking_width, sidewalk_width)

    forward = [_lane(leg.centre, leg.bends, False, lane_width) for leg in legs]
    ego = lane_route([f[0] for f in forward], [f[1] for f in forward], [(n[2], n[3]) for n in nodes], BEHIND_M,
                     lane_width, half_width)
    backward = [_lane(leg.centre, leg.bends, True, lane_width) for leg in reversed(legs)]
    (left_lo, left_hi), (right_lo, right_hi) = turn_radii(lane_width, parking_width)
    mirrored = {"left": ("right", (right_lo + right_hi) / 2), "right": ("left", (left_lo + left_hi) / 2),
                "straight": ("straight", 0.0)}
    oncoming = lane_route([b[0] for b in backward], [b[1] for b in backward],
                          [mirrored[n[2]] for n in reversed(nodes)], 0.0, lane_width, half_width)
    intersections = tuple(
        Intersection(kind, *(float(v) for v in legs[k].centre.position(legs[k].centre.length)), exits, decision,
                     *ego.manoeuvres[k][1:])
        for k, (kind, exits, decision, _, _) in enumerate(nodes)
    )
    return Route(network, intersections, ego, oncoming)
