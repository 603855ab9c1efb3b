"""Model inputs built with torch on the planner's device (GPU splatting and resize), checked here on the CPU device:
the LiDAR histogram equals NAVSIM's exactly, the panorama within one grey level."""
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusiondrive_ros import Planner
from diffusiondrive_ros.device_features import DeviceFeatureBuilder
from diffusiondrive_ros.features import CameraRigConfig, LidarBevConfig, build_features

DATA = Path(__file__).resolve().parent / "data"
GREY_LEVEL = 1 / 255


@pytest.fixture(scope="module")
def official_frame():
    """One NAVSIM-rig frame and the official TransfuserFeatureBuilder's outputs (test/data/README.md)."""
    with np.load(DATA / "features_case_a.npz") as case:
        return {k: case[k] for k in case.files}


def _args(frame):
    cameras = [frame["camera_left"], frame["camera_front"], frame["camera_right"]]
    return cameras, frame["points"], frame["velocity"], frame["acceleration"], int(frame["command"])


def test_device_features_equal_the_official_feature_builder(official_frame):
    out = DeviceFeatureBuilder(CameraRigConfig(), LidarBevConfig(), torch.device("cpu")).build(*_args(official_frame))
    np.testing.assert_array_equal(out["lidar_feature"].numpy(), official_frame["lidar_feature"])
    np.testing.assert_array_equal(out["status_feature"].numpy(), official_frame["status_feature"])
    camera = out["camera_feature"].numpy()
    assert camera.shape == official_frame["camera_feature"].shape and out["camera_feature"].dtype == torch.float32
    assert np.abs(camera - official_frame["camera_feature"]).max() <= GREY_LEVEL * 1.0001


def test_device_lidar_bins_edge_and_invalid_points_as_numpy():
    """Points on cell edges, on the grid's border, outside it, below/above the height band and NaN/Inf."""
    rng = np.random.default_rng(3)
    grid = LidarBevConfig(min_x=-16.0, max_x=48.0, pixels_per_meter=2.0)
    edges = np.concatenate([grid.x_edges, [-16.0, 48.0, 48.01, -16.01, 47.999999]])
    points = np.column_stack([
        np.concatenate([edges, rng.uniform(-20, 52, 5000), [np.nan, np.inf, 3.0]]),
        np.concatenate([edges[::-1] / 2, rng.uniform(-34, 34, 5000), [1.0, 1.0, -np.inf]]),
        np.concatenate([np.full(edges.size, 1.0), rng.uniform(-0.5, 3.0, 5000), [1.0, 1.0, 1.0]]),
    ])
    builder = DeviceFeatureBuilder(CameraRigConfig(), grid, torch.device("cpu"))
    for dtype in (np.float32, np.float64):
        expected = build_features([np.zeros((90, 160, 3), np.uint8)] * 3, points.astype(dtype), (0, 0), (0, 0), 3,
                                  lidar_config=grid)["lidar_feature"]
        np.testing.assert_array_equal(builder.lidar(points.astype(dtype)).numpy(), expected)
    with pytest.raises(ValueError, match=r"shape \(N, >=3\)"):
        builder.lidar(points[:, :2])


def test_device_lidar_history_is_one_channel_per_sweep_as_on_the_host(official_frame):
    cameras, points, velocity, acceleration, command = _args(official_frame)
    earlier = points[::2] + np.float32(1.5)
    builder = DeviceFeatureBuilder(CameraRigConfig(), LidarBevConfig(), torch.device("cpu"), lidar_channels=2)
    out = builder.build(cameras, points, velocity, acceleration, command, past_points=[earlier])
    expected = build_features(cameras, points, velocity, acceleration, command, past_points=[earlier])
    np.testing.assert_array_equal(out["lidar_feature"].numpy(), expected["lidar_feature"])
    assert out["lidar_feature"].shape[0] == 2 and not np.array_equal(expected["lidar_feature"][0],
                                                                      expected["lidar_feature"][1])
    with pytest.raises(ValueError, match=r"takes 1 earlier LiDAR sweep\(s\), got 0"):
        builder.build(cameras, points, velocity, acceleration, command)


def test_planner_plans_from_device_features_and_says_so(official_frame):
    host = Planner.from_checkpoint(None, device="cpu")
    device = Planner(host.model, device="cpu", device_features=True, weights_source=host.weights_source)
    assert "features: on the cpu" in device.describe() and "features: on the host" in host.describe()
    past = [official_frame["points"][::2]] * len(host.lidar_history_s)  # the built-in model's earlier sweep
    inputs = device.build_inputs(*_args(official_frame), past_points=past)
    assert isinstance(inputs.camera_feature, torch.Tensor)
    noise = host.model._trajectory_head.draw_noise(1, torch.device("cpu"), torch.Generator().manual_seed(0))
    on_device = device.plan_inputs(inputs, noise=noise)
    on_host = host.plan(*_args(official_frame), noise=noise, past_points=past)
    assert on_device.best_index == on_host.best_index
    assert np.abs(on_device.modes - on_host.modes).max() < 0.01  # metres: one grey level moves a plan little
    with pytest.raises(ValueError, match="device_features"):
        Planner(host.model, device="cpu", backend="onnxruntime", device_features=True)
