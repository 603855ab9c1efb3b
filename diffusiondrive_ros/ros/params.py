"""The node's parameters in one table (default, description, allowed values, live or read-only), their
validation, and how they configure the planner and pipeline.

Shared by the rclpy node and the offline tools, so a params file means the same thing everywhere.
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..features import NUM_COMMANDS, CameraRigConfig
from ..geometry import Extrinsic
from ..planner import BACKENDS, COMPILE_MODES, PRECISIONS, Planner
from .frame_sync import ACCELERATION_SOURCES, SyncConfig
from .pipeline import CAMERA_TRANSPORTS, PipelineConfig

NODE_NAME = "diffusiondrive_planner"
ParamValue = bool | int | float | str
_TYPE_NAMES = {bool: "bool", int: "integer", float: "double", str: "string"}


class ParameterError(ValueError):
    """A parameter value of the wrong type or outside its allowed values; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """One node parameter. The type of `default` is its ROS type; numbers lie in [low, high]; strings are one of
    `choices` or match `pattern` (described for people by `allowed`). `live` parameters take effect when changed
    while the node runs; the others are read once at start-up and read-only.
    """

    default: ParamValue
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str = ""
    allowed: str = ""
    live: bool = False

    def __post_init__(self) -> None:
        numeric = type(self.default) in (int, float)
        if numeric != (self.low is not None and self.high is not None):
            raise ValueError(f"Param: low and high are required for numbers and only for numbers, got {self}")
        if (self.choices or self.pattern) and type(self.default) is not str:
            raise ValueError(f"Param: choices and pattern apply to strings only, got {self}")
        if bool(self.pattern) != bool(self.allowed):
            raise ValueError(f"Param: a pattern needs its description in `allowed`, got {self}")

    def constraints(self) -> str:
        """The allowed values in words, for error messages and the ROS parameter descriptor."""
        if self.low is not None:
            return f"from {self.low} to {self.high}"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return self.allowed


_LIVE = dict(live=True)
_METRES = dict(low=-100.0, high=100.0, **_LIVE)
_RADIANS = dict(low=-2 * math.pi, high=2 * math.pi, **_LIVE)

PIPELINING = ("auto", "on", "off")

