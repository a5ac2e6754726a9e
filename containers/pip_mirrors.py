#!/usr/bin/env python3
"""Find the local wheel mirrors the host's pip uses and write a pip.conf that points a container build at them.

Prints `dir PATH` for each folder to mount read-only at the same path and `conf PATH` for the pip.conf to mount at
/etc/pip.conf; prints nothing when the host's pip has no local mirrors (then the build downloads from PyPI).
Usage: pip_mirrors.py OUT_PIP_CONF
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse


def pip_settings() -> dict[str, str]:
    """`pip config list` as {name: value}, the last scope winning, keys without their scope."""
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             check=False).stdout
    settings = {}
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        settings[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    return settings


def local_path(location: str) -> Path | None:
    path = Path(urlparse(location).path) if location.startswith("file://") else Path(location)
    return path if path.is_absolute() and path.exists() else None


def main(out: Path) -> int:
    settings = pip_settings()
    indexes = [p for p in map(local_path, settings.get("extra-index-url", "").split()) if p]
    links = [p for p in map(local_path, settings.get("find-links", "").split()) if p]
    if not indexes and not links:
        return 0
    # A simple index links its files relative to itself (../../files/x.whl): mount the folder above `simple/`.
    mounts = sorted({p.parent if p.name == "simple" else p for p in indexes} | set(links))
    lines = ["[global]"]
    if indexes:
        lines.append("extra-index-url = " + " ".join(p.as_uri() for p in indexes))
    if links:
        lines.append("find-links = " + " ".join(str(p) for p in links))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    for mount in mounts:
        print(f"dir {mount}")
    print(f"conf {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(Path(sys.argv[1])))
