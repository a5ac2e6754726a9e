"""`aimi reproduce` end to end on a local stand-in for IDC's buckets, laid out as the download would be, for real
kidney series of the bundled index (the seeded sample's two AI SEGs, their studies and CT series UIDs).

The stand-in holds, under those UIDs, a synthetic CT of each series (two kidneys with a tumor and a cyst; the
first series also has a kidney-dense blob apart from them) and, as the "published" SEG, the SEG the project's
kidney chain wrote with the as-published workflow, restamped with the published SEG's SeriesInstanceUID; the other
AI SEGs of the first study are copies that reference other series. Two chain runs are checked beside the one that
builds the stand-in: the same workflow gives Dice 1 for every segment; the default workflow keeps the two largest
components of kidney, tumor and cyst, and Dice is exactly what that predicts (the blob lowers the kidney's).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from aimi.cli import main
from aimi.models import load_model
from aimi.postprocess.keep_largest_components import keep_largest
from aimi.reproduce.index import indexed, sample_segs, study_segs
from aimi_testkit.phantoms import demo_grid, phantom_shapes
from aimi_testkit.synthetic import Ellipsoid, StudyInfo, sample_phantom, write_series
from aimi_testkit.testmodel_cli import spec_for
from tests.support.chains import decoded_labels, run_chain

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

MODEL = "bamf_nnunet_ct_kidney"
SEED = 0
SEGMENTS = {1: "Kidney", 2: "Tumor", 3: "Cyst"}
#: Kidney-dense, apart from both kidneys and their lesions: a third component of kidney, tumor and cyst.
BLOB = ((0.0, 42.0, 0.0), (9.0, 9.0, 9.0))


class Published(NamedTuple):
    seg: str
    series: str
    files: list[Path]
    labels: np.ndarray  # the published SEG decoded onto the series grid


class StandIn(NamedTuple):
    root: Path
    weights: Path
    published: list[Published]
    unreferenced: str  # a real CT series of the first study that no SEG references


@pytest.fixture(scope="module")
def stand_in(idc: Any, kidney_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> StandIn:
    root = tmp_path_factory.mktemp("reproduce")
    intensities = spec_for(load_model(MODEL), "kidney").intensities
    segs = sample_segs(idc, MODEL, 2, SEED)
    studies = [indexed(idc, seg).study for seg in segs]
    ct = [_ct_series(idc, study) for study in studies]
    for index, (study, series) in enumerate(zip(studies, ct, strict=True)):
        shapes = phantom_shapes(intensities)
        if index == 0:
            shapes.append(Ellipsoid(BLOB[0], BLOB[1], intensities[1][0], 1))
        volume, _ = sample_phantom(demo_grid(), shapes, intensities[0][0], noise_sd=10.0,
                                   rng=np.random.default_rng(index))
        write_series(volume, demo_grid(), root / "idc" / series[0], study=replace(StudyInfo.new(), study_uid=study),
                     extra_tags={"SeriesInstanceUID": series[0]}, series_description="stand-in CT")
    status, report = run_chain(MODEL, root / "idc", root / "made", kidney_weights, "--workflow", "as-published")
    assert status == 0, report["cases"]
    published = []
    for seg, series in zip(segs, ct, strict=True):
        made = root / "made" / series[0] / f"{MODEL}.seg.dcm"
        _restamp(made, root / "idc" / "segs" / f"{seg}.dcm", seg, series[0])
        files = sorted((root / "idc" / series[0]).iterdir())
        published.append(Published(seg, series[0], files, decoded_labels(made, files, SEGMENTS)))
    siblings = [s.uid for s in study_segs(idc, studies[0]) if s.uid != segs[0] and "corrected" not in s.description]
    for sibling in siblings:  # the study's other AI SEGs: they reference series the stand-in does not hold
        _restamp(root / "idc" / "segs" / f"{segs[0]}.dcm", root / "idc" / "segs" / f"{sibling}.dcm", sibling,
                 generate_uid())
    return StandIn(root / "idc", kidney_weights, published, ct[0][1])


def _ct_series(idc: Any, study: str) -> list[str]:
    frame = idc.sql_query(f"SELECT SeriesInstanceUID FROM index WHERE StudyInstanceUID = '{study}' AND Modality = "
                          "'CT' AND analysis_result_id IS NULL ORDER BY SeriesInstanceUID")
    return [str(uid) for uid in frame["SeriesInstanceUID"]]


def _restamp(source: Path, target: Path, seg_uid: str, referenced: str) -> None:
    """A copy of a SEG as IDC would serve it under `seg_uid`, referencing series `referenced`."""
    seg = pydicom.dcmread(source)
    seg.SeriesInstanceUID, seg.SOPInstanceUID = seg_uid, generate_uid()
    seg.file_meta.MediaStorageSOPInstanceUID = seg.SOPInstanceUID
    seg.ReferencedSeriesSequence[0].SeriesInstanceUID = referenced
    target.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(target)


def reproduce(stand_in: StandIn, out: Path, *args: str) -> int:
    return main(["reproduce", *args, "-o", str(out), "--source", str(stand_in.root), "--weights",
                 str(stand_in.weights), "--no-tta"])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 if not (a.any() or b.any()) else 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_the_same_workflow_reproduces_the_published_seg_exactly(stand_in: StandIn, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    first = stand_in.published[0]
    assert reproduce(stand_in, tmp_path, first.series, "--workflow", "as-published", "--min-dice", "1") == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "reproduce-report.json").read_text())
    assert (report["series"], report["model"], report["workflow"]) == (first.series, MODEL, "as-published")
    assert [p["seg_series"] for p in report["published"]] == [first.seg]  # the study's other AI SEGs left out
    assert report["published"][0]["algorithm_names"] == ["BAMF-Kidney-CT"]
    rows = {r["segment"]: r for r in report["segments"]}
    assert set(rows) == set(SEGMENTS.values())
    for name, row in rows.items():
        voxels = int((first.labels == {v: k for k, v in SEGMENTS.items()}[name]).sum())
        assert (row["dice"], row["nsd"], row["hd95_mm"], row["msd_mm"]) == (1.0, 1.0, 0.0, 0.0), name
        assert row["reference_voxels"] == row["prediction_voxels"] == voxels > 0, name
        assert f"| {name} | ok | 1.000 | 0.00 | 1.000 " in printed
    assert [r["Dice"] for r in read_csv(tmp_path / "table4.csv")] == ["1.00"] * 3
    overlay = tmp_path / "qc-overlay.png"
    assert overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["qc_overlay"] == str(overlay)


def test_the_default_workflow_differs_exactly_as_its_component_filter_predicts(
        stand_in: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = reproduce(stand_in, tmp_path, "--sample", MODEL, "2", "--seed", str(SEED), "--workflow", "default",
                       "--min-dice", "0.999")
    printed = capsys.readouterr().out
    assert status == 1  # the blob's kidney voxels are gone: under --min-dice, named
    assert f"under --min-dice: {stand_in.published[0].series} Kidney Dice " in printed
    assert "# Table 4 shape, AI against AI" in printed
    report = json.loads((tmp_path / "reproduce-report.json").read_text())
    assert report["workflow"] == "default" and report["failures"] == []
    assert [p["seg_series"] for p in report["published"]] == [p.seg for p in stand_in.published]
    measured = {(r["case"], r["segment"]): r["dice"] for r in report["segments"]}
    for published in stand_in.published:
        expected = keep_largest(published.labels, [1, 2, 3], count=2, min_ratio=0.0)
        for value, name in SEGMENTS.items():
            predicted = dice(published.labels == value, expected == value)
            assert math.isclose(measured[published.series, name], predicted, abs_tol=1e-9), (published.series, name)
    first = stand_in.published[0]
    blob = int((first.labels == 1).sum() - (keep_largest(first.labels, [1, 2, 3], 2, 0.0) == 1).sum())
    assert blob > 100 and measured[first.series, "Kidney"] < 1.0
    table4 = {r["segment"]: r for r in read_csv(tmp_path / "table4.csv")}
    assert table4["Kidney"]["n"] == "2" and table4["Kidney"]["Dice"] != "1.00"


def test_a_series_no_published_seg_references_is_refused_and_a_missing_download_fails(
        stand_in: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert reproduce(stand_in, tmp_path / "a", stand_in.unreferenced) == 2
    assert f"series {stand_in.unreferenced}: none of the" in capsys.readouterr().err
    missing = "1.3.6.1.4.1.14519.5.2.1.6450.4004.185347454720689529093851893544"  # its SEG is not in the stand-in
    assert reproduce(stand_in, tmp_path / "b", missing) == 1
    assert "cannot download it (series 1.2.276.0.7230010.3.1.3.17436516.2321525" in capsys.readouterr().err
