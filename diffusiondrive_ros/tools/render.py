"""Render a planner output bag as pictures of every candidate mode (PNG frames and an MP4 video).

Each picture shows a bird's-eye view (LiDAR, ego box, all modes coloured by score with the best one
highlighted, the odometry ground truth) beside the front camera with the modes projected onto the
road. The bag is what the replay tool writes: the sensor inputs plus `/diffusiondrive/candidates`
(the MarkerArray of `ros.markers.modes_to_markers`); an input bag and an outputs-only bag can also be
passed together; a bag cut short is rendered up to its break (`bag_io.open_bag`). No torch is imported.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError, report
from .rendering.video import render_bag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the render subcommand."""
    parser.add_argument("bag", nargs="+", type=Path,
                        help="planner output bag (inputs + /diffusiondrive/candidates); pass the input bag "
                             "as well when the outputs were recorded on their own")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the PNG files and drive.mp4 (default: <bag>_render beside the bag)")
    parser.add_argument("--every", type=int, default=1, help="write a PNG of every Nth frame; 0 writes none")
    parser.add_argument("--no-mp4", action="store_true", help="do not write drive.mp4")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of drive.mp4")


def run(args: argparse.Namespace) -> int:
    """Render the bag and print where the files went; 1 on a missing or unusable bag or no MP4 encoder."""
    bags = list(args.bag)
    out = args.out if args.out is not None else bags[0].parent / f"{bags[0].name}_render"
    try:
        summary = render_bag(bags, out, png_every=args.every, mp4=not args.no_mp4, fps=args.fps)
    except (InputError, OSError, ImportError, ValueError) as error:
        return report("render", error)
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (`python -m diffusiondrive_ros.tools.render`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
