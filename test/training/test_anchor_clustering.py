"""Anchor K-means: known clusters recovered, determinism, speed-bin allocation, standstill and slow anchors, the PNG."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from diffusiondrive_ros.training.anchor_clustering import (
    AnchorClusteringConfig,
    allocate_anchors,
    anchor_distances,
    cluster_anchors,
    kmeans,
    mean_speeds,
    plot_anchors,
)
from diffusiondrive_ros.training.baselines import constant_turn_rate

PLAIN = AnchorClusteringConfig(speed_bin_edges_mps=())


def _noisy(centre: np.ndarray, count: int, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    return centre[None, :, :2] + rng.normal(0.0, sigma, (count,) + centre[:, :2].shape)


def _driving(count: int, standstill_share: float, rng: np.random.Generator) -> np.ndarray:
    """Mostly moving futures (2-15 m/s, gentle turns, mild acceleration) with a share standing still (jitter only)."""
    futures = []
    for _ in range(count):
        if rng.random() < standstill_share:
            futures.append(rng.normal(0.0, 0.03, (8, 2)))
        else:
            poses = constant_turn_rate((rng.uniform(2, 15), 0.0), rng.normal(0, 0.1), rng.normal(0, 0.5))
            futures.append(poses[:, :2])
    return np.stack(futures)


def _matched(anchors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Mean-L2 distance from each true centre to its nearest anchor, after checking the nearest anchors differ."""
    distances = anchor_distances(centres, anchors)
    nearest = distances.argmin(axis=1)
    assert len(set(nearest.tolist())) == len(centres), nearest
    return distances.min(axis=1)


def test_well_separated_clusters_are_recovered_in_any_order():
    rng = np.random.default_rng(3)
    centres = np.stack([constant_turn_rate((v, 0.0), w)[:, :2] for v, w in
                        [(10, 0.0), (10, 0.3), (10, -0.3), (5, 0.0), (15, 0.15)]])
    futures = np.concatenate([_noisy(c, 150, rng) for c in centres])[rng.permutation(750)]
    anchors = cluster_anchors(futures, AnchorClusteringConfig(num_anchors=5, speed_bin_edges_mps=()), seed=1)
    assert anchors.shape == (5, 8, 2) and anchors.dtype == np.float32
    assert _matched(anchors, centres).max() < 0.05


def test_one_cluster_per_speed_bin_is_recovered_by_the_balanced_clustering():
    rng = np.random.default_rng(4)
    centres = np.stack([np.zeros((8, 2))] + [constant_turn_rate((v, 0.0), 0.05)[:, :2] for v in (2.0, 7.0, 15.0)])
    counts = [30, 100, 400, 470]
    futures = np.concatenate([_noisy(c, n, rng, 0.05) for c, n in zip(centres, counts, strict=True)])
    anchors = cluster_anchors(futures, AnchorClusteringConfig(num_anchors=4), seed=0)
    assert _matched(anchors, centres).max() < 0.05
    np.testing.assert_allclose(anchors[0], 0.0, atol=0.05)  # ordered by speed bin: standstill first


def test_same_seed_same_anchors():
    futures = _driving(600, 0.1, np.random.default_rng(5))
    first = cluster_anchors(futures, AnchorClusteringConfig(num_anchors=8), seed=7)
    np.testing.assert_array_equal(first, cluster_anchors(futures, AnchorClusteringConfig(num_anchors=8), seed=7))
    np.testing.assert_array_equal(cluster_anchors(futures, PLAIN, seed=2), cluster_anchors(futures, PLAIN, seed=2))


def test_ten_percent_standstill_gets_one_zero_anchor():
    futures = _driving(2000, 0.1, np.random.default_rng(6))
    anchors = cluster_anchors(futures, seed=0)
    assert anchors.shape == (20, 8, 2)
    reach = np.linalg.norm(anchors, axis=-1).max(axis=1)
    assert reach.min() < 0.1
    assert (mean_speeds(anchors) < 0.5).sum() == 1  # one standstill anchor, not several fitted to jitter


def test_a_small_share_of_slow_motion_gets_its_own_anchor():
    rng = np.random.default_rng(8)
    slow = [constant_turn_rate((rng.uniform(1.0, 2.0), 0.0), rng.normal(0, 0.05))[:, :2] for _ in range(40)]
    fast = [constant_turn_rate((rng.uniform(10, 25), 0.0), rng.normal(0, 0.08))[:, :2] for _ in range(1960)]
    futures = np.stack(slow + fast)
    speeds = mean_speeds(cluster_anchors(futures, AnchorClusteringConfig(num_anchors=10), seed=0))
    assert ((speeds > 0.5) & (speeds < 4.0)).any(), speeds


