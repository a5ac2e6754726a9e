"""DsegConverter - reads: `dicom`, `labelmap`; writes: `seg` (one DICOM SEG per role).

The label map is resampled (nearest neighbour, physical space) onto each source series' own grid, then encoded
as a highdicom BINARY SEG whose frames are parallel to and reference the source slices. Segments, codes and the
header come from the workflow's segment table; provenance (model version, weights file and sha256) goes into the
algorithm identification and the content description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

import aimi
from aimi.case import MAIN, Case, DicomSeries
from aimi.context import RunContext
from aimi.dicom.geometry import SeriesGeometry
from aimi.module import CaseError, ConfigError, Module
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg


@dataclass(frozen=True)
class Settings:
    segments: list[Any] = field(default_factory=list)
    series_description: str = "AIMI Segmentation"
    series_number: int = 900
    body_part_examined: str = ""
    algorithm_name: str = ""
    content_creator: str = "BAMFHealth^AI"
    content_label: str = "AIMI"
    labelmap: str = MAIN
    roles: list[str] = field(default_factory=list)  # empty: a SEG for every series of the case

    def __post_init__(self) -> None:
        try:
            parsed = parse_segments(self.segments, "segments")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        object.__setattr__(self, "parsed_segments", parsed)


#: How far (in label-map voxels) a source voxel centre may lie from a label-map voxel centre and still be that voxel.
ALIGNED_TOLERANCE = 1e-3


def on_source_grid(labelmap: sitk.Image, series: DicomSeries) -> np.ndarray:
    """The label map sampled at the source series' voxel centres: (slices, rows, columns) in source frame order.

    Nearest-neighbour resampling in physical space; a label map whose voxel centres already are the source grid's
    (nnU-Net's output on the dcm2niix grid: the same points, axes flipped or permuted) is only rearranged, which
    gives the same array without the resampling pass over the whole volume.
    """
    aligned = _aligned_array(labelmap, series.geometry)
    if aligned is not None:
        return aligned
    resampled = sitk.Resample(labelmap, series.geometry.reference_image(), sitk.Transform(), sitk.sitkNearestNeighbor,
                              0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled)


def _aligned_array(labelmap: sitk.Image, geometry: SeriesGeometry) -> np.ndarray | None:
    """`labelmap`'s uint8 voxels in the source grid's (z, y, x) order when both grids hold the same voxel centres,
    each source axis running along one label-map axis (either way); None when they do not, or the type differs."""
    if labelmap.GetPixelID() != sitk.sitkUInt8 or labelmap.GetDimension() != 3:
        return None
    size = np.asarray(geometry.size)
    axes_mm = np.asarray(geometry.direction).reshape(3, 3) * np.asarray(geometry.spacing)  # column a: one step

    def index_of(source_index: np.ndarray) -> np.ndarray:
        point = np.asarray(geometry.origin) + axes_mm @ source_index
        return np.asarray(labelmap.TransformPhysicalPointToContinuousIndex([float(v) for v in point]))

    start = index_of(np.zeros(3))
    steps = np.asarray([index_of(np.eye(3)[a]) for a in range(3)]) - start  # row a: one step along source axis a
    mapping = np.rint(steps)
    if not (np.all(np.abs(mapping).sum(axis=0) == 1) and np.all(np.abs(mapping).sum(axis=1) == 1)
            and np.allclose(start, np.rint(start), atol=ALIGNED_TOLERANCE)
            and np.allclose(index_of(size - 1.0), np.rint(start) + mapping.T @ (size - 1), atol=ALIGNED_TOLERANCE)):
        return None
    axes = np.abs(mapping).argmax(axis=1)  # the label-map axis each source axis runs along
    signs = mapping[np.arange(3), axes]
    first = np.rint(start).astype(int)
    if not np.array_equal(np.asarray(labelmap.GetSize())[axes], size) or np.any(
            first[axes] != np.where(signs > 0, 0, size - 1)):
        return None  # the same points only where the grids overlap: resample (it fills the rest with 0)
    view = sitk.GetArrayViewFromImage(labelmap)  # (z, y, x): numpy axis i is image axis 2 - i
    view = view[tuple(slice(None, None, -1) if signs[list(axes).index(2 - i)] < 0 else slice(None)
                      for i in range(3))]
    return np.array(view.transpose([2 - axes[2 - i] for i in range(3)]), order="C")  # a copy outlives the image


class DsegConverter(Module):
    reads = ("dicom", "labelmap")
    writes = ("seg",)
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        self.segments: list[SegmentSpec] = settings.parsed_segments  # type: ignore[attr-defined]
        if not settings.algorithm_name:
            raise ConfigError("DsegConverter.algorithm_name: required (e.g. BAMF-Kidney-CT)")

    def __call__(self, case: Case) -> None:
        labelmap = case.labelmap(self.settings.labelmap)
        header = self._header(case)
        for role in self.settings.roles or case.roles:
            if role not in case.series:
                raise CaseError(f"case {case.id}: DsegConverter.roles names {role!r}; the case has {case.roles}")
            series = case.series[role]
            labels = on_source_grid(case.labelmaps.get(role, labelmap), series)
            try:
                case.segs[role] = build_seg(
                    labels, series.headers, self.segments, header,
                    keep_empty_frames=self.context.options.keep_empty_frames,
                )
            except ValueError as error:
                raise CaseError(f"series {series.series_uid}: cannot encode the SEG: {error}") from None

    def _header(self, case: Case) -> SegHeader:
        """Provenance within LO (64 characters): version and weights file as the algorithm version, the sha256
        digest(s) as the content description (prefixes of 64 / n characters when a chain fuses n models)."""
        manifest = self.context.manifest
        files = " + ".join(p.get("file") or weights_id for weights_id, p in sorted(case.provenance.items()))
        digests = [p.get("sha256") or "" for _, p in sorted(case.provenance.items())]
        width = 64 // max(1, len(digests)) - (1 if len(digests) > 1 else 0)
        digest = " ".join(d[:width] for d in digests) if all(digests) else "weights sha256 unknown (test weights)"
        return SegHeader(
            series_description=self.settings.series_description,
            series_number=self.settings.series_number,
            body_part_examined=self.settings.body_part_examined,
            algorithm_name=self.settings.algorithm_name,
            algorithm_version=f"{manifest.version} {files}"[:64],
            content_creator=self.settings.content_creator,
            content_label=self.settings.content_label,
            content_description=digest,
            software_versions=f"aimi {aimi.__version__}",
        )
