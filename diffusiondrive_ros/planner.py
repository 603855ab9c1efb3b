"""Inference API: weights and device in, sensors as arrays in, every candidate mode with its score out. No ROS."""
import contextlib
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .features import CameraRigConfig, LidarBevConfig, build_features
from .model import DiffusionDrive, DiffusionDriveConfig
from .model.anchors import arc_anchors, load_anchors
from .model.checkpoint import check_compatible, load_checkpoint
from .model.weights import seeded_state_dict

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class PlanResult:
    """One planned frame, in the ego frame (x forward, y left, metres; heading in radians)."""

    modes: np.ndarray  # (K, P, 3)
    scores: np.ndarray  # (K,) raw classification logits; higher is better
    best_index: int
    agent_states: np.ndarray  # (A, 5) x, y, heading, length, width
    agent_labels: np.ndarray  # (A,) existence logits
    bev_semantic_map: np.ndarray  # (C, H, W) class logits
    denoising: np.ndarray  # (steps, K, P, 3) poses after each DDIM step
    latency_s: float

    @property
    def best(self) -> np.ndarray:
        return self.modes[self.best_index]


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available (CPU fallback); an explicit 'cuda' that is missing is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use 'auto' for a CPU fallback)")
    return resolved


def frame_generator(seed: int, stamp_ns: int) -> torch.Generator:
    """A CPU generator seeded from (seed, frame stamp): the same frame gets the same noise on any device and in
    any order, so live planning and offline replay agree even when frames are dropped."""
    return torch.Generator().manual_seed(zlib.crc32(f"{int(seed)}:{int(stamp_ns)}".encode()))


class Planner:
    """DiffusionDrive on one device and precision; `plan()` takes raw sensor arrays."""

    def __init__(
        self,
        model: DiffusionDrive,
        device: Union[str, torch.device] = "cpu",
        precision: str = "fp32",
        camera_config: CameraRigConfig = CameraRigConfig(),
        lidar_config: LidarBevConfig = LidarBevConfig(),
        weights_source: str = "",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.requested_precision = precision
        # Reduced precision only pays off on a GPU; CPU bf16/fp16 kernels are often 100x slower than fp32.
        self.precision = precision if self.device.type == "cuda" else "fp32"
        self.model = model.to(self.device).eval()
        self.camera_config = camera_config
        self.lidar_config = lidar_config
        self.weights_source = weights_source

    @classmethod
    def from_checkpoint(
        cls,
        path: Optional[Union[str, Path]] = None,
        device: str = "auto",
        precision: str = "fp32",
        anchors: Optional[Union[str, Path]] = None,
        seed: int = 0,
        trusted: bool = False,
        **kwargs,
    ) -> "Planner":
        """Official Lightning checkpoint, plain state_dict or our format; None = built-in seeded weights.

        anchors: optional K-means `.npy` (K, P, 2) replacing the checkpoint's anchors.
        """
        if path:
            state, config = load_checkpoint(path, trusted=trusted)
            model = DiffusionDrive(config or DiffusionDriveConfig())
            source = str(path)
        else:
            model = DiffusionDrive()
            state = seeded_state_dict(model, seed, torch.from_numpy(arc_anchors(model.config.num_modes, model.config.num_poses)))
            source = f"built-in seeded weights (seed {seed})"
        if anchors:
            state = dict(state)
            state["_trajectory_head.plan_anchor"] = load_anchors(anchors, model.config.num_modes, model.config.num_poses)
            source += f" + anchors {anchors}"
        check_compatible(model, state)
        model.load_state_dict(state, strict=True)
        return cls(model, device=device, precision=precision, weights_source=source, **kwargs)

    def describe(self) -> str:
        """Device, precision (and why it differs from the request) and where the weights came from."""
        fallback = f" (requested {self.requested_precision}, fp32 on CPU)" if self.precision != self.requested_precision else ""
        return f"{self.device.type} {self.precision}{fallback}; weights: {self.weights_source}"

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def plan_features(
        self,
        camera_feature: np.ndarray,
        lidar_feature: np.ndarray,
        status_feature: np.ndarray,
        generator: Optional[torch.Generator] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> PlanResult:
        """Plan from model-ready features (unbatched: (3,H,W), (1,256,256), (8,))."""
        start = time.perf_counter()
        tensor = lambda a: torch.as_tensor(a, dtype=torch.float32).unsqueeze(0).to(self.device)  # noqa: E731
        with self._autocast():
            out = self.model(tensor(camera_feature), tensor(lidar_feature), tensor(status_feature), noise=noise, generator=generator)
        host = {k: v[0].float().cpu().numpy() for k, v in out.items() if k != "denoising_poses_reg"}
        denoising = out["denoising_poses_reg"][:, 0].float().cpu().numpy()
        return PlanResult(
            modes=host["all_poses_reg"],
            scores=host["all_poses_cls"],
            best_index=int(host["best_index"]),
            agent_states=host["agent_states"],
            agent_labels=host["agent_labels"],
            bev_semantic_map=host["bev_semantic_map"],
            denoising=denoising,
            latency_s=time.perf_counter() - start,
        )

    def plan(
        self,
        cameras: Sequence[np.ndarray],
        points: np.ndarray,
        velocity: Tuple[float, float] = (0.0, 0.0),
        acceleration: Tuple[float, float] = (0.0, 0.0),
        command: int = 3,
        generator: Optional[torch.Generator] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> PlanResult:
        """cameras: [left, front, right] uint8 RGB (H, W, 3); points (N, >=3) ego frame; command 0..3."""
        features = build_features(cameras, points, velocity, acceleration, command,
                                  camera_config=self.camera_config, lidar_config=self.lidar_config)
        return self.plan_features(features["camera_feature"], features["lidar_feature"], features["status_feature"],
                                  generator=generator, noise=noise)
