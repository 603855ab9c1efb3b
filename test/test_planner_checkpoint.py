"""Planner.from_checkpoint rebuilds any variant from our checkpoint alone; features follow the model config."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from diffusiondrive_ros import Planner
from diffusiondrive_ros.features import (
    CameraRigConfig,
    LidarBevConfig,
    build_features,
    camera_config_for,
    lidar_config_for,
)
from diffusiondrive_ros.model import TrajectoryNormalization, model_config
from diffusiondrive_ros.model.checkpoint import CheckpointError, save_checkpoint
from diffusiondrive_ros.model.weights import seeded_model
from diffusiondrive_ros.planner import SEEDED, frame_generator


@pytest.fixture(scope="module")
def compact_model():
    config = dataclasses.replace(model_config("compact"), normalization=TrajectoryNormalization(x_range=50.0))
    anchors = torch.randn((20, 8, 2), generator=torch.Generator().manual_seed(2)) * 3
    return seeded_model(config, seed=4, anchors=anchors)


@pytest.fixture(scope="module")
def compact_checkpoint(tmp_path_factory, compact_model):
    path = tmp_path_factory.mktemp("ckpt") / "compact.pt"
    save_checkpoint(path, compact_model, compact_model.config, step=10, variant="compact")
    return path


def _frame(seed: int, size: tuple[int, int]) -> dict:
    """Random cameras of any (H, W) and a cloud spread over +-40 m."""
    rng = np.random.default_rng(seed)
    cameras = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(3)]
    points = rng.uniform([-40, -40, -1], [40, 40, 3], size=(5000, 3)).astype(np.float32)
    return dict(cameras=cameras, points=points, velocity=(5.0, 0.0), acceleration=(0.1, 0.0), command=1)


def test_feature_configs_follow_the_model_config():
    compact = model_config("compact")
    rig = CameraRigConfig(crop_top=10, crop_bottom=0, side_crop=50)
    camera = camera_config_for(compact, rig)
    assert (camera.output_width, camera.output_height) == (256, 64)
    assert (camera.crop_top, camera.crop_bottom, camera.side_crop) == (10, 0, 50)
    lidar = lidar_config_for(compact, LidarBevConfig(split_height=0.5, hist_max_per_pixel=3))
    assert (lidar.min_x, lidar.max_x, lidar.min_y, lidar.max_y, lidar.pixels_per_meter) == (-32, 32, -32, 32, 1.0)
    assert (lidar.split_height, lidar.hist_max_per_pixel, lidar.x_edges.size - 1) == (0.5, 3, 64)
    navsim = model_config("navsim")
    assert camera_config_for(navsim) == CameraRigConfig() and lidar_config_for(navsim) == LidarBevConfig()


@pytest.mark.parametrize("size", [(1080, 1920), (480, 1000), (301, 977)])
def test_compact_checkpoint_plans_from_raw_sensors_of_any_size(compact_checkpoint, compact_model, size):
    planner = Planner.from_checkpoint(compact_checkpoint, device="cpu", camera_config=CameraRigConfig(side_crop=200),
                                      aux_heads=True)
    assert planner.model.config == compact_model.config
    frame = _frame(0, size)
    result = planner.plan(**frame, generator=frame_generator(0, 5))
    assert result.modes.shape == (20, 8, 3) and result.scores.shape == (20,)
    assert result.bev_semantic_map.shape == (7, 32, 64) and np.isfinite(result.modes).all()
    features = build_features(**frame, camera_config=planner.camera_config, lidar_config=planner.lidar_config)
    assert features["camera_feature"].shape == (3, 64, 256) and features["lidar_feature"].shape == (1, 64, 64)
    noise = torch.randn((1, 20, 8, 2), generator=frame_generator(0, 5))
    with torch.no_grad():
        inputs = [torch.from_numpy(features[k])[None] for k in ("camera_feature", "lidar_feature", "status_feature")]
        expected = compact_model(*inputs, noise=noise)
    # The planner runs the batch-norm-folded copy: equal to the model within the parity tolerance.
    np.testing.assert_allclose(result.modes, expected["all_poses_reg"][0].numpy(), rtol=0, atol=1e-4)
    assert result.best_index == int(expected["best_index"][0])


def test_describe_names_the_variant_and_its_sizes(compact_checkpoint):
    text = Planner.from_checkpoint(compact_checkpoint, device="cpu").describe()
    assert "model: compact (" in text and "camera 256x64, LiDAR 64x64 over 64 m, 20 modes" in text
    assert f"weights: {compact_checkpoint}" in text


def test_seeded_weights_for_any_variant_on_request():
    planner = Planner.from_checkpoint(SEEDED, device="cpu", seed=4, variant="compact")
    assert planner.model.config == model_config("compact") and "built-in seeded weights (seed 4)" in planner.describe()
    again = Planner.from_checkpoint("seeded", device="cpu", seed=4, variant=model_config("compact")).model.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in planner.model.state_dict().items())
    result = planner.plan(**_frame(1, (400, 900)), generator=frame_generator(0, 1))
    assert result.modes.shape == (20, 8, 3)


def test_seeded_weights_are_explicit_and_default_to_navsim():
    default, seeded = Planner.from_checkpoint(None, device="cpu"), Planner.from_checkpoint(SEEDED, device="cpu")
    assert not default.seeded and default.model.config.variant == "compact"
    assert seeded.seeded and seeded.model.config == model_config("navsim")


def test_plain_state_dict_takes_its_variant_from_the_caller(tmp_path, compact_model):
    path = tmp_path / "plain.pth"
    torch.save(compact_model.state_dict(), path)
    config_file = tmp_path / "model.yaml"
    config_file.write_text(yaml.safe_dump(compact_model.config.to_dict()))
    planner = Planner.from_checkpoint(path, device="cpu", variant=config_file)
    assert planner.model.config == compact_model.config
    with pytest.raises(CheckpointError, match="wrong shapes"):
        Planner.from_checkpoint(path, device="cpu")  # the navsim model does not fit compact weights


def test_variant_contradicting_our_checkpoint_is_refused(compact_checkpoint):
    with pytest.raises(ValueError, match="differs from the model config stored in checkpoint"):
        Planner.from_checkpoint(compact_checkpoint, device="cpu", variant="navsim")


def test_anchor_file_replaces_a_compact_checkpoints_anchors(tmp_path, compact_checkpoint):
    anchors = np.random.default_rng(3).normal(size=(20, 8, 2)).astype(np.float32)
    np.save(tmp_path / "anchors.npy", anchors)
    planner = Planner.from_checkpoint(compact_checkpoint, device="cpu", anchors=tmp_path / "anchors.npy")
    np.testing.assert_array_equal(planner.model.anchors.numpy(), anchors)


def test_features_of_another_size_are_refused(compact_checkpoint):
    planner = Planner.from_checkpoint(compact_checkpoint, device="cpu")
    features = build_features(**_frame(2, (300, 900)))  # navsim-sized features
    with pytest.raises(ValueError, match=r"camera_feature: the compact model expects shape \(3, 64, 256\), got"):
        planner.plan_features(features["camera_feature"], features["lidar_feature"], features["status_feature"])
