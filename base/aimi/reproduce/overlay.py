"""The QC overlay of a published and a reproduced SEG on their source series: one PNG (aimi.io.qc) where colour
says who segmented a voxel, on the slice with the most segmented voxels.

In: the source series' folder, the two SEG files, the modality (for the window) and the PNG path. Out: the PNG,
written atomically. Colours (aimi.io.qc.COLOURS): red both SEGs, green only the published one, yellow only the
reproduced one; every segment counts (their union).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from aimi.atomic import write_atomically
from aimi.dicom.geometry import SeriesGeometry, series_geometry, sort_by_position
from aimi.dicom.resample import on_source_grid
from aimi.evaluate.segs import load_seg
from aimi.io.qc import overlay_png

BOTH, ONLY_PUBLISHED, ONLY_REPRODUCED = 1, 2, 3


def write_overlay(series_dir: Path, published: Path, reproduced: Path, modality: str, path: Path) -> None:
    """Agreement of the two SEGs' segmented voxels over the source series, as one PNG at `path`."""
    files, geometry = _series(series_dir)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    image = reader.Execute()
    theirs, ours = _union(published, geometry), _union(reproduced, geometry)
    labels = np.zeros(theirs.shape, np.uint8)
    labels[theirs & ours] = BOTH
    labels[theirs & ~ours] = ONLY_PUBLISHED
    labels[ours & ~theirs] = ONLY_REPRODUCED
    write_atomically(path, lambda temporary: overlay_png(image, labels, geometry, modality, temporary))


def _series(folder: Path) -> tuple[list[Path], SeriesGeometry]:
    """The series' files in source frame order (position along the slice normal) and their grid."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.rglob("*")) if p.is_file()]
    ordered = sort_by_position([h for h in headers if "ImagePositionPatient" in h])
    return [Path(h.filename) for h in ordered], series_geometry(ordered)


def _union(seg: Path, geometry: SeriesGeometry) -> np.ndarray:
    """Every segment of the SEG on the source grid, as one boolean mask."""
    union = np.zeros(tuple(reversed(geometry.size)), bool)
    for segment in load_seg(seg).segments:
        union |= on_source_grid(segment.mask, geometry) > 0
    return union
