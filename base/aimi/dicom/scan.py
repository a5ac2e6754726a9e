"""Recursive scan of an input folder: any nesting, any file names; headers read once, pixel data never.

Every file ends up either in a series group or in the ignored list with a reason; only regular files are opened
(a FIFO named *.dcm would block), and a folder that cannot be listed is reported, not skipped silently. A file whose
header names a series but whose pixel data is unusable (an interrupted copy) is also recorded against that series,
so that the series can say it lost files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from aimi.errors import os_reason, without_values

PIXEL_DATA = Tag(0x7FE0, 0x0010)
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass
class SeriesFiles:
    """The readable image files of one series (unsorted), keyed by (StudyInstanceUID, SeriesInstanceUID)."""

    study_uid: str
    series_uid: str
    files: list[Path] = field(default_factory=list)
    headers: list[Dataset] = field(default_factory=list)
    dropped: list[tuple[Path, Dataset, str]] = field(default_factory=list)  # files of the series left out, and why


@dataclass
class ScanResult:
    series: list[SeriesFiles]
    ignored: list[tuple[Path, str]]


def scan(root: Path) -> ScanResult:
    groups: dict[tuple[str, str], SeriesFiles] = {}
    ignored: list[tuple[Path, str]] = []
    for path, problem in _files(root):
        header, reason = (None, problem) if problem else read_image_header(path)
        if header is None or reason:
            ignored.append((path, reason))
        if header is None:
            continue
        key = (_text(header, "StudyInstanceUID"), _text(header, "SeriesInstanceUID"))
        group = groups.setdefault(key, SeriesFiles(*key))
        if reason:
            group.dropped.append((path, header, reason))
            continue
        group.files.append(path)
        group.headers.append(header)
    series = [group for group in groups.values() if group.files]
    return ScanResult(sorted(series, key=lambda g: (g.study_uid, g.series_uid)), ignored)


def _text(header: Dataset, keyword: str) -> str:
    try:
        return str(header.get(keyword, "") or "").strip()
    except Exception:  # a value pydicom cannot decode
        return ""


def _files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file below `root` and why it cannot be read ("" when it can), following linked folders (each real
    folder once, so link cycles end); a folder that cannot be listed is yielded with its reason."""
    seen: set[str] = set()
    failures: list[OSError] = []
    for folder, dirs, names in os.walk(root, followlinks=True, onerror=failures.append):
        yield from ((Path(error.filename), _folder_problem(error)) for error in failures)
        failures.clear()
        real = os.path.realpath(folder)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names):
            yield Path(folder) / name, _file_problem(Path(folder) / name)
    yield from ((Path(error.filename), _folder_problem(error)) for error in failures)


def _folder_problem(error: OSError) -> str:
    return f"folder not readable: {os_reason(error)}"


def _file_problem(path: Path) -> str:
    """Only regular files are opened: a FIFO, socket or device would block or never end."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return f"not readable: {os_reason(error)} (a broken link?)"
    if not stat.S_ISREG(mode):
        return "not a regular file (FIFO, socket or device): not opened"
    if not os.access(path, os.R_OK):
        return "not readable: permission denied"
    return ""


def sop_class(header: Dataset) -> UID:
    """SOPClassUID, or the file meta's MediaStorageSOPClassUID where de-identification emptied it."""
    value = str(header.get("SOPClassUID", "") or "")
    if not value and "file_meta" in header.__dict__:
        value = str(header.file_meta.get("MediaStorageSOPClassUID", "") or "")
    return UID(value)


def read_image_header(path: Path) -> tuple[Dataset | None, str]:
    """The header of a DICOM image file without its pixel data, or None and the reason the file is not used.

    Whatever the bytes hold - a deflated stream cut short, sequences nested past Python's recursion limit, values
    pydicom cannot convert - the file gets a reason; nothing raises out of here.
    """
    try:
        header = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        return None, "not a DICOM file"
    except OSError as error:
        return None, f"unreadable: {os_reason(error)}"
    except Exception as error:  # zlib.error, RecursionError, pydicom's conversion errors, ...
        return None, f"unreadable DICOM: {without_values(error)}"
    try:
        kind = sop_class(header)
        if "Image Storage" not in kind.name or "Segmentation" in kind.name:
            return None, f"not an image object ({kind.name or 'no SOP class'})"
        problem = _pixel_data_problem(path, header)
        if PIXEL_DATA in header:
            del header[PIXEL_DATA]
    except Exception as error:
        return None, f"unreadable DICOM: {without_values(error)}"
    return header, problem



def _pixel_data_problem(path: Path, header: Dataset) -> str:
    element = header.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None or "Rows" not in header:
        return "image object without pixel data (truncated file?)"
    length = getattr(element, "length", None)
    start = getattr(element, "value_tell", None)
    deflated = "file_meta" in header.__dict__ and header.file_meta.get("TransferSyntaxUID") == \
        DeflatedExplicitVRLittleEndian
    if length is None or start is None or length == UNDEFINED_LENGTH or deflated:
        return ""  # encapsulated, already read or in a deflated stream: the decoder checks it
    size = path.stat().st_size
    if start + length > size:
        return f"truncated: pixel data needs {start + length} bytes, file has {size}"
    return _native_size_problem(header, length)


def _native_size_problem(header: Dataset, length: int) -> str:
    """Native (uncompressed) pixel data shorter than Rows x Columns x samples x bytes per sample says: the decoder
    would read past it (dcm2niix fails late, naming no tag)."""
    try:
        rows, columns = int(header.Rows), int(header.Columns)
        samples = int(header.get("SamplesPerPixel", 1) or 1)
        bits = int(header.BitsAllocated)
        frames = int(header.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return ""  # the importer names the tag that is missing or not a number
    needed = (rows * columns * samples * frames * bits + 7) // 8
    if length < needed:
        return (f"pixel data holds {length} bytes but Rows {rows} x Columns {columns} x {bits} bits need {needed}: "
                "Rows, Columns or BitsAllocated do not describe the pixels")
    return ""
