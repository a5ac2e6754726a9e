"""The review loop end to end on the kidney chain (a phantom and a real CT series): select -> package (what Slicer
opens) -> a known edit of the .seg.nrrd, made as Slicer saves it (segments renumbered) -> import -> the correction
SEG differs from the AI SEG by exactly that edit, is dciodvfy-clean, references the series and the AI SEG, opens in
dcmqi, and `aimi evaluate --qa-results` on the imported record gives the Dice of the edit."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from aimi.cli import main as aimi_main
from aimi.models import load_model
from aimi.review.package import likert_question, segment_table, source_image
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.seg_reader import read_seg_masks
from aimi_testkit.synthetic import StudyInfo
from aimi_testkit.testmodel_cli import spec_for
from tests.support.chains import real_ct_as_dicom, run_chain
from tests.support.readers import dcmqi_labels
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

KIDNEY = "bamf_nnunet_ct_kidney"
VALUES = {"Kidney": 1, "Tumor": 2, "Cyst": 3}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def fill_row(folder: Path, reviewer: str, answer: str) -> None:
    [row] = read_csv(folder / "qa-row.csv")
    row["Reviewer"], row["AimiProjectYear"] = reviewer, "2024"
    for name in VALUES:
        row[likert_question(name)] = answer
    with (folder / "qa-row.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)


def edit_as_slicer_saves(folder: Path, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Paint `box` as Tumor in ai.seg.nrrd and save corrected.seg.nrrd with the segments renumbered (Kidney <-> Cyst
    label values swapped, as Slicer may); returns the AI label map and the corrected one, in the model's values."""
    image = sitk.ReadImage(str(folder / "ai.seg.nrrd"))
    ai = sitk.GetArrayFromImage(image)
    corrected = ai.copy()
    corrected[box] = VALUES["Tumor"]
    swapped = corrected.copy()
    swapped[corrected == VALUES["Kidney"]] = VALUES["Cyst"]
    swapped[corrected == VALUES["Cyst"]] = VALUES["Kidney"]
    saved = sitk.GetImageFromArray(swapped)
    saved.CopyInformation(image)
    for key in image.GetMetaDataKeys():
        if key.startswith(("Segment", "Segmentation_")):
            saved.SetMetaData(key, image.GetMetaData(key))
    for index in range(3):
        name = image.GetMetaData(f"Segment{index}_Name")
        if name in ("Kidney", "Cyst"):
            saved.SetMetaData(f"Segment{index}_LabelValue", str(VALUES["Cyst" if name == "Kidney" else "Kidney"]))
    sitk.WriteImage(saved, str(folder / "corrected.seg.nrrd"), True)
    return ai, corrected


@pytest.fixture(scope="module")
def reviewed(shared_data: Path, kidney_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("review")
    intensities = spec_for(load_model(KIDNEY), "kidney").intensities
    write_phantom_series(root / "in" / "phantom", intensities, study=StudyInfo.new("REVIEW"), seed=5)
    real_ct_as_dicom(shared_data / "ct-mr-abdomen-totalseg-nifti" / "example_ct_sm.nii.gz", root / "in" / "real")
    status, report = run_chain(KIDNEY, root / "in", root / "run", kidney_weights)
    assert status == 0, report["cases"]
    assert aimi_main(["review", "select", str(root / "run"), "--fraction", "1", "-o", str(root / "list.csv")]) == 0
    assert aimi_main(["review", "package", str(root / "list.csv"), "-o", str(root / "packages")]) == 0
    folders = sorted(p for p in (root / "packages").iterdir() if p.is_dir())
    assert len(folders) == 2
    edited, untouched = folders
    ai, corrected = edit_as_slicer_saves(edited, (slice(2, 6), slice(10, 20), slice(12, 24)))
    fill_row(edited, "rad1", "3 - Neither agree nor disagree")
    fill_row(untouched, "ne1", "5 - Strongly Agree")
    assert aimi_main(["review", "import", str(root / "packages"), "-o", str(root / "record")]) == 0
    return root, edited, untouched, ai, corrected


def test_the_package_holds_what_slicer_opens(reviewed) -> None:
    _, edited, _, ai, _ = reviewed
    image = sitk.ReadImage(str(edited / "ai.seg.nrrd"))
    names = {image.GetMetaData(f"Segment{i}_Name"): int(image.GetMetaData(f"Segment{i}_LabelValue"))
             for i in range(3)}
    assert names == VALUES
    colours = {spec.name: spec.rgb for spec in segment_table(KIDNEY)}
    for index in range(3):
        rgb = [float(v) for v in image.GetMetaData(f"Segment{index}_Color").split()]
        assert np.allclose(np.asarray(rgb) * 255, colours[image.GetMetaData(f"Segment{index}_Name")], atol=0.5)
    assert image.GetMetaData("Segmentation_MasterRepresentation") == "Binary labelmap"
    series, ordered, _ = source_image(sorted((edited / "image").iterdir()))
    assert image.GetSize() == series.GetSize() and np.allclose(image.GetOrigin(), series.GetOrigin())
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ordered]
    masks = read_seg_masks(edited / "ai-seg.dcm", uids)
    decoded = np.zeros_like(ai)
    for name, value in VALUES.items():
        decoded[masks[name]] = value
    np.testing.assert_array_equal(ai, decoded)  # the package's label map is the AI SEG's, voxel for voxel
    [row] = read_csv(edited / "qa-row.csv")
    assert {likert_question(name) for name in VALUES} <= set(row)


