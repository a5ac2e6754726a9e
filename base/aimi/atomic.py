"""Files that appear whole or not at all: written under a hidden temporary sibling, flushed, then renamed.

The temporary lives in the destination folder (same file system, so the rename is atomic) and is named
`.<name>.<pid>.partial`: it never ends in an output suffix (.seg.dcm, .nrrd), so no reader of the output folder takes
a killed run's leftover for a result, and `remove_stale` clears those of processes no longer running. Writers
that choose a format by extension must be told the format. Nothing is left behind when writing fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from aimi.errors import ConfigError, os_reason

PARTIAL = ".partial"


def temporary_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and PARTIAL in path.name


def remove_stale(folder: Path) -> list[Path]:
    """Delete the temporaries under `folder` whose writing process is gone (a killed run); returns them."""
    removed = []
    for path in folder.rglob(f".*{PARTIAL}*") if folder.is_dir() else ():
        pid = path.name[:path.name.rindex(PARTIAL)].rsplit(".", 1)[-1]
        if path.is_file() and not (pid.isdigit() and _running(int(pid))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_output_folder(folder: Path) -> list[Path]:
    """Before the first case: the output folder exists (created if need be) and takes a file, or ConfigError with
    the reason; a killed run's temporaries in it are removed (returned)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = write_probe(folder)
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"output folder {folder} is not writable: {os_reason(error)}") from None
    return remove_stale(folder)


def write_probe(folder: Path) -> Path:
    """A small file written the way outputs are, so a full or read-only disk shows before the first case."""
    return stage(folder / ".aimi-write-probe", lambda path: path.write_bytes(b"\0" * 4096))


def stage(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through `write(temporary)`, flush it to disk and return the temporary: the caller renames it into place
    (several files of one case are staged first, then renamed together)."""
    temporary = temporary_for(path)
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
