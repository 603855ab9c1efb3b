"""ROS message <-> numpy conversions: images, point clouds, odometry, IMU, transforms and time stamps.

Shared by the live rclpy node and by offline bag replay (which deserialises bag bytes into the same
rclpy message classes), so it imports no torch and holds no state. Every malformed message is
rejected with a `ConversionError` that says what is wrong; the caller adds the topic name.
"""
from __future__ import annotations

import array
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage, Image, Imu, PointCloud2, PointField
from std_msgs.msg import Header

from ..geometry import homogeneous, rotation_from_quaternion

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


def make_header(stamp: Stamp, frame_id: str) -> Header:
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
    return Image(header=make_header(stamp, frame_id), height=height, width=width, encoding=encoding,
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
    return CompressedImage(header=make_header(stamp, frame_id), format=f"rgb8; {fmt} compressed bgr8",
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
    """Numpy scalar type of one PointField, checked to be a single value inside the point."""
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


def pointcloud2_to_points(msg: PointCloud2, fields: Sequence[str] = _XYZ) -> CloudPoints:
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
        header=make_header(stamp, frame_id), height=1, width=values.shape[0], fields=cloud_fields,
        is_bigendian=False, point_step=point_step, row_step=point_step * values.shape[0],
        data=_byte_array(values), is_dense=bool(np.isfinite(values[:, :3]).all()))


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------

def transform_to_matrix(transform: object) -> np.ndarray:
    """4x4 parent <- child of a geometry_msgs/Transform from any message library (rclpy, rosbags)."""
    q, t = transform.rotation, transform.translation
    try:
        rotation = rotation_from_quaternion(q.w, q.x, q.y, q.z)
    except ValueError as error:
        raise ConversionError(f"Transform: {error}") from error
    return homogeneous(rotation, (t.x, t.y, t.z))


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


