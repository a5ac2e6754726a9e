"""DicomImporter: the chain's source - the input folder in, the series of each case (by role) out.

Scans any folder layout, groups by study and series, applies the model's selection rules and records for every
series whether it was selected and why not. Series cases hold one role; study cases (`case: study`) assemble one
series per role from each study (brain: t1, t1c, t2, flair).
"""

from __future__ import annotations

import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.uid import UID, CTImageStorage, MRImageStorage, PositronEmissionTomographyImageStorage

from aimi.core.case import Case, DicomSeries
from aimi.core.context import RunContext
from aimi.core.module import Discovery, SourceModule
from aimi.dicom.geometry import GeometryError, header_problem, series_geometry, sort_by_position
from aimi.dicom.scan import ScanResult, SeriesFiles, scan
from aimi.dicom.selection import Rule, as_number, first_failure, parse_rules
from aimi.errors import without_values

CASE_KINDS = ("series", "study")
#: The SOP classes a SEG can take as its source here: classic single-frame cross-sectional images (an Enhanced or
#: retired class on single-frame headers fails in the SEG writer, after inference).
SOURCE_CLASSES = (CTImageStorage, MRImageStorage, PositronEmissionTomographyImageStorage)
#: Larger than any patient along any axis: a grid this size says PixelSpacing or the positions are not in mm (and
#: resampled to the model's spacing it would need gigabytes).
MAX_EXTENT_MM = 2000.0
#: Which of a study's selected series (ordered by `first_per_study_by`) a series case takes: the first; the first
#: post-contrast phase (ContrastBolusAgent set; where no series of the study sets it, the second in time, the first
#: being the pre-contrast phase); or the pre-contrast phase (the first without ContrastBolusAgent).
PHASES = ("first", "first_post_contrast", "pre_contrast")


@dataclass(frozen=True)
class Settings:
    case: str = "series"
    roles: dict[str, Any] = field(default_factory=dict)
    # series cases: keep only the first selected series of each study, ordered by these attributes
    # (breast: the first post-contrast phase by AcquisitionTime); empty keeps every selected series
    first_per_study_by: list[str] = field(default_factory=list)
    phase: str = "first"  # with first_per_study_by: which series of the ordered study (PHASES)
    # rules a selected series should pass but is not rejected for: each one it fails is a warning in its report entry
    # (kidney: no ContrastBolusAgent - the model was trained on contrast-enhanced CT)
    warn_unless: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.case not in CASE_KINDS:
            raise ValueError(f"case: {self.case!r} is not one of {', '.join(CASE_KINDS)}")
        if self.phase not in PHASES:
            raise ValueError(f"phase: {self.phase!r} is not one of {', '.join(PHASES)}")
        if not self.roles:
            raise ValueError("roles: give at least one role with its selection rules, e.g. {ct: [...]}")
        if self.case == "series" and len(self.roles) != 1:
            raise ValueError(f"roles: a series case has exactly one role, got {', '.join(self.roles)}")
        rules = {role: parse_rules(raw, f"roles.{role}") for role, raw in self.roles.items()}
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "warning_rules", parse_rules(self.warn_unless, "warn_unless"))


@dataclass
class Candidate:
    record: dict[str, Any]
    series: DicomSeries
    roles: list[str]


