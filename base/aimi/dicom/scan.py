"""Recursive scan of an input folder: any nesting, any file names; headers read once, pixel data never.

Every file ends up either in a series group or in the ignored list with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID

PIXEL_DATA = Tag(0x7FE0, 0x0010)
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass
class SeriesFiles:
    """The readable image files of one series (unsorted), keyed by (StudyInstanceUID, SeriesInstanceUID)."""

    study_uid: str
    series_uid: str
    files: list[Path] = field(default_factory=list)
    headers: list[Dataset] = field(default_factory=list)


@dataclass
class ScanResult:
    series: list[SeriesFiles]
    ignored: list[tuple[Path, str]]


def scan(root: Path) -> ScanResult:
    groups: dict[tuple[str, str], SeriesFiles] = {}
    ignored: list[tuple[Path, str]] = []
    for path in _files(root):
        header, reason = read_image_header(path)
        if header is None:
            ignored.append((path, reason))
            continue
        key = (str(header.get("StudyInstanceUID", "")), str(header.get("SeriesInstanceUID", "")))
        group = groups.setdefault(key, SeriesFiles(*key))
        group.files.append(path)
        group.headers.append(header)
    return ScanResult(sorted(groups.values(), key=lambda g: (g.study_uid, g.series_uid)), ignored)


def _files(root: Path) -> Iterator[Path]:
    """Every file below `root`, following linked folders (each real folder once, so link cycles end)."""
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names):
            yield Path(folder) / name


def sop_class(header: Dataset) -> UID:
    """SOPClassUID, or the file meta's MediaStorageSOPClassUID where de-identification emptied it."""
    value = str(header.get("SOPClassUID", "") or "")
    if not value and "file_meta" in header.__dict__:
        value = str(header.file_meta.get("MediaStorageSOPClassUID", "") or "")
    return UID(value)


def read_image_header(path: Path) -> tuple[Dataset | None, str]:
    """The header of a DICOM image file without its pixel data, or None and the reason the file is not used."""
    try:
        header = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        return None, "not a DICOM file"
    except (OSError, ValueError, EOFError, KeyError, TypeError) as error:
        return None, f"unreadable DICOM: {type(error).__name__}: {error}"
    kind = sop_class(header)
    if "Image Storage" not in kind.name or "Segmentation" in kind.name:
        return None, f"not an image object ({kind.name or 'no SOP class'})"
    problem = _pixel_data_problem(path, header)
    if problem:
        return None, problem
    del header[PIXEL_DATA]
    return header, ""


def _pixel_data_problem(path: Path, header: Dataset) -> str:
    element = header.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None or "Rows" not in header:
        return "image object without pixel data (truncated file?)"
    length = getattr(element, "length", None)
    start = getattr(element, "value_tell", None)
    if length is None or start is None or length == UNDEFINED_LENGTH:
        return ""  # encapsulated or already read: the decoder checks it
    size = path.stat().st_size
    if start + length > size:
        return f"truncated: pixel data needs {start + length} bytes, file has {size}"
    return ""
