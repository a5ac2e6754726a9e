"""The review loop, three steps:
- `aimi review select OUT... --fraction 0.1 [--strategy uncertainty|random|stratified] [--seed N] -o LIST.csv`:
  the ranked review list (rank, case, model, score, reasons, run folder, series, outputs) over run-report.json
  (aimi run) or batch-report.json (aimi batch) folders;
- `aimi review package LIST -o DIR [--input DICOM_FOLDER]`: one folder per listed SEG to open in 3D Slicer
  (aimi.review.package);
- `aimi review import DIR -o OUT`: corrections back as DICOM SEGs and qa-results.csv in the published layout
  (aimi.review.importer), for `aimi evaluate --qa-results OUT/qa-results.csv OUT/ai-segmentations-dcm
  OUT/qa-segmentations-dcm`.
Exit codes: 0 done, 1 a folder could not be imported (named on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aimi.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from aimi.review.importer import import_reviews
from aimi.review.package import package
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
    packer = actions.add_parser("package", help="what a reviewer opens in 3D Slicer, one folder per listed SEG")
    packer.add_argument("list", type=Path, help="the review list of aimi review select")
    packer.add_argument("-o", "--output", type=Path, required=True, help="folder for the review folders")
    packer.add_argument("--input", type=Path, help="the DICOM folder the runs read (default: as their reports say)")
    importer = actions.add_parser("import", help="reviewed folders back as DICOM SEGs and qa-results.csv")
    importer.add_argument("packages", type=Path, help="the folder of aimi review package, reviewed")
    importer.add_argument("-o", "--output", type=Path, required=True, help="folder for the QA record")


def run(args: argparse.Namespace) -> int:
    if args.action == "package":
        return _package(args)
    if args.action == "import":
        return _import(args)
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


def _package(args: argparse.Namespace) -> int:
    try:
        made = package(args.list, args.output, args.input)
    except (ValueError, OSError) as error:
        print(f"aimi review package: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{len(made)} review folder(s) under {args.output}; see README.txt in each")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    if not args.packages.is_dir():
        print(f"aimi review import: error: {args.packages} is not a folder of aimi review package", file=sys.stderr)
        return EXIT_USAGE
    done, failures = import_reviews(args.packages, args.output)
    corrected = sum(item.correction is not None for item in done)
    print(f"{len(done)} review(s) imported into {args.output} ({corrected} with a correction, "
          f"{len(done) - corrected} without)")
    for failure in failures:
        print(f"aimi review import: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK
