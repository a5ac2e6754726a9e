"""Synthetic series are valid DICOM and put every voxel value at the physical point the grid says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dcm2niix
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from pydicom.uid import ComprehensiveSRStorage

from aimi.dicom.geometry import SeriesGeometry, series_geometry, sort_by_position
from aimi_testkit.synthetic import (
    Ellipsoid,
    GridSpec,
    StudyInfo,
    corrupt_pixel_data,
    sample_phantom,
    voxel_centres,
    write_localizer,
    write_non_dicom,
    write_series,
    write_sr,
    write_truncated_copy,
)

SIZE = {"rows": 14, "columns": 11, "slices": 7, "pixel_spacing": (1.5, 1.25), "slice_step": 2.5}
CENTRE = (10.0, -20.0, 30.0)
GRIDS = {
    "axial": GridSpec.axial(**SIZE, centre=CENTRE),
    "coronal": GridSpec.coronal(**SIZE, centre=CENTRE),
    "sagittal": GridSpec.sagittal(**SIZE, centre=CENTRE),
    "oblique30x": GridSpec.oblique(30.0, axis="x", **SIZE, centre=CENTRE),
}
Written = tuple[GridSpec, np.ndarray, list[Path]]
CASES = [("axial", False), ("axial", True), ("coronal", False), ("sagittal", True), ("oblique30x", False)]


def random_hu(grid: GridSpec, seed: int = 0) -> np.ndarray:
    """Values with no symmetry, so any flip or permutation of axes shows."""
    return np.random.default_rng(seed).integers(-1024, 2000, (grid.slices, grid.rows, grid.columns)).astype(float)


def read_sorted(paths: list[Path]) -> list[pydicom.Dataset]:
    """Datasets in source frame order, as every consumer reads them."""
    return sort_by_position([pydicom.dcmread(p) for p in paths])


def modality_values(ds: pydicom.Dataset) -> np.ndarray:
    """Stored pixels through the modality LUT: HU for CT."""
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def dciodvfy_errors(path: Path) -> list[str]:
    """Error lines of dciodvfy (warnings are allowed), plus a non-zero exit."""
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in result.stderr.splitlines() if line.startswith("Error")] + (
        [f"exit {result.returncode}"] if result.returncode else [])


def resample_onto(image: sitk.Image, geometry: SeriesGeometry) -> np.ndarray:
    """Nearest-neighbour values of `image` at the grid's voxel centres; -99999 marks points outside it."""
    reference = geometry.reference_image(sitk.sitkFloat64)
    resampled = sitk.Resample(sitk.Cast(image, sitk.sitkFloat64), reference, sitk.Transform(),
                              sitk.sitkNearestNeighbor, -99999.0)
    return sitk.GetArrayFromImage(resampled)


@pytest.fixture(scope="module", params=CASES, ids=[f"{g}-{'desc' if d else 'asc'}" for g, d in CASES])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Written:
    name, descending = request.param
    grid = GRIDS[name]
    volume = random_hu(grid)
    out = tmp_path_factory.mktemp(f"{name}-{descending}")
    paths = write_series(volume, grid, out, descending_files=descending, file_names="random")
    return grid, volume, paths


def test_headers_reproduce_the_grid(written: Written) -> None:
    grid, _, paths = written
    geometry = series_geometry(read_sorted(paths))
    np.testing.assert_allclose(geometry.origin, grid.first_position, atol=1e-6)
    np.testing.assert_allclose(geometry.spacing, (grid.pixel_spacing[1], grid.pixel_spacing[0], grid.slice_step),
                               atol=1e-6)
    assert geometry.size == (grid.columns, grid.rows, grid.slices)
    np.testing.assert_allclose(np.asarray(geometry.direction).reshape(3, 3), grid.axes, atol=1e-6)


def test_pydicom_reads_the_volume_back_in_source_frame_order(written: Written) -> None:
    _, volume, paths = written
    read_back = np.stack([modality_values(ds) for ds in read_sorted(paths)])
    np.testing.assert_array_equal(read_back, volume)


