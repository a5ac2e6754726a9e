"""Series into OUT whole or not at all, and what a published SEG's header says.

In: a Source (aimi.batch.sources: IDC through idc-index/s5cmd, or a local folder laid out as the download would be),
a SeriesInstanceUID and the folder it belongs in. Out: that folder holding the series' files, fetched under a hidden
temporary name and renamed into place, so a rerun reuses a finished download and never a half one; `SegHeader`:
the SEG file, the series it references and its algorithm identification.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom

from aimi.atomic import replace_folder, temporary_for
from aimi.batch.sources import Source, SourceError
from aimi.errors import FetchError
from aimi.evaluate.segs import SEG_SOP_CLASSES


@dataclass(frozen=True)
class SegHeader:
    """A downloaded SEG: its file, its own series, the image series it references, its SegmentAlgorithmName(s)."""

    path: Path
    series_uid: str
    referenced_series: str
    algorithms: tuple[str, ...]


def fetched(source: Source, uid: str, folder: Path) -> Path:
    """`folder` holding series `uid`: reused when a finished download is there; FetchError when it cannot be had."""
    if folder.is_dir():
        return folder
    temporary = temporary_for(folder)
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        source.fetch(uid, temporary)
    except (SourceError, OSError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise FetchError(f"series {uid}: cannot download it ({error}); reproduce needs network access to IDC, or "
                         "--source with a folder holding the series") from None
    replace_folder(temporary, folder)
    return folder


def read_seg(folder: Path, uid: str) -> SegHeader:
    """The SEG of series `uid` in its download folder; FetchError when the folder holds no readable SEG."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError):
            continue
        if str(header.get("SOPClassUID", "")) in SEG_SOP_CLASSES and "ReferencedSeriesSequence" in header:
            names = (str(item.get("SegmentAlgorithmName", "")) for item in header.get("SegmentSequence", []))
            return SegHeader(path, str(header.SeriesInstanceUID),
                             str(header.ReferencedSeriesSequence[0].SeriesInstanceUID),
                             tuple(dict.fromkeys(name for name in names if name)))
    raise FetchError(f"series {uid}: the download holds no DICOM SEG that references a series")
