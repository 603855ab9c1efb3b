"""rosbags ROS 2 message objects (TF, odometry, IMU, point cloud, images) built from a scene."""
from __future__ import annotations

import math

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore
from transforms3d.quaternions import mat2quat

from .camera import CAMERA_RIG
from .geometry import pose_matrix, rot_z
from .interface import BASE_FRAME, LIDAR_FRAME, MAP_FRAME, camera_frame, optical_frame
from .motion import EgoState
from .scene import SyntheticScene

# Standard gravity (m/s^2): the IMU reports it as specific force along +z.
GRAVITY = 9.80665


class MessageFactory:
    """Builds rosbags message objects for one scene."""

    def __init__(self, scene: SyntheticScene) -> None:
        self.scene = scene
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.types = self.typestore.types

    def serialize(self, msg: object) -> bytes:
        """CDR bytes of ``msg``."""
        return self.typestore.serialize_cdr(msg, msg.__msgtype__)

    def header(self, stamp_ns: int, frame_id: str) -> object:
        """std_msgs/Header with a nanosecond stamp."""
        stamp = self.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        return self.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def quaternion(self, rotation: np.ndarray) -> object:
        """geometry_msgs/Quaternion of a rotation matrix."""
        w, x, y, z = mat2quat(rotation)
        return self.types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))

    def vector3(self, x: float, y: float, z: float) -> object:
        """geometry_msgs/Vector3."""
        return self.types["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))

    def transform(self, stamp_ns: int, parent: str, child: str, pose: np.ndarray) -> object:
        """geometry_msgs/TransformStamped parent <- child."""
        t = self.types
        tf = t["geometry_msgs/msg/Transform"](translation=self.vector3(*pose[:3, 3]),
                                              rotation=self.quaternion(pose[:3, :3]))
        return t["geometry_msgs/msg/TransformStamped"](header=self.header(stamp_ns, parent), child_frame_id=child,
                                                       transform=tf)

    def tf_static(self, stamp_ns: int) -> object:
        """All sensor extrinsics: base_link -> lidar_top, camera_<n>, camera_<n>_optical."""
        transforms = [self.transform(stamp_ns, BASE_FRAME, LIDAR_FRAME, self.scene.lidar.base_from_lidar)]
        for mount in CAMERA_RIG:
            body = pose_matrix(mount.x, mount.y, mount.z, math.radians(mount.yaw_deg))
            transforms.append(self.transform(stamp_ns, BASE_FRAME, camera_frame(mount.name), body))
            optical = self.scene.cameras[mount.name].base_from_camera
            transforms.append(self.transform(stamp_ns, BASE_FRAME, optical_frame(mount.name), optical))
        return self.types["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def command(self, value: int) -> object:
        """std_msgs/UInt8 driving command."""
        return self.types["std_msgs/msg/UInt8"](data=value)

    def odometry(self, stamp_ns: int, state: EgoState) -> object:
        """nav_msgs/Odometry: pose in map, twist in base_link."""
        t = self.types
        cov = np.diag([1e-4] * 6).ravel()
        pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=state.x, y=state.y, z=0.0),
                                          orientation=self.quaternion(rot_z(state.yaw)))
        twist = t["geometry_msgs/msg/Twist"](linear=self.vector3(state.speed, 0.0, 0.0),
                                            angular=self.vector3(0.0, 0.0, state.yaw_rate))
        return t["nav_msgs/msg/Odometry"](
            header=self.header(stamp_ns, MAP_FRAME), child_frame_id=BASE_FRAME,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=cov),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=cov.copy()),
        )

    def imu(self, stamp_ns: int, state: EgoState) -> object:
        """sensor_msgs/Imu: specific force (gravity on +z), yaw rate, map orientation."""
        cov = np.diag([1e-4] * 3).ravel()
        return self.types["sensor_msgs/msg/Imu"](
            header=self.header(stamp_ns, BASE_FRAME),
            orientation=self.quaternion(rot_z(state.yaw)), orientation_covariance=cov,
            angular_velocity=self.vector3(0.0, 0.0, state.yaw_rate), angular_velocity_covariance=cov.copy(),
            linear_acceleration=self.vector3(state.accel, state.lateral_accel, GRAVITY),
            linear_acceleration_covariance=cov.copy(),
        )

    def pointcloud(self, stamp_ns: int, points: np.ndarray) -> object:
        """sensor_msgs/PointCloud2 with float32 x, y, z, intensity."""
        t = self.types
        field_type = t["sensor_msgs/msg/PointField"]
        fields = [field_type(name=n, offset=4 * k, datatype=field_type.FLOAT32, count=1)
                  for k, n in enumerate(("x", "y", "z", "intensity"))]
        data = np.frombuffer(np.ascontiguousarray(points, dtype="<f4").tobytes(), dtype=np.uint8)
        return t["sensor_msgs/msg/PointCloud2"](
            header=self.header(stamp_ns, LIDAR_FRAME), height=1, width=len(points), fields=fields,
            is_bigendian=False, point_step=16, row_step=16 * len(points), data=data, is_dense=True,
        )

    def compressed_image(self, stamp_ns: int, name: str, rgb: np.ndarray) -> object:
        """sensor_msgs/CompressedImage, JPEG."""
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.scene.config.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for camera {name}")
        return self.types["sensor_msgs/msg/CompressedImage"](
            header=self.header(stamp_ns, optical_frame(name)), format="jpeg", data=encoded.reshape(-1))

    def camera_info(self, stamp_ns: int, name: str) -> object:
        """sensor_msgs/CameraInfo (plumb_bob, no distortion)."""
        t = self.types
        cam = self.scene.cameras[name]
        roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return t["sensor_msgs/msg/CameraInfo"](
            header=self.header(stamp_ns, cam.frame_id), height=cam.height, width=cam.width,
            distortion_model="plumb_bob", d=np.zeros(5), k=cam.K.ravel(), r=np.eye(3).ravel(), p=cam.P.ravel(),
            binning_x=0, binning_y=0, roi=roi,
        )
