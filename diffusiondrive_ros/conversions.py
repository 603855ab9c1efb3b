"""ROS message <-> numpy conversions for the planner's inputs and outputs.

Shared by the live rclpy node and by offline bag replay (which deserialises bag bytes into the same
rclpy message classes), so it imports no torch and holds no state. Every malformed message is
rejected with a `ConversionError` that says what is wrong; the caller adds the topic name.
"""
from __future__ import annotations

import array
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, Transform
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CompressedImage, Image, Imu, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from transforms3d.affines import compose
from transforms3d.euler import euler2mat, quat2euler
from visualization_msgs.msg import Marker, MarkerArray

Stamp = Time | int
"""A ROS time stamp, or integer nanoseconds since the epoch."""

_NS_PER_S = 1_000_000_000


class ConversionError(ValueError):
    """A message (or array) that cannot be converted; the text says what was wrong."""


# ---------------------------------------------------------------------------------------------
# Time stamps and headers
# ---------------------------------------------------------------------------------------------

def stamp_to_ns(stamp: Time) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time (exact, no float rounding)."""
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """builtin_interfaces/Time of non-negative integer nanoseconds."""
    if ns < 0:
        raise ConversionError(f"Time: negative time stamp {ns} ns")
    sec, nanosec = divmod(int(ns), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def _header(stamp: Stamp, frame_id: str) -> Header:
    """std_msgs/Header from a Time or integer nanoseconds."""
    time = stamp if isinstance(stamp, Time) else ns_to_stamp(int(stamp))
    return Header(stamp=time, frame_id=frame_id)


def _byte_array(values: np.ndarray) -> array.array:
    """Raw bytes of an array as the array.array('B') rclpy stores uint8[] fields in (one copy)."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(values).view(np.uint8).reshape(-1))
    return data


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

_MONO16 = "mono16"

# encoding -> (bytes per pixel, cv2 code converting the stored pixels to RGB; None = already RGB)
_IMAGE_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "8UC3": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    _MONO16: (2, cv2.COLOR_GRAY2RGB),
}

# encoding -> cv2 code converting RGB to the stored pixels (mono16 is widened from mono8)
_RGB_TO_ENCODING: dict[str, int | None] = {
    "rgb8": None,
    "bgr8": cv2.COLOR_RGB2BGR,
    "8UC3": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGB2RGBA,
    "bgra8": cv2.COLOR_RGB2BGRA,
    "mono8": cv2.COLOR_RGB2GRAY,
    _MONO16: cv2.COLOR_RGB2GRAY,
}

_COMPRESSED_FORMATS = frozenset({"jpeg", "jpg", "png"})


def _image_encoding(encoding: str) -> tuple[int, int | None]:
    """Bytes per pixel and RGB conversion of a supported encoding."""
    try:
        return _IMAGE_ENCODINGS[encoding]
    except KeyError:
        supported = ", ".join(_IMAGE_ENCODINGS)
        raise ConversionError(
            f"Image: unsupported encoding {encoding!r} (supported: {supported})") from None


def _image_rows(msg: Image, bytes_per_pixel: int) -> np.ndarray:
    """(height, width*bpp) uint8 view of the pixel bytes, row padding (step) cut off."""
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ConversionError(f"Image: empty image ({width}x{height})")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ConversionError(
            f"Image: step {step} is smaller than width*bytes_per_pixel = {row_bytes} "
            f"for {msg.encoding!r}")
    size = len(msg.data)
    if size != step * height:
        raise ConversionError(f"Image: data has {size} bytes, expected step*height = {step * height}")
    return np.frombuffer(msg.data, np.uint8).reshape(height, step)[:, :row_bytes]


