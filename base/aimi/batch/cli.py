"""`aimi batch MODEL --manifest FILE -o OUT`: segment a manifest of SeriesInstanceUIDs from IDC (or `--source DIR`)
in one long-lived process; rerunning the same command resumes. Exit 0 all done or skipped, 1 a series failed,
2 usage or configuration error. Also runnable as `python -m aimi.batch.cli MODEL ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aimi.batch.engine import BatchSettings, run_batch
from aimi.batch.manifest import query_manifest, read_manifest
from aimi.batch.sources import IDC_BUCKETS, IdcSource, LocalSource, Source, SourceError
from aimi.core.log import configure
from aimi.errors import ConfigError, exit_status
from aimi.run_options import add_run_options, run_options
from aimi.weights import WeightsMissing, default_weights_dir

QUERY_MANIFEST = "manifest.txt"


def add_parser(subparsers: Any) -> None:
    """The `batch` subcommand of `aimi`."""
    _add_arguments(subparsers.add_parser("batch", help="segment a manifest of series from IDC, resumably",
                                         description=__doc__))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model folder name, e.g. bamf_nnunet_ct_kidney (see `aimi models`)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--manifest", type=Path, help="SeriesInstanceUIDs: TXT (one a line) or CSV/TSV with a "
                       "SeriesInstanceUID column (e.g. an idc-index query result)")
    which.add_argument("--query", help="SQL over idc-index's `index` table selecting SeriesInstanceUID; the result "
                       f"is saved as OUT/{QUERY_MANIFEST}")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder: SEGs, ledger, report")
    parser.add_argument("--source", type=Path, help="a local DICOM folder instead of IDC (any nesting)")
    parser.add_argument("--bucket", default="aws", choices=IDC_BUCKETS, help="IDC bucket to download from")
    parser.add_argument("--retries", type=int, default=1, help="times a failed series is tried again (per rerun)")
    parser.add_argument("--max-scratch-gb", type=float, default=20.0, help="disk budget for downloaded series")
    parser.add_argument("--scratch", type=Path, help="scratch folder for downloads (default OUT/.scratch)")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    """Resolve the manifest and the source, then run the batch; usage errors raise ConfigError (exit 2)."""
    if args.retries < 0 or args.max_scratch_gb <= 0:
        raise ConfigError("--retries must be >= 0 and --max-scratch-gb > 0")
    source: Source
    try:
        source = LocalSource(args.source) if args.source else IdcSource(args.bucket)
    except SourceError as error:
        raise ConfigError(str(error)) from None
    if args.query:
        if not isinstance(source, IdcSource):
            raise ConfigError("--query selects from IDC's index; give --manifest with --source")
        args.output.mkdir(parents=True, exist_ok=True)
        uids = query_manifest(source.client, args.query, args.output / QUERY_MANIFEST)
    else:
        uids = read_manifest(args.manifest)
    options = run_options(args)
    settings = BatchSettings(args.model, args.output, args.weights or default_weights_dir(), options,
                             workflow=args.workflow, assignments=args.assignments, retries=args.retries,
                             max_scratch_bytes=int(args.max_scratch_gb * (1 << 30)), scratch_dir=args.scratch)
    return run_batch(uids, source, settings)


def main(argv: list[str] | None = None) -> int:
    """`python -m aimi.batch.cli`: the same options as `aimi batch`, for images and tests without the wiring."""
    parser = argparse.ArgumentParser(prog="aimi batch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    configure(args.verbose)
    return exit_status(lambda: run(args), usage=(ConfigError, WeightsMissing))


if __name__ == "__main__":
    sys.exit(main())
