"""The published AIMI QA record (Zenodo 13244892, the paper's reviewer data): one zip per task holding
`ai-segmentations-dcm/`, `qa-segmentations-dcm/` and `qa-results.csv`, as the authors' evaluation notebooks download
it (`download_inference(record="13244892", filename=...)` in each bamf-health/aimi-* model_performance notebook).

Reads: the record through Zenodo's API (`AIMI_ZENODO_URL` for a mirror) or a local copy of a task's zip. Writes:
`<folder>/<task>/` unpacked (a complete folder or none: unpacked beside it and renamed), the download kept under a
hidden name until it is complete and checked against the record (size, MD5), so an interrupted one resumes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aimi.atomic import replace_folder
from aimi.download import digests, download, read_record, record_file, safe_unpack
from aimi.errors import FetchError

QA_RECORD = "13244892"
#: The record's file per task (the filename each authors' notebook downloads).
QA_FILES = {"kidney": "kidney-ct.zip", "liver": "liver2-ct.zip", "lung": "lung2-ct.zip",
            "prostate": "prostate-mr.zip", "breast": "breast-mr.zip", "brain": "brain-mr.zip"}
QA_CSV = "qa-results.csv"


def qa_record(task: str, folder: Path, *, archive: Path | None = None, record: str = QA_RECORD,
              progress: bool = True) -> Path:
    """The folder holding `task`'s qa-results.csv and its two SEG folders, unpacked under `folder`/`task` from
    `archive` or from the record's file (downloaded, or resumed, and checked first); reused when already there."""
    if task not in QA_FILES:
        raise ValueError(f"--idc {task!r}: one of {', '.join(QA_FILES)}")
    target = folder / task
    if not target.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        if archive is None:
            archive = _download(task, folder, record, progress)
        _unpack(archive, target)
        if archive.name.startswith("."):  # our own download, now unpacked
            archive.unlink()
    return _record_root(target)


def _download(task: str, folder: Path, record: str, progress: bool) -> Path:
    stated = record_file(read_record(record), record, QA_FILES[task])
    partial = folder / f".{stated.key}.record-{record}.download"  # kept between runs: resumed
    download(stated.url, partial, stated.size, label=stated.key, progress=progress)
    md5, _ = digests(partial)
    if md5 != stated.md5:
        partial.unlink()
        raise FetchError(f"{stated.key}: md5 mismatch: the record states {stated.md5}, the file has {md5}; "
                         "deleted, run again to download it afresh")
    return partial


def _unpack(archive: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".unpacking", dir=target.parent))
    try:
        safe_unpack(archive, staging, archive.name)
        _record_root(staging)  # refuse what is not a QA record before it takes the name
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _record_root(folder: Path) -> Path:
    """The folder of the archive's qa-results.csv (at any depth), which holds the two SEG folders."""
    found = sorted(folder.rglob(QA_CSV))
    if len(found) != 1 or not all((found[0].parent / name).is_dir()
                                  for name in ("ai-segmentations-dcm", "qa-segmentations-dcm")):
        listing = ", ".join(sorted(str(p.relative_to(folder)) for p in folder.iterdir())[:10]) or "nothing"
        raise FetchError(f"{folder}: not a QA record (one {QA_CSV} beside ai-segmentations-dcm/ and "
                         f"qa-segmentations-dcm/); it holds {listing}")
    return found[0].parent
