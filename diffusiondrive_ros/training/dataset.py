"""Training dataset on disk: one compressed shard per recording plus an index, and the torch Dataset over it.

A frame stores exactly what the planner's feature code produces, losslessly and compactly: the stitched camera
panorama as uint8 (the model input is it / 255) and the LiDAR BEV histogram as uint8 capped counts (the model
input is count / cap), so training inputs equal inference inputs bit for bit.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

FORMAT_NAME = "diffusiondrive_ros.dataset"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
SHARD_DIR = "shards"
SHARD_ARRAYS = {"camera": np.uint8, "lidar": np.uint8, "status": np.float32, "future": np.float32,
                "command": np.uint8, "stamp_ns": np.int64}
"""Arrays of a shard (first axis = frame) and their dtypes."""


@dataclass(frozen=True)
class DatasetSpec:
    """What every frame of a dataset was built with; a model trains on it only when its inputs match."""

    camera_height: int
    camera_width: int
    lidar_resolution: int
    lidar_cap: int
    num_poses: int = 8
    interval_s: float = 0.5
    lidar_channels: int = 1
    """LiDAR sweeps per frame: the current one, then each `lidar_sweep_interval_s` earlier (model config)."""
    lidar_sweep_interval_s: float = 0.5


@dataclass(frozen=True)
class ShardInfo:
    """One recording's shard: where it came from, how many frames it holds and why others were not built."""

    name: str
    source: str
    fingerprint: str
    frames: int
    skipped: dict[str, int]
    command_source: str
    without_history: int = 0
    """Frames whose earlier LiDAR sweep was missing, built with the current sweep in its place (as the node plans)."""


def encode_features(camera_feature: np.ndarray, lidar_feature: np.ndarray, lidar_cap: int) -> tuple[np.ndarray, ...]:
    """Float model inputs -> (uint8 camera, uint8 lidar counts); exact for the outputs of `features.py`."""
    camera = np.rint(camera_feature * np.float32(255)).astype(np.uint8)
    lidar = np.rint(lidar_feature * np.float32(lidar_cap)).astype(np.uint8)
    return camera, lidar


