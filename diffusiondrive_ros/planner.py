"""Inference API: weights and device in, sensors as arrays in, every candidate mode with its score out. No ROS."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .features import CameraRigConfig, FeatureBuilder, LidarBevConfig, camera_config_for, lidar_config_for
from .model import DiffusionDrive, DiffusionDriveConfig, load_model_config, model_config
from .model.anchors import load_anchors
from .model.checkpoint import check_compatible, load_checkpoint
from .model.diffusiondrive import AUX_OUTPUTS
from .model.inference import prepare_for_inference
from .model.weights import seeded_model

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("torch", "onnxruntime")
"""Inference runtimes: PyTorch (eager, optionally torch.compile) or ONNX Runtime on the exported plan graph."""
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
"""torch.compile modes; reduce-overhead replays the whole fixed-shape plan as CUDA graphs on a GPU."""
SEEDED = "seeded"
"""`Planner.from_checkpoint(SEEDED)`: deterministic seeded weights (untrained; for tests and benchmarks)."""

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "compact_synthetic.pt"
"""The built-in default: the compact model trained on synthetic drives by the README's recipe (package data)."""


@dataclass
class PlanResult:
    """One planned frame, in the ego frame (x forward, y left, metres; heading in radians)."""

    modes: np.ndarray  # (K, P, 3)
    scores: np.ndarray  # (K,) raw classification logits; higher is better
    best_index: int
    denoising: np.ndarray  # (steps, K, P, 3) poses after each DDIM step
    latency_s: float
    # Auxiliary perception outputs, only when the planner runs with aux_heads=True (planning does not use them).
    agent_states: np.ndarray | None = None  # (A, 5) x, y, heading, length, width
    agent_labels: np.ndarray | None = None  # (A,) existence logits
    bev_semantic_map: np.ndarray | None = None  # (C, H, W) class logits

    @property
    def best(self) -> np.ndarray:
        """The best mode's poses (P, 3)."""
        return self.modes[self.best_index]


