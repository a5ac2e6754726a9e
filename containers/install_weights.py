#!/usr/bin/env python
"""Bake a model's weights into an image at build time (installed as `aimi-install-weights` in the base image).

Real weights: `aimi weights fetch` downloads the manifest's URL, checks its sha256 and converts nnU-Net v1 weights to
a v2 model folder. The digests must also equal `--sha256` (the value the image's OCI label carries), so an image
never claims weights it does not hold. `--test-weights 1` bakes `aimi testmodel`'s tiny model instead: no network.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from aimi.models import load_model
from aimi_testkit.testmodel import QualityTarget
from aimi_testkit.testmodel_cli import build_for_model, quality_summary
from aimi.weights import default_weights_dir, fetch, v1_folder, verify


def parse_digests(text: str) -> dict[str, str]:
    """'id=hex,id=hex' (what containers/weights_sha256.py prints) -> {id: hex}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"aimi-install-weights: --sha256 must be 'id=sha256,...', got {text!r}")
    return {key.strip(): value.strip().lower() for key, value in pairs}


def expected_digests(manifest, given: dict[str, str]) -> dict[str, str]:
    """The digest each entry must have: the manifest's, which the build arg (and so the label) must repeat."""
    problems, expected = [], {}
    for entry in manifest.weights:
        label = given.get(entry.id, "")
        if not entry.sha256:
            problems.append(f"{manifest.path}: weights {entry.id!r} has no sha256; download once with "
                            f"`aimi weights fetch {manifest.name}` (it prints the digest) and record it there")
        elif label != entry.sha256:
            problems.append(f"weights {entry.id!r}: build arg WEIGHTS_SHA256 says {label or 'nothing'!r}, the "
                            f"manifest says {entry.sha256}; build with `make image-{manifest.name}`, which passes it")
        expected[entry.id] = entry.sha256
    if unknown := sorted(set(given) - {e.id for e in manifest.weights}):
        problems.append(f"WEIGHTS_SHA256 names unknown weights ids {unknown}")
    if problems:
        raise SystemExit("aimi-install-weights: refusing to bake unverified weights:\n  " + "\n  ".join(problems))
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aimi-install-weights", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--test-weights", default="0", choices=("0", "1"), help="1: bake a tiny test model")
    parser.add_argument("--sha256", default="", help="'id=sha256,...' as the image label carries it")
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
    expected = expected_digests(model.manifest, parse_digests(args.sha256))
    for folder in fetch(model.manifest, weights_dir, progress=False):  # verifies each archive against the manifest
        print(f"weights: {folder}")
    for entry in model.manifest.weights:
        # The v1 originals were converted into the v2 folder (which keeps their provenance): not needed at run time.
        shutil.rmtree(v1_folder(weights_dir, model.manifest, entry), ignore_errors=True)
    if problems := verify(model.manifest, weights_dir):
        raise SystemExit("aimi-install-weights: weights unusable after fetch:\n  " + "\n  ".join(problems))
    print(f"{args.model}: weights verified ({', '.join(f'{k}={v[:12]}...' for k, v in expected.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
