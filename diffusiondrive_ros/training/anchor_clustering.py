"""Trajectory anchors for DiffusionDrive: speed-balanced K-means over future ego poses, and a BEV plot of them.

Plain K-means on driving logs spends nearly every anchor on fast, straight driving, because that is where the
trajectories are long and spread out, and a few per cent of standstill or creeping futures end up served by an
anchor metres away. The remedy here is stratification: futures are binned by mean speed (standstill, slow, urban,
fast by default), anchors are shared between the bins in proportion to share**balance_exponent (0.5: square-root
allocation, which lifts rare bins without letting them dominate), every bin holding at least min_bin_share of the
data gets at least one anchor, the standstill bin at most max_standstill_anchors (standing still is one point, more
anchors there would only fit sensor jitter), and K-means runs within each bin. A dataset with 10% standstill thus
gets an anchor at (almost) zero. Set speed_bin_edges_mps=() for plain K-means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import _require  # one config-validation message format for the package

# Rows per block when computing (futures x centres) distances, to bound memory on 100k-future datasets.
_ROW_CHUNK = 4096


@dataclass(frozen=True)
class AnchorClusteringConfig:
    """How many anchors, and how they are shared between speed bins."""

    num_anchors: int = 20  # DiffusionDrive's NAVSIM model uses 20
    interval_s: float = 0.5  # time between poses, to turn path length into mean speed
    # Mean-speed bin edges (m/s): [0, 0.5) standstill (under 2 m in 4 s), [0.5, 4) creeping/slow, [4, 10) urban,
    # [10, inf) fast. Empty: one bin, plain K-means.
    speed_bin_edges_mps: tuple[float, ...] = (0.5, 4.0, 10.0)
    balance_exponent: float = 0.5  # anchors per bin ~ share**exponent: 1 is proportional, 0 is equal per bin
    min_bin_share: float = 0.01  # bins with a smaller share of the futures get no anchor of their own
    # Most anchors for the standstill bin (below the first edge): standing still is one point, not a spread to cover.
    max_standstill_anchors: int = 1
    max_iterations: int = 100  # Lloyd iterations per run
    num_init: int = 4  # k-means++ restarts per bin; the lowest total distance wins

    def __post_init__(self) -> None:
        _require(self.num_anchors >= 1, "num_anchors", ">= 1", self.num_anchors)
        _require(math.isfinite(self.interval_s) and self.interval_s > 0, "interval_s", "finite and > 0",
                 self.interval_s)
        edges = self.speed_bin_edges_mps
        increasing = all(b > a for a, b in zip(edges[:-1], edges[1:], strict=True))
        _require(all(math.isfinite(e) and e > 0 for e in edges) and increasing, "speed_bin_edges_mps",
                 "finite, > 0 and strictly increasing", edges)
        _require(0 <= self.balance_exponent <= 1, "balance_exponent", "in [0, 1]", self.balance_exponent)
        _require(0 <= self.min_bin_share < 1, "min_bin_share", "in [0, 1)", self.min_bin_share)
        _require(self.max_standstill_anchors >= 1, "max_standstill_anchors", ">= 1", self.max_standstill_anchors)
        _require(self.max_iterations >= 1, "max_iterations", ">= 1", self.max_iterations)
        _require(self.num_init >= 1, "num_init", ">= 1", self.num_init)


@dataclass(frozen=True)
class KMeansResult:
    """One K-means run: centres (K, P, 2), each future's cluster (N,), total mean-L2 distance, iterations used."""

    centres: np.ndarray
    labels: np.ndarray
    inertia: float
    iterations: int


def _futures(futures: np.ndarray) -> np.ndarray:
    """Check futures are (N, P, 2|3), N, P >= 1, finite; return their xy as float64."""
    futures = np.asarray(futures)
    if futures.ndim != 3 or futures.shape[2] not in (2, 3) or min(futures.shape[:2]) < 1:
        raise ValueError(f"futures must have shape (N, P, 2) or (N, P, 3), got {futures.shape}")
    xy = futures[..., :2].astype(np.float64)
    if not np.isfinite(xy).all():
        raise ValueError("futures contain NaN or Inf")
    return xy


