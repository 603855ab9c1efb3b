"""Tests for diffusiondrive_ros.features: the official feature builder's outputs (test/data) and np.histogramdd."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DATA

from diffusiondrive_ros.features import (
    CameraRigConfig,
    FeatureBuilder,
    LidarBevConfig,
    build_features,
    camera_feature,
    lidar_feature,
    status_feature,
    stitch_cameras,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def histogram_reference(cloud: np.ndarray, config: LidarBevConfig = LidarBevConfig()) -> np.ndarray:
    """The BEV feature by its definition: np.histogramdd of the points strictly between the height limits,
    capped at hist_max_per_pixel and scaled to [0, 1]."""
    z = cloud[:, 2]
    kept = cloud[(z > config.split_height) & (z < config.max_height)]
    counts, _ = np.histogramdd(kept[:, :2], bins=(config.x_edges, config.y_edges))
    return (np.minimum(counts, config.hist_max_per_pixel) / config.hist_max_per_pixel)[None].astype(np.float32)


def random_cloud(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    """Points spread beyond the grid in x/y and across both height thresholds, with an intensity column."""
    cloud = np.empty((n, 4), dtype=dtype)
    cloud[:, 0] = rng.uniform(-40.0, 40.0, n)
    cloud[:, 1] = rng.normal(0.0, 15.0, n)
    cloud[:, 2] = rng.choice([-1.0, 0.2, 0.5, 2.0, 99.0, 100.0, 150.0], n) + rng.normal(0.0, 0.1, n)
    cloud[:, 3] = rng.uniform(0.0, 1.0, n)
    return cloud


def edge_cloud(edges: np.ndarray, dtype: type, z: float = 1.0) -> np.ndarray:
    """Points on every edge, one float step either side, and just outside the grid, in every x/y pairing."""
    values = edges.astype(dtype)
    candidates = np.concatenate(
        [
            values,
            np.nextafter(values, dtype(-np.inf)),
            np.nextafter(values, dtype(np.inf)),
            np.nextafter(np.nextafter(values, dtype(-np.inf)), dtype(-np.inf)),
        ]
    )
    xs, ys = np.meshgrid(candidates[::3], candidates)
    points = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, z)], axis=1).astype(dtype)
    return np.concatenate([points, points[:, [1, 0, 2]]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 150_000])
def test_lidar_matches_histogramdd_on_random_clouds(dtype: type, n: int) -> None:
    cloud = random_cloud(np.random.default_rng(n), n, dtype)
    out = lidar_feature(cloud)
    assert out.shape == (1, 256, 256) and out.dtype == np.float32
    np.testing.assert_array_equal(out, histogram_reference(cloud))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lidar_matches_histogramdd_on_bin_edges(dtype: type) -> None:
    config = LidarBevConfig()
    cloud = edge_cloud(config.x_edges, dtype)
    extra = np.array(
        [[32.0, 32.0, 1.0], [-32.0, -32.0, 1.0], [32.0, -32.0, 1.0], [np.nextafter(0.25, -1.0), 0.0, 1.0]], dtype=dtype
    )
    cloud = np.concatenate([cloud, extra])
    out = lidar_feature(cloud)
    np.testing.assert_array_equal(out, histogram_reference(cloud))
    assert out.sum() > 0


def test_lidar_matches_histogramdd_with_inexact_edges() -> None:
    config = LidarBevConfig(min_x=-20.1, max_x=19.9, min_y=-9.3, max_y=12.7, pixels_per_meter=5.0)
    rng = np.random.default_rng(7)
    x_pts = edge_cloud(config.x_edges, np.float64)
    y_pts = edge_cloud(config.y_edges, np.float64)
    cloud = np.concatenate([x_pts, y_pts, random_cloud(rng, 50_000, np.float64)[:, :3]])
    out = lidar_feature(cloud, config)
    assert out.shape == (1, 200, 110)
    np.testing.assert_array_equal(out, histogram_reference(cloud, config))


def test_lidar_cell_layout_and_saturation() -> None:
    cloud = np.array(
        [
            [10.1, -4.9, 1.0],  # x cell (10.1 + 32) * 4 = 168, y cell (-4.9 + 32) * 4 = 108
            [32.0, 0.0, 1.0],  # outer edge belongs to the last cell
            [-32.0, 0.0, 1.0],
            [np.nextafter(32.0, np.inf), 0.0, 1.0],  # just outside
            [0.0, np.nextafter(-32.0, -np.inf), 1.0],
        ]
        + [[0.3, 0.3, 1.0]] * 7,
        dtype=np.float64,
    )
    out = lidar_feature(cloud)
    expected = np.zeros((1, 256, 256), dtype=np.float32)
    expected[0, 168, 108] = 0.2
    expected[0, 255, 128] = 0.2
    expected[0, 0, 128] = 0.2
    expected[0, 129, 129] = 1.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lidar_height_filter(dtype: type) -> None:
    heights = np.array([-5.0, 0.0, 0.2, np.nextafter(dtype(0.2), dtype(1.0)), 1.0, 99.9, 100.0, 1e6], dtype=dtype)
    cloud = np.zeros((heights.size, 3), dtype=dtype)
    cloud[:, 0] = np.arange(heights.size)
    cloud[:, 2] = heights
    out = lidar_feature(cloud)
    np.testing.assert_array_equal(out, histogram_reference(cloud))
    kept_x_cells = np.flatnonzero(out[0, :, 128])
    assert kept_x_cells.tolist() == [128 + 4 * i for i in (3, 4, 5)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lidar_drops_non_finite_points(dtype: type) -> None:
    cloud = random_cloud(np.random.default_rng(3), 10_000, dtype)
    bad_rows = np.arange(0, 10_000, 7)
    bad_values = np.array([np.nan, np.inf, -np.inf], dtype=dtype)
    cloud[bad_rows, bad_rows % 3] = bad_values[bad_rows % 3]
    finite = cloud[np.isfinite(cloud[:, :3]).all(axis=1)]
    np.testing.assert_array_equal(lidar_feature(cloud), histogram_reference(finite))
    assert np.isfinite(lidar_feature(cloud)).all()


def test_lidar_empty_cloud_is_zero() -> None:
    out = lidar_feature(np.empty((0, 3), dtype=np.float32))
    assert out.shape == (1, 256, 256) and not out.any()


@pytest.mark.parametrize(
    "points",
    [
        np.zeros(3, dtype=np.float32),
        np.zeros((5, 2), dtype=np.float32),
        np.zeros((5, 3), dtype=np.int32),
        np.zeros((5, 3), dtype=np.float16),
        [[0.0, 0.0, 1.0]],
    ],
)
def test_lidar_rejects_bad_points(points: object) -> None:
    with pytest.raises(ValueError, match="lidar points"):
        lidar_feature(points)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_x": -40.0},
        {"min_y": 32.0},
        {"pixels_per_meter": 0.0},
        {"pixels_per_meter": 4.1},
        {"hist_max_per_pixel": 0},
        {"hist_max_per_pixel": 2.5},
    ],
)
def test_lidar_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="LidarBevConfig"):
        LidarBevConfig(**kwargs)


def encoded_camera(camera_id: int, height: int = 1080, width: int = 1920) -> np.ndarray:
    """Image whose every pixel stores its camera id, row and column losslessly."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = rows & 0xFF
    image[..., 1] = cols & 0xFF
    image[..., 2] = (camera_id << 6) | ((rows >> 8) << 3) | (cols >> 8)
    return image


