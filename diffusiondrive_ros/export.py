"""Export a trained checkpoint for deployment: a half-precision copy of our format (half the file size)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `diffusiondrive-ros export`."""
    parser.add_argument("--checkpoint", default="",
                        help="our checkpoint (e.g. RUN/last.pt) or the official one ('' = the built-in model)")
    parser.add_argument("--fp16", type=Path, required=True, metavar="OUT.pt",
                        help="write the weights as float16 in our format (the planner computes in its own precision)")


def run(args: argparse.Namespace) -> int:
    """Write the export and say how far its plans are from the source's on a seeded random input."""
    from .model.checkpoint import CheckpointError, save_checkpoint
    from .planner import Planner

    try:
        source = Planner.from_checkpoint(args.checkpoint or None, device="cpu")
    except (CheckpointError, ValueError) as error:
        print(f"diffusiondrive-ros export: error: {error}", file=sys.stderr)
        return 1
    model = source.model
    args.fp16.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.fp16, model, model.config, weights_dtype=torch.float16, exported_from=source.weights_source)
    exported = Planner.from_checkpoint(args.fp16, device="cpu")
    generator = torch.Generator().manual_seed(0)
    backbone = model.config.backbone
    inputs = (torch.rand(1, 3, backbone.camera_height, backbone.camera_width, generator=generator),
              (torch.rand(1, 1, backbone.lidar_resolution, backbone.lidar_resolution,
                          generator=generator) > 0.9).float(),
              torch.tensor([[0, 1, 0, 0, 8.0, 0.0, 0.2, 0.0]]))
    noise = torch.randn((1, model.config.num_modes, model.config.num_poses, 2), generator=generator)
    with torch.inference_mode():
        before, after = (p.model(*inputs, noise=noise)["all_poses_reg"] for p in (source, exported))
    size_mb = args.fp16.stat().st_size / 2**20
    print(f"wrote {args.fp16} ({size_mb:.1f} MB); max pose difference to the source: "
          f"{float((before - after).abs().max()):.4f} m")
    return 0