@dataclass
class ModelInputs:
    """One frame's model-ready features, unbatched: views of feature buffers lent by the planner until `release()`.

    Building the next frame's inputs while this one is planned (pipelining) needs no copy: each frame in flight has
    buffers of its own, and released buffers are reused by a later frame.
    """

    camera_feature: np.ndarray | torch.Tensor  # (3, H, W); tensors on the device with device features
    lidar_feature: np.ndarray | torch.Tensor  # (C, R, R): one channel per LiDAR sweep
    status_feature: np.ndarray | torch.Tensor  # (8,)
    _release: Callable[[], None] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Hand the buffers back for a later frame (once; later calls do nothing). The arrays must not be used after."""
        release, self._release = self._release, None
        if release is not None:
            release()


class _FeatureBuffers:
    """FeatureBuilders lent one per frame in flight and reused once released, so steady-state planning allocates no
    feature arrays; a builder never given back is simply not reused."""

    KEEP = 4
    """Free builders kept: a frame being built, one waiting and one being planned, plus one spare."""

    def __init__(self, make: Callable[[], FeatureBuilder]):
        self._make = make
        self._free: list[FeatureBuilder] = []
        self._lock = threading.Lock()

    def take(self) -> FeatureBuilder:
        with self._lock:
            if self._free:
                return self._free.pop()
        return self._make()

    def give_back(self, builder: FeatureBuilder) -> None:
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(builder)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available (CPU fallback); an explicit 'cuda' that is missing is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use 'auto' for a CPU fallback)")
    return resolved


def frame_generator(seed: int, stamp_ns: int) -> torch.Generator:
    """A CPU generator seeded from (seed, frame stamp), so live planning and offline replay draw the same noise.

    The same frame gets the same noise on any device and in any order, even when frames are dropped.
    """
    return torch.Generator().manual_seed(zlib.crc32(f"{int(seed)}:{int(stamp_ns)}".encode()))


class Planner:
    """DiffusionDrive on one device, precision and backend; `plan()` takes raw sensor arrays.

    The feature builders follow the model's config: `camera_config` gives only the rig's crop and `lidar_config`
    only the height filter and saturation; output sizes and the BEV grid always come from the model.

    Inference runs a prepared copy of `model` (batch norms folded; channels-last on CUDA; `optimize=False` runs
    `model` itself, the official eager path); `model` keeps its official parameter names. Only the trajectory head runs
    unless `aux_heads` asks for the agent boxes and the BEV semantic map as well. `threads` sets the CPU threads
    (torch: process-wide, `torch.set_num_threads`; ONNX Runtime: its session), None = the library default.
    `compile` wraps the torch model in `torch.compile` with a mode of COMPILE_MODES (True = "default"); the first
    frames compile, "reduce-overhead" captures the plan in CUDA graphs on a GPU: call `warm_up()` before the first
    real frame. It pays off on GPU, seldom on CPU. `backend="onnxruntime"` runs the plan graph at `onnx_path`
    (written there from `model` when the file does not exist; None = a temporary file), with TensorRT/CUDA
    providers on a CUDA device when installed.
    `device_features` builds the inputs with torch on the device (LiDAR splatting, camera crop and resize on the
    GPU; `device_features.py`); None = on CUDA with the torch backend.
    """

    def __init__(
        self,
        model: DiffusionDrive,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        camera_config: CameraRigConfig = CameraRigConfig(),
        lidar_config: LidarBevConfig = LidarBevConfig(),
        weights_source: str = "",
        seeded: bool = False,
        backend: str = "torch",
        threads: int | None = None,
        aux_heads: bool = False,
        optimize: bool = True,
        compile: bool | str = False,
        onnx_path: str | Path | None = None,
        device_features: bool | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        compile = "default" if compile is True else compile or None
        if compile is not None and compile not in COMPILE_MODES:
            raise ValueError(f"compile must be False, True or one of {list(COMPILE_MODES)}, got {compile!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None (library default), got {threads!r}")
        if backend == "onnxruntime" and (aux_heads or compile or device_features):
            raise ValueError("backend 'onnxruntime' runs the exported plan graph on host inputs only: aux_heads, "
                             f"compile and device_features need backend 'torch' (got aux_heads={aux_heads!r}, "
                             f"compile={compile!r}, device_features={device_features!r})")
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.requested_precision = precision
        # Reduced precision only pays off on a GPU; CPU bf16/fp16 kernels are often 100x slower than fp32. The ONNX
        # graph is exported in fp32.
        self.precision = precision if self.device.type == "cuda" and backend == "torch" else "fp32"
        self.model = model.to(self.device).eval()
        self.camera_config = camera_config_for(model.config, camera_config)
        self.lidar_config = lidar_config_for(model.config, lidar_config)
        self.weights_source = weights_source
        self.seeded = seeded  # seeded random weights exercise the network but are not a driving policy
        self.num_parameters = sum(p.numel() for p in model.parameters())
        self.backend, self.threads, self.aux_heads = backend, threads, aux_heads
        self.optimize, self.compile = optimize, compile
        self._onnx = None
        # Channels-last measured no faster than NCHW with oneDNN on a 2-core CPU (bench/README.md); cuDNN gains.
        self._channels_last = optimize and self.device.type == "cuda"
        # Page-locked feature buffers let the host-to-GPU copy run asynchronously (torch backend on CUDA).
        self._pinned = self.device.type == "cuda" and backend == "torch"
        self._buffers = _FeatureBuffers(
            lambda: FeatureBuilder(self.camera_config, self.lidar_config, pinned=self._pinned,
                                   lidar_channels=model.config.backbone.lidar_channels))
        if device_features is None:
            device_features = self.device.type == "cuda" and backend == "torch"
        self._device_features = None
        if device_features:
            from .device_features import DeviceFeatureBuilder

            self._device_features = DeviceFeatureBuilder(self.camera_config, self.lidar_config, self.device,
                                                         model.config.backbone.lidar_channels)
        if backend == "onnxruntime":
            self._onnx = _onnx_plan(model, onnx_path, self.device.type, threads)
        else:
            if threads is not None:
                torch.set_num_threads(threads)
            runner = prepare_for_inference(self.model, self._channels_last) if optimize else self.model
            self._runner = torch.compile(runner, mode=compile) if compile else runner

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        device: str = "auto",
        precision: str = "fp32",
        anchors: str | Path | None = None,
        seed: int = 0,
        trusted: bool = False,
        variant: str | Path | DiffusionDriveConfig | None = None,
        noise_scale: float | None = None,
        **kwargs,
    ) -> Planner:
        """Planner with the weights at `path`; keyword arguments left over go to `Planner(...)`.

        path: our checkpoint (rebuilds its exact model: variant, sizes, anchors, normalisation), the official
            Lightning checkpoint or a plain state_dict; `SEEDED` ("seeded") = deterministic seeded weights drawn
            from `seed`; None or "" = the built-in default, DEFAULT_CHECKPOINT (the trained compact model).
        variant: the model config of weights that carry none (seeded, official or plain state_dict): a registered
            variant name, a YAML/JSON file or a config; None = navsim. Refused if it differs from our checkpoint's.
        anchors: optional K-means `.npy` (K, P, 2) replacing the checkpoint's anchors.
        noise_scale: replaces the model config's inference noise scale (`DiffusionConfig.noise_scale`); None keeps it.
        """
        config = None if variant is None else _resolve_config(variant)
        path = path or DEFAULT_CHECKPOINT
        if path == SEEDED:
            model = seeded_model((config or model_config("navsim")).with_noise_scale(noise_scale), seed)
            state = model.state_dict()
            source = f"built-in seeded weights (seed {seed})"
        else:
            state, stored = load_checkpoint(path, trusted=trusted)
            if stored is not None and config is not None and stored != config:
                raise ValueError(f"variant {variant!r} differs from the model config stored in checkpoint {path}; "
                                 "leave variant unset for our checkpoints")
            model = DiffusionDrive((stored or config or model_config("navsim")).with_noise_scale(noise_scale))
            source = str(path)
        if anchors:
            state = dict(state)
            modes, poses = model.config.num_modes, model.config.num_poses
            state["_trajectory_head.plan_anchor"] = load_anchors(anchors, modes, poses)
            source += f" + anchors {anchors}"
        check_compatible(model, state)
        model.load_state_dict(state, strict=True)
        return cls(model, device=device, precision=precision, weights_source=source, seeded=path == SEEDED, **kwargs)

    def describe(self) -> str:
        """Device, precision (and why it differs from the request), backend, the model variant and sizes, weights."""
        fallback = ""
        if self.precision != self.requested_precision:
            where = "CPU" if self.device.type == "cpu" else "the fp32 ONNX graph"
            fallback = f" (requested {self.requested_precision}, fp32 on {where})"
        config, camera = self.model.config, self.camera_config
        grid = self.lidar_config.x_edges.size - 1
        model = (
            f"{config.variant} ({self.num_parameters / 1e6:.1f} M parameters, "
            f"camera {camera.output_width}x{camera.output_height}, "
            f"LiDAR {grid}x{grid} over {2 * config.lidar_max_x:g} m"
            + (f" x {len(config.lidar_history_s) + 1} sweeps {config.lidar_sweep_interval_s:g} s apart"
               if config.lidar_history_s else "")
            + f", {config.num_modes} modes"
            + ("" if config.diffusion.noise_scale == 1 else f", noise scale {config.diffusion.noise_scale:g}") + ")"
        )
        backend = self.backend if self._onnx is None else f"onnxruntime ({', '.join(self._onnx.providers)})"
        features = f"on the {self.device.type}" if self._device_features is not None else "on the host"
        return (f"{self.device.type} {self.precision}{fallback}; backend: {backend}; features: {features}; "
                f"model: {model}; weights: {self.weights_source}")

    def _autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the reduced precision, or nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def _inputs(self, arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Batched tensors on the device (sharing the arrays' memory where the layout allows), in the model's layout."""
        layout = torch.channels_last if self._channels_last else torch.contiguous_format
        tensors = [(a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a, dtype=np.float32)))
                   .unsqueeze(0).to(self.device, non_blocking=self._pinned) for a in arrays]
        return [t.contiguous(memory_format=layout) if t.dim() == 4 else t for t in tensors]

    def _run(self, arrays: Sequence[np.ndarray], generator: torch.Generator | None,
             noise: torch.Tensor | None) -> dict[str, np.ndarray]:
        """One batch-1 forward on the backend; every output as a host array without the batch axis."""
        if noise is None:  # drawn here as the model would, so that the plan graph (ONNX, CUDA graphs) takes it in
            noise = self.model._trajectory_head.draw_noise(1, self.device, generator)
        if self._onnx is not None:
            batched = [np.asarray(a, dtype=np.float32)[None] for a in arrays]
            out = self._onnx.run(*batched, noise.detach().float().cpu().numpy())
            host = {k: v[:, 0] if k == "denoising_poses_reg" else v[0] for k, v in out.items()}
            host["best_index"] = np.argmax(host["all_poses_cls"])
            return host
        with torch.inference_mode(), self._autocast():
            out = self._runner(*self._inputs(arrays), noise=noise.to(self.device), aux_heads=self.aux_heads)
        return {k: (v[:, 0] if k == "denoising_poses_reg" else v[0]).float().cpu().numpy() for k, v in out.items()
                if k != "trajectory"}

    def plan_features(
        self,
        camera_feature: np.ndarray | torch.Tensor,
        lidar_feature: np.ndarray | torch.Tensor,
        status_feature: np.ndarray | torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> PlanResult:
        """Plan from model-ready features, unbatched: (3, H, W), (C, R, R), (8,) with the model's H, W, LiDAR channels
        C and R (arrays, or tensors on the device)."""
        config = self.model.config
        b, lidar = config.backbone, config.backbone.lidar_resolution
        expected = {
            "camera_feature": (camera_feature, (b.image_channels, b.camera_height, b.camera_width)),
            "lidar_feature": (lidar_feature, (b.lidar_channels, lidar, lidar)),
            "status_feature": (status_feature, (config.status_dims,)),
        }
        for name, (array, shape) in expected.items():
            if tuple(array.shape) != shape:
                raise ValueError(f"{name}: the {config.variant} model expects shape {shape}, got {tuple(array.shape)}")
        start = time.perf_counter()
        host = self._run((camera_feature, lidar_feature, status_feature), generator, noise)
        return PlanResult(
            modes=host["all_poses_reg"],
            scores=host["all_poses_cls"],
            best_index=int(host["best_index"]),
            denoising=host["denoising_poses_reg"],
            latency_s=time.perf_counter() - start,
            **{k: host[k] for k in AUX_OUTPUTS if k in host},
        )

    @property
    def lidar_history_s(self) -> tuple[float, ...]:
        """How long before the current sweep each earlier sweep of `past_points` was taken (empty: one sweep)."""
        return self.model.config.lidar_history_s

    def warm_up(self, frames: int | None = None) -> list[float]:
        """Plan `frames` blank frames of the rig's reference size (None: 3 when compiled, for compilation and CUDA
        graph capture, else 1) so that the first real frame runs at full speed; returns each one's seconds."""
        rig = self.camera_config
        cameras = [np.zeros((rig.reference_height, rig.reference_width, 3), np.uint8)] * 3
        points = np.zeros((1, 3), np.float32)
        history = self.lidar_history_s
        times = []
        for _ in range(frames or (3 if self.compile else 1)):
            start = time.perf_counter()
            self.plan(cameras, points, generator=frame_generator(0, 0), past_points=[points] * len(history))
            times.append(time.perf_counter() - start)
        return times

    def build_inputs(
        self,
        cameras: Sequence[np.ndarray],
        points: np.ndarray,
        velocity: Sequence[float] = (0.0, 0.0),
        acceleration: Sequence[float] = (0.0, 0.0),
        command: int = 3,
        past_points: Sequence[np.ndarray] = (),
    ) -> ModelInputs:
        """The model inputs of one frame (arguments as `plan`) in buffers of its own, to plan with `plan_inputs`
        and then `release()`; safe to call from one thread while another plans an earlier frame."""
        if self._device_features is not None:
            return ModelInputs(**self._device_features.build(cameras, points, velocity, acceleration, command,
                                                             past_points))
        builder = self._buffers.take()
        try:
            features = builder.build(cameras, points, velocity, acceleration, command, past_points)
        except BaseException:
            self._buffers.give_back(builder)
            raise
        return ModelInputs(features["camera_feature"], features["lidar_feature"], features["status_feature"],
                           lambda: self._buffers.give_back(builder))

    def plan_inputs(self, inputs: ModelInputs, generator: torch.Generator | None = None,
                    noise: torch.Tensor | None = None) -> PlanResult:
        """`plan_features` on inputs from `build_inputs` (which stay lent until released)."""
        return self.plan_features(inputs.camera_feature, inputs.lidar_feature, inputs.status_feature,
                                  generator=generator, noise=noise)

    def plan(
        self,
        cameras: Sequence[np.ndarray],
        points: np.ndarray,
        velocity: tuple[float, float] = (0.0, 0.0),
        acceleration: tuple[float, float] = (0.0, 0.0),
        command: int = 3,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        past_points: Sequence[np.ndarray] = (),
    ) -> PlanResult:
        """cameras: [left, front, right] uint8 RGB (H, W, 3), any size; points (N, >=3) ego frame; command 0..3;
        past_points: for a model with several LiDAR channels, the sweeps `lidar_history_s` earlier, each (N, >=3)
        in the current ego frame."""
        inputs = self.build_inputs(cameras, points, velocity, acceleration, command, past_points)
        try:
            return self.plan_inputs(inputs, generator=generator, noise=noise)
        finally:
            inputs.release()


def _onnx_plan(model: DiffusionDrive, path: str | Path | None, device_type: str, threads: int | None):
    """An ONNX Runtime session over the plan graph at `path`, exported from `model` first when the file is missing.

    An existing file must hold the same weights and model config (both are in its metadata); None exports to a file
    in a temporary folder.
    """
    from .model.onnx_export import export_onnx, weights_digest
    from .onnx_backend import OnnxPlan

    if path is None:
        path = Path(tempfile.mkdtemp(prefix="diffusiondrive_onnx_")) / "plan.onnx"
    path = Path(path)
    if not path.is_file():
        export_onnx(model, path)
    session = OnnxPlan(path, device_type, threads)
    if session.weights_digest != weights_digest(model) or session.config != model.config:
        raise ValueError(f"ONNX plan graph {path} was exported from other weights or another model config than the "
                         "planner's (remove the file or give another onnx_path to export these weights)")
    return session


def _resolve_config(variant: str | Path | DiffusionDriveConfig) -> DiffusionDriveConfig:
    """A config given as such, by registered name or by YAML/JSON file."""
    return variant if isinstance(variant, DiffusionDriveConfig) else load_model_config(variant)