class DicomImporter(SourceModule):
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        self.rules: dict[str, list[Rule]] = settings.rules  # type: ignore[attr-defined]
        self.warning_rules: list[Rule] = settings.warning_rules  # type: ignore[attr-defined]

    def discover(self, input_dir: Path) -> Discovery:
        result = scan(input_dir)
        ignored = [{"file": _relative(path, input_dir), "reason": reason} for path, reason in result.ignored]
        candidates: list[Candidate] = []
        records = []
        studies_of = defaultdict(set)
        for group in result.series:
            studies_of[group.series_uid].add(group.study_uid)
        for group in result.series:
            if len(studies_of[group.series_uid]) > 1:
                records.append(_record(group) | {"status": "rejected", "reason": (
                    f"SeriesInstanceUID is also used by {len(studies_of[group.series_uid]) - 1} other study(ies) in "
                    "the input: a series UID must be unique (outputs and SEG references are keyed by it)")})
                continue
            record, candidate = self._examine_isolated(group)
            records.append(record)
            if candidate:
                candidates.append(candidate)
        _warn_of_unreadable_neighbours(candidates, result)
        if self.settings.case == "series":
            if self.settings.first_per_study_by:
                candidates = _one_per_study(candidates, self.settings.first_per_study_by, self.settings.phase)
            cases = [Case(c.series.series_uid, {c.roles[0]: c.series}) for c in candidates]
            return Discovery(cases, records, ignored)
        cases, failures = self._study_cases(candidates, records)
        return Discovery(cases, records, ignored, failures)

    def _examine_isolated(self, group: SeriesFiles) -> tuple[dict[str, Any], Candidate | None]:
        """Whatever one series' headers hold, examining it can only mark that series, never end the scan."""
        record = _record(group)
        try:
            return self._examine(group, record)
        except Exception as error:  # a header no rule foresaw: this series is rejected, the others go on
            record.update(status="rejected", reason=f"could not examine the series: {without_values(error)}")
            return record, None

    def _examine(self, group: SeriesFiles, record: dict[str, Any]) -> tuple[dict[str, Any], Candidate | None]:
        first = group.headers[0]

        def verdict(status: str, reason: str = "") -> tuple[dict[str, Any], None]:
            record.update(status=status, reason=reason)
            return record, None

        roles = [role for role, rules in self.rules.items() if not first_failure(rules, first, None)]
        if not roles:
            return verdict("skipped", self._why_not(first, None))
        problem = _unusable(group) or _lost_files(group) or _bad_header(group)
        if problem:
            return verdict("rejected", problem)
        pairs = sorted(zip(group.headers, group.files, strict=True), key=lambda p: str(p[1]))
        unique = {str(h.SOPInstanceUID): (h, f) for h, f in reversed(pairs)}
        ordered = sort_by_position([h for h, _ in unique.values()])
        try:
            geometry = series_geometry(ordered)
        except GeometryError as error:
            return verdict("rejected", f"irregular geometry: {error}")
        extent = [size * spacing for size, spacing in zip(geometry.size, geometry.spacing, strict=True)]
        if max(extent) > MAX_EXTENT_MM:
            return verdict("rejected", (
                f"field of view {' x '.join(f'{e:.0f}' for e in extent)} mm (PixelSpacing, slice positions): larger "
                f"than any patient ({MAX_EXTENT_MM:.0f} mm): the values are not in mm"))
        files = {id(h): f for h, f in unique.values()}
        series = DicomSeries(
            group.study_uid, group.series_uid, record["modality"], record["description"],
            tuple(files[id(h)] for h in ordered), tuple(ordered), geometry,
        )
        roles = [role for role in roles if not first_failure(self.rules[role], first, geometry)]
        if not roles:
            return verdict("skipped", self._why_not(first, geometry))
        record.update(status="selected", reason="", role=roles[0] if len(roles) == 1 else roles)
        warnings = [why for rule in self.warning_rules if (why := first_failure([rule], first, geometry))]
        if warnings:
            record["warnings"] = warnings
        if len(unique) < len(group.files):
            record["reason"] = f"{len(group.files) - len(unique)} duplicate file(s) of the same SOP instance ignored"
        return record, Candidate(record, series, roles)

    def _why_not(self, header: Any, geometry: Any) -> str:
        reasons = {role: first_failure(rules, header, geometry) for role, rules in self.rules.items()}
        if len(reasons) == 1:
            return next(iter(reasons.values()))
        return "matches no role: " + "; ".join(f"{role}: {why}" for role, why in reasons.items())

    def _study_cases(
        self, candidates: list[Candidate], records: list[dict[str, Any]]
    ) -> tuple[list[Case], list[dict[str, Any]]]:
        by_study: dict[str, list[Candidate]] = defaultdict(list)
        for candidate in candidates:
            by_study[candidate.series.study_uid].append(candidate)
        cases, failures = [], []
        for study_uid, members in sorted(by_study.items()):
            chosen = _assign_roles(list(self.rules), members)
            missing = [role for role in self.rules if role not in chosen]
            for candidate in members:
                if all(candidate is not c for c in chosen.values()):
                    candidate.record.update(status="skipped", reason="another series of the study took its role")
            if missing:
                seen = ", ".join(f"{c.series.description or '?'} ({c.series.series_uid})" for c in members)
                failures.append({
                    "id": study_uid,
                    "series": {role: c.series.series_uid for role, c in chosen.items()},
                    "error": f"study lacks {', '.join(missing)}: it has {seen or 'no suitable series'}",
                })
                continue
            cases.append(Case(study_uid, {role: chosen[role].series for role in self.rules}))
        return cases, failures


