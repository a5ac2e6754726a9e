"""`aimi reproduce SERIES_UID [-o OUT]` and `aimi reproduce --sample MODEL N [--seed S]`: does the model, run here,
give what IDC published? SERIES_UID is an image series or one of IDC's AIMI SEG series (analysis result
bamf_aimi_annotations); the model comes from the published SEG (aimi.reproduce.index). `--workflow` defaults to
as-published where the model has one, else default. `--source DIR` stands in for IDC's buckets (a folder holding
the series and the SEGs, any layout); the bundled index is queried either way. `--dry-run` prints the downloads.
Exit 0 when it ran, 1 when a series failed or a segment fell under --min-dice, 2 usage error.
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path

from aimi.batch.sources import IdcSource, LocalSource, Source, SourceError
from aimi.errors import EXIT_OK, ConfigError
from aimi.reproduce.index import BundledIndex
from aimi.reproduce.runs import Settings, plan, reproduce_sample, reproduce_series
from aimi.run_options import add_run_options, run_options
from aimi.weights import default_weights_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reproduce", help="re-run a model on an IDC series and compare with the AIMI SEG "
                                   "IDC published for it", description=__doc__)
    parser.add_argument("uid", nargs="?", metavar="SERIES_UID", help="image series, or AIMI SEG series, in IDC")
    parser.add_argument("--sample", nargs=2, metavar=("MODEL", "N"),
                        help="N series of MODEL with published AI SEGs, chosen by --seed, run as one batch")
    parser.add_argument("--seed", type=int, default=0, help="with --sample: which series (default 0)")
    parser.add_argument("-o", "--output", type=Path, help="output folder (default reproduce/<SERIES_UID> or "
                        "reproduce/<MODEL>-<N>-seed<S>)")
    parser.add_argument("--min-dice", type=float, help="exit 1 when a segment's Dice is under this")
    parser.add_argument("--source", type=Path, help="a local folder standing in for IDC's buckets")
    parser.add_argument("--dry-run", action="store_true", help="print what would be downloaded, download nothing")
    add_run_options(parser)
    parser.set_defaults(workflow=None)


def run(args: argparse.Namespace) -> int:
    if (args.uid is None) == (args.sample is None) or (args.dry_run and args.sample):
        raise ConfigError("aimi reproduce: give SERIES_UID (optionally --dry-run) or --sample MODEL N")
    model, count = _sample(args.sample) if args.sample else ("", 0)
    default_out = Path("reproduce") / (args.uid or f"{model}-{count}-seed{args.seed}")
    settings = Settings(args.output or default_out, args.weights or default_weights_dir(), run_options(args),
                        workflow=args.workflow, assignments=args.assignments, min_dice=args.min_dice)
    if args.dry_run:
        print("\n".join(plan(bundled_index(), args.uid, settings)))
        return EXIT_OK
    source = _source(args.source)
    if args.sample:
        return reproduce_sample(bundled_index(), source, model, count, args.seed, settings)
    return reproduce_series(bundled_index(), source, args.uid, settings)


@cache
def bundled_index() -> BundledIndex:
    """One per process: the tests and a long session query it many times."""
    return BundledIndex()


def _sample(values: list[str]) -> tuple[str, int]:
    model, count = values
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"--sample {model} {count}: N must be a whole number >= 1")
    return model, int(count)


def _source(folder: Path | None) -> Source:
    if folder is None:
        return IdcSource()  # builds idc-index's IDCClient (seconds) for the downloads
    try:
        return LocalSource(folder)
    except SourceError as error:
        raise ConfigError(str(error)) from None
