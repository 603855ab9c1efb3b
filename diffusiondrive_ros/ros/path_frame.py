"""The planned Path moved from the ego frame into the odometry frame, with the odometry pose at the cloud stamp.

For controllers that track a path in `odom`/`map` rather than in `base_link`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path

from ..geometry import homogeneous, rotation_from_quaternion
from .conversions import ConversionError, make_header, stamp_to_ns


def _quaternion_product(a: tuple[float, float, float, float],
                        b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Hamilton product a * b of (w, x, y, z) quaternions: rotation b, then a."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw)


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)


def odometry_pose_at(odom: Any, stamp_ns: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(position (3,), orientation (w, x, y, z)) of the ego in the odometry frame at `stamp_ns`: the message's pose
    moved by its ego-frame twist over the stamp difference (first order; the difference is within the odometry
    tolerance). ConversionError for a zero or non-finite orientation.
    """
    q = odom.pose.pose.orientation
    p = odom.pose.pose.position
    try:
        rotation = rotation_from_quaternion(q.w, q.x, q.y, q.z)
    except ValueError as error:
        raise ConversionError(f"Odometry: pose.pose.orientation: {error}") from error
    dt = (stamp_ns - stamp_to_ns(odom.header.stamp)) / 1e9
    twist = odom.twist.twist
    step = np.array([twist.linear.x, twist.linear.y, twist.linear.z]) * dt
    position = np.array([p.x, p.y, p.z]) + rotation @ step
    norm = math.sqrt(q.w**2 + q.x**2 + q.y**2 + q.z**2)  # not zero: rotation_from_quaternion accepted it
    unit = (q.w / norm, q.x / norm, q.y / norm, q.z / norm)
    orientation = _quaternion_product(unit, _yaw_quaternion(twist.angular.z * dt))
    if not (np.isfinite(position).all() and all(math.isfinite(v) for v in orientation)):
        raise ConversionError("Odometry: non-finite pose or twist")
    return position, orientation


def _pose_matrix(position: np.ndarray, orientation: tuple[float, float, float, float]) -> np.ndarray:
    """4x4 of a pose given as `odometry_pose_at` gives it."""
    return homogeneous(rotation_from_quaternion(*orientation), position)


def odometry_matrix_at(odom: Any, stamp_ns: int) -> np.ndarray:
    """4x4 odometry frame <- ego frame at `stamp_ns` (`odometry_pose_at`)."""
    return _pose_matrix(*odometry_pose_at(odom, stamp_ns))


def path_in_odometry_frame(path: Path, odom: Any, stamp_ns: int) -> Path:
    """Copy of an ego-frame Path (planar poses) in `odom.header.frame_id`, placed by the pose at `stamp_ns`."""
    position, orientation = odometry_pose_at(odom, stamp_ns)
    matrix = _pose_matrix(position, orientation)
    moved = Path(header=make_header(path.header.stamp, odom.header.frame_id))
    for pose in path.poses:
        point = matrix @ np.array([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z, 1.0])
        o = pose.pose.orientation
        new = PoseStamped(header=moved.header)
        new.pose.position.x, new.pose.position.y, new.pose.position.z = (float(v) for v in point[:3])
        (new.pose.orientation.w, new.pose.orientation.x, new.pose.orientation.y,
         new.pose.orientation.z) = _quaternion_product(orientation, (o.w, o.x, o.y, o.z))
        moved.poses.append(new)
    return moved