# The one parameter table; config/diffusiondrive.yaml documents the same list (test/package/test_launch_files.py).
PARAMETERS = {
    "checkpoint": Param("", "our .pt, official NAVSIM .ckpt or plain state_dict; '' = built-in trained compact "
                            "model; 'seeded' = seeded random weights (tests only; WARN in /diagnostics)"),
    "anchors": Param("", "K-means anchors .npy (20, 8, 2); '' = from the checkpoint"),
    "trusted_checkpoint": Param(False, "allow a checkpoint that needs full pickle loading (trusted sources only)"),
    "device": Param("auto", "auto | cuda | cpu (auto: CUDA with CPU fallback)", pattern=r"auto|cpu|cuda(:[0-9]+)?",
                    allowed="auto, cpu, cuda or cuda:<index>"),
    "precision": Param("fp32", "fp32 | fp16 | bf16 (reduced precision on CUDA only)", choices=tuple(PRECISIONS)),
    "seed": Param(0, "seed of the built-in weights and of the per-frame diffusion noise", low=0, high=2**63 - 1),
    "noise_scale": Param(-1.0, "factor on the anchor noise of the truncated diffusion (1 = the paper's; below 1 keeps "
                               "modes nearer their anchors); negative = the checkpoint's own", low=-1.0, high=10.0),
    "backend": Param("torch", "torch | onnxruntime (the whole plan as one ONNX graph; TensorRT/CUDA providers on "
                              "CUDA where installed)", choices=BACKENDS),
    "threads": Param(0, "CPU threads of the model (torch or ONNX Runtime); 0 = the library default", low=0, high=256),
    "compile": Param("", "backend torch: torch.compile mode, '' = off; reduce-overhead replays the plan as CUDA "
                         "graphs on a GPU (compiled and captured by the warm-up at start-up)",
                     pattern="|".join(("",) + COMPILE_MODES), allowed="'' (off), " + ", ".join(COMPILE_MODES)),
    "pipelining": Param("auto", "decode and build the next frame's model inputs while the model plans the frame "
                                "before: on | off | auto (on with a CUDA device; on a CPU both share the cores, and "
                                "the overlap measured slower)", choices=PIPELINING),
    "onnx_path": Param("", "backend onnxruntime: the plan graph from `diffusiondrive-ros export --onnx` (refused if "
                           "its weights differ); '' = exported from the checkpoint at start-up (minutes for navsim)"),
    "base_frame": Param("base_link", "ego frame of the outputs (REP-103: x forward, y left)", pattern=r"[^/\s]\S*",
                        allowed="a frame id without spaces or a leading '/'"),
    "camera_transport": Param("raw", "raw (sensor_msgs/Image) | compressed (sensor_msgs/CompressedImage)",
                              choices=CAMERA_TRANSPORTS),
    "sync_tolerance_s": Param(0.1, "max |camera/odometry/imu stamp - cloud stamp| in seconds", low=0.001, high=10.0,
                              **_LIVE),
    "sync_wait_s": Param(0.05, "how long a cloud waits for the other inputs of its instant before it is planned",
                         low=0.0, high=10.0, **_LIVE),
    "acceleration_source": Param("auto", "imu | odometry | auto (IMU when it arrives, else odometry differencing)",
                                 choices=ACCELERATION_SOURCES),
    "acceleration_window_s": Param(0.1, "odometry differencing baseline in seconds", low=0.01, high=2.0, **_LIVE),
    "path_prefix_current_pose": Param(False, "start the Path with the current pose (0, 0, 0)", **_LIVE),
    "use_tf": Param(True, "look up cloud frame -> base_frame with tf2 when available, else lidar_extrinsic"),
    "lidar_extrinsic.x": Param(0.0, "LiDAR position in base_frame, m", **_METRES),
    "lidar_extrinsic.y": Param(0.0, "LiDAR position in base_frame, m", **_METRES),
    "lidar_extrinsic.z": Param(0.0, "LiDAR position in base_frame, m", **_METRES),
    "lidar_extrinsic.roll": Param(0.0, "LiDAR orientation in base_frame, rad", **_RADIANS),
    "lidar_extrinsic.pitch": Param(0.0, "LiDAR orientation in base_frame, rad", **_RADIANS),
    "lidar_extrinsic.yaw": Param(0.0, "LiDAR orientation in base_frame, rad", **_RADIANS),
    "camera_crop_top": Param(28, "rows cropped from the top of every camera image "
                                 "(at 1920x1080; scaled with the image size)", low=0, high=539),
    "camera_crop_bottom": Param(28, "rows cropped from the bottom of every camera image "
                                    "(at 1920x1080; scaled with the image size)", low=0, high=539),
    "camera_side_crop": Param(416, "columns cropped from both sides of the left and right images "
                                   "(at 1920x1080; scaled with the image size)", low=0, high=959),
    "default_command": Param(3, "driving command until one arrives: 0 left, 1 straight, 2 right, 3 unknown",
                             low=0, high=NUM_COMMANDS - 1),
    "diagnostics_period_s": Param(1.0, "period of /diagnostics", low=0.05, high=60.0, **_LIVE),
    "stale_timeout_s": Param(0.5, "an input older than this is stale", low=0.01, high=60.0, **_LIVE),
    "latency_warn_s": Param(0.25, "model time (p90, features excluded) above this is reported as WARN",
                            low=0.001, high=60.0, **_LIVE),
    "min_planning_rate_hz": Param(2.0, "planned frames per second (over 5 s) below this are reported as WARN",
                                  low=0.0, high=100.0, **_LIVE),
    # Degradation, time and memory bounds (docs/degradation.md)
    "odometry_tolerance_s": Param(1.5, "max |odometry stamp - cloud stamp| for the velocity; beyond "
                                       "sync_tolerance_s the frame is planned with a WARN (low-rate odometry)",
                                  low=0.001, high=10.0),
    "acceleration_max_gap_s": Param(2.0, "longest odometry gap differenced into an acceleration; beyond it the "
                                         "acceleration is zero (WARN)", low=0.01, high=10.0),
    "future_stamp_tolerance_s": Param(0.2, "inputs stamped further ahead of the node clock are rejected",
                                      low=0.0, high=60.0),
    "buffer_window_s": Param(1.0, "input messages older than the newest of their topic by this are dropped",
                             low=0.01, high=60.0),
    "buffer_max_mb": Param(64.0, "memory budget of each input topic's buffer, MiB (oldest messages dropped first)",
                           low=1.0, high=4096.0),
    "max_message_mb": Param(64.0, "largest image or point cloud accepted, MiB (by its size fields, before any copy)",
                            low=0.01, high=1024.0),
    "max_plan_distance_m": Param(300.0, "model output with a pose farther than this from the ego is rejected",
                                 low=1.0, high=10000.0),
    "path_in_odometry_frame": Param(False, "publish the Path in the odometry frame (odometry pose at the cloud "
                                           "stamp) instead of base_frame"),
    "tf_startup_wait_s": Param(2.0, "with use_tf, how long the first lookups wait for /tf_static after start-up",
                               low=0.0, high=60.0),
}
DEFAULTS = {name: spec.default for name, spec in PARAMETERS.items()}


