"""Property-based fuzzing (hypothesis) of the real synchroniser, decoding and frame pipeline with malformed messages.

More than 10,000 generated PointCloud2, Image, CompressedImage, Odometry, Imu and UInt8 messages in all (QUOTAS)
go in as the node feeds them (InputSynchronizer.add_*/set_command, FramePipeline.assemble and plan). Each must be
rejected with a reason (FrameSkipped, a ConversionError, or a reported acceleration Fallback for the optional IMU)
or be valid and reach the planner decoded exactly; nothing crashes, and no malformed data reaches the planner.
Each case carries at most one injected defect, so the test knows which reason to expect.

The network is the only stand-in (RecordingPlanner): it builds the real model inputs and records them, which is
what the property is about. Runs are derandomized, so CI sees the same cases every time.
"""
from __future__ import annotations

import math
import struct
import zlib
from collections import Counter
from typing import NamedTuple

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage, Image, Imu, PointCloud2, PointField
from std_msgs.msg import Header, UInt8
from test_encodings import OPENCV_16BIT, OPENCV_BAYER, OPENCV_YUV

from diffusiondrive_ros.features import CameraRigConfig, LidarBevConfig, build_features
from diffusiondrive_ros.planner import ModelInputs, PlanResult
from diffusiondrive_ros.ros.conversions import ConversionError, ns_to_stamp, rgb_to_image, xyz_to_pointcloud2
from diffusiondrive_ros.ros.frame_sync import CAMERA_NAMES, FrameSkipped, SyncConfig
from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig

QUOTAS = {"Image": 3000, "CompressedImage": 1500, "PointCloud2": 2600, "Odometry": 1100, "Imu": 1100, "UInt8": 700}
assert sum(QUOTAS.values()) >= 10_000
UINT32_MAX = 2**32 - 1
STAMP_NS = 1_700_000_000 * 10**9
EARLIER_NS = STAMP_NS - 200_000_000
RIG = CameraRigConfig(output_width=64, output_height=16)
GRID = LidarBevConfig(min_x=-16.0, max_x=16.0, min_y=-16.0, max_y=16.0, pixels_per_meter=1.0)
NON_FINITE = (math.nan, math.inf, -math.inf)


