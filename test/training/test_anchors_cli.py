"""`anchors`: K-means over a dataset's futures writes the .npy the planner loads, and a PNG of the anchors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.planner import SEEDED, Planner
from diffusiondrive_ros.training.anchor_clustering import anchor_distances
from diffusiondrive_ros.training.dataset import DatasetSpec, ShardInfo, write_index, write_shard

SPEC = DatasetSpec(camera_height=2, camera_width=4, lidar_resolution=2, lidar_cap=5)


def arc_futures(count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 8, 3) futures at constant speed (0-15 m/s) and yaw rate (+-0.3 rad/s) in the ego frame."""
    t = 0.5 * np.arange(1, 9)
    speed, rate = rng.uniform(0, 15, (count, 1)), rng.uniform(-0.3, 0.3, (count, 1))
    heading = rate * t
    chord = speed * t * np.sinc(heading / (2 * np.pi))  # 2 R sin(heading / 2), finite at rate 0
    x, y = chord * np.cos(heading / 2), chord * np.sin(heading / 2)
    return np.stack([x, y, heading], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A dataset of two shards holding 300 futures (the sensor arrays are placeholders)."""
    root = tmp_path_factory.mktemp("dataset")
    futures = arc_futures(300, np.random.default_rng(0))
    shards = []
    for name, part in (("a", futures[:120]), ("b", futures[120:])):
        n = len(part)
        write_shard(root, name, {"camera": np.zeros((n, 3, 2, 4), np.uint8), "lidar": np.zeros((n, 1, 2, 2), np.uint8),
                                 "status": np.zeros((n, 8), np.float32), "future": part,
                                 "command": np.ones(n, np.uint8), "stamp_ns": np.arange(n, dtype=np.int64)})
        shards.append(ShardInfo(name, f"/bags/{name}", "0" * 16, n, {}, "derived"))
    write_index(root, SPEC, shards)
    return root, futures


def test_anchors_load_into_the_planner_and_are_plotted(dataset, tmp_path, capsys):
    root, futures = dataset
    out = tmp_path / "anchors.npy"
    assert main(["anchors", str(root), "--k", "20", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    anchors = np.load(out)
    assert anchors.shape == (20, 8, 2) and anchors.dtype == np.float32
    # Mean distance over the poses to the nearest anchor: 20 anchors cover 60 m x 40 m of end points to < 2 m,
    # where one anchor at the mean future leaves ~10 m.
    nearest = anchor_distances(futures, anchors).min(axis=1)
    assert nearest.mean() < 2.0 and anchor_distances(futures, futures[:, :, :2].mean(0, keepdims=True)).mean() > 9.0
    planner = Planner.from_checkpoint(SEEDED, device="cpu", variant="compact", anchors=out)
    np.testing.assert_array_equal(planner.model.state_dict()["_trajectory_head.plan_anchor"].numpy(), anchors)
    image = cv2.imread(str(tmp_path / "anchors.png"))
    assert image is not None and min(image.shape[:2]) > 100


def test_seed_and_png_options(dataset, tmp_path):
    root, _ = dataset
    for name in ("one", "two"):
        assert main(["anchors", str(root), "--k", "8", "--out", str(tmp_path / f"{name}.npy"), "--seed", "3",
                     "--png", str(tmp_path / "plots" / f"{name}.png")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy"))
    assert (tmp_path / "plots" / "one.png").is_file() and not (tmp_path / "one.png").exists()


@pytest.mark.parametrize("case", ["not_a_dataset", "too_many_anchors"])
def test_errors_are_one_line(case, dataset, tmp_path, capsys):
    root = tmp_path if case == "not_a_dataset" else dataset[0]
    k = "301" if case == "too_many_anchors" else "20"
    assert main(["anchors", str(root), "--k", k, "--out", str(tmp_path / "a.npy")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("not a dataset" if case == "not_a_dataset" else "at least") in err[0]
    assert not (tmp_path / "a.npy").exists()
