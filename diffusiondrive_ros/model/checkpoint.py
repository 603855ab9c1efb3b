"""Load DiffusionDrive weights from a plain state_dict, the official Lightning checkpoint, or our own format."""
import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from .config import BackboneConfig, DiffusionConfig, DiffusionDriveConfig

FORMAT_NAME = "diffusiondrive_ros"
FORMAT_VERSION = 1
# Prefixes the official training code puts in front of model keys (Lightning module -> agent -> model).
KNOWN_PREFIXES = ("agent._transfuser_model.", "_transfuser_model.", "module.")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


def _read(path: Union[str, Path], trusted: bool) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        if not trusted:
            raise CheckpointError(
                f"checkpoint {path}: cannot be read safely (weights_only=True): {error}. If the file comes from a "
                "source you trust and holds Python objects (e.g. Lightning hyper-parameters), load it with trusted=True."
            ) from error
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: unreadable: {error}") from error


def extract_state_dict(payload: Any) -> Dict[str, torch.Tensor]:
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
                key = key[len(prefix):]
                break
        out[key] = value
    if not out:
        raise CheckpointError("checkpoint contains no tensors")
    return out


def config_from_checkpoint(payload: Any) -> Optional[DiffusionDriveConfig]:
    """The config stored in our own format, or None for official checkpoints (which use the defaults)."""
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT_NAME:
        return None
    fields = dict(payload["config"])
    fields["backbone"] = BackboneConfig(**fields.get("backbone", {}))
    fields["diffusion"] = DiffusionConfig(**fields.get("diffusion", {}))
    return DiffusionDriveConfig(**fields)


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise a CheckpointError naming every missing, unexpected and wrongly-shaped key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        def block(title, items):
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:20]) + (" ..." if len(items) > 20 else "") if items else ""
        raise CheckpointError("checkpoint does not match the DiffusionDrive model:"
                              + block("missing keys", missing) + block("unexpected keys", unexpected)
                              + block("wrong shapes", wrong))


def load_checkpoint(path: Union[str, Path], trusted: bool = False):
    """-> (state_dict without prefixes, config or None). Uses `torch.load(weights_only=True)` unless trusted."""
    payload = _read(path, trusted)
    return extract_state_dict(payload), config_from_checkpoint(payload)


def save_checkpoint(path: Union[str, Path], model: nn.Module, config: DiffusionDriveConfig, **metadata: Any) -> None:
    """Write our own format: plain tensors + config as primitive types, loadable with weights_only=True."""
    torch.save({
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata),
    }, path)
