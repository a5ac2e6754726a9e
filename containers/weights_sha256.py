#!/usr/bin/env python3
"""Print a model's weights digests as 'id=sha256,...' from its manifest: the WEIGHTS_SHA256 build arg and label.

Standard library only (tomllib), so the Makefile can call it before any environment exists.
Usage: weights_sha256.py models/<name>/manifest.toml
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def digests(manifest: Path) -> str:
    with manifest.open("rb") as handle:
        data = tomllib.load(handle)
    return ",".join(f"{w['id']}={w.get('sha256', '')}" for w in data.get("weights", []) if w.get("sha256"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    print(digests(Path(sys.argv[1])))
