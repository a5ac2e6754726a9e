"""`mhub.run` for MHub users: `--config FILE` or `--workflow NAME`, fixed container paths, model from $AIMI_MODEL."""

from __future__ import annotations

import argparse
import os
import sys

from aimi.cli import main as aimi_main
from aimi.errors import EXIT_USAGE

INPUT, OUTPUT = "/app/data/input_data", "/app/data/output_data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mhub.run", description="MHub-compatible entrypoint of an AIMI image")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", help="a workflow YAML file")
    group.add_argument("--workflow", default="default", help="a workflow name of this image's model")
    args, rest = parser.parse_known_args(argv)
    model = os.environ.get("AIMI_MODEL")
    if not model:
        print("mhub.run: error: AIMI_MODEL is not set (it is set in every model image)", file=sys.stderr)
        return EXIT_USAGE
    return aimi_main(["run", model, "-i", INPUT, "-o", OUTPUT, "--workflow", args.config or args.workflow, *rest])


if __name__ == "__main__":
    sys.exit(main())
