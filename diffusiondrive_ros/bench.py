"""Benchmarks: time the hot paths and print each as a ratio to a baseline measured in the same run.

Speed targets are checked here, never by timed assertions in tests. Baselines: the official NAVSIM feature code
(`np.histogramdd`, concatenate + resize + ToTensor), a (N,3)@(3,3) matmul for point transforms, the official eager
fp32 forward with every head for the planner's inference path and ONNX Runtime, torch for ONNX Runtime, the navsim
variant for the compact one, and fp32 for the planner's other precisions on CUDA.
"""
import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from . import node_bench

CUDA_PLAN_ATOL = 1e-2
"""Plan agreement (m) of the optimised paths with the official eager one on CUDA, where cuDNN's TF32 convolutions
(PyTorch's default) and the on-device features (within one grey level of OpenCV's resize) move a seeded plan by
millimetres; on a CPU the export tolerance (1e-3) holds."""


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


def bench_features(repeats: int, device: str = "cpu") -> list[tuple[str, float, float]]:
    import torch

    from .device_features import DeviceFeatureBuilder
    from .features import CameraRigConfig, FeatureBuilder, LidarBevConfig, lidar_feature
    from .geometry import transform_points
    from .planner import resolve_device

    frame = full_rig_frame()
    builder = FeatureBuilder()
    build = (frame["cameras"], frame["points"], frame["velocity"], frame["acceleration"], frame["command"])
    on_device = DeviceFeatureBuilder(CameraRigConfig(), LidarBevConfig(), resolve_device(device))

    def device_build():
        built = on_device.build(*build)
        if on_device.device.type == "cuda":
            torch.cuda.synchronize()
        return built
    official = lambda: (official_camera_feature(*frame["cameras"]), official_histogram(frame["points"]))  # noqa: E731
    assert np.array_equal(builder.build(*build)["camera_feature"], official()[0])
    cloud = synthetic_cloud(120_000)
    assert np.array_equal(lidar_feature(cloud), official_histogram(cloud))
    matrix = np.eye(4)
    matrix[:3, 3] = (1.0, 0.0, 1.8)
    rotation, offset = matrix[:3, :3].astype(np.float32), matrix[:3, 3].astype(np.float32)
    return [
        ("features, 3 cameras 1920x1080 + 200k points", median_time(lambda: builder.build(*build), repeats),
         median_time(official, repeats)),
        (f"features on the planner's device ({on_device.device.type}) vs on the host",
         median_time(device_build, repeats), median_time(lambda: builder.build(*build), repeats)),
        ("lidar histogram, 120k points", median_time(lambda: lidar_feature(cloud), repeats),
         median_time(lambda: official_histogram(cloud), repeats)),
        ("point transform, 120k points", median_time(lambda: transform_points(cloud, matrix), repeats),
         median_time(lambda: cloud @ rotation.T + offset, repeats)),
    ]


def bench_sweep_cache(repeats: int) -> list[tuple[str, float, float]]:
    """Decoding a two-sweep frame whose earlier sweep was decoded as its own frame's current sweep, against decoding
    it again (the pipeline without its sweep cache); needs the ROS 2 message wheels, so it is left out without them.
    """
    try:
        from nav_msgs.msg import Odometry

        from .ros.conversions import ns_to_stamp, xyz_to_pointcloud2
        from .ros.frame_sync import FrameInputs, PastSweep, SyncConfig
        from .ros.pipeline import FramePipeline, PipelineConfig
    except ImportError:
        return []
    now_ns, past_ns = 10**12, 10**12 - 500_000_000

    def odometry(stamp_ns: int, x: float) -> Odometry:
        msg = Odometry()
        msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), "odom"
        msg.pose.pose.position.x, msg.pose.pose.orientation.w = x, 1.0
        return msg
    clouds = {stamp: xyz_to_pointcloud2(synthetic_cloud(120_000, seed), ns_to_stamp(stamp), "lidar")
              for seed, stamp in enumerate((past_ns, now_ns))}
    pipeline = FramePipeline(None, PipelineConfig(use_tf=False, sync=SyncConfig(lidar_history_s=(0.5,))))
    inputs = FrameInputs(now_ns, clouds[now_ns], (None, None, None), (5.0, 0.0), (0.0, 0.0), 1, "zero",
                         odometry=odometry(now_ns, 2.5),
                         past_sweeps=(PastSweep(clouds[past_ns], past_ns, odometry(past_ns, 0.0)),))
    past_points = pipeline.cloud_to_base(replace(inputs, stamp_ns=past_ns, cloud=clouds[past_ns]))

    def decode(earlier_decoded: bool):
        pipeline.sweeps.clear()
        if earlier_decoded:
            pipeline.sweeps.put(clouds[past_ns], past_ns, past_points)
        return pipeline.decode_history(inputs, pipeline.cloud_to_base(inputs))
    times = interleaved_medians({"cached": lambda: decode(True), "again": lambda: decode(False)}, repeats)
    return [("LiDAR history decode, 2 sweeps x 120k points: earlier sweep cached vs decoded again", times["cached"],
             times["again"])]


