"""Tests of ROS message <-> numpy conversions (images, clouds, ego state, transforms, time stamps)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, Transform, Vector3
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image, Imu, PointCloud2, PointField
from std_msgs.msg import Header
from transforms3d.euler import euler2mat, euler2quat

from diffusiondrive_ros.ros.conversions import (
    CloudPoints,
    ConversionError,
    acceleration_from_imu,
    compressed_to_rgb,
    image_to_rgb,
    ns_to_stamp,
    pointcloud2_to_points,
    rgb_to_compressed,
    rgb_to_image,
    stamp_to_ns,
    transform_to_matrix,
    velocity_from_odometry,
    xyz_to_pointcloud2,
)

STAMP = Time(sec=1_700_000_000, nanosec=123_456_789)
XYZI = ("x", "y", "z", "intensity")


def roundtrip(msg):
    """The message after CDR serialisation and back, as bag replay sees it."""
    return deserialize_message(serialize_message(msg), type(msg))


def random_rgb(height: int = 6, width: int = 5, seed: int = 0) -> np.ndarray:
    """Reproducible noise image (uint8 RGB)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth_rgb(height: int = 64, width: int = 80) -> np.ndarray:
    """Gradient image that jpeg compresses with little error."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 255 // height, cols * 255 // width, (rows + cols) * 255 // (height + width)],
                    axis=2).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Images built by hand (independent of rgb_to_image)
# ---------------------------------------------------------------------------------------------

def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """Image whose rows are the pixel bytes followed by `pad` junk bytes."""
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    return Image(header=Header(stamp=STAMP, frame_id="cam"), height=height, width=width,
                 encoding=encoding, is_bigendian=bigendian, step=padded.shape[1],
                 data=padded.tobytes())


def stored_pixels(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """How a camera driver lays out `rgb` in each 8-bit colour encoding."""
    alpha = np.full((*rgb.shape[:2], 1), 77, np.uint8)
    return {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "8UC3": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
    }[encoding]


@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "8UC3", "rgba8", "bgra8"])
def test_colour_encodings_decode_to_rgb(encoding: str, pad: int) -> None:
    rgb = random_rgb()
    out = image_to_rgb(raw_image(stored_pixels(rgb, encoding), encoding, pad))
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("pad", [0, 7])
def test_mono8_becomes_grey_rgb(pad: int) -> None:
    grey = random_rgb()[..., 0]
    out = image_to_rgb(raw_image(grey, "mono8", pad))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize("pad", [0, 2, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_scaled_to_8_bit_with_byte_order(bigendian: bool, pad: int) -> None:
    values = np.array([[0, 255, 256, 4660], [32768, 65280, 65534, 65535]], dtype=np.uint16)
    stored = values.astype(">u2" if bigendian else "<u2")
    out = image_to_rgb(raw_image(stored, "mono16", pad, bigendian))
    expected = np.array([[0, 0, 1, 18], [128, 255, 255, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))


@pytest.mark.parametrize(("encoding", "bytes_per_pixel"),
                         [("rgb8", 3), ("bgr8", 3), ("8UC3", 3), ("rgba8", 4), ("bgra8", 4)])
def test_rgb_to_image_round_trips_exactly(encoding: str, bytes_per_pixel: int) -> None:
    rgb = random_rgb(9, 7)
    msg = roundtrip(rgb_to_image(rgb, STAMP, "cam", encoding))
    assert msg.encoding == encoding and msg.header.frame_id == "cam" and msg.header.stamp == STAMP
    assert (msg.height, msg.width, msg.step) == (9, 7, 7 * bytes_per_pixel)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_rgb_to_image_layout_is_standard() -> None:
    rgb = random_rgb(4, 3)
    bgr = rgb_to_image(rgb, STAMP, "cam", "bgr8")
    assert (bgr.height, bgr.width, bgr.step, bgr.is_bigendian) == (4, 3, 9, False)
    np.testing.assert_array_equal(np.frombuffer(bgr.data, np.uint8).reshape(4, 3, 3), rgb[..., ::-1])
    mono16 = rgb_to_image(rgb, STAMP, "cam", "mono16")
    assert mono16.step == 6


@pytest.mark.parametrize("encoding", ["mono8", "mono16"])
def test_rgb_to_image_mono_stores_luminance(encoding: str) -> None:
    rgb = random_rgb(8, 8)
    out = image_to_rgb(rgb_to_image(rgb, STAMP, "cam", encoding))
    luminance = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(out, np.repeat(luminance[..., None], 3, axis=2))


def test_integer_nanosecond_stamp_is_accepted() -> None:
    msg = rgb_to_image(random_rgb(), 2_500_000_001, "cam")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (2, 500_000_001)


def test_image_result_is_an_independent_writable_copy() -> None:
    rgb = random_rgb()
    msg = rgb_to_image(rgb, STAMP, "cam")
    out = image_to_rgb(msg)
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    msg.data[0] = (msg.data[0] + 1) % 256
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"encoding": "nv12"}, r"Image: unsupported encoding 'nv12'"),
        ({"encoding": "32FC1"}, r"unsupported encoding '32FC1'"),
        ({"step": 14}, r"step 14 is smaller than width\*bytes_per_pixel = 15"),
        ({"height": 7}, r"data has 90 bytes, expected step\*height = 105"),
        ({"width": 0}, r"empty image"),
    ],
)
def test_bad_images_are_rejected_with_reason(change: dict, reason: str) -> None:
    msg = raw_image(random_rgb(6, 5), "rgb8")
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ConversionError, match=reason):
        image_to_rgb(msg)


def test_truncated_image_data_is_rejected() -> None:
    msg = raw_image(random_rgb(6, 5), "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ConversionError, match=r"Image: data has 89 bytes, expected step\*height = 90"):
        image_to_rgb(msg)


def test_conversion_error_is_a_value_error() -> None:
    assert issubclass(ConversionError, ValueError)


# ---------------------------------------------------------------------------------------------
# Compressed images
# ---------------------------------------------------------------------------------------------

def test_png_round_trips_exactly() -> None:
    rgb = random_rgb(30, 40)
    msg = roundtrip(rgb_to_compressed(rgb, STAMP, "cam", fmt="png"))
    assert msg.format == "rgb8; png compressed bgr8" and msg.header.stamp == STAMP
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


def test_jpeg_round_trips_closely() -> None:
    rgb = smooth_rgb()
    msg = rgb_to_compressed(rgb, STAMP, "cam", fmt="jpeg", quality=95)
    out = compressed_to_rgb(roundtrip(msg))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 2.0


def test_jpeg_keeps_colour_channels_in_rgb_order() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    out = compressed_to_rgb(rgb_to_compressed(red, STAMP, "cam"))
    assert out[..., 0].mean() > 240 and out[..., 2].mean() < 15


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "JPEG", "png", "bgr8; jpeg compressed bgr8",
                                 "rgb8; png compressed rgb8", ""])
def test_compressed_format_strings_are_accepted(fmt: str) -> None:
    rgb = random_rgb(8, 8)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(format=fmt, data=encoded.tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


def test_grey_png_becomes_grey_rgb() -> None:
    grey = random_rgb(5, 6)[..., 1]
    ok, encoded = cv2.imencode(".png", grey)
    assert ok
    out = compressed_to_rgb(CompressedImage(format="mono8; png compressed mono8", data=encoded.tobytes()))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize(
    ("fmt", "data", "reason"),
    [
        ("jpeg", b"\xff\xd8\xff\xe0 this is not a jpeg" * 4,
         r"CompressedImage: cannot decode 92 bytes as jpeg"),
        ("png", b"", r"CompressedImage: data is empty"),
        ("h264", b"\x00\x00\x00\x01", r"CompressedImage: unsupported format 'h264'"),
        ("16UC1; compressedDepth png", b"\x00" * 20, r"compressedDepth images are not supported"),
    ],
)
def test_bad_compressed_images_are_rejected(fmt: str, data: bytes, reason: str) -> None:
    with pytest.raises(ConversionError, match=reason):
        compressed_to_rgb(CompressedImage(format=fmt, data=data))


def test_rgb_to_compressed_rejects_bad_input() -> None:
    with pytest.raises(ConversionError, match="unsupported format 'webp'"):
        rgb_to_compressed(random_rgb(), STAMP, "cam", fmt="webp")
    with pytest.raises(ConversionError, match=r"expected non-empty uint8 \(H, W, 3\)"):
        rgb_to_image(np.zeros((4, 4), np.uint8), STAMP, "cam")
    with pytest.raises(ConversionError, match="unsupported encoding 'nv12'"):
        rgb_to_image(random_rgb(), STAMP, "cam", "nv12")


# ---------------------------------------------------------------------------------------------
# Point clouds built by hand from numpy structured arrays
# ---------------------------------------------------------------------------------------------

DATATYPES = {"i1": PointField.INT8, "u1": PointField.UINT8, "i2": PointField.INT16,
             "u2": PointField.UINT16, "i4": PointField.INT32, "u4": PointField.UINT32,
             "f4": PointField.FLOAT32, "f8": PointField.FLOAT64}


def raw_cloud(table: np.ndarray, row_pad: int = 0, field_order: list[str] | None = None) -> PointCloud2:
    """PointCloud2 holding the bytes of a (height, width) structured array, rows padded by junk.

    Byte order comes from the dtype's fields (all must agree); `field_order` lists the
    PointFields in a different order than the dtype's offsets.
    """
    table = np.atleast_2d(table)
    height, width = table.shape
    fields = []
    for name in field_order or table.dtype.names:
        dtype, offset = table.dtype.fields[name][:2]
        fields.append(PointField(name=name, offset=offset, datatype=DATATYPES[dtype.str[1:]], count=1))
    bigendian = any(table.dtype.fields[n][0].str[0] == ">" for n in table.dtype.names)
    rows = table.view(np.uint8).reshape(height, width * table.dtype.itemsize)
    padded = np.concatenate([rows, np.full((height, row_pad), 0xEE, np.uint8)], axis=1)
    return PointCloud2(header=Header(stamp=STAMP, frame_id="lidar"), height=height, width=width,
                       fields=fields, is_bigendian=bigendian, point_step=table.dtype.itemsize,
                       row_step=padded.shape[1], data=padded.tobytes(), is_dense=False)


def structured(names: list[str], formats: list[str], offsets: list[int], itemsize: int,
               columns: np.ndarray) -> np.ndarray:
    """1-D structured array whose field `names[i]` holds `columns[:, i]`."""
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})
    table = np.zeros(len(columns), dtype)
    for index, name in enumerate(names):
        table[name] = columns[:, index]
    return table


def sample_xyzi(count: int = 10, seed: int = 1) -> np.ndarray:
    """Reproducible float32 (count, 4) x, y, z, intensity."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-50, 50, (count, 3)), rng.uniform(0, 255, count)]).astype(np.float32)


