"""`diffusiondrive-ros` command line: one console script, one subcommand per tool."""
import argparse
import sys
from typing import List, Optional

import importlib

# subcommand -> module with add_arguments(parser) and run(args); imported on use so `--help` stays fast.
SUBCOMMANDS = {
    "demo": "diffusiondrive_ros.demo",
    "node": "diffusiondrive_ros.node",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusiondrive-ros", description="DiffusionDrive planner for ROS 2.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_ros_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.ros_args = extra
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