def decode(image: np.ndarray) -> tuple:
    """Inverse of encoded_camera: (camera id, row, column) per pixel."""
    pixels = image.astype(np.int64)
    camera_id = pixels[..., 2] >> 6
    rows = ((pixels[..., 2] >> 3) & 0x7) << 8 | pixels[..., 0]
    cols = (pixels[..., 2] & 0x7) << 8 | pixels[..., 1]
    return camera_id, rows, cols


def test_crop_and_stitch_geometry() -> None:
    config = CameraRigConfig(output_width=1088 + 1920 + 1088, output_height=1024)  # no resampling
    stitched = stitch_cameras(encoded_camera(0), encoded_camera(1), encoded_camera(2), config)
    camera_id, rows, cols = decode(stitched)
    expected_rows = np.arange(28, 1052)
    expected_cols = np.concatenate([np.arange(416, 1504), np.arange(1920), np.arange(416, 1504)])
    expected_ids = np.repeat([0, 1, 2], [1088, 1920, 1088])
    np.testing.assert_array_equal(rows, np.broadcast_to(expected_rows[:, None], rows.shape))
    np.testing.assert_array_equal(cols, np.broadcast_to(expected_cols[None, :], cols.shape))
    np.testing.assert_array_equal(camera_id, np.broadcast_to(expected_ids[None, :], camera_id.shape))