def test_returned_paths_follow_the_volume_slices(written: Written) -> None:
    grid, _, paths = written
    positions = [np.asarray(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient, float) for p in paths]
    np.testing.assert_allclose(positions, voxel_centres(grid)[:, 0, 0], atol=1e-6)


def test_voxel_centres_are_the_physical_points_of_the_read_grid(written: Written) -> None:
    grid, _, paths = written
    reference = series_geometry(read_sorted(paths)).reference_image()
    centres = voxel_centres(grid)
    for k, r, c in [(0, 0, 0), (grid.slices - 1, 3, 5), (2, grid.rows - 1, grid.columns - 1)]:
        np.testing.assert_allclose(centres[k, r, c], reference.TransformIndexToPhysicalPoint((c, r, k)), atol=1e-6)


def test_simpleitk_gdcm_reader_sees_the_same_values_at_the_same_points(written: Written) -> None:
    _, volume, paths = written
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(paths[0].parent)))
    image = reader.Execute()
    np.testing.assert_array_equal(resample_onto(image, series_geometry(read_sorted(paths))), volume)


def test_descending_files_number_instance_one_at_the_last_slice(tmp_path: Path) -> None:
    grid = GRIDS["axial"]
    ascending = write_series(random_hu(grid), grid, tmp_path / "asc")
    descending = write_series(random_hu(grid), grid, tmp_path / "desc", descending_files=True)
    assert [pydicom.dcmread(p).InstanceNumber for p in ascending] == list(range(1, grid.slices + 1))
    assert [pydicom.dcmread(p).InstanceNumber for p in descending] == list(range(grid.slices, 0, -1))


@pytest.mark.parametrize(("modality", "grid_name", "sequence"),
                         [("CT", "axial", "T1"), ("CT", "oblique30x", "T1"), ("MR", "sagittal", "FLAIR"),
                          ("MR", "coronal", "T1C"), ("MR", "axial", "T2")])
def test_every_written_file_passes_dciodvfy(tmp_path: Path, modality: str, grid_name: str, sequence: str) -> None:
    grid = GRIDS[grid_name]
    volume = random_hu(grid) + (1024 if modality == "MR" else 0)
    paths = write_series(volume, grid, tmp_path, modality=modality, mr_sequence=sequence)
    assert {str(p): dciodvfy_errors(p) for p in paths} == {str(p): [] for p in paths}


def test_ct_stores_signed_int16_with_intercept_minus_1024(tmp_path: Path) -> None:
    grid = GridSpec.axial(rows=2, columns=2, slices=2)
    volume = np.array([[[-2000, -1024], [0, 3000]], [[1, 2, ], [3, 4]]], float)
    ds = read_sorted(write_series(volume, grid, tmp_path))[0]
    assert (ds.PixelRepresentation, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1, 1.0, -1024.0)
    np.testing.assert_array_equal(ds.pixel_array, [[-976, 0], [1024, 4024]])


def test_mr_carries_the_acquisition_parameters_of_its_sequence(tmp_path: Path) -> None:
    grid = GRIDS["axial"]
    ds = pydicom.dcmread(write_series(random_hu(grid) + 1024, grid, tmp_path, modality="MR", mr_sequence="FLAIR")[0])
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    assert list(ds.ScanningSequence) == ["SE", "IR"] and float(ds.InversionTime) == 2500.0
    assert ds.PixelRepresentation == 0 and "RescaleIntercept" not in ds


def test_series_shares_study_and_frame_of_reference_but_not_sop_uids(tmp_path: Path) -> None:
    grid, study = GRIDS["axial"], StudyInfo.new("P-7")
    datasets = read_sorted(write_series(random_hu(grid), grid, tmp_path, study=study, file_names="instance"))
    assert {ds.StudyInstanceUID for ds in datasets} == {study.study_uid}
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1 and len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == grid.slices
    identities = {(str(ds.PatientName), ds.PatientID, ds.Manufacturer) for ds in datasets}
    assert identities == {("AIMI^SYNTHETIC", "P-7", "AIMI synthetic")}
    assert all(ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian for ds in datasets)


