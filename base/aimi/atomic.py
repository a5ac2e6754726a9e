"""Files that appear whole or not at all: written under a hidden temporary sibling, flushed, then renamed.

The temporary lives in the destination folder (same file system, so the rename is atomic) and is named
`.<name>.<pid>.partial`; writers that choose the format by the file's extension (SimpleITK) get the extension
appended to that name. Nothing is left behind when writing fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

PARTIAL = ".partial"


def temporary_for(path: Path, *, keep_extension: bool = False) -> Path:
    extension = "".join(path.suffixes[-2:]) if keep_extension else ""
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}{extension}")


def stage(path: Path, write: Callable[[Path], object], *, keep_extension: bool = False) -> Path:
    """Write through `write(temporary)`, flush it to disk and return the temporary: the caller renames it into place
    (several files of one case are staged first, then renamed together)."""
    temporary = temporary_for(path, keep_extension=keep_extension)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`path` is afterwards either absent, the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(stage(path, write), path)


def replace_folder(folder: Path, target: Path) -> None:
    """Move the finished `folder` to `target` by rename, replacing an older `target` so it is never half there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    folder.rename(target)
    shutil.rmtree(old, ignore_errors=True)
