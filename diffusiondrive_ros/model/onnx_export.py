"""The whole plan as one ONNX graph: both backbones, the query decoder and the DDIM steps unrolled, noise an input.

Only the planning outputs are exported (the auxiliary heads are left out); ONNX Runtime runs the file
(`diffusiondrive_ros.onnx_backend`). The model config travels in the file's metadata.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import DiffusionDriveConfig
from .diffusiondrive import DiffusionDrive
from .inference import prepare_for_inference

INPUT_NAMES = ("camera", "lidar", "status", "noise")
OUTPUT_NAMES = ("poses", "scores", "denoising")
CONFIG_KEY = "diffusiondrive_config"
"""Metadata key holding the model config as JSON."""
WEIGHTS_KEY = "diffusiondrive_weights_sha256"
"""Metadata key holding `weights_digest` of the exported model, so a stale file is never used for other weights."""
OPSET = 18
"""grid_sample needs opset 16; Mish is a single operator from opset 18."""


class PlanGraph(nn.Module):
    """(camera, lidar, status, noise) -> (all modes' poses, their scores, the poses after each DDIM step)."""

    def __init__(self, model: DiffusionDrive):
        super().__init__()
        self.model = model

    def forward(
        self, camera: torch.Tensor, lidar: torch.Tensor, status: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(camera, lidar, status, noise=noise, aux_heads=False)
        return out["all_poses_reg"], out["all_poses_cls"], out["denoising_poses_reg"]


def example_inputs(config: DiffusionDriveConfig, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A seeded random frame of the model's input shapes (batch 1): camera, sparse LiDAR, status, noise."""
    generator = torch.Generator().manual_seed(seed)
    backbone = config.backbone
    lidar = backbone.lidar_resolution
    return (
        torch.rand(1, backbone.image_channels, backbone.camera_height, backbone.camera_width, generator=generator),
        (torch.rand(1, backbone.lidar_channels, lidar, lidar, generator=generator) > 0.9).float(),
        torch.tensor([[0.0, 1.0, 0.0, 0.0, 8.0, 0.0, 0.2, 0.0]]),
        torch.randn(1, config.num_modes, config.num_poses, 2, generator=generator),
    )


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over the state_dict's names, shapes and float32 values (device and storage dtype do not matter)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(model: DiffusionDrive, path: str | Path) -> Path:
    """Write the plan of `model` (folded batch norms, fp32, batch 1) to `path` with its config as metadata."""
    import onnx  # optional dependency (the `onnx` extra)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = PlanGraph(prepare_for_inference(model, channels_last=False).float().cpu()).eval()
    # The TorchScript exporter traces in a few seconds where torch.export takes minutes on a small CPU; it needs
    # PyTorch's fused attention kernel off (no ONNX form) and accepts that shapes become constants (batch 1).
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(graph, example_inputs(model.config), str(path), input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = onnx.load(str(path))
    for key, value in ((CONFIG_KEY, json.dumps(model.config.to_dict())), (WEIGHTS_KEY, weights_digest(model))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path