def test_shuffled_field_order_and_offsets() -> None:
    xyzi = sample_xyzi()
    table = structured(["z", "intensity", "x", "y"], ["<f4"] * 4, [0, 4, 8, 12], 16,
                       xyzi[:, [2, 3, 0, 1]])
    result = pointcloud2_to_points(raw_cloud(table, field_order=["y", "intensity", "z", "x"]), XYZI)
    np.testing.assert_array_equal(result.points, xyzi)
    assert result.num_dropped == 0


def test_intensity_first_and_default_fields_are_xyz() -> None:
    xyzi = sample_xyzi()
    table = structured(["intensity", "x", "y", "z"], ["<f4"] * 4, [0, 4, 8, 12], 16, xyzi[:, [3, 0, 1, 2]])
    points, dropped = pointcloud2_to_points(raw_cloud(table))
    assert points.shape == (10, 3) and points.dtype == np.float32 and dropped == 0
    np.testing.assert_array_equal(points, xyzi[:, :3])


def test_float64_xyz() -> None:
    xyz = np.random.default_rng(2).uniform(-1e3, 1e3, (12, 3))
    table = structured(["x", "y", "z"], ["<f8"] * 3, [0, 8, 16], 24, xyz)
    points, _ = pointcloud2_to_points(raw_cloud(table))
    np.testing.assert_allclose(points, xyz.astype(np.float32))


