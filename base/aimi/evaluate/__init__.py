"""`aimi evaluate`: AI SEGs against reviewer-corrected SEGs, the paper's Technical Validation.

Per case and segment: Dice, NSD at the segment's tolerance, HD95 and MSD (mm) and, for lesions (category SCT 49755003
"Morphologically Altered Structure"), component detection. Definitions and the values for empty masks are in
`aimi.evaluate.metrics`; SEG reading and segment pairing in `aimi.evaluate.segs`.

NSD tolerances (mm), by segmented property type, as the authors' evaluation notebooks set them (`nsd_tolerances`
in each model_performance notebook): kidney 7, kidney tumor and cyst 2 (bamf-health/aimi-kidney-ct @d248983
model_performance_aimi2.ipynb); liver and liver tumor 7 (aimi-liver-tumor-ct @fca4260); lung and nodule 2
(aimi-lung2-ct @c072d67); prostate 4 (aimi-prostate-mr @03de7bb); breast 7, FGT and tumor 2 (aimi-breast-mr
@778873a); brain 5 for every label and composite (aimi-brain-mr branch brats @acb82f3, commit 423e511 "fix nsd
tolerance", 7 -> 5). Anything else 2 mm. `tolerances` overrides them per SegmentLabel.

Composite regions (brain: Whole Tumor = necrosis + edema + enhancing tumor, Tumor Core = necrosis + enhancing tumor,
as the authors' brats notebook scores them) are data: each model's evaluation.toml (`aimi.evaluate.model_data`),
evaluated like segments where a SEG holds all their parts, at the tolerance declared there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import SimpleITK as sitk

from aimi.evaluate import metrics
from aimi.evaluate.model_data import Composite, composites
from aimi.evaluate.segs import LoadedSeg, Segment, SegmentPair, load_seg, pair_segments

NECROSIS, EDEMA, ENHANCING = "SCT:6574001", "SCT:79654002", "NCIt:C113842"
#: NSD tolerance (mm) per segmented property type ('scheme:value'), from the authors' notebooks (module docstring);
#: others get DEFAULT_TOLERANCE_MM.
TOLERANCES_MM: dict[str, float] = {
    "SCT:64033007": 7.0, "SCT:4147007": 2.0, "SCT:367643001": 2.0,  # kidney, tumor (mass), cyst; breast tumor: mass
    "SCT:10200004": 7.0, "SCT:108369006": 7.0,  # liver, liver tumor
    "SCT:39607008": 2.0, "SCT:27925004": 2.0,  # lung, nodule
    "SCT:41216001": 4.0,  # prostate
    "SCT:76752008": 7.0, "SCT:1342375003": 2.0,  # breast, fibroglandular tissue
    NECROSIS: 5.0, EDEMA: 5.0, ENHANCING: 5.0,
}
DEFAULT_TOLERANCE_MM = 2.0
#: Task of a SEG whose BodyPartExamined is missing, by the property type of its first segment.
TASK_BY_TYPE: dict[str, str] = {
    "SCT:64033007": "kidney", "SCT:10200004": "liver", "SCT:39607008": "lung", "SCT:41216001": "prostate",
    "SCT:76752008": "breast", "SCT:6574001": "brain", "SCT:79654002": "brain", "NCIt:C113842": "brain",
}


@dataclass(frozen=True)
class SegmentResult:
    """One row of the per-case CSV. Detection counts are None for non-lesion segments."""

    case: str
    task: str
    segment: str
    status: str
    reference_voxels: int
    prediction_voxels: int
    dice: float
    nsd: float
    tolerance_mm: float
    hd95_mm: float
    true_positives: int | None
    false_positives: int | None
    false_negatives: int | None
    reference_seg: str
    prediction_seg: str
    msd_mm: float = float("nan")
    reviewer: str = ""  # qa-results.csv: who reviewed (rad* radiologist, ne* non-expert)
    year: str = ""  # qa-results.csv: AimiProjectYear
    reference: str = "corrected"  # or "ai": the reviewer gave no correction, so the AI SEG is the reference

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def evaluate_pair(
    reference_path: Path, prediction_path: Path, case: str, tolerances: Mapping[str, float] | None = None
) -> list[SegmentResult]:
    """Every segment of a reviewer (reference) SEG and an AI (prediction) SEG, compared in physical space.

    `tolerances` maps SegmentLabel (any case) -> NSD tolerance in mm, over TOLERANCES_MM.
    """
    reference, prediction = load_seg(reference_path), load_seg(prediction_path)
    task = task_of(prediction)
    task = task_of(reference) if task == "unknown" else task
    regions = composites(task)
    overrides = {label.casefold(): mm for label, mm in (tolerances or {}).items()}
    declared = {region.property_type: region.tolerance_mm for region in regions}
    return [
        _result(pair, case, task, _tolerance(pair.label, pair.property_type, overrides, declared), reference,
                prediction)
        for pair in pair_segments(with_composites(reference, regions), with_composites(prediction, regions))
    ]


def with_composites(seg: LoadedSeg, regions: tuple[Composite, ...]) -> LoadedSeg:
    """`seg` plus each region whose every part it holds, as one more segment: the parts' masks united."""
    by_type = {segment.property_type: segment for segment in seg.segments}
    extra = []
    for region in regions:
        if all(part in by_type for part in region.parts):
            mask = by_type[region.parts[0]].mask
            for part in region.parts[1:]:
                mask = sitk.Or(mask, by_type[part].mask)
            extra.append(Segment(0, region.name, region.property_type, by_type[region.parts[0]].category, mask))
    return replace(seg, segments=(*seg.segments, *extra))


def task_of(seg: LoadedSeg) -> str:
    """The task name: BodyPartExamined in lower case where it names a task, else from the first segment's code
    (a brain SEG may say HEAD), else the body part, else 'unknown'."""
    body_part = seg.body_part.lower() if seg.body_part else ""
    first = seg.segments[0].property_type if seg.segments else ""
    if body_part in TASK_BY_TYPE.values():
        return body_part
    return TASK_BY_TYPE.get(first, body_part or "unknown")


def _tolerance(label: str, property_type: str, overrides: Mapping[str, float], declared: Mapping[str, float]) -> float:
    known = declared.get(property_type, TOLERANCES_MM.get(property_type, DEFAULT_TOLERANCE_MM))
    return overrides.get(label.casefold(), known)


def _result(
    pair: SegmentPair, case: str, task: str, tolerance: float, reference: LoadedSeg, prediction: LoadedSeg
) -> SegmentResult:
    distances = metrics.surface_distances(pair.reference, pair.prediction, pair.spacing)
    found = metrics.detection(pair.reference, pair.prediction) if pair.is_lesion else None
    return SegmentResult(
        case=case,
        task=task,
        segment=pair.label,
        status=pair.status,
        reference_voxels=int(pair.reference.sum()),
        prediction_voxels=int(pair.prediction.sum()),
        dice=metrics.dice(pair.reference, pair.prediction),
        nsd=metrics.nsd(distances, tolerance),
        tolerance_mm=tolerance,
        hd95_mm=metrics.hd95(distances),
        msd_mm=metrics.msd(distances),
        true_positives=found.true_positives if found else None,
        false_positives=found.false_positives if found else None,
        false_negatives=found.false_negatives if found else None,
        reference_seg=str(reference.path),
        prediction_seg=str(prediction.path),
    )
