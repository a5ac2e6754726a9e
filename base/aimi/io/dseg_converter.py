"""DsegConverter: a DICOM SEG per source series, from one label map or from one per series.

The label map is resampled (nearest neighbour, physical space) onto each source series' own grid, then encoded
as a highdicom BINARY SEG whose frames are parallel to and reference the source slices. Segments, codes and the
header come from the workflow's segment table; provenance (Zenodo record, weights file, md5/sha256, converter) goes
into the algorithm identification and the content description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aimi
from aimi.core.case import MAIN, SERIES, Case, DicomSeries
from aimi.core.context import RunContext
from aimi.core.module import Module
from aimi.core.ports import LABELMAP, PROVENANCE, SEGS, SERIES_LABELMAPS, WARNED, Port, ports
from aimi.core.ports import SERIES as SERIES_KIND
from aimi.dicom.resample import role_on_source_grid
from aimi.errors import CaseError, ConfigError
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg
from aimi.weights import TESTMODEL_FILE


@dataclass(frozen=True)
class Settings:
    segments: list[Any] = field(default_factory=list)
    series_description: str = "AIMI Segmentation"
    series_number: int = 300  # as the authors' SEG configurations (dcmqi JSON of kidney, liver, lung, prostate)
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
    outputs = ports(segs=Port(SEGS, "one SEG dataset per role", "segs"), warnings=WARNED)
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
        segs, warnings = {}, []
        for role in self.settings.roles or list(series_by_role):
            if role not in series_by_role:
                raise CaseError(f"case {case.id}: DsegConverter.roles names {role!r}; the case has "
                                f"{list(series_by_role)}")
            series = series_by_role[role]
            notes: list[str] = []
            try:
                segs[role] = build_seg(
                    role_on_source_grid(labels, role, series.geometry), series.headers, self.segments, header,
                    keep_empty_frames=self.settings.keep_empty_frames, notes=notes,
                )
            except (KeyError, ValueError) as error:
                # build_seg's own messages and SegEncodingError name attributes and rules, never header values
                raise CaseError(f"series {series.series_uid}: cannot encode the SEG: {error}") from None
            except Exception as error:
                raise CaseError(f"series {series.series_uid}: cannot encode the SEG: {type(error).__name__}") from None
            warnings += [f"series {series.series_uid}: SEG header: {note}" for note in notes]
        self.write(case, "segs", segs)
        self.write(case, "warnings", warnings)

    def _header(self, provenance: dict[str, dict[str, str]]) -> SegHeader:
        """Where the weights came from, as a reviewer checks it against Zenodo: the record(s) as the algorithm source,
        every provenance fact as an algorithm parameter (`<weights id>_<fact>`), version and file(s) as the algorithm
        version and the digest(s) as the content description (LO: 64 / n characters each when n models are fused)."""
        used = sorted(provenance.items())
        files = " + ".join(facts.get("file") or weights_id for weights_id, facts in used)
        records = [facts["record"] for _, facts in used if facts.get("record")]
        digests = [_digest(facts) for _, facts in used]
        width = 64 // max(1, len(digests)) - (1 if len(digests) > 1 else 0)
        test_weights = any(facts.get("file") == TESTMODEL_FILE for _, facts in used)
        if all(digests):
            description = " ".join(digest[:width] for digest in digests)
        else:
            description = "test weights, not the published model" if test_weights else "weights digest unknown"
        return SegHeader(
            series_description=self.settings.series_description,
            series_number=self.settings.series_number,
            body_part_examined=self.settings.body_part_examined,
            algorithm_name=self.settings.algorithm_name,
            algorithm_version=f"{self.context.manifest.version} {files}",
            algorithm_source=f"Zenodo record {' + '.join(records)}" if records else
            ("aimi testmodel" if test_weights else None),
            algorithm_parameters={f"{weights_id}_{key}": value for weights_id, facts in used
                                  for key, value in facts.items() if value},
            content_creator=self.settings.content_creator,
            content_label=self.settings.content_label,
            content_description=description,
            software_versions=f"aimi {aimi.__version__}",
        )


def _digest(facts: dict[str, str]) -> str:
    """The digest a reviewer can compare with the publisher's: the record's MD5, else the archive's sha256."""
    if facts.get("md5"):
        return f"md5 {facts['md5']}"
    return f"sha256 {facts['sha256']}" if facts.get("sha256") else ""
