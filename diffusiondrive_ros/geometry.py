"""Rigid-body maths shared by every layer: sensor extrinsics, quaternions, point transforms. Pure numpy."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def rotation_from_euler(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation of REP-103 static-frame X-Y-Z angles: R = Rz(yaw) @ Ry(pitch) @ Rx(roll), as in URDF and tf2."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def rotation_from_quaternion(w: float, x: float, y: float, z: float) -> np.ndarray:
    """3x3 rotation of a quaternion, normalised first; ValueError for a zero or non-finite one."""
    q = np.array([w, x, y, z], dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"invalid rotation quaternion {q.tolist()} (w, x, y, z)")
    w, x, y, z = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def yaw_of_quaternion(w: float, x: float, y: float, z: float) -> float:
    """Rotation about z (rad) of a quaternion (the heading of a planar pose)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def homogeneous(rotation: np.ndarray, translation: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """4x4 transform of a 3x3 rotation and a translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


@dataclass(frozen=True)
class Extrinsic:
    """Pose of a sensor in the ego frame: translation in metres, REP-103 roll/pitch/yaw in radians."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        """Reject non-finite values early, where the configuration is read."""
        values = (self.x, self.y, self.z, self.roll, self.pitch, self.yaw)
        if not all(math.isfinite(value) for value in values):
            raise ValueError(f"Extrinsic: non-finite value in {self}")

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous transform mapping sensor-frame points into the ego frame."""
        return homogeneous(rotation_from_euler(self.roll, self.pitch, self.yaw), (self.x, self.y, self.z))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Copy of (N, 3+) points with the xyz columns moved by a 4x4 transform; extra columns kept."""
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points: expected shape (N, >=3), got {points.shape}")
    if matrix.shape != (4, 4):
        raise ValueError(f"transform: expected a 4x4 matrix, got {matrix.shape}")
    moved = points.copy()
    rotation, offset = matrix[:3, :3].astype(points.dtype), matrix[:3, 3].astype(points.dtype)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    # Column by column: faster than a thin (N,3)@(3,3) matmul and independent of the BLAS build (bench.py).
    for row in range(3):
        moved[:, row] = rotation[row, 0] * x + rotation[row, 1] * y + rotation[row, 2] * z + offset[row]
    return moved
