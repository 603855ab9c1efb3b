"""Trajectory anchors from a dataset's ground-truth futures (`diffusiondrive-ros anchors DIR --k K --out FILE.npy`).

Runs the speed-balanced K-means of `anchor_clustering` over every frame's future and writes the (K, P, 2) float32
`.npy` that `Planner.from_checkpoint(..., anchors=FILE)` and the node's `anchors` parameter load, plus a PNG of the
anchors over a sample of the futures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .anchor_clustering import AnchorClusteringConfig, cluster_anchors, plot_anchors
from .dataset import load_shards


def write_anchors(dataset: Path, out: Path, k: int = 20, png: Path | None = None, seed: int = 0) -> np.ndarray:
    """Cluster the dataset's futures into k anchors, save them to `out` (.npy) and plot them to `png`."""
    spec, arrays = load_shards(dataset, keys=("future",))
    futures = arrays["future"]
    anchors = cluster_anchors(futures, AnchorClusteringConfig(num_anchors=k, interval_s=spec.interval_s), seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, anchors)
    plot_anchors(anchors, out.with_suffix(".png") if png is None else png, futures, seed=seed)
    return anchors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `anchors` subcommand's options."""
    parser.add_argument("dataset", type=Path, metavar="DIR", help="folder built by `diffusiondrive-ros dataset`")
    parser.add_argument("--k", type=int, default=20, help="number of anchors = the model's modes (default 20)")
    parser.add_argument("--out", type=Path, required=True, help="anchors file to write (.npy, (K, 8, 2) float32)")
    parser.add_argument("--png", type=Path, help="plot of the anchors over the futures (default: beside --out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-means++ initialisation")


def run(args: argparse.Namespace) -> int:
    """Write the anchors and their plot; a one-line error and exit code 1 for a bad dataset or K."""
    out = args.out if args.out.suffix == ".npy" else args.out.with_name(args.out.name + ".npy")
    try:
        anchors = write_anchors(args.dataset, out, args.k, args.png, args.seed)
    except (ValueError, OSError) as error:
        print(f"diffusiondrive-ros anchors: error: {error}", file=sys.stderr)
        return 1
    png = out.with_suffix(".png") if args.png is None else args.png
    print(f"anchors {anchors.shape} -> {out}; plot {png}")
    return 0
