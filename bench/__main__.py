"""`python -m bench [--quick] [--stages 1,2,3,4,5,6]`: the incumbent chain and AIMI Model Hub side by side.

Stages: 1 DICOM -> model input; 2 fixed cost per series; 3 SEG encoding; 4 end to end (2 and 4 share their runs);
5 peak RSS; 6 the peer (nnU-Net's own folder mode) and what overlapping the chain's stages buys.
Inputs are built once into --cache (outside the repository); outputs go to temporary folders.
Ratios are incumbent / project seconds (project / incumbent for series per hour), medians of the rounds, and are
shown only when the stage's outputs were checked equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import conversion, end_to_end, memory, peer, seg_encoding
from bench.common import BenchError, StageResult, format_table, machine_facts, pinned_env
from bench.data import Inputs, prepare

FULL = {"large_shape": (512, 512, 300), "n_small": 20, "n_first": 10, "n_peer": 10}
QUICK = {"large_shape": (512, 512, 100), "n_small": 6, "n_first": 3, "n_peer": 10}
STAGES = ("1", "2", "3", "4", "5", "6")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="512x512x100 CT, 6 small series (3 for stage 2)")
    parser.add_argument("--rounds", type=int, default=3, help="ABAB rounds per stage; medians need >= 3 (default 3)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of 1,2,3,4,5,6")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both sides")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aimi-bench-cache",
                        help="where the synthetic DICOM and the tiny model are built once (not the repository)")
    parser.add_argument("--incumbent-converter", choices=conversion.CONVERTERS, default="plastimatch",
                        help="MHub's NiftiConverter engine to run (default plastimatch, as the BAMF images)")
    parser.add_argument("--no-tta", dest="tta", action="store_false",
                        help="TTA off on BOTH sides in stages 2 and 4 (faster; changes outputs, so checks may fail)")
    args = parser.parse_args(argv)
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if not stages or stages - set(STAGES):
        parser.error(f"--stages {args.stages!r}: choose from {','.join(STAGES)}")
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be >= 1")
    args.stage_set = stages
    return args


def run_stages(args: argparse.Namespace, inputs: Inputs, env: dict[str, str]) -> list[StageResult]:
    """Quick stages first; each stage's rows are printed as soon as it ends, so a stopped run still tells."""
    results: list[StageResult] = []

    def done(stage_results: list[StageResult]) -> None:
        print(format_table(stage_results), flush=True)
        results.extend(stage_results)

    if "1" in args.stage_set:
        print("stage 1: DICOM -> model input", flush=True)
        done([conversion.run(inputs, args.rounds, env, args.incumbent_converter)])
    if "3" in args.stage_set:
        print("stage 3: SEG encoding", flush=True)
        done(seg_encoding.run(inputs, args.rounds, env))
    if "5" in args.stage_set:
        print("stage 5: peak RSS of aimi run", flush=True)
        done([memory.run(inputs, env)])
    if "6" in args.stage_set:
        print("stage 6: the peer (nnU-Net folder mode) and the overlap, series per hour", flush=True)
        done([peer.run(inputs, args.rounds, env, args.tta)])
    if args.stage_set & {"2", "4"}:
        print(f"stages 2 and 4: {len(inputs.small)} small series, per-series processes vs aimi run", flush=True)
        fixed, end = end_to_end.run(inputs, args.rounds, env, args.incumbent_converter, args.tta)
        done([r for r, stage in ((fixed, "2"), (end, "4")) if stage in args.stage_set])
    return sorted(results, key=lambda r: r.rows[0].stage.split(".")[0])  # stable: 3 segments before 20


def report(results: list[StageResult], facts: list[str], args: argparse.Namespace, seconds: float) -> None:
    print("\n## machine and versions")
    print("\n".join(f"- {fact}" for fact in facts))
    print(f"- {args.rounds} interleaved rounds per stage (medians); incumbent converter: {args.incumbent_converter}; "
          f"{'quick' if args.quick else 'full'} size; bench wall time {seconds:.0f} s")
    print("\n## results\n")
    print(format_table(results))
    print("\n## output checks (a ratio is shown only where its check passed)")
    for result in results:
        print(f"- {result.name}: {'EQUAL' if result.equal else 'DIFFER'} - {result.check}")
        print("".join(f"  ({note})\n" for note in result.notes), end="")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    env = pinned_env(args.threads)
    facts = machine_facts(args.threads)
    print("\n".join(facts), flush=True)
    if args.rounds < 3:
        print(f"note: --rounds {args.rounds}: fewer than 3 rounds, the figures are not medians of >= 3 runs")
    try:
        inputs = prepare(args.cache, **(QUICK if args.quick else FULL))
        results = run_stages(args, inputs, env)
    except BenchError as error:
        print(f"bench stopped: {error}", file=sys.stderr)
        return 1
    report(results, facts, args, time.perf_counter() - started)
    return 0 if all(r.equal for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
