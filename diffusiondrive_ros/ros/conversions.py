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

_BAYER, _PIXEL_PAIRS = "bayer", "4:2:2"


class ImageEncoding(NamedTuple):
    """How a sensor_msgs/Image encoding stores its pixels and how they become RGB."""

    channels: int
    """Stored values per pixel (2 for packed 4:2:2: Y, then U or V)."""
    depth: int
    """Bytes per stored value: 1, or 2 for 16-bit encodings (byte order from `is_bigendian`)."""
    to_rgb: int | None
    """cv2 code converting the stored values to RGB; None when they already are RGB."""
    layout: str = ""
    """'bayer' (one colour per pixel, needs 2x2 pixels), '4:2:2' (pixel pairs share U and V: even width) or ''."""


# OpenCV names a Bayer pattern after the 2x2 block at row 1, column 1, ROS after the one at row 0, column 0:
# ROS rggb = OpenCV BG, bggr = RG, gbrg = GR, grbg = GB (test_encodings.py checks it with hand-built mosaics).
_BAYER_TO_RGB = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
                 "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}

IMAGE_ENCODINGS: dict[str, ImageEncoding] = {
    "rgb8": ImageEncoding(3, 1, None),
    "bgr8": ImageEncoding(3, 1, cv2.COLOR_BGR2RGB),
    "8UC3": ImageEncoding(3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": ImageEncoding(4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": ImageEncoding(4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": ImageEncoding(1, 1, cv2.COLOR_GRAY2RGB),
    "rgb16": ImageEncoding(3, 2, None),
    "bgr16": ImageEncoding(3, 2, cv2.COLOR_BGR2RGB),
    "rgba16": ImageEncoding(4, 2, cv2.COLOR_RGBA2RGB),
    "bgra16": ImageEncoding(4, 2, cv2.COLOR_BGRA2RGB),
    "mono16": ImageEncoding(1, 2, cv2.COLOR_GRAY2RGB),
    # 4:2:2 (BT.601, Y in 16..235, as OpenCV converts it). sensor_msgs/image_encodings.hpp: "uyvy" (fourcc UYVY)
    # and its deprecated name "yuv422"; "yuyv" (fourcc YUYV, also called YUY2) and its deprecated "yuv422_yuy2".
    "uyvy": ImageEncoding(2, 1, cv2.COLOR_YUV2RGB_UYVY, _PIXEL_PAIRS),
    "yuv422": ImageEncoding(2, 1, cv2.COLOR_YUV2RGB_UYVY, _PIXEL_PAIRS),
    "yuyv": ImageEncoding(2, 1, cv2.COLOR_YUV2RGB_YUYV, _PIXEL_PAIRS),
    "yuv422_yuy2": ImageEncoding(2, 1, cv2.COLOR_YUV2RGB_YUYV, _PIXEL_PAIRS),
} | {
    f"bayer_{pattern}{bits}": ImageEncoding(1, bits // 8, code, _BAYER)
    for pattern, code in _BAYER_TO_RGB.items() for bits in (8, 16)
}
"""Every Image encoding `image_to_rgb` reads."""

# encoding -> cv2 code converting RGB to the stored pixels (mono16 is widened from mono8)
_RGB_TO_ENCODING: dict[str, int | None] = {
    "rgb8": None,
    "bgr8": cv2.COLOR_RGB2BGR,
    "8UC3": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGB2RGBA,
    "bgra8": cv2.COLOR_RGB2BGRA,
    "mono8": cv2.COLOR_RGB2GRAY,
    "mono16": cv2.COLOR_RGB2GRAY,
}

MAX_COMPRESSED_PIXELS = 50_000_000
"""Largest width x height a CompressedImage may declare (8K UHD is 33 Mpx); checked before decoding, since the
decoder allocates what the header declares."""

_COMPRESSED_FORMATS = frozenset({"jpeg", "jpg", "png"})
_SIGNATURES = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
_JPEG_END = b"\xff\xd9"
_JPEG_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


def _image_encoding(encoding: str) -> ImageEncoding:
    """How a supported encoding is stored; ConversionError listing the supported ones otherwise."""
    try:
        return IMAGE_ENCODINGS[encoding]
    except KeyError:
        supported = ", ".join(IMAGE_ENCODINGS)
        raise ConversionError(
            f"Image: unsupported encoding {encoding!r} (supported: {supported})") from None


def _image_rows(msg: Image, bytes_per_pixel: int) -> np.ndarray:
    """(height, width*bpp) uint8 view of the pixel bytes, row padding (step) cut off.

    The sizes are checked against the data before anything is allocated, so absurd dimensions cost nothing.
    """
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


def _check_layout(msg: Image, encoding: ImageEncoding) -> None:
    """Reject sizes that a Bayer mosaic or a 4:2:2 image cannot have."""
    if encoding.layout == _BAYER and (msg.height < 2 or msg.width < 2):
        raise ConversionError(
            f"Image: {msg.encoding!r} needs at least 2x2 pixels (one Bayer cell), got {msg.width}x{msg.height}")
    if encoding.layout == _PIXEL_PAIRS and msg.width % 2:
        raise ConversionError(
            f"Image: {msg.encoding!r} stores pixel pairs, so its width must be even, got {msg.width}")


def _stored_values(msg: Image, encoding: ImageEncoding) -> np.ndarray:
    """(H, W, channels) stored values: uint8, or native-order uint16 for 16-bit encodings."""
    rows = _image_rows(msg, encoding.channels * encoding.depth)
    _check_layout(msg, encoding)
    if encoding.depth == 2:
        order = ">u2" if msg.is_bigendian else "<u2"
        rows = np.ascontiguousarray(rows).view(order).astype(np.uint16, copy=False)
    return rows.reshape(msg.height, msg.width, encoding.channels)


def image_to_rgb(msg: Image) -> np.ndarray:
    """uint8 RGB (H, W, 3) copy of a sensor_msgs/Image in any encoding of IMAGE_ENCODINGS.

    8UC3 is read as bgr8; alpha is dropped; mono is repeated into the three channels; Bayer mosaics are
    demosaiced by OpenCV (bilinear) at their own depth; 4:2:2 is converted by OpenCV. 16-bit encodings respect
    `is_bigendian` and keep the high byte of each value (value >> 8). Row padding (`step`) is skipped.
    """
    encoding = _image_encoding(msg.encoding)
    values = _stored_values(msg, encoding)
    if encoding.layout == _BAYER:
        values = values[..., 0]
    rgb = values if encoding.to_rgb is None else cv2.cvtColor(values, encoding.to_rgb)
    if encoding.depth == 2:
        return (rgb >> 8).astype(np.uint8)
    return np.array(rgb) if encoding.to_rgb is None else rgb


def _check_format(fmt: str) -> None:
    """Reject a CompressedImage format string naming a codec other than jpeg or png.

    Accepts plain names ('jpeg', 'png'), image_transport strings such as 'rgb8; jpeg compressed bgr8'
    and '' (the content decides); rejects compressedDepth and other codecs.
    """
    words = set(re.findall(r"[a-z0-9]+", fmt.lower()))
    if "compresseddepth" in words:
        raise ConversionError(f"CompressedImage: compressedDepth images are not supported ({fmt!r})")
    if not words & _COMPRESSED_FORMATS and fmt.strip():
        raise ConversionError(f"CompressedImage: unsupported format {fmt!r} (expected jpeg or png)")


def _undecodable(data: bytes, kind: str, why: str) -> ConversionError:
    """The error for compressed data that cannot be decoded, saying why."""
    return ConversionError(f"CompressedImage: cannot decode {len(data)} bytes as {kind or 'jpeg or png'}: {why}")


def _content_kind(data: bytes) -> str:
    """'jpeg' or 'png' from the data's signature (the content decides, as for the decoder)."""
    kind = next((kind for kind, magic in _SIGNATURES.items() if data.startswith(magic)), "")
    if not kind:
        raise _undecodable(data, "", f"no JPEG or PNG signature (starts {data[:8].hex()})")
    return kind


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header (SOFn segment), read without decoding."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _undecodable(data, "jpeg", f"no marker at byte {pos} before the frame header")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker in _JPEG_STANDALONE_MARKERS:
            pos += 2
        elif marker in _JPEG_FRAME_MARKERS:
            if pos + 9 > len(data):
                break
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise _undecodable(data, "jpeg", "no frame header before the image data")
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    raise _undecodable(data, "jpeg", "the data ends before the frame header (truncated)")


def _compressed_size(data: bytes, kind: str) -> tuple[int, int]:
    """(width, height) the JPEG/PNG header declares; rejects data whose end is missing (truncated)."""
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise _undecodable(data, kind, "no IHDR header chunk (truncated)")
        if data[-8:-4] != b"IEND":
            raise _undecodable(data, kind, "no IEND chunk at the end (truncated)")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not data[-64:].rstrip(b"\0").endswith(_JPEG_END):
        raise _undecodable(data, kind, "no end-of-image marker at the end (truncated)")
    return _jpeg_size(data)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """uint8 RGB (H, W, 3) of a jpeg/png sensor_msgs/CompressedImage (grey images made RGB).

    The data must carry the JPEG or PNG signature (the content decides; `format` only has to name no other
    codec), end complete and declare 1 to MAX_COMPRESSED_PIXELS pixels; all of that is checked before the
    decoder allocates anything.
    """
    _check_format(msg.format)
    data = bytes(msg.data)
    if not data:
        raise ConversionError("CompressedImage: data is empty")
    kind = _content_kind(data)
    width, height = _compressed_size(data, kind)
    if width == 0 or height == 0 or width * height > MAX_COMPRESSED_PIXELS:
        raise _undecodable(data, kind, f"the header declares {width}x{height} pixels "
                                       f"(allowed: 1 to {MAX_COMPRESSED_PIXELS})")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (height, width):
        raise _undecodable(data, kind, f"the decoder failed (format {msg.format!r}, header {width}x{height})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_rgb(rgb: np.ndarray) -> None:
    """Reject anything but a non-empty uint8 (H, W, 3) array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ConversionError(
            f"RGB image: expected non-empty uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")


def rgb_to_image(rgb: np.ndarray, stamp: Stamp, frame_id: str, encoding: str = "rgb8") -> Image:
    """sensor_msgs/Image of a uint8 RGB array in rgb8, bgr8, 8UC3, rgba8, bgra8, mono8 or mono16.

    Mono encodings store the luminance; mono16 widens it to the full 16-bit range (x * 257),
    little-endian. Rows are unpadded (step = width * bytes per pixel).
    """
    _check_rgb(rgb)
    stored = _image_encoding(encoding)
    if encoding not in _RGB_TO_ENCODING:
        raise ConversionError(f"Image: cannot write encoding {encoding!r} (writable: {', '.join(_RGB_TO_ENCODING)})")
    code = _RGB_TO_ENCODING[encoding]
    pixels = np.ascontiguousarray(rgb) if code is None else cv2.cvtColor(rgb, code)
    if stored.depth == 2:
        pixels = (pixels.astype(np.uint16) * 257).astype("<u2")
    height, width = rgb.shape[:2]
    return Image(header=make_header(stamp, frame_id), height=height, width=width, encoding=encoding,
                 is_bigendian=False, step=width * stored.channels * stored.depth, data=_byte_array(pixels))


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


def _check_disjoint(names: Sequence[str], offsets: Sequence[int], formats: Sequence[np.dtype]) -> None:
    """Reject fields whose byte ranges within a point overlap."""
    spans = sorted(zip(offsets, (f.itemsize for f in formats), names))
    for (start, size, name), (next_start, _, next_name) in zip(spans, spans[1:]):
        if next_start < start + size:
            raise ConversionError(
                f"PointCloud2: fields {name!r} (offset {start}, {size} bytes) and {next_name!r} "
                f"(offset {next_start}) overlap")


def _cloud_dtype(msg: PointCloud2, names: Sequence[str]) -> np.dtype:
    """Structured dtype (itemsize = point_step) reading the named fields at their offsets.

    A count of 0 is read as 1 (some drivers leave it unset); other fields of the message are
    skipped, so their datatypes do not matter. A named field defined twice, or named fields sharing
    bytes, make the cloud ambiguous and are rejected.
    """
    by_name: dict[str, list[PointField]] = {}
    for field in msg.fields:
        by_name.setdefault(field.name, []).append(field)
    byte_order = ">" if msg.is_bigendian else "<"
    formats, offsets = [], []
    for name in names:
        if name not in by_name:
            present = ", ".join(by_name) or "none"
            raise ConversionError(f"PointCloud2: no field {name!r} (fields: {present})")
        if len(by_name[name]) > 1:
            raise ConversionError(f"PointCloud2: field {name!r} is defined {len(by_name[name])} times")
        field = by_name[name][0]
        formats.append(_field_dtype(field, msg.point_step, byte_order))
        offsets.append(field.offset)
    _check_disjoint(names, offsets, formats)
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

MAX_SPEED_MPS = 100.0
"""Largest accepted ego speed |(vx, vy)| from odometry (360 km/h); more is a driver fault, not a vehicle."""
MAX_YAW_RATE_RPS = 10.0
"""Largest accepted odometry yaw rate |twist.angular.z| (the frame sync turns it into acceleration)."""
MAX_ACCELERATION_MPS2 = 200.0
"""Largest accepted IMU |(ax, ay)| (about 20 g, beyond the range of a 16 g automotive IMU)."""


def _xyz(vector: object) -> tuple[float, float, float]:
    """(x, y, z) of a geometry_msgs Vector3 or Point as floats."""
    return float(vector.x), float(vector.y), float(vector.z)


def _check_finite(what: str, *values: float) -> None:
    """Reject NaN/Inf among the values of one message field."""
    if not all(math.isfinite(value) for value in values):
        raise ConversionError(f"{what}: non-finite value ({', '.join(str(value) for value in values)})")


def _check_limit(what: str, value: float, limit: float, unit: str) -> None:
    """Reject a magnitude beyond what a vehicle can produce."""
    if abs(value) > limit:
        raise ConversionError(f"{what}: {value:g} {unit} is beyond the plausible limit of {limit:g} {unit}")


def _check_quaternion(what: str, q: object) -> None:
    """Reject an orientation that is no rotation (zero or non-finite quaternion)."""
    try:
        rotation_from_quaternion(q.w, q.x, q.y, q.z)
    except ValueError as error:
        raise ConversionError(f"{what}: {error}") from None


def velocity_from_odometry(msg: Odometry) -> tuple[float, float]:
    """(vx, vy) in m/s in the ego frame.

    nav_msgs/Odometry gives the twist in `child_frame_id` (the ego frame, REP-105), so the
    linear twist is used as is, without rotating by the pose. Rejected: NaN/Inf anywhere in the pose
    or twist, an orientation that is no rotation (zero quaternion; an untouched message holds the
    identity), a speed above MAX_SPEED_MPS or a yaw rate above MAX_YAW_RATE_RPS.
    """
    twist, pose = msg.twist.twist, msg.pose.pose
    linear, angular = _xyz(twist.linear), _xyz(twist.angular)
    _check_finite("Odometry: twist.twist.linear", *linear)
    _check_finite("Odometry: twist.twist.angular", *angular)
    _check_finite("Odometry: pose.pose.position", *_xyz(pose.position))
    _check_quaternion("Odometry: pose.pose.orientation", pose.orientation)
    _check_limit("Odometry: speed |twist.twist.linear (x, y)|", math.hypot(linear[0], linear[1]), MAX_SPEED_MPS,
                 "m/s")
    _check_limit("Odometry: yaw rate twist.twist.angular.z", angular[2], MAX_YAW_RATE_RPS, "rad/s")
    return linear[0], linear[1]


def acceleration_from_imu(msg: Imu) -> tuple[float, float]:
    """(ax, ay) in m/s^2 from sensor_msgs/Imu linear_acceleration.

    Only x and y are used: the IMU reports specific force, so z carries gravity (and x/y carry a
    share of it when the vehicle is not level, which is accepted). Rejected: acceleration marked
    absent (covariance[0] == -1), NaN/Inf in the acceleration or in an angular velocity or
    orientation the IMU provides (covariance[0] != -1), an orientation that is no rotation, or
    |(ax, ay)| above MAX_ACCELERATION_MPS2.
    """
    if msg.linear_acceleration_covariance[0] == -1.0:
        raise ConversionError("Imu: linear_acceleration not provided (covariance[0] == -1)")
    acceleration = _xyz(msg.linear_acceleration)
    _check_finite("Imu: linear_acceleration", *acceleration)
    if msg.angular_velocity_covariance[0] != -1.0:
        _check_finite("Imu: angular_velocity", *_xyz(msg.angular_velocity))
    if msg.orientation_covariance[0] != -1.0:
        _check_quaternion("Imu: orientation (orientation_covariance[0] = -1 marks none)", msg.orientation)
    _check_limit("Imu: |linear_acceleration (x, y)|", math.hypot(acceleration[0], acceleration[1]),
                 MAX_ACCELERATION_MPS2, "m/s^2")
    return acceleration[0], acceleration[1]