def framed_block(colour: tuple, side: bool, height: int = 1080, width: int = 1920) -> np.ndarray:
    """Solid colour inside the default crop window, white in every region that must be cropped away."""
    image = np.full((height, width, 3), WHITE, dtype=np.uint8)
    cols = slice(416, -416) if side else slice(None)
    image[28:-28, cols] = colour
    return image


def test_default_rig_blocks_order_and_crop() -> None:
    stitched = stitch_cameras(framed_block(RED, True), framed_block(GREEN, False), framed_block(BLUE, True))
    assert stitched.shape == (256, 1024, 3) and stitched.dtype == np.uint8
    # 1088 + 1920 + 1088 columns shrink by exactly 4: boundaries at output columns 272 and 752.
    assert (stitched[:, :272] == RED).all()
    assert (stitched[:, 272:752] == GREEN).all()
    assert (stitched[:, 752:] == BLUE).all()


def test_default_rig_equals_manual_navsim_pipeline() -> None:
    rng = np.random.default_rng(11)
    left, front, right = (rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3))
    crops = [left[28:-28, 416:-416], front[28:-28], right[28:-28, 416:-416]]
    manual = cv2.resize(np.concatenate(crops, axis=1), (1024, 256))
    np.testing.assert_array_equal(stitch_cameras(left, front, right), manual)
    feature = camera_feature(left, front, right)
    assert feature.shape == (3, 256, 1024) and feature.dtype == np.float32 and feature.flags.c_contiguous
    assert feature.min() >= 0.0 and feature.max() <= 1.0
    np.testing.assert_array_equal(feature, manual.transpose(2, 0, 1).astype(np.float32) / np.float32(255))


def test_camera_feature_matches_torchvision_to_tensor_arithmetic() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    left, front, right = (rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3))
    resized = stitch_cameras(left, front, right)
    to_tensor = torch.from_numpy(resized.transpose(2, 0, 1)).contiguous().float().div(255).numpy()
    np.testing.assert_array_equal(camera_feature(left, front, right), to_tensor)


def test_non_default_rig() -> None:
    config = CameraRigConfig(crop_top=40, crop_bottom=0, side_crop=200, output_width=512, output_height=128,
                             reference_width=1280, reference_height=720)
    rng = np.random.default_rng(13)
    left, front, right = (rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(3))
    manual = cv2.resize(np.concatenate([left[40:, 200:-200], front[40:], right[40:, 200:-200]], axis=1), (512, 128))
    feature = camera_feature(left, front, right, config)
    assert feature.shape == (3, 128, 512)
    np.testing.assert_array_equal(feature, manual.transpose(2, 0, 1).astype(np.float32) / np.float32(255))

    identity = CameraRigConfig(crop_top=40, crop_bottom=0, side_crop=200, output_width=3040, output_height=680,
                               reference_width=1280, reference_height=720)
    encoded = [encoded_camera(camera_id, 720, 1280) for camera_id in range(3)]
    camera_id, rows, cols = decode(stitch_cameras(*encoded, identity))
    assert rows[:, 0].tolist() == list(range(40, 720))
    assert cols[0].tolist() == list(range(200, 1080)) + list(range(1280)) + list(range(200, 1080))
    assert camera_id[0].tolist() == [0] * 880 + [1] * 1280 + [2] * 880