def decode_features(camera: np.ndarray, lidar: np.ndarray, lidar_cap: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 arrays -> the float model inputs, computed as `features.py` computes them."""
    camera_feature = camera.astype(np.float32)
    camera_feature /= np.float32(255)
    levels = (np.arange(lidar_cap + 1) / lidar_cap).astype(np.float32)
    return camera_feature, levels[lidar]


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder and rename, so an interrupted build leaves no torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_shard(root: Path, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write one shard (compressed npz) atomically; arrays are checked against SHARD_ARRAYS."""
    count = len(arrays["stamp_ns"])
    checked = {}
    for key, dtype in SHARD_ARRAYS.items():
        value = np.asarray(arrays[key])
        if value.dtype != dtype or len(value) != count:
            raise ValueError(f"shard {name}: {key} must be {np.dtype(dtype)} with {count} frames, "
                             f"got {value.dtype} with {len(value)}")
        checked[key] = value
    path = Path(root) / SHARD_DIR / f"{name}.npz"
    _atomic_write(path, lambda stream: np.savez_compressed(stream, **checked))
    return path


def read_index(root: Path) -> tuple[DatasetSpec, list[ShardInfo]]:
    """The dataset's spec and shards; a clear error for a folder that is not a dataset."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{root}: not a dataset (no {INDEX_FILE}); build one with `diffusiondrive-ros dataset`")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT_NAME or index.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format {index.get('format')!r} version {index.get('version')!r}, "
                         f"expected {FORMAT_NAME!r} version {FORMAT_VERSION}")
    return DatasetSpec(**index["spec"]), [ShardInfo(**shard) for shard in index["shards"]]


def write_index(root: Path, spec: DatasetSpec, shards: Sequence[ShardInfo]) -> None:
    """Write the index atomically, shards sorted by name so that the same recordings give the same file."""
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "spec": asdict(spec),
             "shards": [asdict(shard) for shard in sorted(shards, key=lambda shard: shard.name)]}
    _atomic_write(Path(root) / INDEX_FILE, lambda stream: stream.write(json.dumps(index, indent=1).encode()))


def write_shard_info(root: Path, spec: DatasetSpec, info: ShardInfo) -> Path:
    """Write a shard's sidecar JSON (its ShardInfo and spec) once its npz is written: a sidecar marks a whole shard.

    The index is rebuilt from the sidecars (`rebuild_index`), so builders running in parallel never share a file.
    """
    sidecar = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "spec": asdict(spec), "shard": asdict(info)}
    path = Path(root) / SHARD_DIR / f"{info.name}.json"
    _atomic_write(path, lambda stream: stream.write(json.dumps(sidecar, indent=1).encode()))
    return path


def read_shard_infos(root: Path) -> dict[str, tuple[DatasetSpec, ShardInfo]]:
    """Spec and ShardInfo of every shard with a sidecar in the dataset folder, by shard name."""
    infos = {}
    for path in sorted((Path(root) / SHARD_DIR).glob("*.json")):
        sidecar = json.loads(path.read_text())
        if sidecar.get("format") != FORMAT_NAME or sidecar.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format {sidecar.get('format')!r} version {sidecar.get('version')!r}, "
                             f"expected {FORMAT_NAME!r} version {FORMAT_VERSION}")
        info = ShardInfo(**sidecar["shard"])
        infos[info.name] = (DatasetSpec(**sidecar["spec"]), info)
    return infos


def rebuild_index(root: Path, spec: DatasetSpec) -> list[ShardInfo]:
    """Write the index from every shard's sidecar; refuses shards built with another spec than `spec`."""
    shards = []
    for name, (shard_spec, info) in read_shard_infos(root).items():
        if shard_spec != spec:
            raise ValueError(f"{root}: shard {name} was built with {shard_spec}, not {spec}; "
                             "build datasets of different specs in different folders")
        shards.append(info)
    write_index(root, spec, shards)
    return shards


def load_shards(root: Path, keys: Sequence[str] = tuple(SHARD_ARRAYS)) -> tuple[DatasetSpec, dict[str, np.ndarray]]:
    """The `keys` arrays (default: all) of every shard concatenated in index order (uint8 images stay uint8)."""
    spec, shards = read_index(root)
    unknown = set(keys) - set(SHARD_ARRAYS)
    if unknown:
        raise ValueError(f"unknown shard arrays {sorted(unknown)}; known: {list(SHARD_ARRAYS)}")
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for shard in shards:
        if not shard.frames:
            continue
        with np.load(Path(root) / SHARD_DIR / f"{shard.name}.npz") as data:
            for key in keys:
                parts[key].append(data[key])
    if not any(parts.values()):
        raise ValueError(f"{root}: the dataset holds no frames")
    return spec, {key: np.concatenate(values) for key, values in parts.items()}


class TrajectoryDataset(Dataset):
    """Frames of a dataset folder as model inputs and the ground-truth future (x, y, heading) to learn."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.spec, self.arrays = load_shards(self.root)

    def __len__(self) -> int:
        return len(self.arrays["stamp_ns"])

    @property
    def futures(self) -> np.ndarray:
        """(N, P, 3) ground-truth futures of every frame (for anchors and normalisation)."""
        return self.arrays["future"]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        camera, lidar = decode_features(self.arrays["camera"][index], self.arrays["lidar"][index], self.spec.lidar_cap)
        return {
            "camera": torch.from_numpy(camera),
            "lidar": torch.from_numpy(lidar),
            "status": torch.from_numpy(self.arrays["status"][index].copy()),
            "target": torch.from_numpy(self.arrays["future"][index].copy()),
        }