@pytest.mark.parametrize("code", sorted(DATATYPES))
@pytest.mark.parametrize("order", ["<", ">"])
def test_every_datatype_in_both_byte_orders(code: str, order: str) -> None:
    info = np.iinfo(code) if code[0] in "iu" else None
    low, high = (info.min, info.max) if info else (-1e4, 1e4)
    xyz = np.array([[low, high, 0], [1, 2, 3], [high, low, 1]], dtype=np.float64)
    size = np.dtype(code).itemsize
    table = structured(["x", "y", "z", "ring"], [order + code] * 3 + [order + "u2"],
                       [0, size, 2 * size, 3 * size], 3 * size + 2,
                       np.column_stack([xyz, [7, 8, 9]]))
    msg = raw_cloud(table)
    assert msg.is_bigendian == (order == ">")
    points, dropped = pointcloud2_to_points(msg, ("x", "y", "z", "ring"))
    np.testing.assert_array_equal(points, np.column_stack([xyz, [7, 8, 9]]).astype(np.float32))
    assert dropped == 0


def test_int16_fields_with_uint8_intensity() -> None:
    xyz = np.array([[-32768, 0, 32767], [100, -200, 300]])
    table = structured(["x", "y", "z", "intensity"], ["<i2", "<i2", "<i2", "u1"], [0, 2, 4, 6], 7,
                       np.column_stack([xyz, [5, 250]]))
    points, _ = pointcloud2_to_points(raw_cloud(table), XYZI)
    np.testing.assert_array_equal(points, [[-32768, 0, 32767, 5], [100, -200, 300, 250]])


