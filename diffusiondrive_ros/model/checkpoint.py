"""DiffusionDrive weights: our own versioned format, the official Lightning checkpoint, or a plain state_dict.

Our format (version 2) is a dict of primitive types and tensors, readable with `torch.load(weights_only=True)`:
`format` (FORMAT_NAME), `version`, `config` (`DiffusionDriveConfig.to_dict()`: variant, sizes, diffusion schedule,
normalisation), `state_dict` (including the anchors `_trajectory_head.plan_anchor`) and `metadata` (free: step,
epoch, dataset, ...). Older versions are migrated on load, one version at a time.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from .config import OUTPUT_STRIDE, DiffusionDriveConfig

FORMAT_NAME = "diffusiondrive_ros"
FORMAT_VERSION = 2
# Prefixes the official training code puts in front of model keys (Lightning module -> agent -> model).
KNOWN_PREFIXES = ("agent._transfuser_model.", "_transfuser_model.", "module.")
# Types `torch.load(weights_only=True)` reads back, besides containers and tensors.
_PRIMITIVES = (str, int, float, bool, type(None))
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_PICKLE_PROTO = b"\x80"  # pickle's PROTO opcode: torch's legacy (non-zip) format starts with a pickle
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # how torch.load(weights_only=True) refuses a Python object


class CheckpointError(InputError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file and the problem."""