def check_parameter(name: str, value: Any) -> ParamValue:
    """`value` as the parameter's type (an integer is accepted for a double); ParameterError if it is not allowed."""
    spec = PARAMETERS[name]
    kind = type(spec.default)
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        given = _TYPE_NAMES.get(type(value), type(value).__name__)
        raise ParameterError(f"parameter {name}: must be of type {_TYPE_NAMES[kind]}, got {value!r} ({given})")
    if spec.low is not None and not (math.isfinite(value) and spec.low <= value <= spec.high):
        raise ParameterError(f"parameter {name}: must be {spec.constraints()}, got {value!r}")
    if (spec.choices and value not in spec.choices) or (spec.pattern and not re.fullmatch(spec.pattern, value)):
        raise ParameterError(f"parameter {name}: must be {spec.constraints()}, got {value!r}")
    return value


def check_parameters(values: dict[str, Any]) -> dict[str, ParamValue]:
    """Every parameter's value checked and coerced, then the settings built from them, so cross-field errors show
    up too; ValueError (ParameterError for one value) if anything is wrong.
    """
    checked = {name: check_parameter(name, value) for name, value in values.items()}
    pipeline_config(checked)
    camera_rig(checked)
    return checked


def pipeline_config(p: dict) -> PipelineConfig:
    return PipelineConfig(
        base_frame=p["base_frame"],
        camera_transport=p["camera_transport"],
        seed=p["seed"],
        path_prefix_current_pose=p["path_prefix_current_pose"],
        lidar_extrinsic=Extrinsic(*(p[f"lidar_extrinsic.{k}"] for k in ("x", "y", "z", "roll", "pitch", "yaw"))),
        sync=SyncConfig(p["sync_tolerance_s"], p["acceleration_source"], p["acceleration_window_s"],
                        p["default_command"], p["sync_wait_s"], odometry_tolerance_s=p["odometry_tolerance_s"],
                        acceleration_max_gap_s=p["acceleration_max_gap_s"], buffer_window_s=p["buffer_window_s"],
                        buffer_max_bytes=int(p["buffer_max_mb"] * 2**20)),
        use_tf=p["use_tf"],
        max_message_bytes=int(p["max_message_mb"] * 2**20),
        max_plan_distance_m=p["max_plan_distance_m"],
        path_in_odometry_frame=p["path_in_odometry_frame"],
    )


def pipelined(p: dict, planner: Planner) -> bool:
    """Whether the node overlaps decoding and features with the model (parameter `pipelining`)."""
    return p["pipelining"] == "on" or (p["pipelining"] == "auto" and planner.device.type == "cuda")


def camera_rig(p: dict) -> CameraRigConfig:
    """The camera crop of the parameters (the output size comes from the model), for the planner and the dataset."""
    return CameraRigConfig(crop_top=p["camera_crop_top"], crop_bottom=p["camera_crop_bottom"],
                           side_crop=p["camera_side_crop"])


def planner_from_parameters(p: dict) -> Planner:
    return Planner.from_checkpoint(p["checkpoint"] or None, device=p["device"], precision=p["precision"],
                                   anchors=p["anchors"] or None, seed=p["seed"], trusted=p["trusted_checkpoint"],
                                   camera_config=camera_rig(p), backend=p["backend"], threads=p["threads"] or None,
                                   compile=p["compile"] or False, onnx_path=p["onnx_path"] or None,
                                   noise_scale=None if p["noise_scale"] < 0 else p["noise_scale"])


def write_params_file(path: str | Path, params: dict[str, Any]) -> Path:
    """A ROS params file giving the node `params` (the form `load_params_file` and `--params-file` read)."""
    path = Path(path)
    path.write_text(yaml.safe_dump({NODE_NAME: {"ros__parameters": params}}))
    return path


def load_params_file(path: str | Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the node's section of a ROS params file (nested keys flattened with '.'), then overrides;
    checked like the node checks them (ParameterError, a ValueError, names the parameter).
    """
    values = dict(DEFAULTS)
    if path:
        document = yaml.safe_load(Path(path).read_text()) or {}
        section = next((v for k, v in document.items() if k.strip("/").split("/")[-1] in (NODE_NAME, "**")), None)
        flat: dict[str, Any] = {}

        def flatten(prefix: str, tree: dict[str, Any]) -> None:
            for key, value in tree.items():
                name = f"{prefix}{key}"
                flatten(f"{name}.", value) if isinstance(value, dict) else flat.__setitem__(name, value)

        flatten("", (section or {}).get("ros__parameters", {}))
        unknown = sorted(set(flat) - set(values) - {"use_sim_time"})
        if unknown:
            raise ValueError(f"{path}: unknown parameters {unknown}")
        values.update({k: v for k, v in flat.items() if k in values})
    values.update(overrides or {})
    return check_parameters(values)