def interleaved_medians(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each case, run in turn (one warm-up each), so a busy machine slows all cases alike."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def official_camera_feature(left: np.ndarray, front: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The official NAVSIM camera feature (crop, concatenate, cv2.resize, ToTensor), the baseline of ours."""
    import cv2

    l_crop, f_crop, r_crop = left[28:-28, 416:-416], front[28:-28], right[28:-28, 416:-416]
    resized = cv2.resize(np.concatenate([l_crop, f_crop, r_crop], axis=1), (1024, 256))
    return resized.transpose(2, 0, 1).astype(np.float32) / 255.0


def full_rig_frame(seed: int = 0, points: int = 200_000) -> dict:
    """Three 1920x1080 cameras and a LiDAR sweep, the NAVSIM rig's sizes (random content)."""
    rng = np.random.default_rng(seed)
    cameras = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3)]
    return dict(cameras=cameras, points=synthetic_cloud(points, seed), velocity=(7.0, 0.0), acceleration=(0.0, 0.0),
                command=1)


def bench_planner(repeats: int, device: str, threads: int | None, reference: str, compact: str,
                  onnx: bool) -> tuple[list[tuple[str, float, float]], list[str]]:
    """Features + model per frame on the full rig; every row is a ratio to a baseline timed in the same loop.

    Baselines: the official code (NAVSIM features and the eager fp32 forward with every head) of the `reference`
    variant; torch for ONNX Runtime; the reference variant for the compact one. The plans of the optimised paths
    are checked equal to the official one first (within the ONNX export tolerance; CUDA_PLAN_ATOL on CUDA) and
    their differences returned as notes.
    """
    import tempfile
    from pathlib import Path

    from .export import ONNX_ATOL
    from .features import status_feature
    from .model.variants import load_model_config
    from .model.weights import seeded_model
    from .planner import Planner, frame_generator

    frame = full_rig_frame()
    settings = dict(device=device, threads=threads)
    large = seeded_model(load_model_config(reference), 0)
    official = Planner(large, optimize=False, aux_heads=True, device_features=False, **settings)
    planners = {"official": official, "torch": Planner(large, **settings)}
    small = seeded_model(load_model_config(compact), 0)
    planners["compact"] = Planner(small, **settings)
    if onnx:
        folder = Path(tempfile.mkdtemp(prefix="diffusiondrive_bench_"))
        planners["onnxruntime"] = Planner(large, backend="onnxruntime", onnx_path=folder / "large.onnx", **settings)
        planners["compact onnxruntime"] = Planner(small, backend="onnxruntime", onnx_path=folder / "small.onnx",
                                                  **settings)

    backbone = large.config.backbone
    navsim_inputs = (backbone.camera_height, backbone.camera_width, backbone.lidar_resolution) == (256, 1024, 256)

    def official_frame():
        """The official feature code when the reference takes NAVSIM's input sizes, else ours (smaller variants)."""
        if not navsim_inputs:
            return official.plan(**frame, generator=frame_generator(0, 0))
        camera = official_camera_feature(*frame["cameras"])
        lidar = official_histogram(frame["points"])
        status = status_feature(frame["command"], frame["velocity"], frame["acceleration"])
        return official.plan_features(camera, lidar, status, generator=frame_generator(0, 0))

    cases = {name: (lambda p=p: p.plan(**frame, generator=frame_generator(0, 0)))
             for name, p in planners.items() if name != "official"}
    cases["official"] = official_frame
    expected = official_frame().modes
    tolerance = CUDA_PLAN_ATOL if official.device.type == "cuda" else ONNX_ATOL
    notes = []
    for name in ("torch", "onnxruntime"):
        if name in cases:
            difference = float(np.abs(cases[name]().modes - expected).max())
            if difference > tolerance:
                raise RuntimeError(f"plan {reference} {name} differs from the official eager plan by {difference} m "
                                   f"(tolerance {tolerance:g} m)")
            notes.append(f"plan {reference}, {name} vs official eager: max |difference| {difference:.2e} m")
    times = interleaved_medians(cases, repeats)
    where = f"{planners['torch'].device.type} {threads or 'default'} threads"
    rows = [(f"plan {reference} ({where}): torch optimised vs official eager", times["torch"], times["official"])]
    if onnx:
        rows += [(f"plan {reference}: onnxruntime vs official eager", times["onnxruntime"], times["official"]),
                 (f"plan {reference}: onnxruntime vs torch optimised", times["onnxruntime"], times["torch"])]
    rows.append((f"plan {compact} vs {reference} (torch optimised)", times["compact"], times["torch"]))
    if onnx:
        rows.append((f"plan {compact} vs {reference} (onnxruntime)", times["compact onnxruntime"],
                     times["onnxruntime"]))
    return rows, notes


