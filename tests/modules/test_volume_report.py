"""VolumeReport through the kidney chain on a phantom and on a real CT series: the run report's volumes and the TID
1500 SR's equal the SEG's own voxel counts times the voxel volume, the SR is dciodvfy-clean with the SEG and its
source slices as evidence, and without write_sr no SR is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from aimi.models import load_model
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.seg_reader import read_seg_masks
from aimi_testkit.synthetic import StudyInfo
from aimi_testkit.testmodel_cli import spec_for
from tests.support.chains import real_ct_as_dicom, run_chain, sorted_by_position
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

KIDNEY = "bamf_nnunet_ct_kidney"
VOLUME = ("118565006", "SCT")


def sr_volumes(sr: pydicom.Dataset) -> dict[int, tuple[float, str]]:
    """Referenced segment number -> (volume, unit) from the SR's measurement groups (TID 1411)."""
    found = {}

    def walk(items, group_segment=None):
        for item in items:
            segment = group_segment
            for child in item.get("ContentSequence", []):
                if child.ValueType == "IMAGE" and "ReferencedSegmentNumber" in child.ReferencedSOPSequence[0]:
                    segment = int(child.ReferencedSOPSequence[0].ReferencedSegmentNumber)
            concept = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
            if item.ValueType == "NUM" and concept is not None and (concept.CodeValue, concept.CodingSchemeDesignator) \
                    == VOLUME:
                value = item.MeasuredValueSequence[0]
                found[segment] = (float(value.NumericValue), value.MeasurementUnitsCodeSequence[0].CodeValue)
            walk(item.get("ContentSequence", []), segment)

    walk(sr.ContentSequence)
    return found


def test_volumes_in_the_report_and_the_sr_are_the_segs_voxels(shared_data: Path, kidney_weights: Path,
                                                               tmp_path: Path) -> None:
    intensities = spec_for(load_model(KIDNEY), "kidney").intensities
    phantom, _ = write_phantom_series(tmp_path / "in" / "phantom", intensities, study=StudyInfo.new("VOL"), seed=2)
    real = real_ct_as_dicom(shared_data / "ct-mr-abdomen-totalseg-nifti" / "example_ct_sm.nii.gz",
                            tmp_path / "in" / "real")
    status, report = run_chain(KIDNEY, tmp_path / "in", tmp_path / "out", kidney_weights,
                               "--set", "VolumeReport.write_sr=true")
    assert status == 0, report["cases"]
    for files in (phantom, real):
        header = pydicom.dcmread(files[0], stop_before_pixels=True)
        uid = str(header.SeriesInstanceUID)
        seg_path = tmp_path / "out" / uid / f"{KIDNEY}.seg.dcm"
        sr_path = tmp_path / "out" / uid / f"{KIDNEY}.volumes.sr.dcm"
        [case] = [c for c in report["cases"] if c["id"] == uid]
        assert f"{uid}/{KIDNEY}.volumes.sr.dcm" in case["outputs"]
        ordered = sorted_by_position(files)
        masks = read_seg_masks(seg_path, [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                                          for f in ordered])
        spacing = [float(v) for v in header.PixelSpacing]
        positions = [np.asarray(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient, float)
                     for f in ordered[:2]]
        voxel_ml = spacing[0] * spacing[1] * float(np.linalg.norm(positions[1] - positions[0])) / 1000
        measured = case["measurements"]["VolumeReport"]["ct"]
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        numbers = {item.SegmentLabel: int(item.SegmentNumber) for item in seg.SegmentSequence}
        sr = pydicom.dcmread(sr_path)
        in_sr = sr_volumes(sr)
        for name, mask in masks.items():
            voxels = int(mask.sum())
            assert measured[name]["voxels"] == voxels, name
            assert measured[name]["ml"] == pytest.approx(voxels * voxel_ml, abs=1e-3), name
            assert measured[name]["components"] == ndimage.label(mask)[1], name
            if voxels:
                assert in_sr[numbers[name]][0] == pytest.approx(voxels * voxel_ml, abs=1e-3), name
                assert in_sr[numbers[name]][1] == "mL"
            else:
                assert numbers[name] not in in_sr  # nothing to measure
        assert dciodvfy_errors(sr_path) == []
        evidence = [i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                    for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence]
        source_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
        assert set(evidence) == {seg.SOPInstanceUID, *source_uids}  # the SEG and the slices its segments reference


def test_no_sr_unless_asked(kidney_weights: Path, tmp_path: Path) -> None:
    intensities = spec_for(load_model(KIDNEY), "kidney").intensities
    write_phantom_series(tmp_path / "in", intensities, study=StudyInfo.new("NOSR"), seed=4)
    status, report = run_chain(KIDNEY, tmp_path / "in", tmp_path / "out", kidney_weights)
    assert status == 0
    assert not list((tmp_path / "out").rglob("*.sr.dcm"))
    [case] = report["cases"]
    assert set(case["measurements"]["VolumeReport"]["ct"]) == {"Kidney", "Tumor", "Cyst"}
