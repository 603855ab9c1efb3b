"""Deterministic synthetic urban drive, written as a real rosbag2 (MCAP or sqlite3).

The ego drives a straight two-lane road at 10 m/s, turns left or right at a four-way
intersection and later stops behind a vehicle standing in its lane. A ray-cast spinning
LiDAR, three rasterised cameras (NAVSIM-like rig), odometry, IMU, the driving command and the
static transforms all come from one seeded world, so a seed fixes every message. Neither rclpy
nor torch is imported: messages are rosbags ``Stores.ROS2_KILTED`` classes.

Frames: ``map`` (world, z up), ``base_link`` (ego rear axle on the ground, REP-103),
``lidar_top`` (axes of base_link), ``camera_<name>`` (REP-103 body frame of the camera) and
``camera_<name>_optical`` (z forward, x right, y down; images are stamped in it). Sensors are
instantaneous: a sweep is a snapshot at its stamp (no motion skew) and the cameras fire at the
LiDAR instants, so a planner can pair them exactly.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .synthetic.bag import make_drive
from .synthetic.config import DriveConfig, RandomScenarioConfig, parse_camera_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffusiondrive-ros make-drive``: output directory, seed, scenario, duration, storage, sizes."""

    def camera_size(text: str) -> tuple[int, int]:
        try:
            return parse_camera_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parser.add_argument("out_dir", type=Path, help="bag directory to create (must not exist)")
    parser.add_argument("--seed", type=int, default=DriveConfig.seed)
    parser.add_argument("--scenario", choices=("demo", "random"), default=DriveConfig.scenario,
                        help="demo: the fixed drive; random: roads, traffic, stops and lighting drawn from --seed "
                             "(also writes OUT/scenario.json)")
    parser.add_argument("--duration", type=float, default=DriveConfig.duration_s, help="seconds")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default=DriveConfig.storage)
    parser.add_argument("--turn", choices=("left", "right"), default=DriveConfig.turn,
                        help="the demo drive's turn (random drives draw theirs)")
    parser.add_argument("--camera-size", type=camera_size, metavar="WxH",
                        default=f"{DriveConfig.image_width}x{DriveConfig.image_height}",
                        help="size of each camera image (default %(default)s); small images render and encode faster")
    parser.add_argument("--stop-probability", type=float, default=RandomScenarioConfig.stop_probability,
                        help="random drives: odds per road that something stands in the ego lane and the ego stops "
                             "for it (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag directory")


def run(args: argparse.Namespace) -> int:
    """Write a synthetic drive bag and print its summary."""
    width, height = args.camera_size
    if args.scenario != "random" and args.stop_probability != RandomScenarioConfig.stop_probability:
        raise SystemExit("make-drive: --stop-probability applies to --scenario random only")
    try:
        odds = RandomScenarioConfig(stop_probability=args.stop_probability)
    except ValueError as exc:
        raise SystemExit(f"make-drive: {exc}") from None
    config = DriveConfig(seed=args.seed, duration_s=args.duration, storage=args.storage, turn=args.turn,
                         scenario=args.scenario, image_width=width, image_height=height, random=odds)
    reported = [-1]

    def report(fraction: float) -> None:
        percent = int(fraction * 10) * 10
        if percent > reported[0]:
            reported[0] = percent
            print(f"\r{percent:3d}%", end="", file=sys.stderr, flush=True)

    summary = make_drive(args.out_dir, config, overwrite=args.overwrite, progress=report)
    print(file=sys.stderr)
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (``python -m``): parse ``argv`` and write the bag."""
    parser = argparse.ArgumentParser(description="Write a deterministic synthetic drive as a rosbag2.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
