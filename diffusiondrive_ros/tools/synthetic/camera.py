"""Camera rig and the undistorted pinhole CameraModel: intrinsics, optical extrinsics, projection."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import invert
from .interface import optical_frame


@dataclass(frozen=True)
class CameraMount:
    """Where a camera sits on the ego (base_link, metres) and where it looks."""

    name: str
    x: float
    y: float
    z: float
    yaw_deg: float
    hfov_deg: float = 70.0


CAMERA_RIG = (
    CameraMount("left", 1.4, 0.45, 1.55, 55.0),
    CameraMount("front", 1.6, 0.0, 1.55, 0.0),
    CameraMount("right", 1.4, -0.45, 1.55, -55.0),
)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Undistorted pinhole camera with its base_link extrinsic (optical frame)."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    base_from_camera: np.ndarray
    near: float = 0.1

    @classmethod
    def from_mount(cls, mount: CameraMount, width: int, height: int) -> CameraModel:
        """Square-pixel camera with the mount's horizontal FOV and a level optical axis."""
        f = (width / 2) / math.tan(math.radians(mount.hfov_deg) / 2)
        return cls(mount.name, width, height, f, f, width / 2, height / 2, _optical_pose(mount))

    @property
    def frame_id(self) -> str:
        """Optical frame id used in image headers."""
        return optical_frame(self.name)

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the intrinsic matrix
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the usual name of the projection matrix
        """3x4 projection matrix of the (already rectified) image."""
        return np.hstack([self.K, np.zeros((3, 1))])

    @property
    def camera_from_base(self) -> np.ndarray:
        """4x4 transform taking base_link points into the optical frame."""
        return invert(self.base_from_camera)

    def project(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel (u, v) of base_link points (N, 3) and whether each is in front and in the image."""
        pts = np.asarray(points_ego, dtype=float).reshape(-1, 3)
        cam = pts @ self.camera_from_base[:3, :3].T + self.camera_from_base[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * cam[:, 0] / z + self.cx
            v = self.fy * cam[:, 1] / z + self.cy
        valid = (z > self.near) & (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        return u, v, valid


def _optical_pose(mount: CameraMount) -> np.ndarray:
    """base_link <- optical frame: z along the viewing direction, x right, y down."""
    yaw = math.radians(mount.yaw_deg)
    forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    m = np.eye(4)
    m[:3, :3] = np.column_stack([right, [0.0, 0.0, -1.0], forward])
    m[:3, 3] = (mount.x, mount.y, mount.z)
    return m