def bench_device_paths(repeats: int, device: str, reference: str, compile_mode: str | None
                       ) -> tuple[list[tuple[str, float, float]], list[str]]:
    """The `reference` variant's device paths, each as features + model and as the model alone (inputs already
    built on the device): on CUDA fp16 and bf16 against fp32; with `compile_mode`, `torch.compile` against eager at
    the same precision (fp16 on CUDA, fp32 on a CPU). Returns the rows and notes: each path's largest plan
    difference from fp32, and on CUDA the peak GPU memory."""
    from .model.variants import load_model_config
    from .model.weights import seeded_model
    from .planner import Planner, frame_generator, resolve_device

    where = resolve_device(device).type
    if where != "cuda" and not compile_mode:
        return [], []
    model = seeded_model(load_model_config(reference), 0)
    planners = {"fp32": Planner(model, device=device)}
    if where == "cuda":
        planners.update({p: Planner(model, device=device, precision=p) for p in ("fp16", "bf16")})
    precision = "fp16" if where == "cuda" else "fp32"
    if compile_mode:
        planners["compiled"] = Planner(model, device=device, precision=precision, compile=compile_mode)
        planners["compiled"].warm_up()
    frame = full_rig_frame()
    inputs = {name: p.build_inputs(frame["cameras"], frame["points"], frame["velocity"], frame["acceleration"],
                                   frame["command"]) for name, p in planners.items()}
    plan_cases = {name: (lambda p=p: p.plan(**frame, generator=frame_generator(0, 0))) for name, p in planners.items()}
    model_cases = {name: (lambda p=p, i=inputs[name]: p.plan_inputs(i, generator=frame_generator(0, 0)))
                   for name, p in planners.items()}
    expected = plan_cases["fp32"]().modes
    notes = [f"plan {reference}, {name} vs fp32: max |difference| {np.abs(case().modes - expected).max():.2e} m"
             for name, case in plan_cases.items() if name != "fp32"]
    plans, models = interleaved_medians(plan_cases, repeats), interleaved_medians(model_cases, repeats)
    for item in inputs.values():
        item.release()
    pairs = [(f"{where} {p} vs fp32", p, "fp32") for p in ("fp16", "bf16") if p in planners]
    if compile_mode:
        pairs.append((f"{where} {precision} torch.compile({compile_mode}) vs eager", "compiled", precision))
    rows = []
    for label, name, baseline in pairs:
        rows += [(f"plan {reference}, {label}", plans[name], plans[baseline]),
                 (f"model only {reference}, {label}", models[name], models[baseline])]
    if where == "cuda":
        import torch

        notes.append(f"peak GPU memory allocated by torch: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return rows, notes


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per case (median reported)")
    parser.add_argument("--device", default="auto", help="planner device: auto, cpu or cuda")
    parser.add_argument("--skip-planner", action="store_true", help="only the feature/conversion benchmarks")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the planners (default: library's)")
    parser.add_argument("--reference", default="navsim",
                        help="variant (or YAML) whose official eager forward is the baseline (default navsim)")
    parser.add_argument("--compact", default="compact", help="the small variant compared with the reference")
    parser.add_argument("--skip-onnx", action="store_true", help="leave out the ONNX Runtime rows (no export)")
    node_bench.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if node_bench.wanted(args):
        return node_bench.run(args)
    rows, notes = bench_features(args.repeats, args.device) + bench_sweep_cache(args.repeats), []
    if not args.skip_planner:
        repeats = max(2, args.repeats // 3)
        planner_rows, notes = bench_planner(repeats, args.device, args.threads, args.reference, args.compact,
                                            not args.skip_onnx)
        device_rows, device_notes = bench_device_paths(repeats, args.device, args.reference, args.compile or None)
        rows += planner_rows + device_rows
        notes += device_notes
    width = max(len(name) for name, _, _ in rows)
    print(f"{'case':{width}}  {'ours [ms]':>10}  {'baseline [ms]':>13}  {'speed-up':>8}")
    for name, ours, baseline in rows:
        print(f"{name:{width}}  {ours * 1e3:10.2f}  {baseline * 1e3:13.2f}  {baseline / ours:7.2f}x")
    for line in notes:
        print(line)
    print(f"peak RSS of this run (every planner above loaded at once): {peak_rss_mb():.0f} MiB")
    return 0
