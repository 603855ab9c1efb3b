"""The main job: make a synthetic drive, replay it through the planner, render every candidate mode, evaluate.

Writes, under --out: drive/ (input rosbag2), replay/ (inputs + Path, MarkerArray, diagnostics; MCAP),
render/ (PNG frames and drive.mp4), eval.json and eval.md (open-loop metrics beside the constant-velocity and
constant-turn-rate baselines), then prints where they are and what the planner did.
"""
import argparse
import math
import shutil
from pathlib import Path

from .planner import Planner
from .ros.pipeline import PipelineConfig
from .tools.evaluate import evaluate_bags
from .tools.render import render_bag
from .tools.replay import replay_bag
from .tools.synthetic.bag import make_drive
from .tools.synthetic.config import DriveConfig

COMMAND_NAMES = ("left", "straight", "right", "unknown")
OUTPUT_PARTS = ("drive", "replay", "render")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: ./demo_output)")
    parser.add_argument("--checkpoint", default="",
                        help="our .pt, official .ckpt or state_dict ('' = built-in trained compact model; "
                             "'seeded' = seeded random weights)")
    parser.add_argument("--anchors", default="", help="K-means anchors .npy (20, 8, 2) ('' = from the checkpoint)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the drive and the diffusion noise")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of synthetic drive (straight, turn, stopped car)")
    parser.add_argument("--every", type=int, default=1, help="plan every N-th LiDAR sweep")
    parser.add_argument("--png-every", type=int, default=5, help="write a PNG for every N-th planned frame")


def run(args: argparse.Namespace) -> int:
    out = args.out
    for part in OUTPUT_PARTS:
        shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/4] synthetic drive: {args.duration:.0f} s, seed {args.seed}")
    drive = make_drive(out / "drive", DriveConfig(seed=args.seed, duration_s=args.duration))
    print(f"      {drive.message_count} messages -> {drive.path}")

    planner = Planner.from_checkpoint(args.checkpoint or None, device=args.device, precision=args.precision,
                                      anchors=args.anchors or None, seed=args.seed)
    every = args.every
    print(f"[2/4] replay through the planner ({planner.describe()}), every {every} LiDAR sweep(s)")
    summary = replay_bag(drive.path, out / "replay", planner, PipelineConfig(seed=args.seed), every=every)

    print("[3/4] rendering bird's-eye view + front camera")
    pictures = render_bag(out / "replay", out / "render", png_every=args.png_every, mp4=True,
                          fps=max(1, round(10 / every)))

    print("[4/4] open-loop evaluation against the drive's own odometry")
    report = evaluate_bags([drive.path], planner, PipelineConfig(seed=args.seed), every=every)
    report.write_json(out / "eval.json")
    report.write_markdown(out / "eval.md")

    print()
    print(summary.format())
    print("  t[s]  command   best  score   x,y at 4 s [m]")
    start = drive.start_ns
    for record in summary.planned[:: max(1, len(summary.planned) // 12)]:
        x, y, _ = record.best[-1]
        print(f"  {(record.stamp_ns - start) / 1e9:5.1f}  {COMMAND_NAMES[record.command]:8s}  {record.best_index:4d}"
              f"  {record.scores[record.best_index]:5.2f}   {x:6.1f},{y:6.1f}")
    print()
    print(f"input bag : {drive.path.resolve()}")
    print(f"output bag: {summary.output.resolve()}  (open in Foxglove or `ros2 bag play` + RViz)")
    print(f"pictures  : {len(pictures.png_paths)} PNGs in {pictures.out_dir.resolve()}")
    print(f"video     : {pictures.mp4_path.resolve() if pictures.mp4_path else 'none'}")
    print(f"metrics   : {(out / 'eval.json').resolve()}, {(out / 'eval.md').resolve()}")
    print()
    print(report.table())
    overall = report.overall()
    ratio = overall.get("ade_vs_constant_velocity")
    if ratio is not None and math.isfinite(ratio):
        print(f"best mode ADE {overall['ade']:.2f} m vs constant velocity "
              f"{overall['baselines']['constant_velocity']['ade']:.2f} m ({ratio:.2f}x)")
    if planner.seeded:
        print("note: seeded random weights exercise the whole network but are not a trained driving policy.")
    return 0
