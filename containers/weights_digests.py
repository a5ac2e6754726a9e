#!/usr/bin/env python3
"""Print the digests a model image must bake, 'id=md5:<hex>,id=sha256:<hex>': the WEIGHTS_DIGESTS build arg and
the org.aimi.weights.digests label.

A sha256 the manifest pins wins; otherwise the MD5 its Zenodo record states (read from `$AIMI_ZENODO_URL`, default
https://zenodo.org), so no digest has to be typed in by hand. Standard library only: the Makefile calls it before
any environment exists. Usage: weights_digests.py models/<name>/manifest.toml
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import urllib.request
from pathlib import Path


def record_md5(record: str, file: str) -> str:
    base = os.environ.get("AIMI_ZENODO_URL", "").rstrip("/") or "https://zenodo.org"
    with urllib.request.urlopen(f"{base}/api/records/{record}", timeout=30) as response:
        files = json.loads(response.read()).get("files") or []
    for item in files:
        if item.get("key") == file and str(item.get("checksum", "")).startswith("md5:"):
            return str(item["checksum"])
    sys.exit(f"weights_digests.py: Zenodo record {record} has no {file} with an md5 checksum")


def digests(manifest: Path) -> str:
    with manifest.open("rb") as handle:
        data = tomllib.load(handle)
    parts = []
    for weights in data.get("weights", []):
        if weights.get("sha256"):
            parts.append(f"{weights['id']}=sha256:{weights['sha256']}")
        elif weights.get("record"):
            parts.append(f"{weights['id']}={record_md5(str(weights['record']), weights['file'])}")
        else:
            sys.exit(f"weights_digests.py: {manifest}: weights {weights['id']!r} has neither a record nor a sha256")
    return ",".join(parts)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    print(digests(Path(sys.argv[1])))
