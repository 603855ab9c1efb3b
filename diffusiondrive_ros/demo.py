"""The main job: make a synthetic drive, replay it through the planner, and render every candidate mode.

Writes, under --out: drive/ (input rosbag2), replay/ (inputs + Path, MarkerArray, diagnostics; MCAP),
render/ (PNG frames and drive.mp4), then prints where they are and what the planner did.
"""
import argparse
import shutil
from pathlib import Path

from .planner import Planner
from .ros.pipeline import PipelineConfig
from .tools.render import render_bag
from .tools.replay import replay_bag
from .tools.synthetic.bag import make_drive
from .tools.synthetic.config import DriveConfig

COMMAND_NAMES = ("left", "straight", "right", "unknown")
OUTPUT_PARTS = ("drive", "replay", "render")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: ./demo_output)")
    parser.add_argument("--checkpoint", default="", help="official .ckpt, state_dict or our format ('' = built-in seeded weights)")
    parser.add_argument("--anchors", default="", help="K-means anchors .npy (20, 8, 2) ('' = from the checkpoint)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the drive, the built-in weights and the diffusion noise")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of synthetic drive (straight, turn, stopped car)")
    parser.add_argument("--every", type=int, default=0, help="plan every N-th LiDAR sweep (default: all on CUDA, every 2nd on CPU)")
    parser.add_argument("--png-every", type=int, default=5, help="write a PNG for every N-th planned frame")


def run(args: argparse.Namespace) -> int:
    out = args.out
    for part in OUTPUT_PARTS:
        shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/3] synthetic drive: {args.duration:.0f} s, seed {args.seed}")
    drive = make_drive(out / "drive", DriveConfig(seed=args.seed, duration_s=args.duration))
    print(f"      {drive.message_count} messages -> {drive.path}")

    planner = Planner.from_checkpoint(args.checkpoint or None, device=args.device, precision=args.precision,
                                      anchors=args.anchors or None, seed=args.seed)
    every = args.every or (1 if planner.device.type == "cuda" else 2)
    print(f"[2/3] replay through the planner ({planner.describe()}), every {every} LiDAR sweep(s)")
    summary = replay_bag(drive.path, out / "replay", planner, PipelineConfig(seed=args.seed), every=every)

    print("[3/3] rendering bird's-eye view + front camera")
    pictures = render_bag(out / "replay", out / "render", png_every=args.png_every, mp4=True,
                          fps=max(1, round(10 / every)))

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
    if planner.weights_source.startswith("built-in"):
        print("note: built-in seeded weights exercise the whole network but are not a trained driving policy; "
              "pass --checkpoint with the official NAVSIM checkpoint for real plans.")
    return 0
