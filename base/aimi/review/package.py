"""`aimi review package LIST -o DIR`: what a reviewer opens in 3D Slicer, one folder per AI SEG of the review list.

Reads: the review list (aimi review select), each run's report and SEGs, and the source series (found by their
SeriesInstanceUID under the folder the run read, as its report records it, or under `--input`). Writes, per SEG,
DIR/<rank>-<SeriesInstanceUID>/:
- image/: the source series, as it was read (DICOM);
- ai.seg.nrrd: the AI segmentation on the series grid, segments named and coloured as the model card;
- ai-seg.dcm: the AI SEG itself, which the correction will reference;
- qa-row.csv: the row to fill (the paper's Table 2 columns, one Likert question per segment, answers on Table 3's
  scale), and package.json (model, series, segment table) for `aimi review import`;
- README.txt: what to do.
A folder is written beside its final name and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from aimi.atomic import replace_folder
from aimi.brain.review_space import ATLAS_TRANSFORM as SPACE_TRANSFORM
from aimi.brain.review_space import FOLDER as SPACE_FOLDER
from aimi.brain.review_space import LABELS as SPACE_LABELS
from aimi.dicom.scan import scan
from aimi.evaluate.segs import load_seg
from aimi.models import load_model
from aimi.review.slicer import write_seg_nrrd
from aimi.seg.segments import SegmentSpec, parse_segments

#: qa-results.csv columns of the paper's Table 2 (before the per-segment Likert questions).
QA_COLUMNS = ("Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Reviewer", "Validation",
              "AimiProjectYear", "AISegmentation", "CorrectedSegmentation")
COMMENTS = ("CommentsAboutAISegmentation", "CommentsAboutScan")
#: The paper's Table 3: the Likert scale of the per-segment questions.
LIKERT_SCALE = ("5 - Strongly Agree: use as is", "4 - Agree: minor edits that are not necessary",
                "3 - Neither agree nor disagree: minor edits that are necessary",
                "2 - Disagree: major edits", "1 - Strongly disagree: unusable")
INSTRUCTIONS = """Review of one AI segmentation

1. In 3D Slicer: load image/ (DICOM) and ai.seg.nrrd (Add Data; it opens as a segmentation on the image).
2. Correct the segments in Segment Editor; keep their names.
3. If you changed anything: save the segmentation here as corrected.seg.nrrd (Save: choose this folder and that name).
   If you strongly agree with every segment, save nothing.
4. Fill qa-row.csv: Reviewer (e.g. rad1, ne1), one answer per "Was the AI predicted ... label accurate?" question:
{scale}
   and any comments.
