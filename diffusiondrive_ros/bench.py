"""Benchmarks: time the hot paths and print each as a ratio to a baseline measured in the same run.

Speed targets are checked here, never by timed assertions in tests. Baselines: `np.histogramdd` (the official
LiDAR feature code), a (N,3)@(3,3) matmul for point transforms, and fp32 for the planner's other precisions.
"""
import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def official_histogram(points: np.ndarray) -> np.ndarray:
    """The official NAVSIM LiDAR feature (histogramdd), the baseline of `lidar_feature`."""
    points = points[points[:, 2] < 100.0]
    above = points[points[:, 2] > 0.2]
    bins = np.linspace(-32, 32, 257)
    hist = np.histogramdd(above[:, :2], bins=(bins, bins))[0]
    return (np.minimum(hist, 5) / 5).astype(np.float32)[None]


def synthetic_cloud(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(0, 15, (n, 2)), rng.uniform(-0.5, 3.0, n)]).astype(np.float32)


def bench_features(repeats: int) -> list[tuple[str, float, float]]:
    from .features import lidar_feature
    from .geometry import transform_points

    cloud = synthetic_cloud(120_000)
    assert np.array_equal(lidar_feature(cloud), official_histogram(cloud))
    matrix = np.eye(4)
    matrix[:3, 3] = (1.0, 0.0, 1.8)
    rotation, offset = matrix[:3, :3].astype(np.float32), matrix[:3, 3].astype(np.float32)
    return [
        ("lidar histogram, 120k points", median_time(lambda: lidar_feature(cloud), repeats),
         median_time(lambda: official_histogram(cloud), repeats)),
        ("point transform, 120k points", median_time(lambda: transform_points(cloud, matrix), repeats),
         median_time(lambda: cloud @ rotation.T + offset, repeats)),
    ]


def bench_planner(repeats: int, device: str) -> list[tuple[str, float, float]]:
    from .planner import Planner, frame_generator
    from .tools.synthetic.lidar import LIDAR_MOUNT
    from .tools.synthetic.scene import SyntheticScene

    scene = SyntheticScene()
    cameras = [scene.render_camera(name, 2.0) for name in ("left", "front", "right")]
    points = scene.lidar_sweep(2.0)[:, :3] + np.asarray(LIDAR_MOUNT, np.float32)
    planner = Planner.from_checkpoint(None, device=device)

    def plan(p):
        return lambda: p.plan(cameras, points, (7.0, 0.0), (0.0, 0.0), 1, generator=frame_generator(0, 0))

    rows = []
    if planner.device.type == "cuda":
        fp32 = median_time(plan(planner), repeats)
        for precision in ("fp16", "bf16"):
            reduced = Planner(planner.model, device=planner.device, precision=precision)
            rows.append((f"plan, cuda {precision} vs fp32", median_time(plan(reduced), repeats), fp32))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per case (median reported)")
    parser.add_argument("--device", default="auto", help="planner device: auto, cpu or cuda")
    parser.add_argument("--skip-planner", action="store_true", help="only the feature/conversion benchmarks")


def run(args: argparse.Namespace) -> int:
    rows = bench_features(args.repeats)
    if not args.skip_planner:
        rows += bench_planner(max(2, args.repeats // 3), args.device)
    width = max(len(name) for name, _, _ in rows)
    print(f"{'case':{width}}  {'ours [ms]':>10}  {'baseline [ms]':>13}  {'speed-up':>8}")
    for name, ours, baseline in rows:
        print(f"{name:{width}}  {ours * 1e3:10.2f}  {baseline * 1e3:13.2f}  {baseline / ours:7.2f}x")
    return 0