def fuzz_settings(kind: str) -> settings:
    return settings(max_examples=QUOTAS[kind], deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


# ---------------------------------------------------------------------------------------------
# The frame: real synchroniser and pipeline, recording planner
# ---------------------------------------------------------------------------------------------

class Planned(NamedTuple):
    cameras: tuple[np.ndarray, ...]
    points: np.ndarray
    velocity: tuple[float, float]
    acceleration: tuple[float, float]
    command: int


class RecordingPlanner:
    """Stands in for the network only: builds the real model inputs (as Planner.build_inputs does) and records
    what it was asked to plan; plans a fixed, valid result."""

    camera_config = RIG
    lidar_history_s = ()

    def __init__(self) -> None:
        self.calls: list[Planned] = []

    def build_inputs(self, cameras, points, velocity, acceleration, command, past_points=()) -> ModelInputs:
        features = build_features(cameras, points, velocity, acceleration, command, RIG, GRID)
        self.calls.append(Planned(tuple(cameras), points, tuple(velocity), tuple(acceleration), command))
        return ModelInputs(**features)

    def plan_inputs(self, inputs: ModelInputs, generator=None) -> PlanResult:
        return PlanResult(modes=np.zeros((1, 8, 3), np.float32), scores=np.zeros(1, np.float32), best_index=0,
                          agent_states=np.zeros((0, 5), np.float32), agent_labels=np.zeros(0, np.float32),
                          bev_semantic_map=np.zeros((1, 1, 1), np.float32),
                          denoising=np.zeros((1, 1, 8, 3), np.float32), latency_s=0.0)


GOOD_RGB = np.random.default_rng(0).integers(0, 256, (9, 16, 3), dtype=np.uint8)
GOOD_POINTS = np.array([[5.0, 1.0, 0.5], [-3.0, 2.0, 1.0], [7.5, -4.0, 1.5]], np.float32)


def odometry(stamp_ns: int, vx: float = 5.0, vy: float = 0.0) -> Odometry:
    msg = Odometry()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = ns_to_stamp(stamp_ns), "odom", "base_link"
    msg.twist.twist.linear.x, msg.twist.twist.linear.y = vx, vy
    return msg


# Valid inputs of the frame, built once (the pipeline only reads messages)
GOOD_CAMERAS = tuple(rgb_to_image(GOOD_RGB, STAMP_NS, name) for name in CAMERA_NAMES)
GOOD_CLOUD = xyz_to_pointcloud2(GOOD_POINTS, STAMP_NS, "lidar")
GOOD_ODOMETRY, EARLIER_ODOMETRY = odometry(STAMP_NS), odometry(EARLIER_NS)


def run_frame(cameras=None, cloud=None, odom=None, imu=None, commands=(), transport="raw", source="auto"):
    """One frame through the real synchroniser and pipeline, fed like the node feeds them.

    Returns (PlannedFrame or FrameSkipped, the planner, the command rejections).
    """
    planner = RecordingPlanner()
    pipeline = FramePipeline(planner, PipelineConfig(camera_transport=transport,
                                                     sync=SyncConfig(acceleration_source=source)))
    for index, msg in enumerate(cameras or GOOD_CAMERAS):
        pipeline.sync.add_camera(index, msg)
    pipeline.sync.add_odometry(EARLIER_ODOMETRY)
    pipeline.sync.add_odometry(odom or GOOD_ODOMETRY)
    if imu is not None:
        pipeline.sync.add_imu(imu)
    rejected = []
    for value in commands:
        try:
            pipeline.sync.set_command(UInt8(data=value).data)
        except ConversionError as error:
            rejected.append(str(error))
    try:
        outcome = pipeline.plan(pipeline.assemble(cloud or GOOD_CLOUD))
    except FrameSkipped as skip:
        assert sum(pipeline.stats.skipped.values()) == 1 and pipeline.stats.planned == 0
        assert not planner.calls, "a skipped frame reached the planner"
        return skip, planner, rejected
    assert pipeline.stats.planned == 1 and len(planner.calls) == 1
    return outcome, planner, rejected


def assert_skipped(outcome, reasons: set[str], text: str = "") -> None:
    assert isinstance(outcome, FrameSkipped), f"planned, expected a skip {reasons} ({text})"
    assert outcome.reason in reasons, outcome
    assert text in outcome.detail or outcome.reason.startswith("oversized"), (text, outcome)


# ---------------------------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------------------------

# encoding -> (channels, bytes per value, cv2 code to RGB or None, layout), from the tables test_encodings checks
REFERENCE = {"rgb8": (3, 1, None, ""), "bgr8": (3, 1, cv2.COLOR_BGR2RGB, ""), "8UC3": (3, 1, cv2.COLOR_BGR2RGB, ""),
             "rgba8": (4, 1, cv2.COLOR_RGBA2RGB, ""), "bgra8": (4, 1, cv2.COLOR_BGRA2RGB, ""),
             "mono8": (1, 1, cv2.COLOR_GRAY2RGB, "")}
REFERENCE |= {name: (channels, 2, code, "") for name, (channels, code) in OPENCV_16BIT.items()}
REFERENCE |= {name: (2, 1, code, "pairs") for name, code in OPENCV_YUV.items()}
REFERENCE |= {f"bayer_{p}{bits}": (1, bits // 8, code, "bayer") for p, code in OPENCV_BAYER.items() for bits in (8, 16)}
UNKNOWN_ENCODINGS = ["nv12", "32FC1", "16UC1", "RGB8", "rgb", "", "bayer_rggb", "yuv420", "jpeg", "bgr8 ", "8UC4"]


def image_problem(msg: Image) -> str:
    """Why `msg` is malformed ('' when it is valid), by the rules the README's table lists."""
    if msg.encoding not in REFERENCE:
        return "unsupported encoding"
    channels, depth, _, layout = REFERENCE[msg.encoding]
    if msg.height == 0 or msg.width == 0:
        return "empty image"
    if msg.step < msg.width * channels * depth:
        return "is smaller than width*bytes_per_pixel"
    if len(msg.data) != msg.step * msg.height:
        return "expected step*height"
    if layout == "bayer" and min(msg.height, msg.width) < 2:
        return "needs at least 2x2 pixels"
    if layout == "pairs" and msg.width % 2:
        return "width must be even"
    return ""


def reference_rgb(msg: Image) -> np.ndarray:
    """RGB of a valid Image, decoded here with numpy and the OpenCV codes of REFERENCE."""
    channels, depth, code, layout = REFERENCE[msg.encoding]
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width * channels * depth]
    order = ">" if msg.is_bigendian else "<"
    values = np.ascontiguousarray(rows).view(f"{order}u{depth}").astype(f"=u{depth}")
    values = values.reshape(msg.height, msg.width, channels)
    if layout == "bayer":
        values = np.ascontiguousarray(values[..., 0])
    rgb = values if code is None else cv2.cvtColor(values, code)
    return rgb.astype(np.uint8) if depth == 1 else (rgb >> 8).astype(np.uint8)


IMAGE_DEFECTS = ["none"] * 4 + ["unknown_encoding", "zero_size", "huge_size", "odd_shape", "short_step",
                                 "random_step", "short_data", "long_data"]


def seeds():
    """The seed of a case's numpy generator, which fills in everything hypothesis does not choose itself."""
    return st.integers(0, 2**32 - 1)


@st.composite
def images(draw) -> Image:
    """An Image of any supported encoding, padding and byte order with one defect, or of an unknown encoding.

    'odd_shape' (one row or column, odd width) is malformed only for Bayer and 4:2:2 encodings.
    """
    defect = draw(st.sampled_from(IMAGE_DEFECTS))
    encoding = draw(st.sampled_from(UNKNOWN_ENCODINGS if defect == "unknown_encoding" else sorted(REFERENCE)))
    rng = np.random.default_rng(draw(seeds()))
    channels, depth, _, _ = REFERENCE.get(encoding, (3, 1, None, ""))
    height, width = int(rng.integers(2, 9)), 2 * int(rng.integers(1, 5))
    if defect == "zero_size":
        height, width = [(0, width), (height, 0), (0, 0)][rng.integers(3)]
    elif defect == "huge_size":
        height, width = [(2**31, width), (height, UINT32_MAX), (2**16, 2**16)][rng.integers(3)]
    elif defect == "odd_shape":
        height, width = [(1, width), (height, 1), (height, width + 1)][rng.integers(3)]
    row_bytes = width * channels * depth
    step = {"short_step": row_bytes - int(rng.integers(1, 10)), "random_step": int(rng.integers(0, 2**32))
            }.get(defect, row_bytes + int(rng.integers(0, 8)))
    step = min(max(step, 0), UINT32_MAX)
    size = step * height if step * height <= 4096 else int(rng.integers(0, 65))
    size += {"short_data": -int(rng.integers(1, 10)), "long_data": int(rng.integers(1, 10))}.get(defect, 0)
    data = rng.integers(0, 256, max(size, 0), dtype=np.uint8).tobytes()
    return Image(header=Header(stamp=ns_to_stamp(STAMP_NS), frame_id="camera"), height=height, width=width,
                 encoding=encoding, is_bigendian=bool(rng.integers(2)), step=step, data=data)


def test_fuzzed_images_are_rejected_with_a_reason_or_planned_exactly() -> None:
    seen = Counter()

    @fuzz_settings("Image")
    @given(msg=images())
    def check(msg: Image) -> None:
        problem = image_problem(msg)
        seen["invalid" if problem else "valid"] += 1
        outcome, planner, _ = run_frame(cameras=(msg, msg, msg))
        if problem:
            assert_skipped(outcome, {"bad_camera_left", "oversized_camera_left"}, problem)
            return
        expected = reference_rgb(msg)
        for camera in planner.calls[0].cameras:
            np.testing.assert_array_equal(camera, expected)

    check()
    assert sum(seen.values()) >= QUOTAS["Image"] and min(seen.values()) > 600, seen


# ---------------------------------------------------------------------------------------------
# CompressedImage
# ---------------------------------------------------------------------------------------------

COMPRESSED_DEFECTS = ["none", "none", "truncated", "empty", "random_bytes", "signature_then_junk", "junk_prefix",
                      "codec", "huge_header", "zero_header"]
FORMATS = {"jpeg": ["jpeg", "rgb8; jpeg compressed bgr8", ""], "png": ["png", "bgr8; png compressed bgr8", "jpeg"]}


# (width, height) written into a header: over MAX_COMPRESSED_PIXELS (50 M), or zero
HEADER_SIZES = {"huge_header": [(9000, 9000), (65535, 800), (800, 65535)], "zero_header": [(0, 0), (0, 8), (8, 0)]}


def sof0_offset(jpeg: bytes) -> int:
    """Where OpenCV's baseline JPEG has its SOF0 segment, found by walking the segments after SOI."""
    pos = 2
    while jpeg[pos + 1] != 0xC0:
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    return pos


def with_size(data: bytes, kind: str, width: int, height: int) -> bytes:
    """`data` with the image size in its header replaced (PNG: IHDR and its CRC; JPEG: the SOF0 segment)."""
    patched = bytearray(data)
    if kind == "png":
        patched[16:24] = struct.pack(">II", width, height)
        patched[29:33] = struct.pack(">I", zlib.crc32(bytes(patched[12:29])))
    else:
        sof = sof0_offset(data)
        patched[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(patched)


@st.composite
def compressed_images(draw) -> tuple[CompressedImage, str, np.ndarray | None]:
    """(message, expected problem text or '', expected RGB of a valid one)."""
    kind = draw(st.sampled_from(["jpeg", "png"]))
    defect = draw(st.sampled_from(COMPRESSED_DEFECTS))
    rng = np.random.default_rng(draw(seeds()))
    rgb = rng.integers(0, 256, (*rng.integers(1, 13, 2), 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(5, 101))] if kind == "jpeg" else []
    data = cv2.imencode(f".{kind}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)[1].tobytes()
    fmt = FORMATS[kind][rng.integers(len(FORMATS[kind]))]
    junk = rng.integers(0, 256, int(rng.integers(1, 301)), dtype=np.uint8).tobytes()
    problem = {"truncated": "cannot decode", "empty": "data is empty", "random_bytes": "cannot decode",
               "signature_then_junk": "cannot decode", "junk_prefix": "no JPEG or PNG signature",
               "codec": "unsupported format", "huge_header": "the header declares",
               "zero_header": "the header declares"}.get(defect, "")
    if defect == "truncated":
        data = data[:rng.integers(len(data))] or b"\x00"
    elif defect == "empty":
        data = b""
    elif defect == "random_bytes":
        data = junk if junk[:2] not in (b"\xff\xd8", b"\x89P") else b"\x00" + junk
    elif defect == "signature_then_junk":
        data = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}[kind] + junk
    elif defect == "junk_prefix":
        data = bytes([rng.integers(0, 0xFF)]) + data if data[0] == 0xFF else b"\x00" + data
    elif defect == "codec":
        fmt = ["h264", "bmp", "tiff", "16UC1; compressedDepth png", "webp", "theora"][rng.integers(6)]
        problem = "compressedDepth images are not supported" if "compressedDepth" in fmt else problem
    elif defect in HEADER_SIZES:
        data = with_size(data, kind, *HEADER_SIZES[defect][rng.integers(3)])
    msg = CompressedImage(header=Header(stamp=ns_to_stamp(STAMP_NS), frame_id="camera"), format=fmt, data=data)
    if problem:
        return msg, problem, None
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if kind == "png":
        np.testing.assert_array_equal(expected, rgb)  # lossless: OpenCV's decoding is the original picture
    return msg, "", expected


def test_fuzzed_compressed_images_are_rejected_with_a_reason_or_planned_exactly() -> None:
    seen = Counter()

    @fuzz_settings("CompressedImage")
    @given(case=compressed_images())
    def check(case) -> None:
        msg, problem, expected = case
        seen["invalid" if problem else "valid"] += 1
        outcome, planner, _ = run_frame(cameras=(msg, msg, msg), transport="compressed")
        if problem:
            assert_skipped(outcome, {"bad_camera_left"}, problem)
            return
        for camera in planner.calls[0].cameras:
            np.testing.assert_array_equal(camera, expected)

    check()
    assert sum(seen.values()) >= QUOTAS["CompressedImage"] and min(seen.values()) > 150, seen


# ---------------------------------------------------------------------------------------------
# PointCloud2
# ---------------------------------------------------------------------------------------------

DATATYPES = {PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
             PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}
FLOAT_TYPES = (PointField.FLOAT32, PointField.FLOAT64)
CLOUD_DEFECTS = {
    "none": "", "some_non_finite": "", "missing": "no field", "duplicate": "is defined 2 times",
    "overlap": "overlap", "bad_datatype": "unknown datatype", "count": "has count",
    "beyond_step": "does not fit in point_step", "short_row_step": "is smaller than width*point_step",
    "data_short": "expected row_step*height", "data_long": "expected row_step*height", "huge": "",
    "no_frame": "empty header.frame_id", "all_non_finite": "no finite points", "no_points": "no finite points",
}


class CloudCase(NamedTuple):
    msg: PointCloud2
    reasons: set[str]
    text: str
    expected: np.ndarray | None


def pick(rng: np.random.Generator, options):
    """One of `options`, chosen by `rng`."""
    return options[rng.integers(len(options))]


@st.composite
def clouds(draw) -> CloudCase:
    """A cloud of any field order, datatypes, gaps, padding, organisation and byte order, with one defect."""
    defect = draw(st.sampled_from(sorted(CLOUD_DEFECTS)))
    target_name = draw(st.sampled_from("xyz"))
    bigendian = draw(st.booleans())
    rng = np.random.default_rng(draw(seeds()))
    names = ["x", "y", "z", *rng.choice(["intensity", "ring", "t"], rng.integers(3), replace=False)]
    names = [str(n) for n in rng.permutation(names)]
    floats_only = defect in ("some_non_finite", "all_non_finite")
    types = {n: int(pick(rng, FLOAT_TYPES if floats_only and n in "xyz" else sorted(DATATYPES))) for n in names}
    offsets, end = {}, 0
    for name in names:
        offsets[name] = end + int(rng.integers(0, 4))
        end = offsets[name] + np.dtype(DATATYPES[types[name]]).itemsize
    point_step = end + int(rng.integers(0, 6))
    height = int(rng.integers(1, 4))
    width = 0 if defect == "no_points" else int(rng.integers(1, 7))
    row_step = width * point_step + int(rng.integers(0, 6))
    order = ">" if bigendian else "<"
    table = np.zeros((height, width), np.dtype({"names": names, "offsets": [offsets[n] for n in names],
                                                "formats": [order + DATATYPES[types[n]] for n in names],
                                                "itemsize": point_step}))
    for name in names:
        kind = np.dtype(DATATYPES[types[name]])
        table[name] = (rng.normal(0, 8, (height, width)) if kind.kind == "f"
                       else rng.integers(np.iinfo(kind).min, np.iinfo(kind).max, (height, width), endpoint=True))
    if defect in ("some_non_finite", "all_non_finite"):
        bad = rng.random((height, width)) < 0.5 if defect == "some_non_finite" else np.ones((height, width), bool)
        for name in "xyz":
            table[name][bad & (rng.random((height, width)) < 0.6)] = pick(rng, NON_FINITE)
        table["x"][bad & np.isfinite(table["y"]) & np.isfinite(table["z"])] = pick(rng, NON_FINITE)
    rows = table.view(np.uint8).reshape(height, width * point_step)
    data = np.concatenate([rows, rng.integers(0, 256, (height, row_step - rows.shape[1]), dtype=np.uint8)], axis=1)
    expected = np.column_stack([table[n].reshape(-1).astype(np.float32) for n in "xyz"])
    expected = expected[np.isfinite(expected).all(axis=1)]
    fields = [PointField(name=n, offset=offsets[n], datatype=types[n], count=int(rng.integers(2))) for n in names]
    frame = "lidar"
    target = next(f for f in fields if f.name == target_name)
    data = data.tobytes()
    if defect == "missing":
        fields.remove(target)
    elif defect == "duplicate":
        fields.append(PointField(name=target.name, offset=0, datatype=PointField.UINT8, count=1))
    elif defect == "overlap":
        other = next(f for f in fields if f.name in "xyz" and f.name != target.name)
        target.offset, target.datatype = other.offset, other.datatype
    elif defect == "bad_datatype":
        target.datatype = pick(rng, [0, 9, 42, 255])
    elif defect == "count":
        target.count = pick(rng, [2, 3, 1000, UINT32_MAX])
    elif defect == "beyond_step":
        size = np.dtype(DATATYPES[target.datatype]).itemsize
        target.offset = pick(rng, [point_step - size + 1, point_step, UINT32_MAX])
    elif defect == "short_row_step":
        row_step = width * point_step - int(rng.integers(1, point_step + 1))
        data = data[:row_step * height]
    elif defect == "data_short":
        data = data[:-int(rng.integers(1, len(data) + 1))]
    elif defect == "data_long":
        data += bytes(int(rng.integers(1, 10)))
    elif defect == "huge":
        width, height = pick(rng, [(UINT32_MAX, 1), (2**31, 2), (4, UINT32_MAX), (2**20, 2**10)])
    elif defect == "no_frame":
        frame = ""
    msg = PointCloud2(header=Header(stamp=ns_to_stamp(STAMP_NS), frame_id=frame), height=height, width=width,
                      fields=fields, is_bigendian=bigendian, point_step=point_step, row_step=row_step, data=data,
                      is_dense=False)
    text = CLOUD_DEFECTS[defect]
    if defect in ("none", "some_non_finite") and len(expected):
        return CloudCase(msg, set(), "", expected)
    if defect in ("all_non_finite", "no_points") or (defect in ("none", "some_non_finite") and not len(expected)):
        return CloudCase(msg, {"empty_pointcloud"}, "no finite points", None)
    reasons = {"bad_pointcloud", "oversized_pointcloud"} if defect == "huge" else {"bad_pointcloud"}
    return CloudCase(msg, reasons, text, None)


def test_fuzzed_point_clouds_are_rejected_with_a_reason_or_planned_exactly() -> None:
    seen = Counter()

    @fuzz_settings("PointCloud2")
    @given(case=clouds())
    def check(case: CloudCase) -> None:
        seen["invalid" if case.reasons else "valid"] += 1
        outcome, planner, _ = run_frame(cloud=case.msg)
        if case.reasons:
            assert_skipped(outcome, case.reasons, case.text)
            return
        np.testing.assert_array_equal(planner.calls[0].points, case.expected)

    check()
    assert sum(seen.values()) >= QUOTAS["PointCloud2"] and min(seen.values()) > 200, seen


# ---------------------------------------------------------------------------------------------
# Odometry and IMU
# ---------------------------------------------------------------------------------------------

def sane(low: float, high: float):
    return st.floats(low, high, allow_nan=False)


ABSURD = (1e4, -1e6, 1e30, -1e300, 1.7e308)


def rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation quaternion (w, x, y, z) of any norm from 0.1 to 10 (readers normalise it)."""
    q = rng.normal(size=4)
    return q / np.linalg.norm(q) * rng.uniform(0.1, 10.0)


def set_vector(vector, values) -> None:
    vector.x, vector.y, vector.z = (float(v) for v in values)


def set_quaternion(q, values) -> None:
    q.w, q.x, q.y, q.z = (float(v) for v in values)


ODOMETRY_DEFECTS = {"none": "", "non_finite_linear": "twist.twist.linear: non-finite",
                    "non_finite_angular": "twist.twist.angular: non-finite",
                    "non_finite_position": "pose.pose.position: non-finite",
                    "zero_quaternion": "invalid rotation quaternion", "non_finite_quaternion": "invalid rotation",
                    "absurd_speed": "beyond the plausible limit", "absurd_yaw_rate": "beyond the plausible limit"}


@st.composite
def odometries(draw) -> tuple[Odometry, str]:
    defect = draw(st.sampled_from(sorted(ODOMETRY_DEFECTS) + ["none"] * 2))
    msg = odometry(STAMP_NS, draw(sane(-30.0, 30.0)), draw(sane(-5.0, 5.0)))
    axis, bad = draw(st.sampled_from("xyz")), draw(st.sampled_from(NON_FINITE))
    rng = np.random.default_rng(draw(seeds()))
    msg.twist.twist.linear.z = rng.uniform(-5.0, 5.0)
    set_vector(msg.twist.twist.angular, rng.uniform(-2.0, 2.0, 3))
    set_vector(msg.pose.pose.position, rng.uniform(-1e5, 1e5, 3))
    set_quaternion(msg.pose.pose.orientation, rotation(rng))
    if defect == "non_finite_linear":
        setattr(msg.twist.twist.linear, axis, bad)
    elif defect == "non_finite_angular":
        setattr(msg.twist.twist.angular, axis, bad)
    elif defect == "non_finite_position":
        setattr(msg.pose.pose.position, axis, bad)
    elif defect == "zero_quaternion":
        set_quaternion(msg.pose.pose.orientation, (0.0, 0.0, 0.0, 0.0))
    elif defect == "non_finite_quaternion":
        setattr(msg.pose.pose.orientation, pick(rng, "wxyz"), bad)
    elif defect == "absurd_speed":
        setattr(msg.twist.twist.linear, pick(rng, "xy"), pick(rng, ABSURD))
    elif defect == "absurd_yaw_rate":
        msg.twist.twist.angular.z = pick(rng, [50.0, -1e3, 1e300])
    return msg, ODOMETRY_DEFECTS[defect]


def test_fuzzed_odometry_is_rejected_with_a_reason_or_planned_exactly() -> None:
    seen = Counter()

    @fuzz_settings("Odometry")
    @given(case=odometries())
    def check(case) -> None:
        msg, problem = case
        seen["invalid" if problem else "valid"] += 1
        outcome, planner, _ = run_frame(odom=msg)
        if problem:
            assert_skipped(outcome, {"bad_ego_state"}, problem)
            return
        assert planner.calls[0].velocity == (msg.twist.twist.linear.x, msg.twist.twist.linear.y)

    check()
    assert sum(seen.values()) >= QUOTAS["Odometry"] and min(seen.values()) > 200, seen


IMU_DEFECTS = {"none": "", "orientation_absent": "", "angular_velocity_absent": "",
               "non_finite_acceleration": "linear_acceleration: non-finite",
               "absurd_acceleration": "beyond the plausible limit", "acceleration_absent": "not provided",
               "non_finite_angular_velocity": "angular_velocity: non-finite",
               "zero_quaternion": "invalid rotation quaternion", "non_finite_quaternion": "invalid rotation"}


@st.composite
def imus(draw) -> tuple[Imu, str]:
    defect = draw(st.sampled_from(sorted(IMU_DEFECTS) + ["none"] * 2))
    msg = Imu()
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(STAMP_NS), "imu"
    set_vector(msg.linear_acceleration, (draw(sane(-20.0, 20.0)), draw(sane(-20.0, 20.0)), 9.81))
    axis, bad = draw(st.sampled_from("xyz")), draw(st.sampled_from(NON_FINITE))
    rng = np.random.default_rng(draw(seeds()))
    set_vector(msg.angular_velocity, rng.uniform(-3.0, 3.0, 3))
    set_quaternion(msg.orientation, rotation(rng))
    if defect == "orientation_absent":  # valid: no orientation estimate, so its (zero) quaternion is not read
        msg.orientation_covariance[0] = -1.0
        set_quaternion(msg.orientation, (0.0, 0.0, 0.0, 0.0))
    elif defect == "angular_velocity_absent":  # valid: the NaN angular velocity is marked absent
        msg.angular_velocity_covariance[0] = -1.0
        setattr(msg.angular_velocity, axis, bad)
    elif defect == "non_finite_acceleration":
        setattr(msg.linear_acceleration, axis, bad)
    elif defect == "absurd_acceleration":
        setattr(msg.linear_acceleration, pick(rng, "xy"), pick(rng, ABSURD))
    elif defect == "acceleration_absent":
        msg.linear_acceleration_covariance[0] = -1.0
    elif defect == "non_finite_angular_velocity":
        setattr(msg.angular_velocity, axis, bad)
    elif defect == "zero_quaternion":
        set_quaternion(msg.orientation, (0.0, 0.0, 0.0, 0.0))
    elif defect == "non_finite_quaternion":
        setattr(msg.orientation, pick(rng, "wxyz"), bad)
    return msg, IMU_DEFECTS[defect]


def test_fuzzed_imu_is_used_exactly_or_replaced_by_a_reported_fallback() -> None:
    """The IMU is optional: a bad one is not used, the frame is planned with the odometry acceleration and the
    Fallback says why (the degradation policy), so its malformed values never reach the planner."""
    seen = Counter()

    @fuzz_settings("Imu")
    @given(case=imus())
    def check(case) -> None:
        msg, problem = case
        seen["invalid" if problem else "valid"] += 1
        outcome, planner, _ = run_frame(imu=msg, source="imu")
        assert not isinstance(outcome, FrameSkipped), outcome
        acceleration = (msg.linear_acceleration.x, msg.linear_acceleration.y)
        if not problem:
            assert outcome.inputs.acceleration_source == "imu"
            assert planner.calls[0].acceleration == acceleration
            return
        assert outcome.inputs.acceleration_source != "imu"
        reasons = [f.message for f in outcome.inputs.fallbacks if f.input == "acceleration"]
        assert len(reasons) == 1 and "Imu: " in reasons[0] and problem in reasons[0], reasons
        assert all(math.isfinite(a) and abs(a) < 100 for a in planner.calls[0].acceleration)

    check()
    assert sum(seen.values()) >= QUOTAS["Imu"] and min(seen.values()) > 200, seen


# ---------------------------------------------------------------------------------------------
# UInt8 command
# ---------------------------------------------------------------------------------------------

def test_fuzzed_commands_outside_0_to_3_are_rejected_and_the_last_valid_one_is_planned() -> None:
    seen = Counter()
    default = SyncConfig().default_command

    @fuzz_settings("UInt8")
    @given(values=st.lists(st.one_of(st.integers(0, 3), st.integers(4, 255)), min_size=1, max_size=3))
    def check(values: list[int]) -> None:
        seen["message"] += len(values)
        outcome, planner, rejected = run_frame(commands=values)
        invalid = [v for v in values if v > 3]
        assert len(rejected) == len(invalid)
        assert all(f"command: {v} is not 0 (left)" in text for v, text in zip(invalid, rejected))
        valid = [v for v in values if v <= 3]
        assert planner.calls[0].command == (valid[-1] if valid else default)

    check()
    assert seen["message"] >= QUOTAS["UInt8"], seen
