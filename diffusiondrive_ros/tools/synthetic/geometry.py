"""Rigid-transform helpers (yaw rotations, 4x4 poses, angle wrapping) shared by the generator."""
from __future__ import annotations

import math

import numpy as np


def rot_z(yaw: float) -> np.ndarray:
    """3x3 rotation about z."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose_matrix(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """4x4 rigid transform from translation and yaw."""
    m = np.eye(4)
    m[:3, :3] = rot_z(yaw)
    m[:3, 3] = (x, y, z)
    return m


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform."""
    inv = np.eye(4)
    inv[:3, :3] = m[:3, :3].T
    inv[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return inv


def wrap(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi
