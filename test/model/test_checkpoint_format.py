"""Our checkpoint format: version 2 layout, exact round trip of any variant, v1 migration and refused versions."""

import dataclasses

import pytest
import torch

from diffusiondrive_ros.model import DiffusionDrive, DiffusionDriveConfig, TrajectoryNormalization, model_config
from diffusiondrive_ros.model.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from diffusiondrive_ros.model.weights import seeded_model

FITTED = TrajectoryNormalization(x_offset=2.5, x_range=40.0, y_offset=15.0, y_range=30.0)


@pytest.fixture(scope="module")
def compact():
    """A compact model with a fitted normalisation and its own anchors, as training on other data produces."""
    config = dataclasses.replace(model_config("compact"), normalization=FITTED)
    anchors = torch.randn((20, 8, 2), generator=torch.Generator().manual_seed(5)) * 4
    return seeded_model(config, seed=11, anchors=anchors)


def _outputs(model: DiffusionDrive) -> dict:
    b = model.config.backbone
    generator = torch.Generator().manual_seed(0)
    inputs = (
        torch.rand((1, 3, b.camera_height, b.camera_width), generator=generator),
        (torch.rand((1, 1, b.lidar_resolution, b.lidar_resolution), generator=generator) > 0.9).float(),
        torch.tensor([[0, 1, 0, 0, 6.0, 0.1, 0.3, 0.0]]),
    )
    noise = torch.randn((1, 20, 8, 2), generator=generator)
    with torch.no_grad():
        return model(*inputs, noise=noise)


def _v1_payload(model: DiffusionDrive) -> dict:
    """What version 1 wrote for the navsim model: derived sizes as fields, pose_interval_s, no variant/normalisation."""
    backbone = {k: v for k, v in dataclasses.asdict(model.config.backbone).items() if k not in ("depths", "widths")}
    backbone.update(img_vert_anchors=8, img_horz_anchors=32, lidar_vert_anchors=8, lidar_horz_anchors=8)
    config = dataclasses.asdict(model.config)
    for name in ("variant", "normalization"):
        del config[name]
    config.update(backbone=backbone, pose_interval_s=0.5, bev_semantic_height=128, bev_semantic_width=256)
    return {"format": FORMAT_NAME, "version": 1, "config": config, "state_dict": model.state_dict(), "metadata": {}}


def test_round_trip_rebuilds_the_exact_model(tmp_path, compact):
    path = tmp_path / "compact.pt"
    save_checkpoint(path, compact, compact.config, step=1200, epoch=3, dataset="my_drives", variant="compact")
    state, config = load_checkpoint(path)
    assert config == compact.config and config.normalization == FITTED and config.variant == "compact"
    restored = DiffusionDrive(config).eval()
    restored.load_state_dict(state, strict=True)
    torch.testing.assert_close(restored.anchors, compact.anchors, rtol=0, atol=0)
    expected, actual = _outputs(compact), _outputs(restored)
    for key in ("all_poses_reg", "all_poses_cls", "agent_states", "bev_semantic_map"):
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


def test_layout_is_primitive_and_loads_weights_only(tmp_path, compact):
    path = tmp_path / "compact.pt"
    save_checkpoint(path, compact, compact.config, step=7, dataset="bags/a", tags=["night", "rain"], lr=None)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert (payload["format"], payload["version"]) == (FORMAT_NAME, FORMAT_VERSION) == (FORMAT_NAME, 2)
    assert payload["metadata"] == {"step": 7, "dataset": "bags/a", "tags": ["night", "rain"], "lr": None}
    config = payload["config"]
    assert config["variant"] == "compact" and config["normalization"] == dataclasses.asdict(FITTED)
    assert config["backbone"]["depths"] == [2, 2, 2, 2] and config["diffusion"]["inference_steps"] == 2
    assert torch.equal(payload["state_dict"]["_trajectory_head.plan_anchor"], compact.anchors)
    assert [p.name for p in tmp_path.iterdir()] == ["compact.pt"]  # written beside and renamed: nothing left over


def test_metadata_that_weights_only_cannot_read_is_refused(tmp_path, compact):
    with pytest.raises(ValueError, match=r"checkpoint metadata metadata.extra\[1\]: must be str, .* got object"):
        save_checkpoint(tmp_path / "x.pt", compact, compact.config, extra=[1, object()])
    assert not any(tmp_path.iterdir())


def test_version_1_is_migrated_to_the_official_defaults(tmp_path):
    model = DiffusionDrive().eval()
    path = tmp_path / "v1.pt"
    torch.save(_v1_payload(model), path)
    state, config = load_checkpoint(path)
    assert config == model_config("navsim")
    assert config.normalization == TrajectoryNormalization() and config.backbone.depths == (3, 4, 6, 3)
    DiffusionDrive(config).load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["backbone"].update(img_horz_anchors=16), r"backbone.img_horz_anchors is not the 32"),
        (lambda c: c.update(bev_semantic_height=64), r"bev_semantic_height is not the 128"),
    ],
)
def test_version_1_with_sizes_version_2_cannot_derive_is_refused(tmp_path, change, match):
    payload = _v1_payload(DiffusionDrive())
    change(payload["config"])
    path = tmp_path / "v1.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


@pytest.mark.parametrize("version", [3, 0, None, "2", True])
def test_unknown_format_versions_are_refused(tmp_path, compact, version):
    path = tmp_path / "future.pt"
    save_checkpoint(path, compact, compact.config)
    payload = torch.load(path, weights_only=True)
    payload["version"] = version
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"future.pt: .*version must be one of \[1, 2\], got {version!r}"):
        load_checkpoint(path)


def test_invalid_stored_config_is_a_checkpoint_error(tmp_path, compact):
    path = tmp_path / "bad.pt"
    save_checkpoint(path, compact, compact.config)
    payload = torch.load(path, weights_only=True)
    payload["config"]["backbone"]["camera_width"] = 250
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"bad.pt: checkpoint config is invalid: BackboneConfig.camera_width"):
        load_checkpoint(path)


def test_official_layouts_carry_no_config(tmp_path, compact):
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": {"agent._transfuser_model." + k: v for k, v in compact.state_dict().items()}}, path)
    state, config = load_checkpoint(path)
    assert config is None and state.keys() == compact.state_dict().keys()
    assert DiffusionDriveConfig.from_dict(model_config("compact").to_dict()) == model_config("compact")