def _warn_of_unreadable_neighbours(candidates: list[Candidate], result: ScanResult) -> None:
    """A DICOM file cut so short that its header no longer names a series (an interrupted copy) cannot be counted
    against one; where it lies in a folder that holds only one series, that series says so."""
    series_in: dict[Path, set[str]] = defaultdict(set)
    for group in result.series:
        for path in group.files:
            series_in[path.parent].add(group.series_uid)
    counted = {path for group in result.series for path, _, _ in group.dropped}  # already against their series
    cut_short: dict[Path, int] = defaultdict(int)
    for path, reason in result.ignored:
        if path not in counted and not reason.startswith("not an image object") and _has_dicom_preamble(path):
            cut_short[path.parent] += 1
    for candidate in candidates:
        uid = candidate.series.series_uid
        count = sum(cut_short[folder] for folder in {p.parent for p in candidate.series.files}
                    if series_in[folder] == {uid})
        if count:
            candidate.record.setdefault("warnings", []).append(
                f"{count} unreadable DICOM file(s) in the series' own folder (cut short?): if they were its slices, "
                "the volume is short")


def _has_dicom_preamble(path: Path) -> bool:
    """Only a regular file is opened: a FIFO among the ignored files would block the scan."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as file:
            return file.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _one_per_study(candidates: list[Candidate], order_by: list[str], phase: str) -> list[Candidate]:
    """One selected series of each study, the `phase` of them in `order_by` order; the others are recorded as
    skipped, naming the one taken, and the one taken says by which rule."""
    def key(candidate: Candidate) -> tuple[Any, ...]:
        header = candidate.series.headers[0]
        return (*(_sortable(_text(header, attribute)) for attribute in order_by), candidate.series.series_uid)

    by_study: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_study[candidate.series.study_uid].append(candidate)
    chosen = []
    order = ", ".join(order_by)
    for members in by_study.values():
        ordered = sorted(members, key=key)
        taken, rule = _phase(ordered, phase, order)
        if taken is None:
            for candidate in ordered:
                candidate.record.update(status="skipped", reason=rule)
            continue
        chosen.append(taken)
        if phase != "first":
            taken.record["reason"] = rule
        for candidate in ordered:
            if candidate is not taken:
                candidate.record.update(status="skipped", reason=(
                    f"not the {phase.replace('_', ' ')} series of its study by {order}: series "
                    f"{taken.series.series_uid} was taken"))
    return sorted(chosen, key=lambda c: c.series.series_uid)


def _phase(ordered: list[Candidate], phase: str, order: str) -> tuple[Candidate | None, str]:
    """The series of one study's ordered candidates that `phase` names, and the rule that named it."""
    if phase == "first":
        return ordered[0], ""
    contrast = [c for c in ordered if _text(c.series.headers[0], "ContrastBolusAgent")]
    if phase == "pre_contrast":
        plain = [c for c in ordered if c not in contrast]
        if plain:
            return plain[0], f"pre-contrast phase: the first by {order} without ContrastBolusAgent"
        return None, "no pre-contrast phase: every series of the study has ContrastBolusAgent"
    if contrast:
        return contrast[0], f"first post-contrast phase: the first by {order} with ContrastBolusAgent"
    if len(ordered) >= 2:
        return ordered[1], (f"first post-contrast phase: the 2nd of {len(ordered)} phases by {order} (no series of "
                            "the study has ContrastBolusAgent; the first is taken as pre-contrast)")
    return None, ("one phase and no ContrastBolusAgent: pre- and post-contrast cannot be told apart; set "
                  "DicomImporter.phase: first to take it")


