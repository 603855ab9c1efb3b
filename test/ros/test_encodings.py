"""Camera-driver encodings (Bayer, packed 4:2:2, 16-bit colour) decoded from real sensor_msgs/Image messages, and the
header checks of compressed images.

Each is checked against OpenCV's own conversion of the same pixels, and the encoding -> OpenCV code tables below
are themselves checked on hand-built images whose colours are known (OpenCV's Bayer names differ from ROS's).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from diffusiondrive_ros.ros.conversions import (
    IMAGE_ENCODINGS,
    ConversionError,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_image,
)

STAMP = Time(sec=1_700_000_000, nanosec=5)
RED, GREEN, BLUE = 200, 100, 30

# ROS pattern (colours of the top-left 2x2, row by row) -> the OpenCV code that demosaics it, found by
# test_opencv_bayer_codes_on_a_mosaic_of_known_colour (OpenCV names the 2x2 block that starts at row 1, column 1).
OPENCV_BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
                "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
OPENCV_YUV = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuv422": cv2.COLOR_YUV2RGB_UYVY,
              "yuyv": cv2.COLOR_YUV2RGB_YUYV, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV}
# 16-bit encoding -> (channels, OpenCV code to RGB; None = stored as RGB)
OPENCV_16BIT = {"rgb16": (3, None), "bgr16": (3, cv2.COLOR_BGR2RGB), "rgba16": (4, cv2.COLOR_RGBA2RGB),
                "bgra16": (4, cv2.COLOR_BGRA2RGB), "mono16": (1, cv2.COLOR_GRAY2RGB)}


def image_msg(values: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """A serialised-and-back sensor_msgs/Image (as a subscriber or bag replay gets it) holding `values`
    (H, W[, C]) uint8 or uint16 in the given byte order, each row followed by `pad` junk bytes."""
    height, width = values.shape[:2]
    if values.dtype == np.uint16:
        values = values.astype(">u2" if bigendian else "<u2")
    rows = np.ascontiguousarray(values).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xEE, np.uint8)], axis=1)
    msg = Image(header=Header(stamp=STAMP, frame_id="camera"), height=height, width=width, encoding=encoding,
                is_bigendian=bigendian, step=padded.shape[1], data=padded.tobytes())
    return deserialize_message(serialize_message(msg), Image)


def mosaic(pattern: str, height: int = 8, width: int = 10) -> np.ndarray:
    """A Bayer mosaic of one colour (RED, GREEN, BLUE) laid out in `pattern` (e.g. 'rggb': R G / G B)."""
    value = {"r": RED, "g": GREEN, "b": BLUE}
    cell = np.array([[value[pattern[0]], value[pattern[1]]], [value[pattern[2]], value[pattern[3]]]], np.uint8)
    return np.tile(cell, (height // 2, width // 2))


def random_values(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Bayer
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", OPENCV_BAYER)
def test_opencv_bayer_codes_on_a_mosaic_of_known_colour(pattern: str) -> None:
    """The table above is right: each code turns its pattern's mosaic back into the one colour (away from the
    border), and no other code does."""
    for name, code in OPENCV_BAYER.items():
        inner = cv2.cvtColor(mosaic(pattern), code)[2:-2, 2:-2]
        assert (inner == (RED, GREEN, BLUE)).all() == (name == pattern), (pattern, name)


@pytest.mark.parametrize("pattern", OPENCV_BAYER)
def test_bayer8_decodes_to_the_mosaic_colour(pattern: str) -> None:
    out = image_to_rgb(image_msg(mosaic(pattern), f"bayer_{pattern}8", pad=6))
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    assert (out[2:-2, 2:-2] == (RED, GREEN, BLUE)).all()


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pattern", OPENCV_BAYER)
def test_bayer16_decodes_to_the_mosaic_colour_in_either_byte_order(pattern: str, bigendian: bool) -> None:
    wide = mosaic(pattern).astype(np.uint16) * 257 + 3  # high byte = the 8-bit colour
    out = image_to_rgb(image_msg(wide, f"bayer_{pattern}16", pad=3, bigendian=bigendian))
    assert (out[2:-2, 2:-2] == (RED, GREEN, BLUE)).all()


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("pattern", OPENCV_BAYER)
def test_bayer8_equals_opencv_demosaicing(pattern: str, pad: int) -> None:
    raw = random_values((12, 14), np.uint8, seed=pad)
    expected = cv2.cvtColor(raw, OPENCV_BAYER[pattern])
    np.testing.assert_array_equal(image_to_rgb(image_msg(raw, f"bayer_{pattern}8", pad)), expected)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pattern", OPENCV_BAYER)
def test_bayer16_equals_opencv_demosaicing_at_16_bit_then_high_byte(pattern: str, bigendian: bool) -> None:
    raw = random_values((9, 11), np.uint16, seed=1)
    expected = (cv2.cvtColor(raw, OPENCV_BAYER[pattern]) >> 8).astype(np.uint8)
    out = image_to_rgb(image_msg(raw, f"bayer_{pattern}16", pad=1, bigendian=bigendian))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("height", "width"), [(1, 8), (8, 1)])
def test_bayer_smaller_than_one_cell_is_rejected(height: int, width: int) -> None:
    with pytest.raises(ConversionError, match=r"'bayer_rggb8' needs at least 2x2 pixels"):
        image_to_rgb(image_msg(np.zeros((height, width), np.uint8), "bayer_rggb8"))


# ---------------------------------------------------------------------------------------------
# Packed 4:2:2
# ---------------------------------------------------------------------------------------------

def video_range(luma: int) -> int:
    """8-bit grey of a BT.601 video-range Y (16 = black, 235 = white), rounded."""
    return round((luma - 16) * 255 / 219)


@pytest.mark.parametrize(("encoding", "layout"), [("uyvy", "UYVY"), ("yuv422", "UYVY"), ("yuyv", "YUYV"),
                                                  ("yuv422_yuy2", "YUYV")])
def test_yuv422_byte_order_from_a_hand_built_pixel_pair(encoding: str, layout: str) -> None:
    """One pixel pair with neutral chroma (U = V = 128) and lumas 50 and 200, stored in the fourcc's byte order
    (sensor_msgs/image_encodings.hpp: uyvy and its old name yuv422 are UYVY, yuyv and yuv422_yuy2 are YUYV)."""
    y0, y1, u, v = 50, 200, 128, 128
    pair = {"UYVY": [u, y0, v, y1], "YUYV": [y0, u, y1, v]}[layout]
    out = image_to_rgb(image_msg(np.array([[pair[:2], pair[2:]]], np.uint8), encoding))
    assert out.shape == (1, 2, 3)
    for pixel, luma in zip(out[0], (y0, y1)):
        assert pixel.tolist() == [pixel[0]] * 3  # grey
        assert abs(int(pixel[0]) - video_range(luma)) <= 1


@pytest.mark.parametrize("encoding", ["uyvy", "yuyv"])
def test_yuv422_colour_of_a_known_red(encoding: str) -> None:
    """BT.601 video-range red is Y 81, U 90, V 240."""
    pair = [90, 81, 240, 81] if encoding == "uyvy" else [81, 90, 81, 240]
    out = image_to_rgb(image_msg(np.tile(np.array(pair, np.uint8).reshape(1, 2, 2), (2, 3, 1)), encoding))
    assert (out[..., 0] >= 250).all() and (out[..., 1:] <= 5).all()


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding", OPENCV_YUV)
def test_yuv422_equals_opencv_conversion(encoding: str, pad: int) -> None:
    raw = random_values((6, 8, 2), np.uint8, seed=pad)
    expected = cv2.cvtColor(raw, OPENCV_YUV[encoding])
    np.testing.assert_array_equal(image_to_rgb(image_msg(raw, encoding, pad)), expected)


def test_yuv422_with_odd_width_is_rejected() -> None:
    with pytest.raises(ConversionError, match=r"'uyvy' stores pixel pairs, so its width must be even, got 5"):
        image_to_rgb(image_msg(np.zeros((4, 5, 2), np.uint8), "uyvy"))


# ---------------------------------------------------------------------------------------------
# 16-bit colour and mono
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", OPENCV_16BIT)
def test_16_bit_keeps_the_high_byte_of_hand_chosen_values(encoding: str, bigendian: bool) -> None:
    channels, _ = OPENCV_16BIT[encoding]
    stored = np.array([0xABCD, 0x12FF, 0x0001, 0xFFFF], np.uint16)[:channels]
    out = image_to_rgb(image_msg(np.tile(stored, (2, 3, 1)), encoding, pad=2, bigendian=bigendian))
    high = [0xAB, 0x12, 0x00, 0xFF]
    expected = {"rgb16": high[:3], "bgr16": high[2::-1], "rgba16": high[:3], "bgra16": high[2::-1],
                "mono16": [high[0]] * 3}[encoding]
    assert out.shape == (2, 3, 3) and (out == expected).all()


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", OPENCV_16BIT)
def test_16_bit_equals_opencv_conversion_then_high_byte(encoding: str, bigendian: bool) -> None:
    channels, code = OPENCV_16BIT[encoding]
    raw = random_values((5, 7, channels), np.uint16, seed=2)
    converted = raw if code is None else cv2.cvtColor(raw, code)
    expected = (converted >> 8).astype(np.uint8)
    np.testing.assert_array_equal(image_to_rgb(image_msg(raw, encoding, pad=1, bigendian=bigendian)), expected)


def test_16_bit_step_counts_two_bytes_per_value() -> None:
    msg = image_msg(np.zeros((2, 4, 3), np.uint16), "rgb16")
    msg.step, msg.data = 12, bytes(24)
    with pytest.raises(ConversionError, match=r"step 12 is smaller than width\*bytes_per_pixel = 24 for 'rgb16'"):
        image_to_rgb(msg)


def test_every_ros_camera_encoding_of_the_issue_is_supported() -> None:
    wanted = {f"bayer_{p}{bits}" for p in OPENCV_BAYER for bits in (8, 16)} | set(OPENCV_YUV) | set(OPENCV_16BIT)
    assert wanted <= set(IMAGE_ENCODINGS)


def test_unknown_encoding_names_the_supported_ones() -> None:
    with pytest.raises(ConversionError, match=r"unsupported encoding 'nv12' \(supported: .*bayer_grbg16.*\)"):
        image_to_rgb(image_msg(np.zeros((2, 2), np.uint8), "nv12"))


def test_rgb_to_image_writes_only_the_encodings_it_can_produce() -> None:
    with pytest.raises(ConversionError, match=r"cannot write encoding 'bayer_rggb8' \(writable: rgb8, bgr8"):
        rgb_to_image(np.zeros((2, 2, 3), np.uint8), STAMP, "camera", "bayer_rggb8")


# ---------------------------------------------------------------------------------------------
# Compressed images: the header is checked before decoding
# ---------------------------------------------------------------------------------------------

def jpeg_bytes(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_jpeg_padded_with_zeros_after_its_end_marker_decodes() -> None:
    rgb = np.full((8, 8, 3), (10, 200, 90), np.uint8)
    data = jpeg_bytes(rgb)
    out = compressed_to_rgb(CompressedImage(format="jpeg", data=data + bytes(5)))
    np.testing.assert_array_equal(out, cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), 1), cv2.COLOR_BGR2RGB))


def test_jpeg_cut_before_its_end_marker_is_rejected_as_truncated() -> None:
    data = jpeg_bytes(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConversionError, match=r"as jpeg: no end-of-image marker at the end \(truncated\)"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=data[:-3]))