def test_the_correction_differs_from_the_ai_seg_by_exactly_the_edit(reviewed) -> None:
    root, edited, _, ai, corrected = reviewed
    [row_rad, row_ne] = sorted(read_csv(root / "record" / "qa-results.csv"), key=lambda r: r["Reviewer"])[::-1]
    assert row_ne["CorrectedSegmentation"] == ""  # no correction file, no SEG (the paper's strong agreement)
    seg_path = root / "record" / "qa-segmentations-dcm" / row_rad["CorrectedSegmentation"]
    assert sorted(p.name for p in (root / "record" / "qa-segmentations-dcm").iterdir()) == [seg_path.name]
    _, ordered, _ = source_image(sorted((edited / "image").iterdir()))
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ordered]
    masks = read_seg_masks(seg_path, uids)
    decoded = np.zeros_like(corrected)
    for name, value in VALUES.items():
        decoded[masks[name]] = value
    np.testing.assert_array_equal(decoded, corrected)
    assert dciodvfy_errors(seg_path) == []
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    ai_seg = pydicom.dcmread(edited / "ai-seg.dcm", stop_before_pixels=True)
    referenced = {s.SeriesInstanceUID: [i.ReferencedSOPInstanceUID for i in s.ReferencedInstanceSequence]
                  for s in seg.ReferencedSeriesSequence}
    assert referenced[ai_seg.ReferencedSeriesSequence[0].SeriesInstanceUID]  # the source series
    assert referenced[ai_seg.SeriesInstanceUID] == [ai_seg.SOPInstanceUID]  # and the AI SEG it derives from
    assert str(seg.ContentCreatorName) == "rad1"
    kinds = {item.SegmentLabel: item.SegmentAlgorithmType for item in seg.SegmentSequence}
    ai_had_tumor = bool((ai == VALUES["Tumor"]).any())
    kidney_changed = not np.array_equal(ai == 1, corrected == 1)
    assert kinds == {"Kidney": "SEMIAUTOMATIC" if kidney_changed else "AUTOMATIC",
                     "Tumor": "SEMIAUTOMATIC" if ai_had_tumor else "MANUAL",
                     "Cyst": "AUTOMATIC" if np.array_equal(ai == 3, corrected == 3) else "SEMIAUTOMATIC"}
    reference = sitk.ReadImage(str(edited / "ai.seg.nrrd"))
    labels, _ = dcmqi_labels(seg_path, reference, VALUES, root / "dcmqi")
    np.testing.assert_array_equal(labels, corrected)


def test_evaluate_reads_the_imported_record_and_gives_the_dice_of_the_edit(reviewed) -> None:
    root, _, _, ai, corrected = reviewed
    record = root / "record"
    assert aimi_main(["evaluate", str(record / "ai-segmentations-dcm"), str(record / "qa-segmentations-dcm"),
                      "--qa-results", str(record / "qa-results.csv"), "-o", str(root / "evaluation")]) == 0
    rows = read_csv(root / "evaluation" / "evaluation.csv")
    by_reviewer = {(r["reviewer"], r["segment"]): r for r in rows}
    for name, value in VALUES.items():
        mine, theirs = corrected == value, ai == value
        total = int(mine.sum() + theirs.sum())
        expected = 2 * float((mine & theirs).sum()) / total if total else 1.0
        assert float(by_reviewer[("rad1", name)]["dice"]) == pytest.approx(expected, abs=1e-9), name
        assert float(by_reviewer[("ne1", name)]["dice"]) == 1.0 and by_reviewer[("ne1", name)]["reference"] == "ai"
