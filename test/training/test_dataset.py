"""Dataset shards on disk: features survive the round trip bit for bit, and the index is rebuilt from sidecars."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from diffusiondrive_ros.features import CameraRigConfig, build_features, camera_config_for, lidar_config_for
from diffusiondrive_ros.model import model_config
from diffusiondrive_ros.training.dataset import (
    DatasetSpec,
    ShardInfo,
    TrajectoryDataset,
    encode_features,
    load_shards,
    read_index,
    read_shard_infos,
    rebuild_index,
    write_index,
    write_shard,
    write_shard_info,
)

CONFIG = model_config("compact")
CAMERA = camera_config_for(CONFIG, CameraRigConfig(crop_top=4, crop_bottom=4, side_crop=40))
LIDAR = lidar_config_for(CONFIG)
SPEC = DatasetSpec(camera_height=CAMERA.output_height, camera_width=CAMERA.output_width,
                   lidar_resolution=CONFIG.backbone.lidar_resolution, lidar_cap=LIDAR.hist_max_per_pixel)


def random_inputs(rng: np.random.Generator) -> dict:
    """Sensor arrays as the node decodes them: three 320x180 RGB images, a cloud, ego state and command."""
    points = np.column_stack([rng.uniform(-40, 40, (3000, 2)), rng.uniform(-1, 3, 3000)]).astype(np.float32)
    points[:1500, :2] = rng.normal(0, 2, (1500, 2))  # dense near the ego, so the counts saturate
    return {"cameras": [rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for _ in range(3)], "points": points,
            "velocity": tuple(rng.normal(0, 5, 2)), "acceleration": tuple(rng.normal(0, 1, 2)),
            "command": int(rng.integers(0, 4))}


def shard_arrays(frames: list[dict], features: list[dict], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The arrays of a shard of these frames, encoded as the dataset builder encodes them."""
    encoded = [encode_features(f["camera_feature"], f["lidar_feature"], SPEC.lidar_cap) for f in features]
    return {"camera": np.stack([c for c, _ in encoded]), "lidar": np.stack([lidar for _, lidar in encoded]),
            "status": np.stack([f["status_feature"] for f in features]),
            "future": rng.normal(0, 10, (len(frames), 8, 3)).astype(np.float32),
            "command": np.array([f["command"] for f in frames], np.uint8),
            "stamp_ns": np.arange(len(frames), dtype=np.int64) * 100_000_000}


def info(name: str, frames: int) -> ShardInfo:
    return ShardInfo(name=name, source=f"/bags/{name}", fingerprint="f" * 16, frames=frames, skipped={"no_future": 3},
                     command_source="recorded")


def test_features_round_trip_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    frames = [random_inputs(rng) for _ in range(3)]
    features = [build_features(**frame, camera_config=CAMERA, lidar_config=LIDAR) for frame in frames]
    assert features[0]["lidar_feature"].max() == 1.0  # some cells saturate at the cap
    arrays = shard_arrays(frames, features, rng)
    write_shard(tmp_path, "a", arrays)
    write_index(tmp_path, SPEC, [info("a", 3)])
    dataset = TrajectoryDataset(tmp_path)
    assert len(dataset) == 3
    for index, expected in enumerate(features):
        item = dataset[index]
        for key, name in (("camera", "camera_feature"), ("lidar", "lidar_feature"), ("status", "status_feature")):
            assert item[key].numpy().dtype == np.float32
            np.testing.assert_array_equal(item[key].numpy(), expected[name])
        np.testing.assert_array_equal(item["target"].numpy(), arrays["future"][index])
    np.testing.assert_array_equal(dataset.futures, arrays["future"])


def test_index_is_rebuilt_from_sidecars(tmp_path):
    rng = np.random.default_rng(1)
    frames = [random_inputs(rng) for _ in range(2)]
    arrays = shard_arrays(frames, [build_features(**f, camera_config=CAMERA, lidar_config=LIDAR) for f in frames], rng)
    for name, count in (("b", 2), ("a", 1)):
        write_shard(tmp_path, name, {key: value[:count] for key, value in arrays.items()})
        write_shard_info(tmp_path, SPEC, info(name, count))
    assert set(read_shard_infos(tmp_path)) == {"a", "b"}
    shards = rebuild_index(tmp_path, SPEC)
    spec, indexed = read_index(tmp_path)
    assert spec == SPEC and [s.name for s in indexed] == ["a", "b"] and sorted(shards, key=lambda s: s.name) == indexed
    _, futures = load_shards(tmp_path, keys=("future",))
    assert list(futures) == ["future"]
    np.testing.assert_array_equal(futures["future"], np.concatenate([arrays["future"][:1], arrays["future"][:2]]))
    with pytest.raises(ValueError, match="built with"):
        rebuild_index(tmp_path, dataclasses.replace(SPEC, lidar_resolution=256))
    with pytest.raises(ValueError, match="unknown shard arrays"):
        load_shards(tmp_path, keys=("images",))


def test_a_folder_without_index_is_not_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a dataset"):
        read_index(tmp_path)