def test_point_step_padding_is_skipped() -> None:
    xyzi = sample_xyzi(7)
    table = structured(["x", "y", "z", "intensity"], ["<f4"] * 4, [0, 4, 8, 16], 48, xyzi)
    table.view(np.uint8).reshape(7, 48)[:, 20:] = 0xFF
    np.testing.assert_array_equal(pointcloud2_to_points(raw_cloud(table), XYZI).points, xyzi)


def test_row_step_padding_and_organised_cloud_are_row_major() -> None:
    xyzi = sample_xyzi(6)
    table = structured(["x", "y", "z", "intensity"], ["<f4"] * 4, [0, 4, 8, 12], 16, xyzi).reshape(2, 3)
    msg = raw_cloud(table, row_pad=5)
    assert (msg.height, msg.width, msg.row_step) == (2, 3, 53)
    result = pointcloud2_to_points(msg, XYZI)
    np.testing.assert_array_equal(result.points, xyzi)


def test_big_endian_padded_organised_cloud_survives_serialisation() -> None:
    xyzi = sample_xyzi(8)
    table = structured(["x", "y", "z", "intensity"], [">f4", ">f4", ">f4", ">u2"], [4, 8, 12, 0], 20,
                       xyzi).reshape(2, 4)
    msg = roundtrip(raw_cloud(table, row_pad=3))
    assert msg.is_bigendian
    points, _ = pointcloud2_to_points(msg, XYZI)
    np.testing.assert_allclose(points[:, :3], xyzi[:, :3])
    np.testing.assert_array_equal(points[:, 3], xyzi[:, 3].astype(np.uint16))