def anchor_distances(futures: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Mean over poses of the xy L2 distance (N, K) from each future to each anchor (DiffusionDrive's nearest-anchor
    rule)."""
    xy, centres = _futures(futures), _futures(anchors)
    if xy.shape[1] != centres.shape[1]:
        raise ValueError(f"futures have {xy.shape[1]} poses but anchors have {centres.shape[1]}")
    out = np.empty((xy.shape[0], centres.shape[0]))
    for start in range(0, xy.shape[0], _ROW_CHUNK):
        block = xy[start:start + _ROW_CHUNK, None] - centres[None]
        out[start:start + _ROW_CHUNK] = np.sqrt((block**2).sum(-1)).mean(-1)
    return out


def mean_speeds(futures: np.ndarray, interval_s: float = 0.5) -> np.ndarray:
    """Mean speed (N,) in m/s: path length from the origin through every pose, over the horizon P * interval_s."""
    xy = _futures(futures)
    path = np.concatenate([np.zeros((xy.shape[0], 1, 2)), xy], axis=1)
    return np.linalg.norm(np.diff(path, axis=1), axis=-1).sum(axis=1) / (xy.shape[1] * interval_s)


def allocate_anchors(counts: np.ndarray, num_anchors: int, balance_exponent: float = 0.5,
                     min_bin_share: float = 0.01, max_per_bin: np.ndarray | None = None) -> np.ndarray:
    """Anchors per bin (B,) ints summing to num_anchors, ~ share**balance_exponent, at least 1 per eligible bin.

    Eligible bins hold at least min_bin_share of the futures (all non-empty bins if those alone cannot take
    num_anchors). No bin gets more anchors than futures, nor than max_per_bin (B,) where given (unless nothing else
    can take them); rounding is by largest remainder, ties to the lower bin.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total < num_anchors:
        raise ValueError(f"need at least num_anchors={num_anchors} futures to make that many anchors, got {total}")
    limit = counts if max_per_bin is None else np.minimum(counts, np.asarray(max_per_bin, dtype=np.int64))
    eligible = (counts > 0) & (counts >= min_bin_share * total)
    if limit[eligible].sum() < num_anchors:
        eligible, limit = counts > 0, counts
    weights = np.where(eligible, (counts / total) ** balance_exponent, 0.0)
    quota = num_anchors * weights / weights.sum()
    if eligible.sum() > num_anchors:  # more bins than anchors: only the num_anchors largest quotas get one
        keep = np.argsort(-quota, kind="stable")[:num_anchors]
        eligible = np.zeros_like(eligible)
        eligible[keep] = True
    capacity = np.where(eligible, limit, 0)
    alloc = np.where(eligible, np.clip(np.floor(quota), 1, None), 0).astype(np.int64)
    alloc = np.minimum(alloc, capacity)
    while alloc.sum() != num_anchors:
        gap = quota - alloc
        if alloc.sum() < num_anchors:
            gap[alloc >= capacity] = -np.inf
            alloc[int(np.argmax(gap))] += 1
        else:
            gap[alloc <= 1] = np.inf
            alloc[int(np.argmin(gap))] -= 1
    return alloc


def _kmeans_pp(xy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centre drawn with probability ~ D(x)^2, D the
    mean-L2 distance to the nearest centre so far (uniform when every D is 0)."""
    centres = np.empty((k,) + xy.shape[1:])
    centres[0] = xy[rng.integers(xy.shape[0])]
    nearest = anchor_distances(xy, centres[:1])[:, 0]
    for i in range(1, k):
        weights = nearest**2
        chosen = rng.choice(xy.shape[0], p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(xy.shape[0])
        centres[i] = xy[chosen]
        nearest = np.minimum(nearest, anchor_distances(xy, centres[i:i + 1])[:, 0])
    return centres


def kmeans(futures: np.ndarray, k: int, rng: np.random.Generator, max_iterations: int = 100,
           num_init: int = 4) -> KMeansResult:
    """K-means of futures (N, P, 2|3) into k centres (K, P, 2), best of num_init k-means++ runs.

    Lloyd's algorithm with DiffusionDrive's assignment rule (nearest by mean L2 over poses); the update takes each
    cluster's mean, the closed-form minimiser of the squared distance (the exact minimiser of the summed mean L2, a
    geometric median, has no closed form). An emptied cluster is re-seeded at the future farthest from its centre.
    Runs until the assignment stops changing or max_iterations.
    """
    xy = _futures(futures)
    n = xy.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}] (at least as many futures as anchors), got {k}")
    flat = xy.reshape(n, -1)
    best: KMeansResult | None = None
    for _ in range(num_init):
        centres = _kmeans_pp(xy, k, rng)
        labels = np.full(n, -1)
        iterations = 0
        while iterations < max_iterations:
            iterations += 1
            distances = anchor_distances(xy, centres)
            new_labels = distances.argmin(axis=1)
            own = distances[np.arange(n), new_labels]
            sizes = np.bincount(new_labels, minlength=k)
            for empty in np.flatnonzero(sizes == 0):
                # re-seed at the worst-served future of a cluster that can spare one (one exists while N >= k)
                far = int(np.argmax(np.where(sizes[new_labels] > 1, own, -np.inf)))
                sizes[new_labels[far]] -= 1
                new_labels[far] = empty
                sizes[empty] = 1
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            sums = np.zeros((k, flat.shape[1]))
            np.add.at(sums, labels, flat)
            centres = (sums / sizes[:, None]).reshape(centres.shape)  # every cluster has a member after re-seeding
        inertia = float(anchor_distances(xy, centres).min(axis=1).sum())
        if best is None or inertia < best.inertia:
            best = KMeansResult(centres=centres, labels=labels, inertia=inertia, iterations=iterations)
    assert best is not None  # num_init >= 1
    return best


def cluster_anchors(futures: np.ndarray, config: AnchorClusteringConfig = AnchorClusteringConfig(),
                    seed: int = 0) -> np.ndarray:
    """Anchors (K, P, 2) float32 from future ego trajectories (N, P, 2|3): speed-balanced K-means (see the module).

    Deterministic for a given seed. Anchors come ordered by speed bin, then by final lateral position (right to left).
    """
    xy = _futures(futures)
    k = config.num_anchors
    if xy.shape[0] < k:
        raise ValueError(f"need at least num_anchors={k} futures to make {k} anchors, got {xy.shape[0]}")
    bins = np.digitize(mean_speeds(xy, config.interval_s), np.asarray(config.speed_bin_edges_mps, dtype=np.float64))
    counts = np.bincount(bins, minlength=len(config.speed_bin_edges_mps) + 1)
    caps = np.full(counts.shape, k)
    caps[0] = config.max_standstill_anchors if config.speed_bin_edges_mps else k
    alloc = allocate_anchors(counts, k, config.balance_exponent, config.min_bin_share, caps)
    rng = np.random.default_rng(seed)
    centres, order_bin = [], []
    for index in np.flatnonzero(alloc):
        result = kmeans(xy[bins == index], int(alloc[index]), rng, config.max_iterations, config.num_init)
        centres.append(result.centres)
        order_bin.extend([index] * result.centres.shape[0])
    anchors = np.concatenate(centres, axis=0)
    order = np.lexsort((anchors[:, -1, 1], np.asarray(order_bin)))
    return anchors[order].astype(np.float32)


def _colour(i: int, count: int) -> tuple[int, int, int]:
    """A distinct saturated BGR colour for anchor i of count (hue wheel)."""
    import cv2

    hue = np.uint8([[[int(170 * i / max(count - 1, 1)), 230, 220]]])
    return tuple(int(c) for c in cv2.cvtColor(hue, cv2.COLOR_HSV2BGR)[0, 0])


def plot_anchors(anchors: np.ndarray, path_png: str | Path, futures: np.ndarray | None = None,
                 max_futures: int = 500, size_px: int = 800, seed: int = 0) -> Path:
    """Write a bird's-eye PNG (x forward = up, y left = left) of the anchors over a random sample of futures.

    Futures are thin grey lines, anchors coloured lines with their index at the end, the ego a black box at the
    origin, and a 10 m grid in light grey. The view is fitted to everything drawn, at equal scale on both axes.
    Returns the path written.
    """
    import cv2  # only plotting needs OpenCV

    centres = _futures(anchors)
    sample = np.zeros((0,) + centres.shape[1:])
    if futures is not None:
        sample = _futures(futures)
        if sample.shape[0] > max_futures:
            sample = sample[np.sort(np.random.default_rng(seed).choice(sample.shape[0], max_futures, replace=False))]
    everything = np.concatenate([centres.reshape(-1, 2), sample.reshape(-1, 2), [[-3.0, -3.0], [5.0, 3.0]]])
    low, high = everything.min(axis=0) - 2.0, everything.max(axis=0) + 2.0
    scale = size_px / float((high - low).max())
    height, width = int(math.ceil((high[0] - low[0]) * scale)), int(math.ceil((high[1] - low[1]) * scale))
    image = np.full((height, width, 3), 255, dtype=np.uint8)

    def pixels(xy: np.ndarray) -> np.ndarray:
        """Ego-frame metres to (column, row): x up, y left."""
        return np.stack([(high[1] - xy[..., 1]) * scale, (high[0] - xy[..., 0]) * scale], -1).round().astype(np.int32)

    for x in np.arange(math.ceil(low[0] / 10) * 10, high[0], 10.0):
        row = int(pixels(np.array([x, 0.0]))[1])
        cv2.line(image, (0, row), (width - 1, row), (225, 225, 225), 1)
    for y in np.arange(math.ceil(low[1] / 10) * 10, high[1], 10.0):
        column = int(pixels(np.array([0.0, y]))[0])
        cv2.line(image, (column, 0), (column, height - 1), (225, 225, 225), 1)
    origin = np.zeros((1, 2))
    lines = [pixels(np.concatenate([origin, f])) for f in sample]
    cv2.polylines(image, lines, False, (180, 180, 180), 1, cv2.LINE_AA)
    for i, anchor in enumerate(centres):
        colour = _colour(i, centres.shape[0])
        points = pixels(np.concatenate([origin, anchor]))
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        end = tuple(int(v) for v in points[-1])
        cv2.circle(image, end, 3, colour, -1, cv2.LINE_AA)
        cv2.putText(image, str(i), (end[0] + 4, end[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    ego = pixels(np.array([[3.9, 1.0], [3.9, -1.0], [-0.9, -1.0], [-0.9, 1.0]]))  # 4.8 x 2.0 m, rear axle at 0
    cv2.polylines(image, [ego], True, (0, 0, 0), 2, cv2.LINE_AA)
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path