def test_fewer_futures_than_anchors_is_a_clear_error():
    with pytest.raises(ValueError, match="num_anchors=20"):
        cluster_anchors(np.zeros((5, 8, 2)))
    with pytest.raises(ValueError, match="shape"):
        cluster_anchors(np.zeros((30, 8)))


def test_allocation_by_hand():
    counts = np.array([10, 0, 60, 30])
    np.testing.assert_array_equal(allocate_anchors(counts, 10, balance_exponent=1.0), [1, 0, 6, 3])
    # sqrt shares 0.316, 0.775, 0.548 -> quotas 1.93, 4.73, 3.34 -> floors 1, 4, 3 + largest remainders (bins 0, 2)
    np.testing.assert_array_equal(allocate_anchors(counts, 10), [2, 0, 5, 3])
    np.testing.assert_array_equal(allocate_anchors(counts, 10, max_per_bin=[1, 10, 10, 10]), [1, 0, 5, 4])
    np.testing.assert_array_equal(allocate_anchors([1, 99], 5, min_bin_share=0.02), [0, 5])
    np.testing.assert_array_equal(allocate_anchors([3, 3], 5), [3, 2])  # no bin beyond its futures
    assert allocate_anchors([5, 1, 1, 1], 2).sum() == 2  # more bins than anchors


def test_empty_clusters_are_reseeded():
    futures = np.repeat(np.ones((1, 8, 2)), 20, axis=0)  # every future identical: clusters empty out at once
    result = kmeans(futures, 3, np.random.default_rng(0))
    assert set(result.labels.tolist()) == {0, 1, 2}
    assert np.isfinite(result.centres).all() and result.inertia == pytest.approx(0.0)


def test_distances_and_speeds_by_hand():
    future = np.array([[[3.0, 4.0], [6.0, 8.0]]])
    np.testing.assert_allclose(anchor_distances(future, np.zeros((1, 2, 2))), [[7.5]])  # (5 + 10) / 2
    np.testing.assert_allclose(mean_speeds(future, interval_s=0.5), [10.0])  # 10 m in 1 s


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="speed_bin_edges_mps"):
        AnchorClusteringConfig(speed_bin_edges_mps=(4.0, 0.5))
    with pytest.raises(ValueError, match="balance_exponent"):
        AnchorClusteringConfig(balance_exponent=2.0)
    with pytest.raises(ValueError, match="num_anchors"):
        AnchorClusteringConfig(num_anchors=0)


def _coloured(image: np.ndarray) -> np.ndarray:
    """Pixels clearly coloured (not white, grey or black)."""
    return (image.max(axis=-1).astype(int) - image.min(axis=-1).astype(int)) > 60


def test_plot_writes_a_png_with_the_anchors_drawn(tmp_path):
    futures = _driving(300, 0.1, np.random.default_rng(9))
    anchors = cluster_anchors(futures, AnchorClusteringConfig(num_anchors=6), seed=0)
    path = plot_anchors(anchors, tmp_path / "sub" / "anchors.png", futures=futures, max_futures=100)
    assert path.is_file() and path.stat().st_size > 0
    image = cv2.imread(str(path))
    assert image is not None and image.ndim == 3
    assert _coloured(image).sum() > 200
    assert (image < 250).any(axis=-1).mean() > 0.01


def test_plot_is_birds_eye_with_x_up_and_y_left(tmp_path):
    left = np.stack([np.linspace(0, 2, 8), np.linspace(3, 24, 8)], axis=-1)[None]  # mostly towards +y (left)
    ahead = np.stack([np.linspace(3, 24, 8), np.zeros(8)], axis=-1)[None]  # towards +x (up)
    left_image = cv2.imread(str(plot_anchors(left, tmp_path / "left.png")))
    ahead_image = cv2.imread(str(plot_anchors(ahead, tmp_path / "ahead.png")))
    rows, columns = np.nonzero(_coloured(left_image))
    assert columns.mean() < left_image.shape[1] / 2
    rows, columns = np.nonzero(_coloured(ahead_image))
    assert rows.mean() < ahead_image.shape[0] / 2