def test_file_name_modes(tmp_path: Path) -> None:
    grid = GRIDS["axial"]
    by_uid = write_series(random_hu(grid), grid, tmp_path / "uid")
    by_instance = write_series(random_hu(grid), grid, tmp_path / "inst", file_names="instance", descending_files=True)
    by_random = write_series(random_hu(grid), grid, tmp_path / "rand", file_names="random")
    assert all(p.name == f"{pydicom.dcmread(p).SOPInstanceUID}.dcm" for p in by_uid)
    assert [pydicom.dcmread(p).InstanceNumber for p in sorted(by_instance)] == list(range(1, grid.slices + 1))
    assert all(p.suffix == "" for p in by_random)


def test_extra_tags_set_and_delete_attributes(tmp_path: Path) -> None:
    grid = GRIDS["axial"]
    path = write_series(random_hu(grid), grid, tmp_path,
                        extra_tags={"InstitutionName": "Elsewhere", "SliceLocation": None})[0]
    ds = pydicom.dcmread(path)
    assert ds.InstitutionName == "Elsewhere" and "SliceLocation" not in ds
    with pytest.raises(ValueError, match="NotAKeyword"):
        write_series(random_hu(grid), grid, tmp_path / "bad", extra_tags={"NotAKeyword": 1})


def test_write_series_refuses_volumes_it_cannot_store(tmp_path: Path) -> None:
    grid = GRIDS["axial"]
    with pytest.raises(ValueError, match="shape"):
        write_series(np.zeros((grid.rows, grid.columns, grid.slices)), grid, tmp_path)
    with pytest.raises(ValueError, match="storable range"):
        write_series(random_hu(grid) - 2000, grid, tmp_path, modality="MR")


def test_grid_rejects_orientation_that_is_not_orthonormal() -> None:
    with pytest.raises(ValueError, match="ImageOrientationPatient"):
        GridSpec(4, 4, 4, (1.0, 1.0), 1.0, (1, 0, 0, 0.5, 1, 0), (0, 0, 0))


def test_oblique_grid_is_the_axial_grid_rotated_about_x() -> None:
    oblique = GridSpec.oblique(30.0, axis="x")
    normal = oblique.axes[:, 2]
    np.testing.assert_allclose(normal, (0, -0.5, np.sqrt(3) / 2), atol=1e-12)
    np.testing.assert_allclose(voxel_centres(oblique).reshape(-1, 3).mean(axis=0), (0, 0, 0), atol=1e-9)


def test_phantom_later_shapes_overwrite_earlier_ones() -> None:
    grid = GridSpec.axial(rows=21, columns=21, slices=21, slice_step=1.0)
    body = Ellipsoid((0.0, 0.0, 0.0), (9.0, 9.0, 9.0), 40.0, 1)
    organ = Ellipsoid((3.0, 0.0, 0.0), (3.0, 3.0, 3.0), 100.0, 2)
    volume, labels = sample_phantom(grid, [body, organ], -1000.0)
    assert (volume[10, 10, 13], labels[10, 10, 13]) == (100.0, 2)  # centre of the organ at x = +3 mm
    assert (volume[10, 10, 7], labels[10, 10, 7]) == (40.0, 1)
    assert (volume[0, 0, 0], labels[0, 0, 0]) == (-1000.0, 0)


def test_phantom_axes_rotate_the_ellipsoid() -> None:
    grid = GridSpec.axial(rows=21, columns=21, slices=3, slice_step=1.0)
    along_y = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    _, labels = sample_phantom(grid, [Ellipsoid((0.0, 0.0, 0.0), (8.0, 2.0, 2.0), 1.0, 1, axes=along_y)], 0.0)
    assert labels[1, 10 + 7, 10] == 1 and labels[1, 10, 10 + 7] == 0


