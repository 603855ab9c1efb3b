"""Plan a synthetic frame with the planner and print every candidate mode (no ROS runtime needed)."""
import argparse

import numpy as np
import torch

from .planner import Planner, frame_generator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="", help="official .ckpt, state_dict or our format ('' = built-in seeded weights)")
    parser.add_argument("--anchors", default="", help="K-means anchors .npy (20, 8, 2) ('' = from the checkpoint)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in weights and of the diffusion noise")


def synthetic_frame(seed: int):
    """Three 1920x1080 cameras (sky over road) and a LiDAR sweep of a flat road with a car 15 m ahead."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, 1080, dtype=np.float32)[:, None, None]
    sky, road = np.array([150, 190, 235], np.float32), np.array([90, 90, 95], np.float32)
    image = np.where(rows < 0.5, sky, road) + rng.normal(0, 4, (1080, 1920, 3))
    cameras = [np.clip(image, 0, 255).astype(np.uint8)] * 3
    ground = np.column_stack([rng.uniform(-30, 30, (60000, 2)), rng.normal(0, 0.02, 60000)])
    car = np.column_stack([rng.uniform(13.5, 18, 8000), rng.uniform(-1, 1, 8000), rng.uniform(0.3, 1.6, 8000)])
    return cameras, np.concatenate([ground, car]).astype(np.float32)


def run(args: argparse.Namespace) -> int:
    planner = Planner.from_checkpoint(args.checkpoint or None, device=args.device, precision=args.precision,
                                      anchors=args.anchors or None, seed=args.seed)
    cameras, points = synthetic_frame(args.seed)
    result = planner.plan(cameras, points, velocity=(8.0, 0.0), acceleration=(0.0, 0.0), command=1,
                          generator=frame_generator(args.seed, 0))
    print(f"planner: {planner.describe()}; torch {torch.__version__}")
    print(f"planned {len(result.modes)} modes in {result.latency_s * 1e3:.0f} ms; best mode {result.best_index}")
    print(" mode   score   x@4s[m]  y@4s[m]  heading@4s[rad]")
    for index in np.argsort(-result.scores):
        x, y, heading = result.modes[index, -1]
        mark = "  <- best" if index == result.best_index else ""
        print(f"  {index:3d}  {result.scores[index]:6.3f}  {x:8.2f} {y:8.2f}  {heading:8.3f}{mark}")
    return 0
