"""Rigid-body maths: REP-103 extrinsics, quaternions and point transforms against closed forms and transforms3d."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from transforms3d.euler import euler2mat, euler2quat, quat2euler

from diffusiondrive_ros.geometry import (
    Extrinsic,
    rotation_from_quaternion,
    transform_points,
    yaw_of_quaternion,
)


def test_yaw_of_90_degrees_maps_x_to_y() -> None:
    matrix = Extrinsic(1.0, 2.0, 3.0, yaw=math.pi / 2).matrix()
    np.testing.assert_allclose(matrix @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)
    np.testing.assert_allclose(matrix @ [0, 1, 0, 0], [-1, 0, 0, 0], atol=1e-12)


def test_matrix_is_rep103_static_xyz_and_matches_transforms3d() -> None:
    roll, pitch, yaw = 0.1, -0.2, 0.3
    c, s = math.cos, math.sin
    rx = np.array([[1, 0, 0], [0, c(roll), -s(roll)], [0, s(roll), c(roll)]])
    ry = np.array([[c(pitch), 0, s(pitch)], [0, 1, 0], [-s(pitch), 0, c(pitch)]])
    rz = np.array([[c(yaw), -s(yaw), 0], [s(yaw), c(yaw), 0], [0, 0, 1]])
    matrix = Extrinsic(0.5, -0.5, 1.5, roll, pitch, yaw).matrix()
    np.testing.assert_allclose(matrix[:3, :3], rz @ ry @ rx, atol=1e-12)
    np.testing.assert_allclose(matrix[:3, :3], euler2mat(roll, pitch, yaw, "sxyz"), atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], [0.5, -0.5, 1.5])
    np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])


def test_extrinsic_is_frozen_and_finite() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Extrinsic().x = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="non-finite"):
        Extrinsic(yaw=math.nan)


def test_transform_points_moves_xyz_and_keeps_extra_columns() -> None:
    points = np.array([[1, 0, 0, 42], [0, 2, 1, 7]], dtype=np.float32)
    moved = transform_points(points, Extrinsic(10.0, 0.0, 1.0, yaw=math.pi / 2).matrix())
    assert moved.dtype == np.float32 and moved.shape == points.shape
    np.testing.assert_allclose(moved, [[10, 1, 1, 42], [8, 0, 2, 7]], atol=1e-5)
    assert points[0, 0] == 1.0


def test_transform_points_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"expected shape \(N, >=3\)"):
        transform_points(np.zeros((4, 2)), np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        transform_points(np.zeros((4, 3)), np.eye(3))


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (0.05, -0.1, 1.2), (-0.4, 0.3, -2.9)])
def test_rotation_from_quaternion_matches_transforms3d_and_normalises(angles) -> None:
    quaternion = euler2quat(*angles, "sxyz")
    np.testing.assert_allclose(rotation_from_quaternion(*(quaternion * 2.5)), euler2mat(*angles, "sxyz"), atol=1e-12)


@pytest.mark.parametrize("quaternion", [(0.0, 0.0, 0.0, 0.0), (math.nan, 0.0, 0.0, 1.0)])
def test_rotation_from_quaternion_rejects_invalid(quaternion) -> None:
    with pytest.raises(ValueError, match="invalid rotation quaternion"):
        rotation_from_quaternion(*quaternion)


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5, math.pi - 1e-9])
def test_yaw_of_quaternion_is_the_heading(yaw) -> None:
    w, x, y, z = euler2quat(0.0, 0.0, yaw, "sxyz")
    assert yaw_of_quaternion(w, x, y, z) == pytest.approx(quat2euler([w, x, y, z], "sxyz")[2])
    assert yaw_of_quaternion(w, x, y, z) == pytest.approx(yaw)
