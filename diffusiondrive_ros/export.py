"""Export a checkpoint for deployment: a half-precision copy of our format (half the file size), or the whole plan
as an ONNX graph checked with ONNX Runtime against PyTorch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ONNX_ATOL = 1e-3
"""Largest ONNX Runtime vs PyTorch difference accepted (poses in metres, score logits): ten times the parity
tolerance, as ONNX Runtime fuses operators and sums floats in another order."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `diffusiondrive-ros export`."""
    parser.add_argument("--checkpoint", default="",
                        help="our checkpoint (e.g. RUN/last.pt) or the official one ('' = the built-in model)")
    parser.add_argument("--variant", default=None,
                        help="model config of weights that carry none (official or plain state_dict; default navsim)")
    parser.add_argument("--noise-scale", type=float, default=None,
                        help="store this factor on the anchor noise with the model (its inference default; "
                             "1 = the paper's); default: keep the checkpoint's")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--fp16", type=Path, metavar="OUT.pt",
                        help="write the weights as float16 in our format (the planner computes in its own precision)")
    target.add_argument("--onnx", type=Path, metavar="OUT.onnx",
                        help="write the whole plan (both backbones, the DDIM steps unrolled, noise an input) as ONNX "
                             "and check it with ONNX Runtime (needs the `onnx` extra)")


def run(args: argparse.Namespace) -> int:
    """Write the export and say how far its plans are from the source's on a seeded random input."""
    from .model.checkpoint import CheckpointError
    from .planner import Planner

    try:
        source = Planner.from_checkpoint(args.checkpoint or None, device="cpu", variant=args.variant,
                                         noise_scale=args.noise_scale)
    except (CheckpointError, ValueError) as error:
        print(f"diffusiondrive-ros export: error: {error}", file=sys.stderr)
        return 1
    return _onnx(source.model, args.onnx) if args.onnx else _fp16(source, args.fp16)


def _fp16(source, out: Path) -> int:
    """Our checkpoint format with float16 weights; prints the largest pose change on a seeded frame."""
    from .model.checkpoint import save_checkpoint
    from .model.onnx_export import example_inputs
    from .planner import Planner

    model = source.model
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, model.config, weights_dtype=torch.float16, exported_from=source.weights_source)
    exported = Planner.from_checkpoint(out, device="cpu")
    *inputs, noise = example_inputs(model.config)
    with torch.inference_mode():
        before, after = (p.model(*inputs, noise=noise)["all_poses_reg"] for p in (source, exported))
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({size_mb:.1f} MB); max pose difference to the source: "
          f"{float((before - after).abs().max()):.4f} m")
    return 0


def _onnx(model, out: Path) -> int:
    """The plan graph; ONNX Runtime must reproduce the eager PyTorch plan of a seeded frame within ONNX_ATOL."""
    from .onnx_backend import OnnxPlan, onnxruntime_available

    try:
        from .model.onnx_export import example_inputs, export_onnx

        if not onnxruntime_available():
            raise ImportError("onnxruntime")
        export_onnx(model, out)
    except ImportError as error:
        print(f"diffusiondrive-ros export: error: --onnx needs the onnx extra ({error.name} is missing): "
              "pip install 'diffusiondrive_ros[onnx]'", file=sys.stderr)
        return 1
    inputs = example_inputs(model.config)
    with torch.inference_mode():
        reference = model(*inputs[:3], noise=inputs[3], aux_heads=False)
    got = OnnxPlan(out).run(*(a.numpy() for a in inputs))
    differences = {name: float(np.abs(got[name] - reference[name].numpy()).max())
                   for name in ("all_poses_reg", "all_poses_cls")}
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({size_mb:.1f} MB); ONNX Runtime vs PyTorch on a seeded frame, max abs difference: "
          f"poses {differences['all_poses_reg']:.2e} m, scores {differences['all_poses_cls']:.2e}")
    if max(differences.values()) > ONNX_ATOL:
        print(f"diffusiondrive-ros export: error: ONNX Runtime differs from PyTorch by more than {ONNX_ATOL:g}",
              file=sys.stderr)
        return 1
    return 0
