"""TabulatedPath: a planar curve sampled by arc length; roads, lanes and every route of a random drive use it."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TabulatedPath:
    """Curve sampled densely by arc length: rows s, x, y, heading, curvature; straight beyond both ends."""

    samples: np.ndarray

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[0] != 5 or self.samples.shape[1] < 2:
            raise ValueError(f"samples must have shape (5, N >= 2), got {self.samples.shape}")
        if not (np.diff(self.samples[0]) > 0).all():
            raise ValueError("path arc length must increase strictly")

    @property
    def s(self) -> np.ndarray:
        """Arc length of the samples, starting at 0."""
        return self.samples[0]

    @property
    def length(self) -> float:
        """Arc length of the tabulated part."""
        return float(self.samples[0, -1])

    def heading(self, s: np.ndarray | float) -> np.ndarray:
        """Heading (rad, map frame) at ``s``; the end headings hold beyond the ends."""
        return np.interp(s, self.samples[0], self.samples[3])

    def curvature(self, s: np.ndarray | float) -> np.ndarray:
        """Signed curvature (1/m, positive = left) at ``s``; zero beyond the ends."""
        s = np.asarray(s, dtype=float)
        inside = (s >= 0.0) & (s <= self.length)
        return np.where(inside, np.interp(s, self.samples[0], self.samples[4]), 0.0)

    def position(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Map (x, y) at ``s``, continued along the end tangents beyond the ends."""
        s = np.asarray(s, dtype=float)
        ss, x, y, h = self.samples[:4]
        before, beyond = np.minimum(s, 0.0), np.maximum(s - self.length, 0.0)
        px = np.interp(s, ss, x) + before * math.cos(h[0]) + beyond * math.cos(h[-1])
        py = np.interp(s, ss, y) + before * math.sin(h[0]) + beyond * math.sin(h[-1])
        return px, py

    def point(self, s: np.ndarray | float, across: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Map (x, y) ``across`` metres left of the path at ``s`` (negative = right)."""
        x, y = self.position(s)
        h = self.heading(s)
        return x - across * np.sin(h), y + across * np.cos(h)

    def pose(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at ``s`` as floats."""
        x, y = self.position(s)
        return float(x), float(y), float(self.heading(s))

    def offset(self, across: float) -> TabulatedPath:
        """Parallel curve ``across`` metres to the left, re-parametrised by its own arc length."""
        s, x, y, h, k = self.samples
        stretch = 1.0 - k * across
        if (stretch <= 0).any():
            raise ValueError(f"offset {across} m exceeds the path's radius of curvature")
        new_s = np.concatenate([[0.0], np.cumsum(np.diff(s) * (stretch[1:] + stretch[:-1]) / 2)])
        return TabulatedPath(np.stack([new_s, x - across * np.sin(h), y + across * np.cos(h), h, k / stretch]))

    def reversed(self) -> TabulatedPath:
        """The same curve driven from its end to its start."""
        s, x, y, h, k = self.samples[:, ::-1]
        return TabulatedPath(np.stack([self.length - s, x, y, h + math.pi, -k]))

    def slice(self, start: float, end: float) -> TabulatedPath:
        """Part between arc lengths ``start`` and ``end`` (may reach beyond the ends), re-based to start at 0."""
        if end <= start:
            raise ValueError(f"empty slice [{start}, {end}]")
        inner = self.samples[0][(self.samples[0] > start) & (self.samples[0] < end)]
        s = np.concatenate([[start], inner, [end]])
        x, y = self.position(s)
        return TabulatedPath(np.stack([s - start, x, y, self.heading(s), self.curvature(s)]))

    @staticmethod
    def concat(parts: Sequence[TabulatedPath]) -> TabulatedPath:
        """Parts driven one after another; each starts where the previous ends (its first sample is dropped)."""
        blocks, base = [parts[0].samples], parts[0].length
        for part in parts[1:]:
            block = part.samples[:, 1:].copy()
            block[0] += base
            blocks.append(block)
            base += part.length
        return TabulatedPath(np.concatenate(blocks, axis=1))


def integrate_path(x: float, y: float, heading: float, pieces: Sequence[tuple[float, float, float]],
                   step: float = 0.25) -> TabulatedPath:
    """Path from a start pose through pieces (length, start curvature, end curvature) of linear curvature.

    Straights, arcs and clothoids are all such pieces; heading is integrated exactly, position by trapezoids.
    """
    s_parts, h_parts, k_parts = [np.zeros(1)], [np.array([heading])], [np.array([pieces[0][1]])]
    s0, h0 = 0.0, heading
    for length, k0, k1 in pieces:
        if length <= 0:
            raise ValueError(f"piece length must be positive, got {length}")
        u = np.linspace(0.0, length, max(1, math.ceil(length / step)) + 1)[1:]
        s_parts.append(s0 + u)
        h_parts.append(h0 + k0 * u + (k1 - k0) * u**2 / (2 * length))
        k_parts.append(k0 + (k1 - k0) * u / length)
        s0, h0 = s0 + length, h0 + (k0 + k1) * length / 2
    s, h, k = (np.concatenate(p) for p in (s_parts, h_parts, k_parts))
    ds = np.diff(s)
    px = x + np.concatenate([[0.0], np.cumsum(ds * (np.cos(h[1:]) + np.cos(h[:-1])) / 2)])
    py = y + np.concatenate([[0.0], np.cumsum(ds * (np.sin(h[1:]) + np.sin(h[:-1])) / 2)])
    return TabulatedPath(np.stack([s, px, py, h, k]))


def curve_pieces(deflection: float, radius: float, transition: float) -> list[tuple[float, float, float]]:
    """Clothoid-arc-clothoid turning by ``deflection`` rad (positive = left) at ``radius`` m."""
    k = math.copysign(1.0 / radius, deflection)
    arc = abs(deflection) * radius - transition
    if arc <= 0:
        raise ValueError(f"transition {transition} m too long for a {math.degrees(deflection):.0f} deg curve "
                         f"of radius {radius} m")
    return [(transition, 0.0, k), (arc, k, k), (transition, k, 0.0)]