def test_non_finite_points_are_dropped_and_counted() -> None:
    xyzi = sample_xyzi(8)
    xyzi[1, 0] = np.nan
    xyzi[3, 2] = np.inf
    xyzi[4, 1] = -np.inf
    xyzi[6, 3] = np.nan
    table = structured(["x", "y", "z", "intensity"], ["<f4"] * 4, [0, 4, 8, 12], 16, xyzi)
    result = pointcloud2_to_points(raw_cloud(table), XYZI)
    assert isinstance(result, CloudPoints) and result.num_dropped == 3
    np.testing.assert_array_equal(result.points, xyzi[[0, 2, 5, 6, 7]])


def test_float64_beyond_float32_range_is_dropped() -> None:
    xyz = np.array([[1.0, 2.0, 3.0], [1e300, 0.0, 0.0]])
    table = structured(["x", "y", "z"], ["<f8"] * 3, [0, 8, 16], 24, xyz)
    points, dropped = pointcloud2_to_points(raw_cloud(table))
    assert dropped == 1 and points.tolist() == [[1.0, 2.0, 3.0]]


def test_field_count_zero_is_read_as_one() -> None:
    msg = xyz_to_pointcloud2(sample_xyzi(3)[:, :3], STAMP, "lidar")
    for field in msg.fields:
        field.count = 0
    assert pointcloud2_to_points(msg).points.shape == (3, 3)


def test_empty_cloud_gives_no_points() -> None:
    points, dropped = pointcloud2_to_points(xyz_to_pointcloud2(np.zeros((0, 3)), STAMP, "lidar"))
    assert points.shape == (0, 3) and dropped == 0


def test_other_fields_with_unknown_types_are_ignored() -> None:
    msg = xyz_to_pointcloud2(sample_xyzi(4)[:, :3], STAMP, "lidar")
    msg.fields.append(PointField(name="rgb_vector", offset=0, datatype=42, count=3))
    assert pointcloud2_to_points(msg).points.shape == (4, 3)


def bad_cloud(**changes) -> PointCloud2:
    """A valid 4-point xyz+intensity cloud with some attributes replaced."""
    msg = xyz_to_pointcloud2(sample_xyzi(4), STAMP, "lidar", ["intensity"])
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (bad_cloud(fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                           for i, n in enumerate("xy")]),
         r"PointCloud2: no field 'z' \(fields: x, y\)"),
        (bad_cloud(data=bytes(60)), r"PointCloud2: data has 60 bytes, expected row_step\*height = 64"),
        (bad_cloud(point_step=10, row_step=40, data=bytes(40)),
         r"field 'z' \(offset 8, 4 bytes\) does not fit in point_step 10"),
        (bad_cloud(row_step=60), r"row_step 60 is smaller than width\*point_step = 64"),
        (bad_cloud(fields=[PointField(name=n, offset=4 * i, datatype=9 if n == "y" else 7, count=1)
                           for i, n in enumerate("xyz")]),
         r"field 'y' has unknown datatype 9"),
        (bad_cloud(fields=[PointField(name="x", offset=0, datatype=7, count=3),
                           PointField(name="y", offset=4, datatype=7, count=1),
                           PointField(name="z", offset=8, datatype=7, count=1)]),
         r"field 'x' has count 3"),
    ],
)
def test_bad_clouds_are_rejected_with_reason(msg: PointCloud2, reason: str) -> None:
    with pytest.raises(ConversionError, match=reason):
        pointcloud2_to_points(msg)


def test_missing_extra_field_is_rejected() -> None:
    msg = xyz_to_pointcloud2(sample_xyzi(2)[:, :3], STAMP, "lidar")
    with pytest.raises(ConversionError, match="no field 'intensity'"):
        pointcloud2_to_points(msg, XYZI)


