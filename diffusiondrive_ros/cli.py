"""`diffusiondrive-ros` command line: one console script, one subcommand per tool."""
import argparse
import importlib
import logging
import sys

from .errors import InputError, report

# subcommand -> (module with add_arguments(parser) and run(args), one-line help); only the chosen one is imported.
SUBCOMMANDS = {
    "demo": ("diffusiondrive_ros.demo", "make a synthetic drive, replay it through the planner, render pictures"),
    "node": ("diffusiondrive_ros.ros.node",
             "run the ROS 2 node (same as `ros2 run diffusiondrive_ros diffusiondrive_node`)"),
    "make-drive": ("diffusiondrive_ros.tools.synthetic_drive", "write a deterministic synthetic drive as a rosbag2"),
    "replay": ("diffusiondrive_ros.tools.replay", "plan every frame of a rosbag2 offline: bag in -> bag out"),
    "play": ("diffusiondrive_ros.tools.player", "publish a rosbag2 into the live ROS graph with /clock"),
    "render": ("diffusiondrive_ros.tools.render", "PNG frames and an MP4 of the planner's modes from a bag"),
    "dataset": ("diffusiondrive_ros.tools.dataset_builder", "build a training dataset (features + futures) from bags"),
    "anchors": ("diffusiondrive_ros.training.anchors_cli", "K-means trajectory anchors (.npy + PNG) from a dataset"),
    "train": ("diffusiondrive_ros.training.train", "train or fine-tune the planner on a dataset (also under torchrun)"),
    "eval": ("diffusiondrive_ros.tools.evaluate", "open-loop metrics of the planner on bags vs kinematic baselines"),
    "export": ("diffusiondrive_ros.export", "export for deployment: float16 checkpoint or the plan as ONNX"),
    "bench": ("diffusiondrive_ros.bench", "time the hot paths as ratios to baselines measured in the same run"),
}


def top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusiondrive-ros", description="DiffusionDrive planner for ROS 2.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        top_level_parser().parse_args(argv)  # prints usage / the error and exits
        return 2
    module_name, help_text = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"diffusiondrive-ros {argv[0]}", description=module.__doc__ or help_text)
    module.add_arguments(parser)
    args, extra = parser.parse_known_args(argv[1:])
    if extra and not getattr(args, "passes_ros_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.ros_args = extra
    logging.basicConfig(format=f"diffusiondrive-ros {argv[0]}: %(levelname)s: %(message)s")
    try:
        return module.run(args) or 0
    # A path, bag or checkpoint the user named that cannot be used (InputError and its BagReadError, BagError and
    # CheckpointError), or the OS refusing a file: one line naming it and exit code 1, not a traceback.
    except (InputError, OSError, ValueError) as error:
        return report(argv[0], error)


if __name__ == "__main__":
    sys.exit(main())
