"""Where a batch gets each series: IDC through idc-index (s5cmd underneath), or a local folder standing in for it.

A source answers two questions per SeriesInstanceUID: how many bytes it will take in scratch (so prefetching stays
within `--max-scratch-gb`) and `fetch(uid, folder)`: put exactly that series' files into an empty folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import pydicom

from aimi.core.log import event

log = logging.getLogger("aimi.batch.sources")

IDC_BUCKETS = ("aws", "gcs")
MEBIBYTE = 1 << 20


class SourceError(RuntimeError):
    """A series cannot be fetched; the message names the series and the source."""


class Source(Protocol):
    def size_bytes(self, uid: str) -> int: ...

    def fetch(self, uid: str, folder: Path) -> None: ...


class LocalSource:
    """A folder of DICOM files (any nesting), scanned once into SeriesInstanceUID -> files; fetching links (or,
    across file systems, copies) a series' files into scratch, so the batch path is the same as with IDC."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise SourceError(f"--source {root} is not a folder")
        self.root = root
        self._index: dict[str, list[Path]] | None = None

    @property
    def index(self) -> dict[str, list[Path]]:
        if self._index is None:
            self._index = _scan_series(self.root)
            event(log, "source.scanned", series=len(self._index), files=sum(map(len, self._index.values())))
        return self._index

    def _files(self, uid: str) -> list[Path]:
        try:
            return self.index[uid]
        except KeyError:
            raise SourceError(f"series {uid} is not in the source folder") from None

    def size_bytes(self, uid: str) -> int:
        return sum(path.stat().st_size for path in self._files(uid))

    def fetch(self, uid: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for number, path in enumerate(self._files(uid)):
            target = folder / f"{number:06d}.dcm"
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)


def _scan_series(root: Path) -> dict[str, list[Path]]:
    """Every DICOM file under `root` by SeriesInstanceUID (only that tag is read). A file that cannot be read goes
    with the series its folder holds alone (an interrupted copy's cut file), so the importer reports it against that
    series instead of the series quietly coming out short; other files are left out."""
    index: dict[str, list[Path]] = {}
    unreadable: list[Path] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            uid = str(header.get("SeriesInstanceUID", ""))
        except Exception:  # not DICOM, truncated or garbled
            unreadable.append(path)
            continue
        if uid:
            index.setdefault(uid, []).append(path)
    series_in: dict[Path, set[str]] = {}
    for uid, paths in index.items():
        for path in paths:
            series_in.setdefault(path.parent, set()).add(uid)
    for path in unreadable:
        if len(only := series_in.get(path.parent, set())) == 1:
            index[next(iter(only))].append(path)
    return index


class IdcSource:
    """NCI Imaging Data Commons via `idc_index.IDCClient`: sizes come from its bundled (offline) index, downloads
    go through its s5cmd wrapper from the public buckets (no credentials)."""

    def __init__(self, bucket: str = "aws", client: Any = None) -> None:
        if bucket not in IDC_BUCKETS:
            raise SourceError(f"IDC bucket {bucket!r} is not one of {', '.join(IDC_BUCKETS)}")
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        """Built on first use: reading the index takes seconds, and a local run never needs it."""
        if self._client is None:
            from idc_index import IDCClient

            self._client = IDCClient()
        return self._client

    def size_bytes(self, uid: str) -> int:
        try:
            megabytes = float(self.client.get_series_size(uid))
        except (ValueError, IndexError, KeyError):
            raise SourceError(f"series {uid} is not in the IDC index (idc-index {_idc_version()})") from None
        return int(megabytes * MEBIBYTE)

    def fetch(self, uid: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.client.download_dicom_series(**self.download_arguments(uid, folder))
        if not any(p.is_file() for p in folder.rglob("*")):
            raise SourceError(f"series {uid}: idc-index downloaded no files from the {self.bucket} bucket")

    def download_arguments(self, uid: str, folder: Path) -> dict[str, Any]:
        """Keyword arguments of `IDCClient.download_dicom_series`: flat into `folder`, quiet, from `bucket`."""
        return {"seriesInstanceUID": uid, "downloadDir": str(folder), "dirTemplate": None, "quiet": True,
                "show_progress_bar": False, "use_s5cmd_sync": False, "source_bucket_location": self.bucket}


def _idc_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("idc-index-data")
    except metadata.PackageNotFoundError:
        return "not installed"
