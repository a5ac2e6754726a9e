"""`aimi evaluate`: AI SEGs against reviewer-corrected SEGs, the paper's Technical Validation.

Per case and segment: Dice, NSD at the segment's tolerance, HD95 and MSD (mm) and, for lesions (category SCT 49755003
"Morphologically Altered Structure"), component detection. Definitions and the values for empty masks are in
`aimi.evaluate.metrics`; SEG reading and segment pairing in `aimi.evaluate.segs`.

NSD tolerances (mm), by segmented property type: breast 7 and prostate 4 (BAMF's); every other segment
2 mm: brain, lung, breast FGT and tumor (BAMF) and kidney and liver (no published value; 2 mm, the tolerance BAMF
used for the other CT task). `tolerances` overrides them per SegmentLabel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from aimi.evaluate import metrics
from aimi.evaluate.segs import LoadedSeg, SegmentPair, load_seg, pair_segments

#: NSD tolerance (mm) per segmented property type ('scheme:value'); others get DEFAULT_TOLERANCE_MM.
TOLERANCES_MM: dict[str, float] = {"SCT:76752008": 7.0, "SCT:41216001": 4.0}
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
    overrides = {label.casefold(): mm for label, mm in (tolerances or {}).items()}
    return [
        _result(pair, case, task, _tolerance(pair.label, pair.property_type, overrides), reference, prediction)
        for pair in pair_segments(reference, prediction)
    ]


def task_of(seg: LoadedSeg) -> str:
    """The task name: BodyPartExamined in lower case, else from the first segment's code, else 'unknown'."""
    if seg.body_part:
        return seg.body_part.lower()
    first = seg.segments[0].property_type if seg.segments else ""
    return TASK_BY_TYPE.get(first, "unknown")


def _tolerance(label: str, property_type: str, overrides: Mapping[str, float]) -> float:
    return overrides.get(label.casefold(), TOLERANCES_MM.get(property_type, DEFAULT_TOLERANCE_MM))


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
