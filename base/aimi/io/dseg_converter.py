"""DsegConverter: a DICOM SEG per source series, from one label map or from one per series.

The label map is resampled (nearest neighbour, physical space) onto each source series' own grid, then encoded
as a highdicom BINARY SEG whose frames are parallel to and reference the source slices. Segments, codes and the
header come from the workflow's segment table; provenance (model version, weights file and sha256) goes into the
algorithm identification and the content description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aimi
from aimi.core.case import MAIN, SERIES, Case, DicomSeries
from aimi.core.context import RunContext
from aimi.core.module import Module
from aimi.core.ports import LABELMAP, PROVENANCE, SEGS, SERIES_LABELMAPS, Port, ports
from aimi.core.ports import SERIES as SERIES_KIND
from aimi.dicom.resample import role_on_source_grid
from aimi.errors import CaseError, ConfigError
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
    roles: list[str] = field(default_factory=list)  # empty: a SEG for every series of the case
    keep_empty_frames: bool = False  # frames that hold no segment are omitted unless asked; --keep-empty-frames

    def __post_init__(self) -> None:
        try:
            parsed = parse_segments(self.segments, "segments")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        object.__setattr__(self, "parsed_segments", parsed)


class DsegConverter(Module):
    inputs = ports(
        series=Port(SERIES_KIND, "the source series the SEGs reference, by role", SERIES),
        labels=Port((LABELMAP, SERIES_LABELMAPS), "what to encode: one label map for all series, or one per role",
                    MAIN),
        provenance=Port(PROVENANCE, "the weights behind the labels, for the SEG header", "provenance",
                        optional=True),
    )
    outputs = ports(segs=Port(SEGS, "one SEG dataset per role", "segs"))
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        self.segments: list[SegmentSpec] = settings.parsed_segments  # type: ignore[attr-defined]
        if not settings.algorithm_name:
            raise ConfigError("DsegConverter.algorithm_name: required (e.g. BAMF-Kidney-CT)")

    def __call__(self, case: Case) -> None:
        series_by_role: dict[str, DicomSeries] = self.read(case, "series")
        labels = self.read(case, "labels")
        header = self._header(self.read(case, "provenance") or {})
        segs = {}
        for role in self.settings.roles or list(series_by_role):
            if role not in series_by_role:
                raise CaseError(f"case {case.id}: DsegConverter.roles names {role!r}; the case has "
                                f"{list(series_by_role)}")
            series = series_by_role[role]
            try:
                segs[role] = build_seg(
                    role_on_source_grid(labels, role, series.geometry), series.headers, self.segments, header,
                    keep_empty_frames=self.settings.keep_empty_frames,
                )
            except (KeyError, ValueError) as error:
                raise CaseError(f"series {series.series_uid}: cannot encode the SEG: {error}") from None
        self.write(case, "segs", segs)

    def _header(self, provenance: dict[str, dict[str, str]]) -> SegHeader:
        """Provenance within LO (64 characters): version and weights file as the algorithm version, the sha256
        digest(s) as the content description (prefixes of 64 / n characters when a chain fuses n models)."""
        manifest = self.context.manifest
        files = " + ".join(p.get("file") or weights_id for weights_id, p in sorted(provenance.items()))
        digests = [p.get("sha256") or "" for _, p in sorted(provenance.items())]
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
