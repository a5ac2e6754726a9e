#!/usr/bin/env python
"""Bake a model's weights into an image at build time (installed as `aimi-install-weights` in the base image).

Real weights: `aimi weights fetch` downloads the file of the manifest's Zenodo record, checks it against the record
(size, MD5) and a sha256 the manifest pins, and converts nnU-Net v1 weights to a v2 model folder. The weights in place
must then have the digests `--digests` names (the image's label and AIMI_WEIGHTS_DIGESTS), so an image never claims
weights it does not hold. `--test-weights 1` bakes `aimi testmodel`'s tiny model instead: no network.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from aimi.errors import FetchError
from aimi.models import load_model
from aimi.weights import default_weights_dir, digest_problems, fetch, parse_digests, v1_folder, verify
from aimi_testkit.testmodel import QualityTarget
from aimi_testkit.testmodel_cli import build_for_model, quality_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aimi-install-weights", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--test-weights", default="0", choices=("0", "1"), help="1: bake a tiny test model")
    parser.add_argument("--digests", default="", help="'id=md5:<hex>,id=sha256:<hex>' as the image label names them")
    parser.add_argument("--test-min-dice", default="",
                        help=f"quality a test model is fitted to (default {QualityTarget.min_dice}, as aimi testmodel)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    weights_dir = default_weights_dir()
    if args.test_weights == "1":
        # As `aimi testmodel`, with a target CI can lower: the container checks need a valid SEG, not a good one.
        target = QualityTarget(min_dice=float(args.test_min_dice or QualityTarget.min_dice))
        for folder in build_for_model(model, weights_dir, target):
            print(quality_summary(folder))
        return 0
    try:
        expected = parse_digests(args.digests)
    except ValueError as error:
        raise SystemExit(f"aimi-install-weights: --digests: {error}") from None
    if missing := [entry.id for entry in model.manifest.weights if entry.id not in expected]:
        raise SystemExit(f"aimi-install-weights: refusing to bake weights the label would not name: no digest for "
                         f"{missing}; build with `make image-{args.model}`, which reads them from the Zenodo record")
    try:
        folders = fetch(model.manifest, weights_dir, progress=False)  # checked against the record and any pin
    except FetchError as error:  # one line that names the file and both digests, not a traceback in a build log
        raise SystemExit(f"aimi-install-weights: {args.model}: {error}") from None
    for folder in folders:
        print(f"weights: {folder}")
    for entry in model.manifest.weights:
        # The v1 originals were converted into the v2 folder (which keeps their provenance): not needed at run time.
        shutil.rmtree(v1_folder(weights_dir, model.manifest, entry), ignore_errors=True)
    if problems := verify(model.manifest, weights_dir) + digest_problems(model.manifest, weights_dir, expected):
        raise SystemExit("aimi-install-weights: weights unusable after fetch:\n  " + "\n  ".join(problems))
    print(f"{args.model}: weights verified ({', '.join(f'{k}={a}:{v[:12]}...' for k, (a, v) in expected.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