def test_fields_must_start_with_xyz() -> None:
    with pytest.raises(ValueError, match="must start with 'x', 'y', 'z'"):
        pointcloud2_to_points(bad_cloud(), ("intensity", "x", "y", "z"))


def test_xyz_to_pointcloud2_builds_a_standard_cloud() -> None:
    xyzi = sample_xyzi(5)
    msg = roundtrip(xyz_to_pointcloud2(xyzi, STAMP, "lidar", ["intensity"]))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 16, 80)
    assert not msg.is_bigendian and msg.is_dense
    assert msg.header.frame_id == "lidar" and msg.header.stamp == STAMP
    np.testing.assert_array_equal(np.frombuffer(msg.data, "<f4").reshape(5, 4), xyzi)
    xyzi[0, 0] = np.nan
    assert not xyz_to_pointcloud2(xyzi, STAMP, "lidar", ["intensity"]).is_dense


def test_xyz_to_pointcloud2_rejects_wrong_column_count() -> None:
    with pytest.raises(ConversionError, match=r"expected points of shape \(N, 4\)"):
        xyz_to_pointcloud2(np.zeros((3, 3)), STAMP, "lidar", ["intensity"])


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------

def test_transform_to_matrix_normalises_the_quaternion() -> None:
    w, x, y, z = euler2quat(0.05, -0.1, 1.2, "sxyz") * 3.0
    transform = Transform(translation=Vector3(x=1.0, y=-2.0, z=0.5), rotation=Quaternion(x=x, y=y, z=z, w=w))
    matrix = transform_to_matrix(roundtrip(transform))
    np.testing.assert_allclose(matrix[:3, :3], euler2mat(0.05, -0.1, 1.2, "sxyz"), atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], [1.0, -2.0, 0.5])
    np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])


def test_transform_to_matrix_rejects_zero_quaternion() -> None:
    transform = Transform(rotation=Quaternion(x=0.0, y=0.0, z=0.0, w=0.0))
    with pytest.raises(ConversionError, match="invalid rotation quaternion"):
        transform_to_matrix(transform)


# ---------------------------------------------------------------------------------------------
# Ego state and time
# ---------------------------------------------------------------------------------------------

def test_velocity_from_odometry_uses_twist_in_child_frame() -> None:
    msg = Odometry()
    msg.child_frame_id = "base_link"
    msg.twist.twist.linear = Vector3(x=12.5, y=-0.25, z=9.0)
    msg.pose.pose.orientation = Quaternion(z=1.0, w=0.0)
    assert velocity_from_odometry(roundtrip(msg)) == (12.5, -0.25)


def test_velocity_rejects_nan() -> None:
    msg = Odometry()
    msg.twist.twist.linear.y = math.nan
    with pytest.raises(ConversionError, match=r"Odometry: twist\.twist\.linear: non-finite"):
        velocity_from_odometry(msg)


def test_acceleration_from_imu_uses_x_and_y() -> None:
    msg = Imu()
    msg.linear_acceleration = Vector3(x=0.5, y=-1.5, z=9.81)
    assert acceleration_from_imu(roundtrip(msg)) == (0.5, -1.5)


def test_acceleration_rejects_inf_and_missing_data() -> None:
    msg = Imu()
    msg.linear_acceleration.x = math.inf
    with pytest.raises(ConversionError, match="Imu: linear_acceleration: non-finite"):
        acceleration_from_imu(msg)
    msg = Imu()
    msg.linear_acceleration_covariance[0] = -1.0
    with pytest.raises(ConversionError, match=r"not provided \(covariance\[0\] == -1\)"):
        acceleration_from_imu(msg)


def test_stamp_nanoseconds_round_trip_exactly() -> None:
    ns = 1_700_000_000_123_456_789
    assert stamp_to_ns(STAMP) == ns
    assert ns_to_stamp(ns) == STAMP
    assert ns_to_stamp(0) == Time()
    with pytest.raises(ConversionError, match="negative"):
        ns_to_stamp(-1)


