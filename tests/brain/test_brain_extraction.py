"""Brain extraction (deepbet) and the pre-processing on real data: Colin27 against its reference brain, orientation
independence, and a real sagittal T1 DICOM series through N4, brain extraction and atlas registration."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from aimi.brain import atlas_registration, bias_field_corrector, brain_extractor
from aimi.brain.atlas_registration import AtlasRegistration
from aimi.brain.bias_field_corrector import BiasFieldCorrector
from aimi.brain.brain_extractor import BrainExtractor
from aimi.core.case import Case, DicomSeries
from aimi.dicom.geometry import series_geometry, sort_by_position
from aimi.io import nifti_converter
from aimi.io.nifti_converter import NiftiConverter
from aimi.labelmaps import dice
from tests.brain.studies import TEMPLATES, context, read

SAGITTAL_T1 = "mr-head-t1-sag-dcmqa-dicom"


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> BrainExtractor:
    """One deepbet load for the whole module, on the CPU."""
    return BrainExtractor(brain_extractor.Settings(), context(tmp_path_factory.mktemp("bet")))


@pytest.fixture(scope="module")
def ch2_mask(shared_data: Path, extractor: BrainExtractor) -> sitk.Image:
    ch2 = read(shared_data / TEMPLATES / "ch2.nii.gz")
    case = Case("ch2", {}, artifacts={"images": {"t1c": ch2}})
    started = time.perf_counter()
    extractor(case)
    print(f"deepbet on ch2 (181x217x181, CPU): {time.perf_counter() - started:.1f} s")
    return case.artifacts["brain_mask"]


def test_ch2_brain_mask_matches_ch2bet(shared_data: Path, ch2_mask: sitk.Image) -> None:
    reference = read(shared_data / TEMPLATES / "ch2bet.nii.gz", sitk.sitkUInt8) > 0
    overlap = dice(ch2_mask, reference)
    print(f"ch2 brain mask vs ch2bet > 0: Dice {overlap:.3f}")
    assert overlap >= 0.9


def test_mask_follows_the_head_whatever_the_voxel_order(
    shared_data: Path, extractor: BrainExtractor, ch2_mask: sitk.Image
) -> None:
    """ch2 stored in sagittal voxel order (anterior, superior, left axes) gives the same mask in physical space."""
    ch2 = read(shared_data / TEMPLATES / "ch2.nii.gz")
    sagittal = sitk.DICOMOrient(ch2, "ASL")
    assert sagittal.GetDirection() != ch2.GetDirection()
    mask = extractor.extract(sagittal)
    back = sitk.Resample(mask, ch2_mask, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkNearestNeighbor)
    overlap = dice(back, ch2_mask)
    print(f"ch2 axial vs sagittal voxel order: mask Dice {overlap:.4f}")
    assert overlap > 0.99


def sagittal_series(folder: Path) -> DicomSeries:
    headers = sort_by_position([pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))])
    files = tuple(Path(h.filename) for h in headers)
    first = headers[0]
    return DicomSeries(
        str(first.StudyInstanceUID),
        str(first.SeriesInstanceUID),
        "MR",
        str(first.get("SeriesDescription", "")),
        files,
        tuple(headers),
        series_geometry(headers),
    )


def test_real_sagittal_t1_through_n4_brain_extraction_and_atlas(
    shared_data: Path, extractor: BrainExtractor, tmp_path: Path
) -> None:
    """35 sagittal slices 4.8 mm apart: the brain is found inside the head, of adult size, and lands on MNI152."""
    series = sagittal_series(shared_data / SAGITTAL_T1)
    ctx = context(tmp_path)
    case = Case("sagittal-t1", {"t1c": series})
    NiftiConverter(nifti_converter.Settings(), ctx)(case)
    acquired = case.artifacts["images"]["t1c"]
    BiasFieldCorrector(bias_field_corrector.Settings(), ctx)(case)
    corrected = case.artifacts["images"]["t1c"]
    assert corrected.GetSize() == acquired.GetSize() and np.allclose(corrected.GetOrigin(), acquired.GetOrigin())
    a, b = (sitk.GetArrayFromImage(i) for i in (acquired, corrected))
    assert np.isfinite(b).all() and b.min() >= 0 and not np.allclose(a, b)

    extractor(case)
    mask = case.artifacts["brain_mask"]
    brain_ml = case.artifacts["measurements"]["BrainExtractor"]["brain_ml"]
    head = sitk.BinaryFillhole(sitk.OtsuThreshold(corrected, 0, 1, 200))
    inside = float((sitk.GetArrayViewFromImage(head)[sitk.GetArrayViewFromImage(mask) > 0] > 0).mean())
    print(f"sagittal T1: brain {brain_ml:.0f} ml, {inside:.3f} of it inside the head")
    assert 900 < brain_ml < 2000
    assert inside > 0.95

    settings = atlas_registration.Settings(spacing_mm=2.0, shrink_factors=[4, 2], smoothing_mm=[2.0, 1.0])
    AtlasRegistration(settings, ctx)(case)
    measured = case.artifacts["measurements"]["AtlasRegistration"]
    print(f"sagittal T1 -> MNI152: brain-mask Dice {measured['mask_dice']:.3f}, scale {measured['scale']:.3f}")
    assert measured["mask_dice"] > 0.8
    assert 0.8 < measured["scale"] < 1.25