def image_to_rgb(msg: Image) -> np.ndarray:
    """uint8 RGB (H, W, 3) copy of a sensor_msgs/Image.

    Supports rgb8, bgr8, 8UC3 (read as bgr8), rgba8, bgra8 (alpha dropped), mono8 and mono16
    (scaled to 8 bit by keeping the high byte, i.e. value >> 8; `is_bigendian` respected).
    """
    bytes_per_pixel, to_rgb = _image_encoding(msg.encoding)
    rows = _image_rows(msg, bytes_per_pixel)
    if msg.encoding == _MONO16:
        high_byte = 0 if msg.is_bigendian else 1
        pixels = np.ascontiguousarray(rows.reshape(msg.height, msg.width, 2)[:, :, high_byte])
    else:
        pixels = rows.reshape(msg.height, msg.width, bytes_per_pixel)
    if to_rgb is None:
        return pixels.copy()
    return cv2.cvtColor(pixels, to_rgb)


def _compressed_kind(fmt: str) -> str:
    """'jpeg'/'png'/'' (unknown: decode by content) from a CompressedImage format string.

    Accepts plain names ('jpeg', 'png') and image_transport strings such as
    'rgb8; jpeg compressed bgr8'; rejects compressedDepth and other codecs.
    """
    words = set(re.findall(r"[a-z0-9]+", fmt.lower()))
    if "compresseddepth" in words:
        raise ConversionError(f"CompressedImage: compressedDepth images are not supported ({fmt!r})")
    kinds = words & _COMPRESSED_FORMATS
    if not kinds and fmt.strip():
        raise ConversionError(f"CompressedImage: unsupported format {fmt!r} (expected jpeg or png)")
    return "png" if "png" in kinds else ("jpeg" if kinds else "")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """uint8 RGB (H, W, 3) of a jpeg/png sensor_msgs/CompressedImage (grey images made RGB)."""
    kind = _compressed_kind(msg.format)
    encoded = np.frombuffer(msg.data, np.uint8)
    if encoded.size == 0:
        raise ConversionError("CompressedImage: data is empty")
    try:
        bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ConversionError(f"CompressedImage: cannot decode {encoded.size} bytes: {exc}") from None
    if bgr is None:
        raise ConversionError(
            f"CompressedImage: cannot decode {encoded.size} bytes as {kind or 'an image'} "
            f"(format {msg.format!r})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_rgb(rgb: np.ndarray) -> None:
    """Reject anything but a non-empty uint8 (H, W, 3) array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ConversionError(
            f"RGB image: expected non-empty uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")


def rgb_to_image(rgb: np.ndarray, stamp: Stamp, frame_id: str, encoding: str = "rgb8") -> Image:
    """sensor_msgs/Image of a uint8 RGB array in any encoding `image_to_rgb` reads.

    Mono encodings store the luminance; mono16 widens it to the full 16-bit range (x * 257),
    little-endian. Rows are unpadded (step = width * bytes per pixel).
    """
    _check_rgb(rgb)
    bytes_per_pixel, _ = _image_encoding(encoding)
    code = _RGB_TO_ENCODING[encoding]
    pixels = np.ascontiguousarray(rgb) if code is None else cv2.cvtColor(rgb, code)
    if encoding == _MONO16:
        pixels = (pixels.astype(np.uint16) * 257).astype("<u2")
    height, width = rgb.shape[:2]
    return Image(header=_header(stamp, frame_id), height=height, width=width, encoding=encoding,
                 is_bigendian=False, step=width * bytes_per_pixel, data=_byte_array(pixels))


def rgb_to_compressed(rgb: np.ndarray, stamp: Stamp, frame_id: str, fmt: str = "jpeg",
                      quality: int = 90) -> CompressedImage:
    """sensor_msgs/CompressedImage (jpeg or png) of a uint8 RGB array.

    The format string follows image_transport ('rgb8; jpeg compressed bgr8'); `quality` is the
    jpeg quality (0-100) and is ignored for png.
    """
    _check_rgb(rgb)
    if fmt not in ("jpeg", "png"):
        raise ConversionError(f"CompressedImage: unsupported format {fmt!r} (expected jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, encoded = cv2.imencode("." + fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ConversionError(f"CompressedImage: cv2 could not encode a {rgb.shape} image as {fmt}")
    return CompressedImage(header=_header(stamp, frame_id), format=f"rgb8; {fmt} compressed bgr8",
                           data=_byte_array(encoded))


# ---------------------------------------------------------------------------------------------
# Point clouds
# ---------------------------------------------------------------------------------------------

_XYZ = ("x", "y", "z")

_POINTFIELD_TYPES: dict[int, str] = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


class CloudPoints(NamedTuple):
    """Points of a cloud: (N, len(fields)) float32, and how many non-finite points were dropped."""

    points: np.ndarray
    num_dropped: int


def _field_dtype(field: PointField, point_step: int, byte_order: str) -> np.dtype:
    """numpy scalar type of one PointField, checked to be a single value inside the point."""
    if field.datatype not in _POINTFIELD_TYPES:
        raise ConversionError(f"PointCloud2: field {field.name!r} has unknown datatype {field.datatype}")
    if field.count > 1:
        raise ConversionError(
            f"PointCloud2: field {field.name!r} has count {field.count}, only scalar fields are supported")
    dtype = np.dtype(byte_order + _POINTFIELD_TYPES[field.datatype])
    if field.offset + dtype.itemsize > point_step:
        raise ConversionError(
            f"PointCloud2: field {field.name!r} (offset {field.offset}, {dtype.itemsize} bytes) "
            f"does not fit in point_step {point_step}")
    return dtype


def _cloud_dtype(msg: PointCloud2, names: Sequence[str]) -> np.dtype:
    """Structured dtype (itemsize = point_step) reading the named fields at their offsets.

    A count of 0 is read as 1 (some drivers leave it unset); other fields of the message are
    skipped, so their datatypes do not matter.
    """
    by_name: dict[str, PointField] = {}
    for field in msg.fields:
        by_name.setdefault(field.name, field)
    byte_order = ">" if msg.is_bigendian else "<"
    formats, offsets = [], []
    for name in names:
        if name not in by_name:
            present = ", ".join(by_name) or "none"
            raise ConversionError(f"PointCloud2: no field {name!r} (fields: {present})")
        field = by_name[name]
        formats.append(_field_dtype(field, msg.point_step, byte_order))
        offsets.append(field.offset)
    return np.dtype({"names": list(names), "formats": formats, "offsets": offsets,
                     "itemsize": msg.point_step})


def _cloud_table(msg: PointCloud2, dtype: np.dtype) -> np.ndarray:
    """(height, width) structured view of the cloud data, row padding (row_step) cut off."""
    height, width, row_step = msg.height, msg.width, msg.row_step
    row_bytes = width * msg.point_step
    if row_step < row_bytes:
        raise ConversionError(
            f"PointCloud2: row_step {row_step} is smaller than width*point_step = {row_bytes}")
    size = len(msg.data)
    if size != row_step * height:
        raise ConversionError(
            f"PointCloud2: data has {size} bytes, expected row_step*height = {row_step * height}")
    if height == 0 or width == 0:
        return np.empty((height, width), dtype)
    rows = np.frombuffer(msg.data, np.uint8).reshape(height, row_step)[:, :row_bytes]
    return rows.view(dtype)


def pointcloud2_to_xyz(msg: PointCloud2, fields: Sequence[str] = _XYZ) -> CloudPoints:
    """float32 (N, len(fields)) points of a sensor_msgs/PointCloud2, any layout.

    `fields` must start with 'x', 'y', 'z'; further names (e.g. 'intensity') add columns.
    Handles any field order, offsets and datatypes, padded point_step/row_step, organised
    (height > 1) clouds in row-major order and either byte order. Points with a NaN/Inf x, y or z
    (also FLOAT64 values outside the float32 range) are dropped and counted.
    """
    names = tuple(fields)
    if names[:3] != _XYZ:
        raise ValueError(f"fields must start with 'x', 'y', 'z', got {names}")
    table = _cloud_table(msg, _cloud_dtype(msg, names))
    points = np.empty((table.size, len(names)), np.float32)
    columns = points.reshape(*table.shape, len(names))
    with np.errstate(over="ignore"):  # FLOAT64 beyond the float32 range becomes inf, dropped below
        for index, name in enumerate(names):
            columns[..., index] = table[name]
    finite = np.isfinite(points[:, :3]).all(axis=1)
    if finite.all():
        return CloudPoints(points, 0)
    return CloudPoints(points[finite], int(finite.size - np.count_nonzero(finite)))


def xyz_to_pointcloud2(points: np.ndarray, stamp: Stamp, frame_id: str,
                       extra_fields: Sequence[str] | None = None) -> PointCloud2:
    """Unorganised little-endian float32 PointCloud2 with fields x, y, z and `extra_fields`.

    `points` is (N, 3 + len(extra_fields)); the columns map to the fields in order.
    """
    names = _XYZ + tuple(extra_fields or ())
    values = np.asarray(points, dtype="<f4")
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ConversionError(
            f"PointCloud2: expected points of shape (N, {len(names)}) for fields {names}, "
            f"got {values.shape}")
    point_step = 4 * len(names)
    cloud_fields = [PointField(name=name, offset=4 * index, datatype=PointField.FLOAT32, count=1)
                    for index, name in enumerate(names)]
    return PointCloud2(
        header=_header(stamp, frame_id), height=1, width=values.shape[0], fields=cloud_fields,
        is_bigendian=False, point_step=point_step, row_step=point_step * values.shape[0],
        data=_byte_array(values), is_dense=bool(np.isfinite(values[:, :3]).all()))


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Extrinsic:
    """Pose of a sensor in the ego frame: translation in metres, REP-103 roll/pitch/yaw in radians.

    The rotation is static-frame X-Y-Z (R = Rz(yaw) @ Ry(pitch) @ Rx(roll)), as in URDF and tf2.
    """

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
            raise ConversionError(f"Extrinsic: non-finite value in {self}")

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous transform mapping sensor-frame points into the ego frame."""
        rotation = euler2mat(self.roll, self.pitch, self.yaw, "sxyz")
        return compose([self.x, self.y, self.z], rotation, np.ones(3))

    @classmethod
    def from_transform(cls, transform: Transform) -> Extrinsic:
        """Extrinsic of a geometry_msgs/Transform (the quaternion is normalised)."""
        q = transform.rotation
        quaternion = np.array([q.w, q.x, q.y, q.z], dtype=np.float64)
        norm = float(np.linalg.norm(quaternion))
        if not math.isfinite(norm) or norm < 1e-9:
            raise ConversionError(
                f"Transform: invalid rotation quaternion {quaternion.tolist()} (w, x, y, z)")
        roll, pitch, yaw = quat2euler(quaternion / norm, "sxyz")
        t = transform.translation
        return cls(t.x, t.y, t.z, float(roll), float(pitch), float(yaw))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Copy of (N, 3+) points with the xyz columns moved by a 4x4 transform; extra columns kept."""
    if points.ndim != 2 or points.shape[1] < 3:
        raise ConversionError(f"points: expected shape (N, >=3), got {points.shape}")
    if matrix.shape != (4, 4):
        raise ConversionError(f"transform: expected a 4x4 matrix, got {matrix.shape}")
    moved = points.copy()
    rotation, offset = matrix[:3, :3].astype(points.dtype), matrix[:3, 3].astype(points.dtype)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    # Column by column: faster than a thin (N,3)@(3,3) matmul and independent of the BLAS build (bench.py).
    for row in range(3):
        moved[:, row] = rotation[row, 0] * x + rotation[row, 1] * y + rotation[row, 2] * z + offset[row]
    return moved


# ---------------------------------------------------------------------------------------------
# Ego state
# ---------------------------------------------------------------------------------------------

def _finite_pair(what: str, first: float, second: float) -> tuple[float, float]:
    """(first, second) as floats, rejected when either is NaN/Inf."""
    if not (math.isfinite(first) and math.isfinite(second)):
        raise ConversionError(f"{what}: non-finite value ({first}, {second})")
    return float(first), float(second)


def velocity_from_odometry(msg: Odometry) -> tuple[float, float]:
    """(vx, vy) in m/s in the ego frame.

    nav_msgs/Odometry gives the twist in `child_frame_id` (the ego frame, REP-105), so the
    linear twist is used as is, without rotating by the pose.
    """
    linear = msg.twist.twist.linear
    return _finite_pair("Odometry: twist.twist.linear", linear.x, linear.y)


def acceleration_from_imu(msg: Imu) -> tuple[float, float]:
    """(ax, ay) in m/s^2 from sensor_msgs/Imu linear_acceleration.

    Only x and y are used: the IMU reports specific force, so z carries gravity (and x/y carry a
    share of it when the vehicle is not level, which is accepted). An IMU that marks the
    acceleration as absent (covariance[0] == -1) is rejected.
    """
    if msg.linear_acceleration_covariance[0] == -1.0:
        raise ConversionError("Imu: linear_acceleration not provided (covariance[0] == -1)")
    acceleration = msg.linear_acceleration
    return _finite_pair("Imu: linear_acceleration", acceleration.x, acceleration.y)


# ---------------------------------------------------------------------------------------------
# Planner outputs
# ---------------------------------------------------------------------------------------------

# viridis sampled at 0, 0.25, 0.5, 0.75, 1 (dark purple -> yellow, brightness rises with score)
_COLORMAP_STOPS = np.array([
    [0.267, 0.005, 0.329],
    [0.229, 0.322, 0.546],
    [0.128, 0.567, 0.551],
    [0.369, 0.789, 0.383],
    [0.993, 0.906, 0.144],
])

_LINE_WIDTH = 0.1
_BEST_LINE_WIDTH = 0.35
_ALPHA = 0.5
_BEST_ALPHA = 1.0
_BEST_LIFT = 0.05
_SPHERE_SIZE = 0.15
_BEST_SPHERE_SIZE = 0.3
_TEXT_HEIGHT = 0.4
_TEXT_LIFT = 0.5
_MARKERS_PER_MODE = 3


def _check_trajectory(what: str, poses: np.ndarray) -> np.ndarray:
    """poses as float64 (..., T, 3) of x, y, heading, all finite."""
    checked = np.asarray(poses, dtype=np.float64)
    if checked.ndim < 2 or checked.shape[-1] != 3:
        raise ConversionError(f"{what}: expected poses of shape (..., T, 3), got {checked.shape}")
    if not np.isfinite(checked).all():
        raise ConversionError(f"{what}: poses contain NaN/Inf")
    return checked


def modes_to_path(best: np.ndarray, stamp: Stamp, frame_id: str,
                  current_pose_prefix: bool = False) -> Path:
    """nav_msgs/Path of one (T, 3) trajectory of x, y, heading (yaw about z) in `frame_id`.

    With `current_pose_prefix` the path starts at the ego pose (origin, identity orientation).
    Every pose carries the path's stamp and frame.
    """
    poses = _check_trajectory("Path", best)
    if poses.ndim != 2:
        raise ConversionError(f"Path: expected one trajectory of shape (T, 3), got {poses.shape}")
    if current_pose_prefix:
        poses = np.vstack([np.zeros((1, 3)), poses])
    header = _header(stamp, frame_id)
    path = Path(header=header)
    for x, y, heading in poses:
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z = math.sin(heading / 2.0)
        pose.pose.orientation.w = math.cos(heading / 2.0)
        path.poses.append(pose)
    return path


def score_colors(scores: np.ndarray) -> np.ndarray:
    """(K, 3) RGB in [0, 1] from a viridis-like map of min-max normalised scores.

    Normalisation is over the K scores of one message, so colours rank modes within a plan and
    are not comparable across plans; equal scores all get the top colour.
    """
    values = np.asarray(scores, dtype=np.float64)
    spread = values.max() - values.min() if values.size else 0.0
    level = (values - values.min()) / spread if spread > 0 else np.ones_like(values)
    stops = np.linspace(0.0, 1.0, len(_COLORMAP_STOPS))
    return np.stack([np.interp(level, stops, _COLORMAP_STOPS[:, c]) for c in range(3)], axis=1)


def _marker(header: Header, ns: str, marker_id: int, marker_type: int, rgb: np.ndarray,
            alpha: float, scale: float) -> Marker:
    """ADD marker with identity pose, uniform scale, colour, and lifetime 0 (kept until replaced)."""
    marker = Marker(header=header, ns=ns, id=marker_id, type=marker_type, action=Marker.ADD)
    marker.scale.x = marker.scale.y = marker.scale.z = scale
    marker.color = ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=alpha)
    return marker


def _mode_markers(header: Header, ns: str, index: int, mode: np.ndarray, rgb: np.ndarray,
                  label: str, is_best: bool) -> list[Marker]:
    """Line strip from the ego through the poses, spheres at the poses and a score label."""
    first_id = 1 + _MARKERS_PER_MODE * index
    alpha = _BEST_ALPHA if is_best else _ALPHA
    lift = _BEST_LIFT if is_best else 0.0
    line = _marker(header, ns, first_id, Marker.LINE_STRIP, rgb, alpha,
                   _BEST_LINE_WIDTH if is_best else _LINE_WIDTH)
    line.points = [Point(z=lift)] + [Point(x=float(x), y=float(y), z=lift) for x, y, _ in mode]
    spheres = _marker(header, ns, first_id + 1, Marker.SPHERE_LIST, rgb, alpha,
                      _BEST_SPHERE_SIZE if is_best else _SPHERE_SIZE)
    spheres.points = line.points[1:]
    text = _marker(header, ns, first_id + 2, Marker.TEXT_VIEW_FACING, np.ones(3), alpha, _TEXT_HEIGHT)
    text.pose.position.x, text.pose.position.y = float(mode[-1, 0]), float(mode[-1, 1])
    text.pose.position.z = _TEXT_LIFT
    text.text = label
    return [line, spheres, text]


def modes_to_markers(modes: np.ndarray, scores: np.ndarray, best_index: int, stamp: Stamp,
                     frame_id: str, ns: str = "diffusiondrive") -> MarkerArray:
    """visualization_msgs/MarkerArray drawing every mode, coloured by score.

    First a DELETEALL for `ns` (so no marker of a previous plan lingers when K changes), then per
    mode k the ids 3k+1 (LINE_STRIP from the ego origin), 3k+2 (SPHERE_LIST at the poses) and
    3k+3 (TEXT_VIEW_FACING '#rank score', raw score with 2 decimals, rank 1 = highest score).
    The best mode is wider, opaque and lifted slightly so it draws on top.
    """
    trajectories = _check_trajectory("MarkerArray", modes)
    values = np.asarray(scores, dtype=np.float64)
    count = trajectories.shape[0]
    if trajectories.ndim != 3 or values.shape != (count,):
        raise ConversionError(
            f"MarkerArray: expected modes (K, T, 3) and scores (K,), got {trajectories.shape} "
            f"and {values.shape}")
    if not np.isfinite(values).all():
        raise ConversionError("MarkerArray: scores contain NaN/Inf")
    if count and not 0 <= best_index < count:
        raise ConversionError(f"MarkerArray: best_index {best_index} outside 0..{count - 1}")
    header = _header(stamp, frame_id)
    markers = [Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL)]
    colors = score_colors(values)
    ranks = np.empty(count, dtype=int)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, count + 1)
    for index in range(count):
        label = f"#{ranks[index]} {values[index]:.2f}"
        markers += _mode_markers(header, ns, index, trajectories[index], colors[index], label,
                                 index == best_index)
    return MarkerArray(markers=markers)