def _first_line(error: BaseException) -> str:
    """The gist of a torch.load error: its type and first non-empty line (torch's messages run to paragraphs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _container(path: Path) -> str:
    """'zip' (torch.save's format) or 'pickle' (its legacy format), checked from the file's first bytes and its end.

    A zip archive without its central directory (at the end of the file) was cut short, e.g. by a full disk or an
    interrupted copy.
    """
    with path.open("rb") as stream:
        head = stream.read(4)
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"checkpoint {path}: truncated or damaged: the zip archive has no central directory "
                                  f"({path.stat().st_size} bytes; cut short while being written or copied?)")
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist()):
                raise CheckpointError(f"checkpoint {path}: wrong format: a zip archive but not a PyTorch file "
                                      "(no data.pkl)")
        return "zip"
    if head[:1] == _PICKLE_PROTO:
        return "pickle"
    raise CheckpointError(f"checkpoint {path}: wrong format: not a PyTorch file (neither torch.save's zip archive "
                          f"nor a pickle; it starts with {head!r})")


def _read(path: str | Path, trusted: bool) -> Any:
    """The loaded file: weights only (no Python object is unpickled, so no code can run) unless `trusted`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: is a folder, not a checkpoint file")
    _container(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names the refused global or opcode on a line of its own, e.g. "Unsupported global: GLOBAL io.open".
        detail = [line.split("error: ")[-1].split(". ")[0].strip() for line in str(error).splitlines()
                  if "nsupported" in line]
        if _WEIGHTS_ONLY_REFUSAL not in str(error) or not detail:
            raise CheckpointError(f"checkpoint {path}: truncated or damaged ({_first_line(error)})") from error
        if not trusted:
            raise CheckpointError(
                f"checkpoint {path}: cannot be read with weights_only=True: it holds pickled Python objects that only "
                f"unpickling can rebuild, and unpickling can run arbitrary code ({detail[0]}). Refused; if the file "
                "comes from a source you trust (e.g. an official Lightning checkpoint with hyper-parameters), allow it "
                "with trusted_checkpoint (node parameter), trusted=True (Python) or "
                "--trust-init (train)."
            ) from error
    # torch raises RuntimeError (zip reader), EOFError or KeyError (pickle stream) for a cut or damaged file.
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: truncated or damaged ({_first_line(error)})") from error
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # same variety of errors as above, now while unpickling a trusted file
        raise CheckpointError(f"checkpoint {path}: unreadable even with full unpickling ({_first_line(error)})"
                              ) from error


def extract_state_dict(payload: Any) -> dict[str, torch.Tensor]:
    """Model keys (no prefix) from any of the three layouts."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(payload).__name__}, expected a dict")
    state = payload.get("state_dict", payload)
    if not isinstance(state, Mapping):
        raise CheckpointError("checkpoint 'state_dict' is not a dict")
    out = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            continue
        for prefix in KNOWN_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        out[key] = value
    if not out:
        raise CheckpointError("checkpoint contains no tensors")
    return out


def _migrate_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: derived sizes left the config, `pose_interval_s` went, `variant` and `normalization` came.

    Version 1 stored the anchor counts and the BEV semantic size as fields; they must equal what version 2 derives
    from the input sizes, or the weights would not fit. A version 1 model always used the official normalisation,
    ResNet-34 depths and widths, and was the navsim variant.
    """
    config = dict(payload["config"])
    backbone = dict(config.get("backbone", {}))
    camera_h, camera_w = backbone.get("camera_height", 256), backbone.get("camera_width", 1024)
    lidar = backbone.get("lidar_resolution", 256)
    derived = {
        "img_vert_anchors": camera_h // OUTPUT_STRIDE,
        "img_horz_anchors": camera_w // OUTPUT_STRIDE,
        "lidar_vert_anchors": lidar // OUTPUT_STRIDE,
        "lidar_horz_anchors": lidar // OUTPUT_STRIDE,
    }
    for name, value in derived.items():
        if backbone.pop(name, value) != value:
            raise CheckpointError(f"version 1 checkpoint: backbone.{name} is not the {value} its input size gives")
    for name, value in (("bev_semantic_height", lidar // 2), ("bev_semantic_width", lidar)):
        if config.pop(name, value) != value:
            raise CheckpointError(f"version 1 checkpoint: {name} is not the {value} the LiDAR resolution gives")
    config.pop("pose_interval_s", None)
    config["backbone"] = backbone
    config.setdefault("variant", "navsim")
    return {**payload, "version": 2, "config": config}


# Version -> function turning a payload of that version into one of the next version.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _migrate_v1}


def migrate(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Our format of any known version, migrated step by step to FORMAT_VERSION."""
    payload = dict(payload)
    version = payload.get("version")
    known = sorted(_MIGRATIONS) + [FORMAT_VERSION]
    if version not in known or isinstance(version, bool):
        raise CheckpointError(
            f"checkpoint format version must be one of {known}, got {version!r} (written by a newer or foreign "
            "diffusiondrive_ros? update this package)"
        )
    if not isinstance(payload.get("config"), Mapping):
        raise CheckpointError("checkpoint 'config' is missing or not a dict")
    while payload["version"] != FORMAT_VERSION:
        payload = _MIGRATIONS[payload["version"]](payload)
    return payload


def config_from_checkpoint(payload: Any) -> DiffusionDriveConfig | None:
    """The config stored in our own format (migrated), or None for the other layouts (which carry none)."""
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT_NAME:
        return None
    try:
        return DiffusionDriveConfig.from_dict(migrate(payload)["config"])
    except ValueError as error:
        raise CheckpointError(f"checkpoint config is invalid: {error}") from error


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise a CheckpointError naming every missing, unexpected and wrongly-shaped key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]

    def block(title: str, items: list[str]) -> str:
        listed = ", ".join(items[:20]) + (" ..." if len(items) > 20 else "")
        return f"\n  {title} ({len(items)}): {listed}" if items else ""

    if missing or unexpected or wrong:
        raise CheckpointError(
            "checkpoint does not match the DiffusionDrive model:"
            + block("missing keys", missing)
            + block("unexpected keys", unexpected)
            + block("wrong shapes", wrong)
        )


LIDAR_STEM = "_backbone.lidar_encoder.conv1.weight"
"""The first convolution of the LiDAR branch: one input channel per LiDAR sweep."""


def with_lidar_channels(state: Mapping[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """`state` for a model whose LiDAR input has `channels` sweeps: the stem kernels of the added (earlier) sweeps
    start at zero, so the network first computes exactly what `state` computes from the current sweep."""
    stem = state[LIDAR_STEM]
    if channels < stem.shape[1]:
        raise CheckpointError(f"the checkpoint's LiDAR input has {stem.shape[1]} sweeps, more than {channels}")
    added = stem.new_zeros(stem.shape[0], channels - stem.shape[1], *stem.shape[2:])
    return {**state, LIDAR_STEM: torch.cat([stem, added], dim=1)}


def load_checkpoint(
    path: str | Path, trusted: bool = False
) -> tuple[dict[str, torch.Tensor], DiffusionDriveConfig | None]:
    """-> (state_dict without prefixes, config or None). Uses `torch.load(weights_only=True)` unless trusted."""
    payload = _read(path, trusted)
    try:
        return extract_state_dict(payload), config_from_checkpoint(payload)
    except CheckpointError as error:
        raise CheckpointError(f"checkpoint {path}: {error}") from error


def _check_primitive(name: str, value: Any) -> None:
    """Raise unless `value` is made of types `torch.load(weights_only=True)` reads back."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_primitive(f"{name}.{key}", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_primitive(f"{name}[{index}]", item)
    elif not isinstance(value, _PRIMITIVES):
        raise ValueError(f"checkpoint metadata {name}: must be str, int, float, bool, None, list or dict, "
                         f"got {type(value).__name__}")


def _stored(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The tensor as stored: floating-point ones at `dtype` when given, others (counters) unchanged."""
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def save_checkpoint(path: str | Path, model: nn.Module, config: DiffusionDriveConfig,
                    weights_dtype: torch.dtype | None = None, **metadata: Any) -> None:
    """Write our format (see the module docstring); `metadata` holds primitive values (step, epoch, dataset, ...).

    `weights_dtype` (e.g. torch.float16) stores the floating-point tensors at that precision to halve a shipped
    file; loading casts them back to the model's dtype. The file is written next to `path` and renamed into
    place, so a reader never sees half a checkpoint.
    """
    _check_primitive("metadata", metadata)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(
        {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": config.to_dict(),
            "state_dict": {k: _stored(v.detach().cpu(), weights_dtype) for k, v in model.state_dict().items()},
            "metadata": dict(metadata),
        },
        partial,
    )
    os.replace(partial, path)
