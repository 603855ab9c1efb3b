"""Ego-frame geometry of the pictures: the pinhole camera, smooth curves through poses, headings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo

from diffusiondrive_ros.ros import conversions


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """Undistorted pinhole camera: intrinsics K, image size and its pose base_link <- optical frame."""

    K: np.ndarray  # 3x3 intrinsic matrix
    width: int
    height: int
    base_from_optical: np.ndarray
    near_m: float = 0.5

    @classmethod
    def from_camera_info(cls, info: CameraInfo, base_from_optical: np.ndarray) -> PinholeCamera:
        """Camera of a sensor_msgs/CameraInfo (K; distortion is ignored) and its optical-frame pose."""
        intrinsics = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
            raise conversions.ConversionError("CameraInfo: K has no focal length (uncalibrated camera)")
        return cls(intrinsics, int(info.width), int(info.height),
                   np.asarray(base_from_optical, dtype=np.float64))

    def scaled(self, factor: float) -> PinholeCamera:
        """The same camera for its image resized by `factor` (pixel centres kept aligned)."""
        intrinsics = self.K.copy()
        intrinsics[:2, :2] *= factor
        intrinsics[:2, 2] = (intrinsics[:2, 2] + 0.5) * factor - 0.5
        return PinholeCamera(intrinsics, round(self.width * factor), round(self.height * factor),
                             self.base_from_optical, self.near_m)

    def to_optical(self, points_ego: np.ndarray) -> np.ndarray:
        """(N, 3) base_link points expressed in the optical frame (z forward, x right, y down)."""
        points = np.asarray(points_ego, dtype=np.float64).reshape(-1, 3)
        rotation, origin = self.base_from_optical[:3, :3], self.base_from_optical[:3, 3]
        return (points - origin) @ rotation

    def project(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of base_link points, NaN behind the camera, and whether each lands in the image."""
        optical = self.to_optical(points_ego)
        uv = np.full((len(optical), 2), np.nan)
        in_front = optical[:, 2] > self.near_m
        uv[in_front] = self.optical_to_pixels(optical[in_front])
        with np.errstate(invalid="ignore"):
            inside = ((uv[:, 0] >= 0) & (uv[:, 0] < self.width)
                      & (uv[:, 1] >= 0) & (uv[:, 1] < self.height))
        return uv, in_front & inside

    def optical_to_pixels(self, optical: np.ndarray) -> np.ndarray:
        """(N, 2) pixel (u, v) of optical-frame points, which must lie in front of the camera."""
        normalised = optical[:, :2] / optical[:, 2:3]
        return normalised @ self.K[:2, :2].T + self.K[:2, 2]


def smooth_curves(points: np.ndarray, samples_per_segment: int) -> np.ndarray:
    """(..., M, D) polylines as (..., (M-1)*n+1, D) centripetal Catmull-Rom curves through every point.

    Planner poses are 0.5 s apart; a curve through them reads as the motion, straight chords do not.
    The centripetal knots keep the curve from overshooting or looping at uneven spacing or stops.
    """
    p = np.asarray(points, dtype=np.float64)
    count = p.shape[-2]
    if count < 2 or samples_per_segment < 2:
        return p
    extended = np.concatenate([2 * p[..., :1, :] - p[..., 1:2, :], p,
                               2 * p[..., -1:, :] - p[..., -2:-1, :]], axis=-2)
    gaps = np.maximum(np.linalg.norm(np.diff(extended, axis=-2), axis=-1), 1e-12) ** 0.5
    knots = np.concatenate([np.zeros((*gaps.shape[:-1], 1)), np.cumsum(gaps, axis=-1)], axis=-1)
    p0, p1, p2, p3 = (extended[..., k:k + count - 1, None, :] for k in range(4))
    t0, t1, t2, t3 = (knots[..., k:k + count - 1, None, None] for k in range(4))
    t = t1 + (t2 - t1) * (np.arange(samples_per_segment) / samples_per_segment)[:, None]
    a1 = ((t1 - t) * p0 + (t - t0) * p1) / (t1 - t0)
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    curve = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)
    curve = curve.reshape(*p.shape[:-2], (count - 1) * samples_per_segment, p.shape[-1])
    return np.concatenate([curve, p[..., -1:, :]], axis=-2)


def with_origin(poses: np.ndarray) -> np.ndarray:
    """(..., P, 2) xy of poses with the ego origin prepended: trajectories start at the ego."""
    xy = np.asarray(poses, dtype=np.float64)[..., :2]
    return np.concatenate([np.zeros((*xy.shape[:-2], 1, 2)), xy], axis=-2)


def headings_from_polyline(xy_from_origin: np.ndarray) -> np.ndarray:
    """(K, P) heading of each pose: direction of the segment reaching it (kept while standing still)."""
    steps = np.diff(xy_from_origin, axis=-2)
    headings = np.arctan2(steps[..., 1], steps[..., 0])
    moving = np.hypot(steps[..., 0], steps[..., 1]) > 1e-6
    for j in range(1, headings.shape[-1]):
        headings[..., j] = np.where(moving[..., j], headings[..., j], headings[..., j - 1])
    return headings