def test_phantom_noise_is_reproducible_and_leaves_labels_alone() -> None:
    grid, shapes = GRIDS["axial"], [Ellipsoid(CENTRE, (6.0, 6.0, 6.0), 50.0, 1)]
    clean, labels = sample_phantom(grid, shapes, 0.0)
    noisy, noisy_labels = sample_phantom(grid, shapes, 0.0, noise_sd=5.0, rng=np.random.default_rng(3))
    again, _ = sample_phantom(grid, shapes, 0.0, noise_sd=5.0, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(noisy, again)
    np.testing.assert_array_equal(noisy_labels, labels)
    assert 3.0 < float(np.std(noisy - clean)) < 7.0


@pytest.mark.parametrize(("modality", "grid_name"), [("CT", "axial"), ("MR", "sagittal")])
def test_dcm2niix_nifti_has_the_phantom_values_at_the_same_points(tmp_path: Path, modality: str,
                                                                  grid_name: str) -> None:
    grid = GRIDS[grid_name]
    shapes = [Ellipsoid(CENTRE, (7.0, 5.0, 9.0), 300.0, 1), Ellipsoid((13.0, -18.0, 33.0), (3.0, 3.0, 3.0), 600.0, 2)]
    volume, _ = sample_phantom(grid, shapes, 100.0, noise_sd=20.0, rng=np.random.default_rng(1))
    paths = write_series(volume, grid, tmp_path / "dicom", modality=modality, descending_files=True)
    (tmp_path / "nifti").mkdir()
    result = dcm2niix.main(["-z", "n", "-b", "n", "-f", "%s", "-o", str(tmp_path / "nifti"), str(tmp_path / "dicom")],
                           capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    [nifti] = (tmp_path / "nifti").glob("*.nii")
    values = resample_onto(sitk.ReadImage(str(nifti)), series_geometry(read_sorted(paths)))
    np.testing.assert_allclose(values, np.rint(volume), atol=1e-3)


def test_localizer_is_one_series_of_one_slice_per_plane(tmp_path: Path) -> None:
    datasets = [pydicom.dcmread(p) for p in write_localizer(tmp_path, slices=3)]
    assert {tuple(ds.ImageType) for ds in datasets} == {("ORIGINAL", "PRIMARY", "LOCALIZER")}
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert sorted(ds.InstanceNumber for ds in datasets) == [1, 2, 3]
    assert len({tuple(ds.ImageOrientationPatient) for ds in datasets}) == 3


def test_sr_is_a_valid_comprehensive_sr_in_the_study(tmp_path: Path) -> None:
    study = StudyInfo.new()
    path = write_sr(tmp_path, study)
    ds = pydicom.dcmread(path)
    assert (ds.SOPClassUID, ds.Modality, ds.StudyInstanceUID) == (ComprehensiveSRStorage, "SR", study.study_uid)
    assert dciodvfy_errors(path) == []


def test_non_dicom_file_is_not_dicom(tmp_path: Path) -> None:
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(write_non_dicom(tmp_path / "README.txt"))


def test_truncated_copy_keeps_the_header_but_loses_pixels(tmp_path: Path) -> None:
    grid = GridSpec.axial(rows=64, columns=64, slices=2)
    source = write_series(np.zeros((2, 64, 64)), grid, tmp_path / "series")[0]
    truncated = write_truncated_copy(source, tmp_path / "truncated.dcm")
    assert truncated.stat().st_size == source.stat().st_size // 2
    header = pydicom.dcmread(truncated, stop_before_pixels=True)
    assert header.SOPInstanceUID == pydicom.dcmread(source).SOPInstanceUID
    with pytest.raises(ValueError, match="pixel data"):
        _ = pydicom.dcmread(truncated).pixel_array


def test_corrupt_pixel_data_keeps_headers_but_breaks_conversion(tmp_path: Path) -> None:
    grid = GRIDS["axial"]
    paths = write_series(random_hu(grid), grid, tmp_path / "dicom")
    header = pydicom.dcmread(paths[3], stop_before_pixels=True)
    corrupt_pixel_data(paths[3])
    corrupted = pydicom.dcmread(paths[3])
    assert corrupted.SOPInstanceUID == header.SOPInstanceUID and corrupted.Rows == header.Rows
    with pytest.raises(RuntimeError, match="RLE segments"):
        _ = corrupted.pixel_array
    (tmp_path / "nifti").mkdir()
    result = dcm2niix.main(["-z", "n", "-b", "n", "-f", "%s", "-o", str(tmp_path / "nifti"), str(tmp_path / "dicom")],
                           capture_output=True, text=True)
    assert result.returncode != 0 and not list((tmp_path / "nifti").glob("*.nii"))