def _sortable(value: Any) -> tuple[int, float, str]:
    """Numbers sort numerically, text (times, dates) lexically, and absent values last."""
    if value is None or value == "":
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _assign_roles(roles: list[str], members: list[Candidate]) -> dict[str, Candidate]:
    """One series per role, each series used once; ties go to more slices, then the lower SeriesNumber."""
    chosen: dict[str, Candidate] = {}
    for role in sorted(roles, key=lambda r: sum(r in c.roles for c in members)):
        options = [c for c in members if role in c.roles and all(c is not u for u in chosen.values())]
        options.sort(key=lambda c: (-len(c.series.files), c.record["series_number"] or 0, c.series.series_uid))
        if options:
            chosen[role] = options[0]
            options[0].record["role"] = role
    return chosen


def _record(group: SeriesFiles) -> dict[str, Any]:
    """The series' report entry as far as its first header tells (every value read defensively)."""
    first = group.headers[0]
    record: dict[str, Any] = {
        "study_uid": group.study_uid,
        "series_uid": group.series_uid,
        "modality": _text(first, "Modality"),
        "description": _text(first, "SeriesDescription")[:200],
        "series_number": _int(_text(first, "SeriesNumber")),
        "files": len(group.files),
    }
    if group.dropped:
        record["dropped_files"] = [{"file": _shown(path.name), "reason": reason} for path, _, reason in group.dropped]
    return record


def _text(header: Any, keyword: str) -> str:
    try:
        return str(header.get(keyword, "") or "").strip()
    except Exception:  # a value pydicom cannot decode
        return ""


def _unusable(group: SeriesFiles) -> str:
    if not group.series_uid:
        return "SeriesInstanceUID is empty (de-identified without UIDs): a SEG could not reference its source series"
    if any(not _text(h, "SOPInstanceUID") for h in group.headers):
        return "SOPInstanceUID is empty in some files: a SEG could not reference its source images"
    for keyword, value in (("StudyInstanceUID", group.study_uid), ("SeriesInstanceUID", group.series_uid),
                           *(("SOPInstanceUID", _text(h, "SOPInstanceUID")) for h in group.headers)):
        if not UID(value).is_valid:
            return (f"{keyword} {value[:70]!r} is not a valid UID (digits and dots, no leading zeros, at most 64 "
                    "characters): a SEG referencing it would not be valid DICOM")
    frames = max(_int(h.get("NumberOfFrames")) or 1 for h in group.headers)
    if frames > 1:
        return f"multi-frame images ({frames} frames): only classic single-frame series are supported"
    classes = {_text(h, "SOPClassUID") for h in group.headers}
    if unknown := sorted(classes - set(SOURCE_CLASSES)):
        shown = ", ".join(f"{uid} ({UID(uid).name})" if uid else "missing" for uid in unknown)
        return (f"SOPClassUID {shown}: a SEG's source here is a classic single-frame CT, MR or PET image "
                "(the file meta's class does not stand in for the dataset's own)")
    return ""


def _lost_files(group: SeriesFiles) -> str:
    """Files of the series left out at the scan (truncated, no pixel data) that are not duplicates of kept ones:
    the volume would come out short or with a gap."""
    kept = {_text(h, "SOPInstanceUID") for h in group.headers}
    lost = [(path, reason) for path, header, reason in group.dropped if _text(header, "SOPInstanceUID") not in kept]
    if not lost:
        return ""
    total = len(group.files) + len(lost)
    return (f"{len(lost)} of {total} files unusable ({lost[0][1]}): segmenting the rest would give a short volume "
            "or one with a gap")


def _bad_header(group: SeriesFiles) -> str:
    """The first file whose header cannot be a slice of a readable grid, naming the tag (aimi.dicom.geometry)."""
    problems = [problem for header in group.headers if (problem := header_problem(header))]
    if not problems:
        return ""
    return problems[0] + (f" ({len(problems)} of {len(group.headers)} files)" if len(group.headers) > 1 else "")


def _int(value: Any) -> int | None:
    number = as_number(value)
    return None if number is None else int(number)


def _relative(path: Path, root: Path) -> str:
    try:
        return _shown(str(path.relative_to(root)))
    except ValueError:
        return _shown(path.name)


def _shown(name: str) -> str:
    """A file name for the report: bytes that are not UTF-8 (kept by Python as lone surrogates, which strict JSON
    readers refuse) and control characters written as escapes."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