def test_zero_crop_keeps_whole_images() -> None:
    config = CameraRigConfig(crop_top=0, crop_bottom=0, side_crop=0, output_width=30, output_height=10)
    images = [np.full((10, 10, 3), value, dtype=np.uint8) for value in (10, 20, 30)]
    stitched = stitch_cameras(*images, config)
    assert stitched[0, :, 0].tolist() == [10] * 10 + [20] * 10 + [30] * 10


GOOD = np.zeros((1080, 1920, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("position", "image", "message"),
    [
        (0, np.zeros((1080, 1920), dtype=np.uint8), "left camera.*uint8.*\\(H, W, 3\\)"),
        (1, np.zeros((1080, 1920, 1), dtype=np.uint8), "front camera.*\\(H, W, 3\\)"),
        (2, np.zeros((1080, 1920, 4), dtype=np.uint8), "right camera.*\\(H, W, 3\\)"),
        (1, np.zeros((1080, 1920, 3), dtype=np.float32), "front camera.*float32"),
        (0, [[[0, 0, 0]]], "left camera.*list"),
        (0, np.zeros((1080, 0, 3), dtype=np.uint8), "left camera.*too small"),
        (1, np.zeros((0, 1920, 3), dtype=np.uint8), "front camera.*too small"),
        (2, np.zeros((1000, 1920, 3), dtype=np.uint8), "different heights.*'right': 948"),
    ],
)
def test_camera_rejects_bad_images(position: int, image: object, message: str) -> None:
    images = [GOOD, GOOD, GOOD]
    images[position] = image
    with pytest.raises(ValueError, match=message):
        camera_feature(*images)


@pytest.mark.parametrize("kwargs", [{"crop_top": -1}, {"side_crop": 1.5}, {"output_width": 0}, {"output_height": -2}])
def test_camera_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="CameraRigConfig"):
        CameraRigConfig(**kwargs)


@pytest.mark.parametrize("command", [0, 1, 2, 3])
def test_status_layout(command: int) -> None:
    out = status_feature(command, (5.5, -0.25), [0.125, -1.0])
    expected = np.zeros(8, dtype=np.float32)
    expected[command] = 1.0
    expected[4:] = [5.5, -0.25, 0.125, -1.0]
    assert out.dtype == np.float32 and out.shape == (8,)
    np.testing.assert_array_equal(out, expected)


def test_status_accepts_numpy_inputs() -> None:
    out = status_feature(np.int64(2), np.array([1.0, 2.0], dtype=np.float32), np.array([3.0, 4.0]))
    np.testing.assert_array_equal(out, [0, 0, 1, 0, 1, 2, 3, 4])


@pytest.mark.parametrize(
    ("command", "velocity", "acceleration", "message"),
    [
        (-1, (0, 0), (0, 0), "command"),
        (4, (0, 0), (0, 0), "command"),
        (1.0, (0, 0), (0, 0), "command"),
        (True, (0, 0), (0, 0), "command"),
        ("1", (0, 0), (0, 0), "command"),
        (1, (np.nan, 0), (0, 0), "velocity.*finite"),
        (1, (0, 0), (0, np.inf), "acceleration.*finite"),
        (1, (0, 0, 0), (0, 0), "velocity"),
        (1, (0, 0), ("a", 0), "acceleration"),
    ],
)
def test_status_rejects_bad_inputs(command: object, velocity: object, acceleration: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        status_feature(command, velocity, acceleration)


def test_build_features() -> None:
    rng = np.random.default_rng(21)
    cameras = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3)]
    cloud = random_cloud(rng, 20_000, np.float32)
    out = build_features(cameras, cloud, (3.0, 0.1), (0.2, 0.0), 1)
    assert set(out) == {"camera_feature", "lidar_feature", "status_feature"}
    np.testing.assert_array_equal(out["camera_feature"], camera_feature(*cameras))
    np.testing.assert_array_equal(out["lidar_feature"], histogram_reference(cloud))
    np.testing.assert_array_equal(out["status_feature"], status_feature(1, (3.0, 0.1), (0.2, 0.0)))
    assert all(array.dtype == np.float32 for array in out.values())


