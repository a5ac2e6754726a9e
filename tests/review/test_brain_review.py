"""The brain review, as the paper's reviewers worked: the study packaged in the atlas space the model saw, an edit of
the atlas-space labels, and each original series' correction SEG holding it where the inverse of that series'
registration puts it (the session's brain run on a real head, Colin27, with ReviewSpace.write)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from aimi.cli import main as aimi_main
from aimi.review.package import likert_question, source_image
from aimi_testkit.seg_reader import read_seg_masks
from tests.support.chains import BrainRun
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

VALUES = {"Necrosis": 1, "Edema": 2, "Enhancing Tumor": 3}
RADIUS_MM = 8.0


@pytest.fixture(scope="module")
def reviewed(brain_run: BrainRun, tmp_path_factory: pytest.TempPathFactory):
    study, status, report, out = brain_run
    assert status == 0, report["cases"]
    root = tmp_path_factory.mktemp("brain-review")
    assert aimi_main(["review", "select", str(out), "--fraction", "1", "-o", str(root / "list.csv")]) == 0
    assert aimi_main(["review", "package", str(root / "list.csv"), "-o", str(root / "packages"),
                      "--input", str(out.parent / "in")]) == 0
    [folder] = [p for p in (root / "packages").iterdir() if p.is_dir()]
    image = sitk.ReadImage(str(folder / "atlas" / "ai.seg.nrrd"))
    labels = sitk.GetArrayFromImage(image)
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    zyx = np.indices(labels.shape).reshape(3, -1).T[:, ::-1]
    points = np.array([image.TransformIndexToPhysicalPoint([int(v) for v in index]) for index in zyx])
    ball = (np.linalg.norm(points - np.asarray(centre), axis=1) <= RADIUS_MM).reshape(labels.shape)
    corrected = labels.copy()
    corrected[ball] = VALUES["Enhancing Tumor"]
    saved = sitk.GetImageFromArray(corrected)
    saved.CopyInformation(image)
    for key in image.GetMetaDataKeys():
        if key.startswith(("Segment", "Segmentation_")):
            saved.SetMetaData(key, image.GetMetaData(key))
    sitk.WriteImage(saved, str(folder / "atlas" / "corrected.seg.nrrd"), True)
    [row] = list(csv.DictReader((folder / "qa-row.csv").open()))
    row.update({"Reviewer": "rad1", "AimiProjectYear": "2024", **{likert_question(n): "3" for n in VALUES}})
    with (folder / "qa-row.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    assert aimi_main(["review", "import", str(root / "packages"), "-o", str(root / "record")]) == 0
    return study, folder, root / "record", centre, saved


def test_the_package_is_the_atlas_space_the_model_saw(reviewed, brain_run: BrainRun) -> None:
    study, folder, _, _, _ = reviewed
    space = next(brain_run.out.rglob("review-space"))
    assert sorted(p.name for p in (folder / "atlas").iterdir()) == sorted(
        ["ai.seg.nrrd", "corrected.seg.nrrd", *(f"{role}.nii.gz" for role in study.series_uids)])
    atlas_labels = sitk.ReadImage(str(space / "labels.nii.gz"))
    packaged = sitk.ReadImage(str(folder / "atlas" / "ai.seg.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(packaged), sitk.GetArrayFromImage(atlas_labels))
    manifest = json.loads((folder / "package.json").read_text())
    assert manifest["space"] == "atlas" and manifest["roles"] == study.series_uids


def test_an_atlas_edit_lands_on_each_series_where_the_inverse_transform_puts_it(reviewed) -> None:
    study, folder, record, centre, _ = reviewed
    rows = {r["SeriesInstanceUID"]: r for r in csv.DictReader((record / "qa-results.csv").open())}
    assert set(rows) == set(study.series_uids.values())
    atlas = sitk.ReadTransform(str(folder / "transforms" / "atlas.tfm"))
    for role, uid in study.series_uids.items():
        seg_path = record / "qa-segmentations-dcm" / rows[uid]["CorrectedSegmentation"]
        assert dciodvfy_errors(seg_path) == [], role
        grid, ordered, _ = source_image(sorted((folder / "series" / role).iterdir()))
        uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ordered]
        enhancing = read_seg_masks(seg_path, uids)["Enhancing Tumor"]
        # atlas point -> this series' point: atlas -> reference role, then reference role -> role
        to_role = sitk.CompositeTransform([sitk.ReadTransform(str(folder / "transforms" / f"{role}.tfm")), atlas])
        expected = np.asarray(to_role.TransformPoint(centre))
        ai = read_seg_masks(folder / "ai-seg" / f"{role}.dcm", uids)["Enhancing Tumor"]
        new = enhancing & ~ai
        indices = np.argwhere(new)[:, ::-1]
        points = np.array([grid.TransformIndexToPhysicalPoint([int(v) for v in index]) for index in indices])
        inside = points[np.linalg.norm(points - expected, axis=1) <= RADIUS_MM + max(grid.GetSpacing())]
        assert len(inside) == len(points) and len(points) > 0, role  # the edit and nothing else was added
        offset = float(np.linalg.norm(points.mean(axis=0) - expected))
        assert offset <= max(grid.GetSpacing()), (role, offset, grid.GetSpacing())
