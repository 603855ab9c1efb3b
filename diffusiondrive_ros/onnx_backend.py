"""ONNX Runtime backend: runs the plan graph written by `model.onnx_export` with the best execution providers installed.

Optional: needs the `onnx` extra (`pip install onnx onnxruntime`, or `onnxruntime-gpu` for CUDA/TensorRT). No ROS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .model.config import DiffusionDriveConfig
from .model.onnx_export import CONFIG_KEY, INPUT_NAMES, OUTPUT_NAMES, WEIGHTS_KEY

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Execution providers in order of preference; those installed are used, the CPU provider always last."""


def select_providers(available: list[str], device_type: str) -> list[str]:
    """The preferred providers among `available`: GPU ones only when planning on CUDA, then the CPU provider."""
    wanted = PROVIDER_PREFERENCE if device_type == "cuda" else PROVIDER_PREFERENCE[-1:]
    return [name for name in wanted if name in available] or ["CPUExecutionProvider"]


def onnxruntime_available() -> bool:
    """Whether the optional onnxruntime package is importable."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:  # the `onnx` extra is optional
        return False
    return True


class OnnxPlan:
    """A session over a plan graph: (camera, lidar, status, noise) arrays -> poses, scores, denoising steps."""

    def __init__(self, path: str | Path, device_type: str = "cpu", threads: int | None = None):
        import onnxruntime as ort  # optional dependency (the `onnx` extra)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads would otherwise spin between frames and steal the CPU from feature building.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about operators it does not constant-fold are noise here
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.providers = select_providers(ort.get_available_providers(), device_type)
        self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise ValueError(f"{self.path}: not a diffusiondrive_ros plan graph (no {CONFIG_KEY!r} metadata)")
        self.config = DiffusionDriveConfig.from_dict(json.loads(meta[CONFIG_KEY]))
        self.weights_digest = meta.get(WEIGHTS_KEY, "")

    def run(self, camera: np.ndarray, lidar: np.ndarray, status: np.ndarray,
            noise: np.ndarray) -> dict[str, np.ndarray]:
        """Batched float32 inputs -> {'all_poses_reg', 'all_poses_cls', 'denoising_poses_reg'} as in the torch model."""
        feeds = {name: np.ascontiguousarray(array, dtype=np.float32)
                 for name, array in zip(INPUT_NAMES, (camera, lidar, status, noise))}
        poses, scores, denoising = self.session.run(list(OUTPUT_NAMES), feeds)
        return {"all_poses_reg": poses, "all_poses_cls": scores, "denoising_poses_reg": denoising}