def test_lidar_sweeps_are_one_histogram_channel_each_current_first() -> None:
    """Several sweeps (a model with a LiDAR history): channel k is the histogram of sweep k, by its definition; the
    per-frame builder gives the same into its buffers and refuses a history of the wrong length."""
    rng = np.random.default_rng(23)
    cameras = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(3)]
    current, earlier = random_cloud(rng, 5_000, np.float32), random_cloud(rng, 4_000, np.float32)
    out = build_features(cameras, current, (3.0, 0.0), (0.0, 0.0), 1, past_points=[earlier])
    expected = np.concatenate([histogram_reference(current), histogram_reference(earlier)])
    np.testing.assert_array_equal(out["lidar_feature"], expected)
    builder = FeatureBuilder(lidar_channels=2)
    built = builder.build(cameras, current, (3.0, 0.0), (0.0, 0.0), 1, past_points=[earlier])
    np.testing.assert_array_equal(built["lidar_feature"], expected)
    for past in ([], [earlier, earlier]):
        with pytest.raises(ValueError, match=rf"takes 1 earlier LiDAR sweep\(s\), got {len(past)}"):
            builder.build(cameras, current, (3.0, 0.0), (0.0, 0.0), 1, past_points=past)
    with pytest.raises(ValueError, match=r"takes 0 earlier LiDAR sweep\(s\), got 1"):
        FeatureBuilder().build(cameras, current, (3.0, 0.0), (0.0, 0.0), 1, past_points=[earlier])


def test_build_features_passes_configs_and_checks_camera_count() -> None:
    rng = np.random.default_rng(22)
    cameras = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(3)]
    camera_config = CameraRigConfig(crop_top=8, crop_bottom=8, side_crop=100, output_width=512, output_height=128)
    lidar_config = LidarBevConfig(min_x=-16.0, max_x=48.0, pixels_per_meter=2.0)
    out = build_features(cameras, np.zeros((0, 3)), (0, 0), (0, 0), 3, camera_config, lidar_config)
    assert out["camera_feature"].shape == (3, 128, 512)
    assert out["lidar_feature"].shape == (1, 128, 128)
    with pytest.raises(ValueError, match="left, front, right"):
        build_features(cameras[:2], np.zeros((0, 3)), (0, 0), (0, 0), 3)


def test_features_equal_the_official_feature_builder() -> None:
    """One NAVSIM-rig frame through the official TransfuserFeatureBuilder (test/data/README.md): equal outputs."""
    with np.load(DATA / "features_case_a.npz") as case:
        frame = {k: case[k] for k in case.files}
    out = build_features(
        [frame["camera_left"], frame["camera_front"], frame["camera_right"]], frame["points"],
        frame["velocity"], frame["acceleration"], int(frame["command"]),
    )
    for name in ("camera_feature", "lidar_feature", "status_feature"):
        assert out[name].shape == frame[name].shape and out[name].dtype == frame[name].dtype, name
        np.testing.assert_array_equal(out[name], frame[name], err_msg=name)


def test_crops_scale_with_the_camera_size() -> None:
    """A rig at half the reference size crops half the pixels: the same field of view as at 1920x1080."""
    config = CameraRigConfig()
    assert config.crops(1080, 1920) == (28, 28, 416)
    assert config.crops(540, 960) == (14, 14, 208)
    full = [np.zeros((1080, 1920, 3), np.uint8) for _ in range(3)]
    half = [np.zeros((540, 960, 3), np.uint8) for _ in range(3)]
    for image, scale in [(full[0], 1), (half[0], 2)]:
        image[:, : 416 // scale] = RED  # the left camera's cropped margin
        image[28 // scale : -28 // scale, 416 // scale : -416 // scale] = GREEN
    for images in (full, half):
        panorama = stitch_cameras(*images, config)
        left_part = panorama[:, : panorama.shape[1] * 1088 // 4096 - 2]  # 1920 - 2 * 416 of 1088 + 1920 + 1088
        assert (left_part[..., 1] > 200).all() and (panorama[..., 0] == 0).all()
