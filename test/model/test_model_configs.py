"""Model variants (registry, files, validation, derived sizes) and the trajectory normalisation they carry."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

from diffusiondrive_ros.model import (
    BackboneConfig,
    DiffusionConfig,
    DiffusionDrive,
    DiffusionDriveConfig,
    TrajectoryNormalization,
    load_model_config,
    model_config,
    model_config_names,
)
from diffusiondrive_ros.model.anchors import arc_anchors, denormalize_xy, fit_normalization, normalize_xy
from diffusiondrive_ros.model.resnet import ResNetFeatures
from diffusiondrive_ros.model.weights import seeded_model, seeded_state_dict

VARIANTS = model_config_names()


def _inputs(config: DiffusionDriveConfig, batch: int = 1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    b = config.backbone
    camera = torch.rand((batch, 3, b.camera_height, b.camera_width), generator=generator)
    lidar = (torch.rand((batch, 1, b.lidar_resolution, b.lidar_resolution), generator=generator) > 0.9).float()
    status = torch.tensor([[0, 1, 0, 0, 6.0, 0.1, 0.3, 0.0]] * batch)
    return camera, lidar, status


def _target(config: DiffusionDriveConfig, batch: int = 1) -> torch.Tensor:
    """Ground truth near anchor 5 with zero heading, as the loss expects (B, P, 3)."""
    xy = torch.from_numpy(arc_anchors(config.num_modes, config.num_poses)[[5] * batch]) + 0.5
    return torch.cat([xy, torch.zeros(batch, config.num_poses, 1)], dim=-1)


def _loss(model: DiffusionDrive, batch) -> torch.Tensor:
    torch.manual_seed(1)  # dropout
    out = model(*batch[:3], generator=torch.Generator().manual_seed(1), target_trajectory=batch[3])
    return out["trajectory_loss"]


def test_registry_has_navsim_and_compact_named_after_themselves():
    assert {"navsim", "compact"} <= set(VARIANTS)
    for name in VARIANTS:
        assert model_config(name).variant == name
    assert model_config("navsim") == DiffusionDriveConfig()
    with pytest.raises(ValueError, match=r"model variant must be one of \[.*'compact'.*\], got 'tiny'"):
        model_config("tiny")


def test_compact_keeps_the_head_and_shrinks_the_rest():
    navsim, compact = model_config("navsim"), model_config("compact")
    for name in ("num_modes", "num_poses", "decoder_layers", "diffusion", "normalization", "lidar_max_x"):
        assert getattr(compact, name) == getattr(navsim, name), name
    assert compact.diffusion.inference_steps == 2
    assert compact.backbone.camera_height * compact.backbone.camera_width < navsim.backbone.camera_height * 1024 / 8
    assert compact.backbone.lidar_resolution < navsim.backbone.lidar_resolution
    count = lambda config: sum(p.numel() for p in DiffusionDrive(config).parameters())  # noqa: E731
    assert count(compact) * 5 < count(navsim)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_forwards_with_the_derived_output_shapes(name):
    config = model_config(name)
    torch.manual_seed(0)
    model = DiffusionDrive(config).eval()
    with torch.no_grad():
        out = model(*_inputs(config), generator=torch.Generator().manual_seed(0))
    k, p = config.num_modes, config.num_poses
    assert out["all_poses_reg"].shape == (1, k, p, 3) and out["all_poses_cls"].shape == (1, k)
    assert out["trajectory"].shape == (1, p, 3) and out["best_index"].shape == (1,)
    assert out["denoising_poses_reg"].shape == (config.diffusion.inference_steps, 1, k, p, 3)
    assert out["agent_states"].shape == (1, config.num_bounding_boxes, 5)
    lidar = config.backbone.lidar_resolution
    assert out["bev_semantic_map"].shape == (1, config.num_bev_classes, lidar // 2, lidar)
    assert all(torch.isfinite(value).all() for value in out.values())


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_trains_one_step(name):
    config = model_config(name)
    model = seeded_model(config, seed=0).train()
    batch = (*_inputs(config), _target(config))
    loss = _loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    # The trajectory loss reaches everything but the auxiliary agent and BEV semantic heads (trained by their own).
    auxiliary = ("_agent_head", "_bev_semantic", "_trajectory_head.plan_anchor")
    trained = [p.grad for n, p in model.named_parameters() if not n.startswith(auxiliary)]
    assert all(g is not None and torch.isfinite(g).all() for g in trained)
    assert model.anchors.grad is None


def test_compact_loss_decreases_on_a_fixed_batch():
    config = model_config("compact")
    model = seeded_model(config, seed=0).train()
    batch = (*_inputs(config, batch=2), _target(config, batch=2))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(4):
        loss = _loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(float(_loss(model, batch)))
    assert losses[-1] < 0.7 * losses[0], losses


def test_anchor_counts_and_bev_sizes_follow_the_inputs():
    backbone = BackboneConfig(camera_height=96, camera_width=320, lidar_resolution=128, bev_down_sample_factor=8)
    assert (backbone.img_vert_anchors, backbone.img_horz_anchors) == (3, 10)
    assert (backbone.lidar_vert_anchors, backbone.lidar_horz_anchors, backbone.bev_feature_size) == (4, 4, 16)
    navsim = BackboneConfig()
    assert (navsim.img_vert_anchors, navsim.img_horz_anchors, navsim.lidar_vert_anchors) == (8, 32, 8)
    config = DiffusionDriveConfig(backbone=backbone, lidar_max_x=16.0, lidar_max_y=16.0)
    assert (config.bev_semantic_height, config.bev_semantic_width, config.lidar_pixels_per_meter) == (64, 128, 4.0)
    model = DiffusionDrive(config)
    assert model._keyval_embedding.weight.shape[0] == 4 * 4 + 1
    assert model._backbone.transformers[0].pos_emb.shape[1] == 3 * 10 + 4 * 4


@pytest.mark.parametrize(
    ("depths", "expected"),
    [((2, 2, 2, 2), 11_176_512), ((3, 4, 6, 3), 21_284_672)],  # timm resnet18 / resnet34 less the 513,000 of fc
)
def test_resnet_depths_give_the_standard_parameter_counts(depths, expected):
    assert sum(p.numel() for p in ResNetFeatures(3, depths).parameters()) == expected


def test_resnet_widths_set_every_stage_and_the_stem():
    net = ResNetFeatures(1, (1, 1, 1, 1), (8, 16, 24, 32))
    x = net.stem(torch.zeros(1, 1, 64, 64))
    assert x.shape == (1, 8, 32, 32)
    for index, (channels, size) in enumerate(zip((8, 16, 24, 32), (16, 8, 4, 2))):
        x = net.stage(index, x)
        assert x.shape == (1, channels, size, size)


def test_yaml_file_round_trip(tmp_path):
    config = DiffusionDriveConfig.from_dict(
        {"normalization": {"x_offset": 3.0, "y_range": 30.0}, "tf_dropout": 0.1}, base=model_config("compact")
    )
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert load_model_config(path) == config
    assert load_model_config(str(path)).normalization == TrajectoryNormalization(x_offset=3.0, y_range=30.0)


def test_partial_json_file_starts_from_its_variant(tmp_path):
    path = tmp_path / "mycar.json"
    path.write_text(json.dumps({"variant": "compact", "backbone": {"camera_height": 96}, "num_modes": 12}))
    config = load_model_config(path)
    compact = model_config("compact")
    assert config.backbone.camera_height == 96 and config.num_modes == 12
    assert config.backbone.widths == compact.backbone.widths and config.tf_d_model == compact.tf_d_model
    assert config.backbone.img_vert_anchors == 3


def test_partial_file_without_variant_starts_from_navsim(tmp_path):
    path = tmp_path / "model.yml"
    path.write_text("backbone:\n  depths: [2, 2, 2, 2]\n")
    config = load_model_config(path)
    assert config.backbone.depths == (2, 2, 2, 2)  # lists become tuples: equal, hashable configs
    assert config == DiffusionDriveConfig(backbone=BackboneConfig(depths=(2, 2, 2, 2)))


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("num_mode: 3\n", ".yaml", r"DiffusionDriveConfig has no field 'num_mode'"),
        ("backbone: {camera_height: 100}\n", ".yaml", r"BackboneConfig.camera_height must be .*multiple of 32"),
        ("variant: huge\n", ".yaml", r"model variant must be one of .*got 'huge'"),
        ("- 1\n- 2\n", ".yaml", r"expected a mapping of fields, got list"),
        ("{}", ".toml", r"suffix must be \.yaml, \.yml or \.json"),
    ],
)
def test_bad_config_files_name_the_file_and_the_problem(tmp_path, content, suffix, match):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        load_model_config(path)
    assert str(path) in str(info.value)


def test_unknown_name_or_missing_file():
    with pytest.raises(ValueError, match=r"registered variant \[.*'navsim'.*\] or a YAML/JSON file, got 'nope.yaml'"):
        load_model_config("nope.yaml")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: BackboneConfig(camera_width=1000), r"BackboneConfig.camera_width must be an int >= 32 .*got 1000"),
        (lambda: BackboneConfig(depths=(2, 2, 2)), r"BackboneConfig.depths must be 4 positive ints .*got \(2, 2, 2\)"),
        (lambda: BackboneConfig(widths=(30, 64, 128, 256)), r"BackboneConfig.widths must be multiples of gpt_heads"),
        (lambda: BackboneConfig(gpt_dropout=1.0), r"BackboneConfig.gpt_dropout must be a finite number in \[0.0, 1"),
        (lambda: BackboneConfig(bev_down_sample_factor=3), r"bev_down_sample_factor must be a divisor of lidar_res"),
        (lambda: BackboneConfig(gpt_layers=True), r"BackboneConfig.gpt_layers must be an int >= 1, got True"),
        (lambda: DiffusionConfig(truncation_step=1000), r"DiffusionConfig.truncation_step must be < num_train_time"),
        (lambda: DiffusionConfig(beta_end=1e-5), r"DiffusionConfig.beta_end must be a finite number in \(0.0001"),
        (lambda: TrajectoryNormalization(x_range=0.0), r"TrajectoryNormalization.x_range must be .* \(0.0, inf\)"),
        (lambda: TrajectoryNormalization(y_offset=float("nan")), r"TrajectoryNormalization.y_offset must be"),
        (lambda: DiffusionDriveConfig(tf_d_model=100, tf_num_head=8), r"tf_d_model must be a multiple of tf_num_head"),
        (lambda: DiffusionDriveConfig(lidar_max_y=20.0), r"DiffusionDriveConfig.lidar_max_y must be equal to lidar_m"),
        (lambda: DiffusionDriveConfig(num_modes=0), r"DiffusionDriveConfig.num_modes must be an int >= 1, got 0"),
        (lambda: DiffusionDriveConfig(variant=""), r"DiffusionDriveConfig.variant must be a non-empty string"),
        (lambda: DiffusionDriveConfig(backbone={}), r"DiffusionDriveConfig.backbone must be a BackboneConfig"),
    ],
)
def test_validation_errors_name_the_field_what_it_allows_and_the_value(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_configs_are_frozen_and_hashable():
    config = model_config("compact")
    with pytest.raises(AttributeError):
        config.num_modes = 3
    assert hash(config) == hash(model_config("compact"))


def test_seeded_weights_fit_every_variant_and_depend_only_on_the_seed():
    for name in VARIANTS:
        model = DiffusionDrive(model_config(name))
        anchors = torch.from_numpy(arc_anchors())
        first, again = seeded_state_dict(model, 3, anchors), seeded_state_dict(model, 3, anchors)
        model.load_state_dict(first, strict=True)
        assert all(torch.equal(first[k], again[k]) for k in first)
        torch.testing.assert_close(first["_trajectory_head.plan_anchor"], anchors)
    compact = model_config("compact")
    a, b = seeded_model(compact, seed=1).state_dict(), seeded_model(compact, seed=2).state_dict()
    assert not torch.equal(a["bev_proj.0.weight"], b["bev_proj.0.weight"])


def test_normalize_and_denormalize_are_inverse_and_affine():
    n = TrajectoryNormalization(x_offset=5.0, x_range=40.0, y_offset=12.0, y_range=24.0)
    corners = torch.tensor([[-5.0, -12.0], [35.0, 12.0], [15.0, 0.0]])
    torch.testing.assert_close(normalize_xy(corners, n), torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    xy = torch.empty(4, 20, 8, 2).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(normalize_xy(denormalize_xy(xy, n), n), xy)
    official_box = torch.tensor([[-1.2, -20.0], [55.7, 26.0]])  # the default normalisation is the official one
    torch.testing.assert_close(normalize_xy(official_box), torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


def test_fit_normalization_covers_the_futures_with_the_margin():
    rng = np.random.default_rng(0)
    futures = np.concatenate([rng.normal([10, 0], [8, 3], size=(50, 8, 2)), rng.normal(size=(50, 8, 1))], axis=-1)
    n = fit_normalization(futures, margin=1.5)
    normalized = normalize_xy(torch.from_numpy(futures[..., :2]), n).numpy()
    assert np.abs(normalized).max() < 1
    xy = futures[..., :2].reshape(-1, 2)
    np.testing.assert_allclose([-n.x_offset, -n.y_offset], xy.min(axis=0) - 1.5)
    np.testing.assert_allclose([n.x_range - n.x_offset, n.y_range - n.y_offset], xy.max(axis=0) + 1.5)
    straight = np.zeros((3, 8, 2)) + [[[5.0, 0.0]]]  # no lateral spread: the margin keeps the range positive
    assert fit_normalization(straight, margin=1.0).y_range == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("futures", "margin", "match"),
    [
        (np.zeros((4, 8)), 1.0, r"shape \(N, P, 2 or 3\), got shape \(4, 8\)"),
        (np.zeros((0, 8, 2)), 1.0, "non-empty"),
        (np.full((1, 8, 2), np.nan), 1.0, "NaN or Inf"),
        (np.zeros((1, 8, 2)), 0.0, r"margin: expected a finite number of metres > 0, got 0.0"),
    ],
)
def test_fit_normalization_rejects_bad_input(futures, margin, match):
    with pytest.raises(ValueError, match=match):
        fit_normalization(futures, margin)


def test_head_denoises_in_the_configured_normalization():
    """The first decoder layer sees denormalize(clamp(noised normalize(anchors))) with the config's map."""
    n = TrajectoryNormalization(x_offset=4.0, x_range=30.0, y_offset=9.0, y_range=18.0)
    config = dataclasses.replace(model_config("compact"), normalization=n)
    model = seeded_model(config, seed=0)
    head = model._trajectory_head
    seen = []
    hook = head.diff_decoder.layers[0].register_forward_hook(lambda module, args, out: seen.append(args[1]))
    noise = torch.randn((1, 20, 8, 2), generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            model(*_inputs(config), noise=noise)
    finally:
        hook.remove()
    truncation = torch.tensor([config.diffusion.truncation_step])
    noisy = head.scheduler.add_noise(normalize_xy(model.anchors[None], n), noise, truncation)
    torch.testing.assert_close(seen[0], denormalize_xy(noisy.clamp(-1, 1), n))
