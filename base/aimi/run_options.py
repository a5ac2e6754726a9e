"""The command-line options shared by `aimi run` and `aimi batch`: one definition, so both stay in step."""

from __future__ import annotations

import argparse
from pathlib import Path

from aimi.context import RunOptions


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", default="default", help="workflow name in the model's config/ (or a .yml path)")
    parser.add_argument("--weights", type=Path, help="weights folder (default: $AIMI_WEIGHTS, /app/weights, ~/.cache)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--folds", default="all", help="'all' or fold numbers such as 0,1")
    parser.add_argument("--no-tta", dest="tta", action="store_false", help="turn test-time mirroring off (8x faster)")
    parser.add_argument("--step-size", type=float, default=0.5, help="sliding-window tile step (fraction of a patch)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="Module.key=value")
    parser.add_argument("--keep-empty-frames", action="store_true", help="write SEG frames that hold no segment")


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(args.device, args.folds, args.tta, args.step_size, args.keep_empty_frames,
                      getattr(args, "fail_fast", False))