"""


@dataclass(frozen=True)
class Packaged:
    folder: Path
    series_uid: str  # or, for a brain study, its StudyInstanceUID


def likert_question(segment: str) -> str:
    return f"Was the AI predicted {segment} label accurate?"


def package(review_list: Path, out: Path, input_dir: Path | None = None) -> list[Packaged]:
    """One review folder per SEG of each listed case; ValueError naming what is missing."""
    rows = _read_list(review_list)
    done = []
    sources: dict[Path, dict[str, list[Path]]] = {}
    for row in rows:
        run = Path(row["run"])
        report = json.loads((run / "run-report.json").read_text()) if (run / "run-report.json").is_file() else {}
        folder = input_dir or (Path(report["input"]) if "input" in report else None)
        if folder is None:
            raise ValueError(f"{run}: its report does not say which folder it read; give --input DICOM_FOLDER")
        series = sources.setdefault(folder, _series_files(folder))
        segments = segment_table(row["model"])
        outputs = row["outputs"].split()
        labels = [run / o for o in outputs if o.endswith(f"/{SPACE_FOLDER}/{SPACE_LABELS}")]
        if labels:  # brain: the reviewer corrects the atlas-space labels the model wrote
            done.append(_package_study(int(row["rank"]), row, labels[0].parent,
                                       [run / o for o in outputs if o.endswith(".seg.dcm")], series, segments, out))
            continue
        for output in outputs:
            if output.endswith(".seg.dcm"):
                done.append(_package_one(int(row["rank"]), row, run / output, series, segments, out))
    return done


def segment_table(model: str) -> list[SegmentSpec]:
    """The model's segment table, as its default workflow's DsegConverter writes it."""
    import yaml

    workflow = yaml.safe_load(load_model(model).workflow_path("default").read_text())
    return parse_segments(workflow["modules"]["DsegConverter"]["segments"], f"{model} segments")


def _package_one(rank: int, row: dict[str, str], seg_path: Path, series: dict[str, list[Path]],
                 segments: Sequence[SegmentSpec], out: Path) -> Packaged:
    header = pydicom.dcmread(seg_path, stop_before_pixels=True)
    uid = str(header.ReferencedSeriesSequence[0].SeriesInstanceUID)
    if uid not in series:
        raise ValueError(f"{seg_path}: its series {uid} is not under the input folder; give --input")
    target = out / f"{rank:03d}-{uid}"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=out))
    try:
        (staging / "image").mkdir()
        for index, path in enumerate(sorted(series[uid])):
            shutil.copyfile(path, staging / "image" / f"{index:05d}.dcm")
        write_seg_nrrd(labels_on_series(seg_path, source_image(series[uid])[0], segments), segments,
                       staging / "ai.seg.nrrd")
        shutil.copyfile(seg_path, staging / "ai-seg.dcm")
        _write_row(staging / "qa-row.csv", header, uid, segments)
        (staging / "package.json").write_text(json.dumps({
            "model": row["model"], "case": row["case"], "series_uid": uid, "rank": rank,
            "ai_seg": seg_path.name, "reasons": row["reasons"],
            "segments": {str(s.label): s.name for s in segments}}, indent=1))
        (staging / "README.txt").write_text(INSTRUCTIONS.format(scale="\n".join(f"   {v}" for v in LIKERT_SCALE)))
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Packaged(target, uid)


ATLAS_INSTRUCTIONS = """Review of one brain study, in the atlas space the model saw (as the paper's reviewers did)

1. In 3D Slicer: load the contrasts in atlas/ (*.nii.gz) and atlas/ai.seg.nrrd.
2. Correct the segments in Segment Editor; keep their names.
3. If you changed anything: save the segmentation as atlas/corrected.seg.nrrd. If you strongly agree, save nothing.
   `aimi review import` takes the correction back onto each original series (series/) through the inverse of the
   registration (transforms/), one SEG per series.
4. Fill qa-row.csv: Reviewer (e.g. rad1, ne1), one answer per question:
{scale}
"""


def _package_study(rank: int, row: dict[str, str], space: Path, seg_paths: Sequence[Path],
                   series: dict[str, list[Path]], segments: Sequence[SegmentSpec], out: Path) -> Packaged:
    """A brain study: the atlas-space contrasts and labels, the transforms, every series and its AI SEG."""
    study = space.parent.name
    target = out / f"{rank:03d}-{study}"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=out))
    try:
        for folder in ("atlas", "transforms", "series", "ai-seg"):
            (staging / folder).mkdir()
        roles = {}
        for path in sorted(space.iterdir()):
            if path.name == SPACE_LABELS:
                labels = sitk.ReadImage(str(path))
                write_seg_nrrd(labels, segments, staging / "atlas" / "ai.seg.nrrd")
            elif path.name.endswith(".nii.gz"):
                shutil.copyfile(path, staging / "atlas" / path.name)
            elif path.name.endswith(".tfm"):
                shutil.copyfile(path, staging / "transforms" / path.name)
        by_series = {str(pydicom.dcmread(p, stop_before_pixels=True).ReferencedSeriesSequence[0].SeriesInstanceUID): p
                     for p in seg_paths}
        for role, uid in _roles(row).items():
            if uid not in series or uid not in by_series:
                raise ValueError(f"study {study}: series {uid} ({role}) or its SEG is missing; give --input")
            (staging / "series" / role).mkdir()
            for index, path in enumerate(sorted(series[uid])):
                shutil.copyfile(path, staging / "series" / role / f"{index:05d}.dcm")
            shutil.copyfile(by_series[uid], staging / "ai-seg" / f"{role}.dcm")
            roles[role] = uid
        header = pydicom.dcmread(next(iter(by_series.values())), stop_before_pixels=True)
        _write_row(staging / "qa-row.csv", header, "", segments)
        (staging / "package.json").write_text(json.dumps({
            "model": row["model"], "case": row["case"], "space": "atlas", "roles": roles, "rank": rank,
            "reasons": row["reasons"], "segments": {str(s.label): s.name for s in segments},
            "atlas_transform": SPACE_TRANSFORM}, indent=1))
        (staging / "README.txt").write_text(
            ATLAS_INSTRUCTIONS.format(scale="\n".join(f"   {v}" for v in LIKERT_SCALE)))
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Packaged(target, study)


def _roles(row: dict[str, str]) -> dict[str, str]:
    """The review list's `series` column ('t1=1.2... t1c=1.2...') as role -> SeriesInstanceUID."""
    return dict(item.split("=", 1) for item in row["series"].split())


def source_image(files: Sequence[Path]) -> tuple[sitk.Image, list[Path], list[pydicom.Dataset]]:
    """The series as SimpleITK reads it, slices in position order along the slice normal, that order of the files
    and their headers (no pixels)."""
    ordered, headers = ordered_headers(files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in ordered])
    return reader.Execute(), ordered, headers


def ordered_headers(files: Sequence[Path]) -> tuple[list[Path], list[pydicom.Dataset]]:
    """The files and their headers (no pixels) in position order along the slice normal, each header read once."""
    headers = {path: pydicom.dcmread(path, stop_before_pixels=True) for path in files}

    def position(path: Path) -> float:
        orientation = np.asarray(headers[path].ImageOrientationPatient, float)
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(normal, np.asarray(headers[path].ImagePositionPatient, float)))

    ordered = sorted(files, key=position)
    return ordered, [headers[path] for path in ordered]


def labels_on_series(seg_path: Path, grid: sitk.Image, segments: Sequence[SegmentSpec]) -> sitk.Image:
    """The SEG's segments as one label map on the series grid (nearest neighbour from the SEG's own geometry)."""
    labels = np.zeros(sitk.GetArrayViewFromImage(grid).shape, np.uint8)
    values = {s.name.casefold(): s.label for s in segments}
    for segment in load_seg(seg_path).segments:
        value = values.get(segment.label.casefold())
        if value is not None:
            mask = sitk.Resample(segment.mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
            labels[sitk.GetArrayViewFromImage(mask) > 0] = value
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(grid)
    return image


def _write_row(path: Path, seg: pydicom.Dataset, uid: str, segments: Sequence[SegmentSpec]) -> None:
    columns = [*QA_COLUMNS, *(likert_question(s.name) for s in segments), *COMMENTS]
    row = dict.fromkeys(columns, "")
    row.update({"StudyInstanceUID": str(seg.StudyInstanceUID), "SeriesInstanceUID": uid, "Validation": "True"})
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerow(row)


def _series_files(folder: Path) -> dict[str, list[Path]]:
    return {group.series_uid: group.files for group in scan(folder).series}


def _read_list(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows or not {"rank", "model", "run", "outputs"} <= set(rows[0]):
        raise ValueError(f"{path}: not a review list of aimi review select (rank, case, model, run, outputs)")
    return rows
