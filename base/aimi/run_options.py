"""The command-line options shared by `aimi run` and `aimi batch`: one definition, so both stay in step."""

from __future__ import annotations

import argparse
from pathlib import Path

from aimi.core.context import RunOptions


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", default="default", help="workflow name in the model's config/ (or a .yml path)")
    parser.add_argument("--weights", type=Path, help="weights folder (default: $AIMI_WEIGHTS, /app/weights, ~/.cache)")
    # Each of these sets the same-named setting of every module in the chain that has one (aimi.core.context).
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: auto (CUDA when visible)")
    parser.add_argument("--folds", help="'all' (default) or fold numbers such as 0,1")
    parser.add_argument("--no-tta", dest="tta", action="store_const", const=False,
                        help="turn test-time mirroring off (8x faster)")
    parser.add_argument("--step-size", type=float, help="sliding-window tile step, a fraction of a patch (default 0.5)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="Module.key=value")
    parser.add_argument("--keep-empty-frames", action="store_const", const=True,
                        help="write SEG frames that hold no segment")
    # The runner's own: cases overlap (one in the network while others are read, converted and written).
    parser.add_argument("--workers", type=_workers, help="threads per CPU stage beside the network (default: from "
                        "the cores); 0: one case at a time, every step in order (debugging)")
    parser.add_argument("--memory-budget", dest="memory_budget_gb", type=float, metavar="GB",
                        help="memory the cases in flight may hold (default: half the machine's)")


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(args.device, args.folds, args.tta, args.step_size, args.keep_empty_frames,
                      getattr(args, "fail_fast", False), args.workers, args.memory_budget_gb)


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: give 0 (no overlap) or more threads")
    return value
