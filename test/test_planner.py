"""Planner API: sensors as arrays in, all modes + scores + best out; reproducible noise; device/precision."""
import numpy as np
import pytest
import torch

from diffusiondrive_ros import Planner
from diffusiondrive_ros.features import build_features
from diffusiondrive_ros.planner import frame_generator, resolve_device


@pytest.fixture(scope="module")
def planner(parity_model):
    return Planner(parity_model, device="cpu")


@pytest.fixture(scope="module")
def frame():
    """Cameras and LiDAR of the synthetic drive at t = 2 s (LiDAR points moved into base_link)."""
    from diffusiondrive_ros.tools.synthetic.lidar import LIDAR_MOUNT
    from diffusiondrive_ros.tools.synthetic.scene import SyntheticScene

    scene = SyntheticScene()
    cameras = [scene.render_camera(name, 2.0) for name in ("left", "front", "right")]
    points = scene.lidar_sweep(2.0)[:, :3] + np.asarray(LIDAR_MOUNT, np.float32)
    return dict(cameras=cameras, points=points, velocity=(7.0, 0.1), acceleration=(0.3, 0.0), command=1)


def test_plan_returns_every_mode_with_scores(planner, frame):
    result = planner.plan(**frame, generator=frame_generator(0, 1))
    assert result.modes.shape == (20, 8, 3) and result.modes.dtype == np.float32
    assert result.scores.shape == (20,)
    assert result.best_index == int(np.argmax(result.scores))
    np.testing.assert_array_equal(result.best, result.modes[result.best_index])
    assert result.denoising.shape == (2, 20, 8, 3)
    np.testing.assert_array_equal(result.denoising[-1], result.modes)
    assert result.agent_states is None and result.bev_semantic_map is None  # auxiliary heads only when asked
    assert np.isfinite(result.modes).all() and np.abs(result.modes[..., 2]).max() <= np.pi


def test_auxiliary_heads_run_when_asked_and_leave_the_plan_unchanged(parity_model, planner, frame):
    result = Planner(parity_model, device="cpu", aux_heads=True).plan(**frame, generator=frame_generator(0, 1))
    assert result.agent_states.shape == (30, 5) and result.agent_labels.shape == (30,)
    assert result.bev_semantic_map.shape == (7, 128, 256)
    np.testing.assert_array_equal(result.modes, planner.plan(**frame, generator=frame_generator(0, 1)).modes)


def test_plan_equals_model_on_the_same_features(planner, parity_model, frame):
    """plan() is exactly features -> model -> argmax, with the generator's noise."""
    features = build_features(**frame)
    noise = torch.randn((1, 20, 8, 2), generator=frame_generator(0, 7))
    with torch.no_grad():
        out = parity_model(*[torch.from_numpy(features[k])[None]
                             for k in ("camera_feature", "lidar_feature", "status_feature")], noise=noise)
    result = planner.plan(**frame, generator=frame_generator(0, 7))
    np.testing.assert_allclose(result.modes, out["all_poses_reg"][0].numpy(), atol=1e-4)  # folded batch norms
    assert result.best_index == int(out["best_index"][0])


def test_same_generator_seed_is_reproducible_and_noise_matters(planner, frame):
    first = planner.plan(**frame, generator=frame_generator(0, 100))
    again = planner.plan(**frame, generator=frame_generator(0, 100))
    other = planner.plan(**frame, generator=frame_generator(0, 200))
    np.testing.assert_array_equal(first.modes, again.modes)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert np.abs(first.modes - other.modes).max() > 1e-3


def test_inputs_change_the_plan(planner, frame):
    base = planner.plan(**frame, generator=frame_generator(0, 1))
    turned = planner.plan(**{**frame, "command": 0}, generator=frame_generator(0, 1))
    empty = planner.plan(**{**frame, "points": np.zeros((0, 3), np.float32)}, generator=frame_generator(0, 1))
    assert np.abs(base.scores - turned.scores).max() > 1e-4
    assert np.abs(base.scores - empty.scores).max() > 1e-4


def test_reduced_precision_falls_back_to_fp32_on_cpu(parity_model, frame):
    planner = Planner(parity_model, device="cpu", precision="bf16")
    assert planner.precision == "fp32" and "requested bf16" in planner.describe()
    fp32 = Planner(parity_model, device="cpu").plan(**frame, generator=frame_generator(0, 1))
    np.testing.assert_array_equal(planner.plan(**frame, generator=frame_generator(0, 1)).modes, fp32.modes)


def test_bad_settings_are_rejected(parity_model, frame):
    with pytest.raises(ValueError, match="precision"):
        Planner(parity_model, precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
        assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="command"):
        Planner(parity_model).plan(**{**frame, "command": 7})
    with pytest.raises(ValueError, match=r"backend must be one of \['torch', 'onnxruntime'\], got 'tensorrt'"):
        Planner(parity_model, backend="tensorrt")
    with pytest.raises(ValueError, match="threads must be a positive int or None .* got 0"):
        Planner(parity_model, threads=0)
    with pytest.raises(ValueError, match="aux_heads, compile and device_features need backend 'torch'"):
        Planner(parity_model, backend="onnxruntime", aux_heads=True)
    with pytest.raises(ValueError, match=r"compile must be False, True or one of \['default', 'reduce-overhead', "
                                         r"'max-autotune'\], got 'fast'"):
        Planner(parity_model, compile="fast")
