"""Painter's-algorithm rasteriser: draws the road and shaded boxes into one camera's image."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .camera import CameraModel
from .geometry import invert, rot_z
from .layout import RoadLayout
from .network import RoadNetwork
from .world import BoxSet


@dataclass(frozen=True, eq=False)
class Quads:
    """Flat convex quads to paint: vertices (M, 4, 3) in map, outward normals, RGB colours."""

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray

    @staticmethod
    def concat(items: Sequence[Quads]) -> Quads:
        """All quads of ``items`` in order."""
        return Quads(*(np.concatenate([getattr(q, f) for q in items]) for f in ("vertices", "normals", "colors")))


@dataclass(frozen=True)
class Lighting:
    """Sun, sky, ground colours and exposure of the rendered images; the defaults are the demo drive's."""

    sun: tuple[float, float, float] = (-0.45, -0.35, 0.82)
    """Direction towards the sun (map frame, need not be unit length)."""
    ambient: float = 0.55
    diffuse: float = 0.45
    exposure: float = 1.0
    """Gain on every colour: below 1 darker, above 1 brighter (clipped)."""
    sky_top: tuple[float, float, float] = (70.0, 130.0, 200.0)
    sky_horizon: tuple[float, float, float] = (190.0, 210.0, 235.0)
    terrain: tuple[float, float, float] = (96.0, 102.0, 82.0)
    asphalt: tuple[int, int, int] = (72, 72, 75)
    paint: tuple[int, int, int] = (235, 235, 230)

    def __post_init__(self) -> None:
        if self.ambient < 0 or self.diffuse < 0 or self.exposure <= 0:
            raise ValueError(f"ambient and diffuse must be >= 0 and exposure > 0, got {self.ambient}, "
                             f"{self.diffuse}, {self.exposure}")
        if not np.any(self.sun):
            raise ValueError("sun direction must not be zero")

    def ground_color(self, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        """An unshaded (flat, lit from above) colour under this exposure."""
        return tuple(int(min(255, round(c * self.exposure))) for c in rgb)


def _shade(color: np.ndarray, normals: np.ndarray, lighting: Lighting) -> np.ndarray:
    """Lambert shading with ambient light, so box faces are told apart."""
    sun = np.array(lighting.sun) / np.linalg.norm(lighting.sun)
    light = lighting.exposure * (lighting.ambient + lighting.diffuse * np.clip(normals @ sun, 0.0, 1.0))
    return np.clip(color[None].astype(float) * light[:, None], 0, 255).astype(np.uint8)


def box_quads(boxes: BoxSet, lighting: Lighting, max_width: float = 3.0) -> Quads:
    """Side faces cut into strips no wider than ``max_width`` plus the top face, per box.

    Narrow strips keep the painter's sort by distance right for people in front of facades.
    """
    verts, normals, colors = [], [], []
    for i in range(len(boxes)):
        (a, b, c), rot = boxes.size[i] / 2, rot_z(boxes.yaw[i])
        faces = []
        for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
            span = b if axis == 0 else a
            edges = np.linspace(-span, span, max(1, math.ceil(2 * span / max_width)) + 1)
            for e0, e1 in zip(edges[:-1], edges[1:]):
                t = np.array([[e0, -c], [e1, -c], [e1, c], [e0, c]])
                fixed = np.full(4, sign * (a if axis == 0 else b))
                local = np.column_stack([fixed, t[:, 0], t[:, 1]] if axis == 0 else [t[:, 0], fixed, t[:, 1]])
                normal = np.zeros(3)
                normal[axis] = sign
                faces.append((local, normal))
        top = np.array([[a, b, c], [-a, b, c], [-a, -b, c], [a, -b, c]])
        faces.append((top, np.array([0.0, 0.0, 1.0])))
        box_normals = np.array([rot @ n for _, n in faces])
        verts += [loc @ rot.T + boxes.center[i] for loc, _ in faces]
        normals.append(box_normals)
        colors.append(_shade(boxes.color[i], box_normals, lighting))
    if not verts:
        return Quads(np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    return Quads(np.array(verts), np.concatenate(normals), np.concatenate(colors))


def ground_quads(layout: RoadLayout | RoadNetwork, lighting: Lighting) -> Quads:
    """Asphalt then paint, both facing up."""
    road, paint = layout.surface_quads(), layout.marking_quads()
    asphalt, marking = lighting.ground_color(lighting.asphalt), lighting.ground_color(lighting.paint)
    colors = [asphalt] * len(road) + [marking] * len(paint)
    verts = np.array(road + paint)
    return Quads(verts, np.tile([0.0, 0.0, 1.0], (len(verts), 1)), np.array(colors, dtype=np.uint8))


def _clip_halfspace(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Sutherland-Hodgman: keep the part of a convex polygon where normal . p + offset >= 0."""
    d = poly @ normal + offset
    inside = d >= 0
    if inside.all():
        return poly
    if not inside.any():
        return poly[:0]
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if inside[i]:
            out.append(poly[i])
        if inside[i] != inside[j]:
            out.append(poly[i] + (poly[j] - poly[i]) * (d[i] / (d[i] - d[j])))
    return np.array(out)


class Rasteriser:
    """Paints quads into one camera's image: sky/terrain background, then far-to-near faces."""

    SUBPIXEL_BITS = 2
    GUARD = 1024

    def __init__(self, camera: CameraModel, lighting: Lighting) -> None:
        self.camera = camera
        self._background = self._make_background(lighting)

    def _make_background(self, lighting: Lighting) -> np.ndarray:
        """Sky gradient above the horizon (a level camera's centre row), terrain below."""
        cam = self.camera
        rows = np.arange(cam.height, dtype=float)[:, None]
        frac = np.clip(rows / max(cam.cy, 1.0), 0.0, 1.0)
        sky = (1 - frac) * np.array(lighting.sky_top) + frac * np.array(lighting.sky_horizon)
        img = np.where(rows < cam.cy, sky, np.array(lighting.terrain))
        img = np.clip(img * lighting.exposure, 0.0, 255.0)
        return np.ascontiguousarray(np.broadcast_to(img[:, None, :], (cam.height, cam.width, 3))).astype(np.uint8)

    def render(self, map_from_camera: np.ndarray, layers: Sequence[tuple[Quads, bool]]) -> np.ndarray:
        """RGB image of ``layers`` (quads, sort-by-distance) drawn in order over the background."""
        image = self._background.copy()
        camera_from_map = invert(map_from_camera)
        for quads, sort in layers:
            self._draw(image, camera_from_map, quads, sort)
        return image

    def _draw(self, image: np.ndarray, camera_from_map: np.ndarray, quads: Quads, sort: bool) -> None:
        """Cull (frustum, back faces), optionally sort far-to-near, then fill each quad.

        Quads fully in front of the near plane and inside the guard band are projected in one
        batch; only the others go through polygon clipping.
        """
        if not len(quads.vertices):
            return
        rot, trans = camera_from_map[:3, :3], camera_from_map[:3, 3]
        pts = quads.vertices @ rot.T + trans
        keep = self._in_frustum(pts)
        centroid = pts.mean(axis=1)
        keep &= np.einsum("ij,ij->i", quads.normals @ rot.T, centroid) < 0
        idx = np.flatnonzero(keep)
        if sort:
            distance = np.hypot(centroid[idx, 0], centroid[idx, 2])
            idx = idx[np.argsort(-distance, kind="stable")]
        pts = pts[idx]
        uv, simple = self._project_simple(pts)
        fixed = np.round(uv * (1 << self.SUBPIXEL_BITS)).astype(np.int32)
        colors = quads.colors[idx].tolist()
        for k in range(len(idx)):
            if simple[k]:
                cv2.fillConvexPoly(image, fixed[k], colors[k], cv2.LINE_8, self.SUBPIXEL_BITS)
            else:
                self._fill(image, pts[k], colors[k])

    def _project_simple(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates of (K, 4, 3) camera points and whether a quad needs no clipping."""
        cam, g = self.camera, self.GUARD
        z = pts[..., 2]
        simple = (z >= cam.near).all(axis=1)
        safe_z = np.where(simple[:, None], z, 1.0)
        uv = np.stack([cam.fx * pts[..., 0] / safe_z + cam.cx, cam.fy * pts[..., 1] / safe_z + cam.cy], axis=-1)
        inside = (uv >= -g).all(axis=(1, 2)) & (uv[..., 0] <= cam.width + g).all(axis=1) & (
            uv[..., 1] <= cam.height + g).all(axis=1)
        simple &= inside
        return np.where(simple[:, None, None], uv, 0.0), simple

    def _in_frustum(self, pts: np.ndarray) -> np.ndarray:
        """False for quads entirely behind the near plane or outside one side plane."""
        cam = self.camera
        x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
        outside = (
            (z < cam.near).all(axis=1)
            | (cam.fx * x + cam.cx * z < 0).all(axis=1)
            | (cam.fx * x + (cam.cx - cam.width) * z > 0).all(axis=1)
            | (cam.fy * y + cam.cy * z < 0).all(axis=1)
            | (cam.fy * y + (cam.cy - cam.height) * z > 0).all(axis=1)
        )
        return ~outside

    def _fill(self, image: np.ndarray, poly: np.ndarray, color: Sequence[int]) -> None:
        """Near-clip, project, guard-band clip (keeps OpenCV's fixed point in range), fill."""
        cam = self.camera
        poly = _clip_halfspace(poly, np.array([0.0, 0.0, 1.0]), -cam.near)
        if len(poly) < 3:
            return
        uv = np.column_stack([cam.fx * poly[:, 0] / poly[:, 2] + cam.cx, cam.fy * poly[:, 1] / poly[:, 2] + cam.cy])
        g = self.GUARD
        if (uv < -g).any() or (uv[:, 0] > cam.width + g).any() or (uv[:, 1] > cam.height + g).any():
            for normal, offset in (((1.0, 0.0), g), ((-1.0, 0.0), cam.width + g),
                                   ((0.0, 1.0), g), ((0.0, -1.0), cam.height + g)):
                uv = _clip_halfspace(uv, np.array(normal), offset)
                if len(uv) < 3:
                    return
        fixed = np.round(uv * (1 << self.SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillConvexPoly(image, fixed, color, cv2.LINE_8, self.SUBPIXEL_BITS)
