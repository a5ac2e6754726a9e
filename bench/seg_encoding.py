"""Stage 3: SEG encoding of a label map on the large CT's grid, 3 segments (the kidney table) and 20.

Incumbent: dcmqi `itkimage2segimage` on the label map as nnU-Net writes it (`.nii.gz`), the source DICOM folder
and a metadata JSON, empty slices skipped (MHub's DsegConverter). Project: DsegConverter (the label map onto the
source grid - rearranged, not resampled, when its voxel centres are the source's, as here and after dcm2niix -
then a highdicom BINARY SEG) plus writing the file, on headers the importer already read once for the run.
Check: both SEGs decoded by the SOP instances their frames reference give the same label map as the input.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import yaml

from aimi.core.case import MAIN, Case, DicomSeries
from aimi.seg.segments import SegmentSpec
from aimi_testkit.seg_reader import read_seg_masks
from bench.chain import ROLE, discover_one, modules, series_of
from bench.common import BenchError, Row, StageResult, interleaved, median, run_tool, timed, tool
from bench.data import Inputs

MANY = 20
DCMQI_SKIP_EMPTY = ("--skip", "1")  # MHub passes --skip: empty slices get no frame, as in the project's SEG


def run(inputs: Inputs, rounds: int, env: dict[str, str]) -> list[StageResult]:
    raw_segments = yaml.safe_load(inputs.workflow.read_text())["modules"]["DsegConverter"]["segments"]
    with tempfile.TemporaryDirectory(prefix="aimi-bench-seg-") as work:
        steps = modules(inputs, Path(work), ("DicomImporter", "DsegConverter"))
        series = series_of(discover_one(steps["DicomImporter"], inputs.large_ct))
        cases = [(raw_segments, inputs.large_labels), (_many_segments(raw_segments[0]), _many_labels(series))]
        return [_one(steps["DsegConverter"], series, segments, labels, inputs.large_ct, Path(work), rounds, env)
                for segments, labels in cases]


def _one(converter: Any, series: DicomSeries, raw_segments: list[dict[str, Any]], labels: np.ndarray,
         dicom_dir: Path, work: Path, rounds: int, env: dict[str, str]) -> StageResult:
    converter = type(converter)(dataclasses.replace(converter.settings, segments=raw_segments), converter.context)
    specs: list[SegmentSpec] = converter.segments
    folder = work / f"segments-{len(specs)}"
    folder.mkdir()
    labelmap = sitk.GetImageFromArray(labels)
    labelmap.CopyInformation(series.geometry.reference_image())
    sitk.WriteImage(labelmap, str(folder / "labels.nii.gz"), True)
    (folder / "meta.json").write_text(json.dumps(dcmqi_metadata(specs, converter.settings), indent=1))

    def incumbent(index: int) -> tuple[float, Path]:
        target = folder / f"dcmqi-{index}.seg.dcm"
        return run_tool([tool("itkimage2segimage"), "--inputImageList", folder / "labels.nii.gz",
                         "--inputDICOMDirectory", dicom_dir, "--outputDICOM", target,
                         "--inputMetadata", folder / "meta.json", *DCMQI_SKIP_EMPTY], env), target

    def project(index: int) -> tuple[float, Path]:
        target = folder / f"aimi-{index}.seg.dcm"

        def encode() -> None:
            case = Case(series.series_uid, {ROLE: series}, artifacts={MAIN: labelmap})
            converter(case)
            case.artifacts["segs"][ROLE].save_as(target, enforce_file_format=True)

        return timed(encode)[0], target

    a, b = interleaved(rounds, incumbent, project)
    differing = {side: _differing_voxels(path, series, specs, labels) for side, path in
                 (("dcmqi", a[-1][1]), ("aimi", b[-1][1]))}
    shape = "x".join(str(n) for n in reversed(labels.shape))
    return StageResult(
        f"seg-{len(specs)}",
        [Row(f"3. SEG encoding, {len(specs)} segments, {shape} (itkimage2segimage vs DsegConverter + write)",
             median([t for t, _ in a]), median([t for t, _ in b]), target=">= 1.5x")],
        equal=not any(differing.values()),
        check="decoded SEG vs input label map, voxels differing: "
              + ", ".join(f"{side} {n}" for side, n in differing.items()),
    )


def _differing_voxels(seg: Path, series: DicomSeries, specs: list[SegmentSpec], labels: np.ndarray) -> int:
    return int(np.count_nonzero(decoded_labels(seg, series.sop_instance_uids, specs) != labels))


def decoded_labels(seg: Path, sop_uids: list[str], specs: list[SegmentSpec]) -> np.ndarray:
    """Decode by referenced SOP instance (the test kit's SEG reader), paint the table's values; a segment the SEG leaves
    out (dcmqi omits empty ones) is empty, a segment the table does not name is an error."""
    masks = read_seg_masks(seg, sop_uids)
    unknown = sorted(set(masks) - {spec.name for spec in specs})
    if unknown:
        raise BenchError(f"{seg}: segments {unknown} are not in the segment table")
    decoded = np.zeros(next(iter(masks.values())).shape, np.uint8)
    for spec in specs:
        if spec.name in masks:
            decoded[masks.pop(spec.name)] = spec.label
    return decoded


def _many_segments(template: dict[str, Any]) -> list[dict[str, Any]]:
    """MANY segments with the codes of the first kidney segment and distinct names (labels must be unique)."""
    return [{**template, "label": value, "name": f"Region {value:02d}"} for value in range(1, MANY + 1)]


def _many_labels(series: DicomSeries) -> np.ndarray:
    """MANY spheres spread over the volume (5 across, 4 down, alternating depth), 20 voxels in radius."""
    slices, rows, columns = (int(n) for n in reversed(series.geometry.size))
    labels = np.zeros((slices, rows, columns), np.uint8)
    radius = min(20, slices // 4, rows // 10, columns // 12)
    for index in range(MANY):
        centre = ((1 + index % 2 * 2) * slices // 4, (1 + index // 5) * rows // 5, (1 + index % 5) * columns // 6)
        box = tuple(slice(c - radius, c + radius + 1) for c in centre)
        grid = np.ogrid[tuple(slice(-radius, radius + 1) for _ in centre)]
        inside = sum(g.astype(np.int64) ** 2 for g in grid) <= radius**2
        labels[box][inside] = index + 1
    return labels


def _code(concept: Any) -> dict[str, str]:
    return {"CodeValue": concept.value, "CodingSchemeDesignator": concept.scheme_designator,
            "CodeMeaning": concept.meaning}


def dcmqi_metadata(specs: list[SegmentSpec], settings: Any) -> dict[str, Any]:
    """dcmqi's segmentation metadata JSON (its seg-schema) with the same names, codes and header as the project."""
    segments = []
    for spec in specs:
        item: dict[str, Any] = {
            "labelID": spec.label, "SegmentLabel": spec.name, "SegmentDescription": spec.name,
            "SegmentAlgorithmType": "AUTOMATIC", "SegmentAlgorithmName": settings.algorithm_name,
            "SegmentedPropertyCategoryCodeSequence": _code(spec.category),
            "SegmentedPropertyTypeCodeSequence": _code(spec.type),
            "recommendedDisplayRGBValue": [255, 0, 0],
        }
        if spec.modifier is not None:
            item["SegmentedPropertyTypeModifierCodeSequence"] = _code(spec.modifier)
        if spec.region is not None:
            item["AnatomicRegionSequence"] = _code(spec.region)
        segments.append(item)
    return {
        "ContentCreatorName": settings.content_creator, "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
        "SeriesDescription": settings.series_description, "SeriesNumber": str(settings.series_number),
        "InstanceNumber": "1", "BodyPartExamined": settings.body_part_examined, "ContentLabel": settings.content_label,
        "ContentDescription": "bench", "ClinicalTrialCoordinatingCenterName": "bench", "segmentAttributes": [segments],
    }
