"""`aimi review select OUT... --fraction 0.1 [--strategy uncertainty|random|stratified] [--seed N] -o LIST.csv`.

Reads each OUT's run-report.json (aimi run) or batch-report.json (aimi batch); writes the ranked review list (rank,
case, model, score, reasons, run folder, series, outputs) and prints it. Exit 2 on a usage error (a folder without
a report, a fraction outside (0, 1]).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aimi.errors import EXIT_OK, EXIT_USAGE
from aimi.review.select import STRATEGIES, candidates, select, write_list


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    review = subparsers.add_parser("review", help="the review loop: choose the cases worth reviewing")
    actions = review.add_subparsers(dest="action", required=True)
    chooser = actions.add_parser("select", help="rank finished cases of runs/batches for review")
    chooser.add_argument("runs", type=Path, nargs="+", help="output folders of aimi run or aimi batch")
    chooser.add_argument("--fraction", type=float, default=0.1, help="share of the cases to review (default 0.1)")
    chooser.add_argument("--strategy", choices=STRATEGIES, default="uncertainty",
                         help="uncertainty: most doubtful first (default); random: seeded baseline; stratified: "
                              "one case from each band of the doubt ranking")
    chooser.add_argument("--seed", type=int, default=0, help="for random and stratified (default 0)")
    chooser.add_argument("-o", "--output", type=Path, required=True, help="the review list, CSV")


def run(args: argparse.Namespace) -> int:
    try:
        pool = candidates(args.runs)
        chosen = select(pool, args.fraction, args.strategy, args.seed)
    except ValueError as error:
        print(f"aimi review select: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    write_list(chosen, args.output)
    print(f"{len(chosen)} of {len(pool)} cases to review ({args.strategy}), written to {args.output}")
    for rank, item in enumerate(chosen, start=1):
        print(f"{rank:3d}  {item.score:.3f}  {item.model}  {item.case}  {'; '.join(item.reasons)}")
    return EXIT_OK
