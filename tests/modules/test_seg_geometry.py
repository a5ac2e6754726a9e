"""Geometry round trip: a label map defined in physical space goes DICOM -> dcm2niix grid -> SEG and comes back
voxel-exact on the source grid, for every orientation and slice order a scanner produces."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from aimi.core.case import Case
from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import load_workflow
from aimi.dicom.resample import on_source_grid
from aimi.errors import CaseError
from aimi.io.data_organizer import DataOrganizer
from aimi.io.dicom_importer import DicomImporter
from aimi.io.dseg_converter import DsegConverter
from aimi.io.nifti_converter import NiftiConverter
from aimi.models import load_model
from aimi.registry import registry
from aimi.seg.writer import write_dataset_atomically
from aimi_testkit.seg_reader import read_seg_masks
from aimi_testkit.synthetic import Ellipsoid, GridSpec, sample_phantom, write_series
from tests.support.oslimits import file_size_limit
from tests.support.validators import dciodvfy_errors

# Asymmetric shapes: any flip, transposition or slice-order error moves at least one of them.
SHAPES = [
    Ellipsoid((9.0, -5.0, 3.0), (8.0, 5.0, 7.0), 150.0, 1),
    Ellipsoid((-7.0, 4.0, -4.0), (4.0, 4.0, 4.0), 60.0, 2),
    Ellipsoid((1.0, 8.0, 7.0), (3.0, 5.0, 3.0), 0.0, 3),
]
SIZE = {"rows": 40, "columns": 36, "slices": 18, "pixel_spacing": (1.1, 0.9), "slice_step": 1.7}
GRIDS = {
    "axial": (GridSpec.axial(**SIZE), False),
    "axial-descending-files": (GridSpec.axial(**SIZE), True),
    "axial-prone": (GridSpec.centred((-1, 0, 0), (0, -1, 0), centre=(0, 0, 0), **SIZE), False),
    "axial-decubitus": (GridSpec.centred((0, -1, 0), (1, 0, 0), centre=(0, 0, 0), **SIZE), True),
    "coronal": (GridSpec.coronal(**SIZE), False),
    "sagittal": (GridSpec.sagittal(**SIZE), True),
    "oblique-30-about-x": (GridSpec.oblique(30.0, axis="x", **SIZE), False),
    "oblique-20-about-y": (GridSpec.oblique(20.0, axis="y", **SIZE), True),
}
KIDNEY = load_model("bamf_nnunet_ct_kidney")


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The kidney workflow's own settings, with selection opened to any CT orientation."""
    chain = load_workflow(KIDNEY.workflow_path("default"), registry())
    settings = {step.label: step.settings for step in chain.steps}
    context = RunContext(KIDNEY.name, KIDNEY.path, KIDNEY.manifest, tmp_path_factory.mktemp("w"),
                         tmp_path_factory.mktemp("out"), RunOptions())
    importer = DicomImporter(type(settings["DicomImporter"])(roles={"ct": [{"attribute": "Modality", "in": ["CT"]}]}),
                             context)
    return {"import": importer, "convert": NiftiConverter(settings["NiftiConverter"], context),
            "seg": DsegConverter(settings["DsegConverter"], context),
            "organize": DataOrganizer(settings["DataOrganizer"], context)}


def labels_at_voxel_centres(image: sitk.Image) -> sitk.Image:
    """The phantom's labels sampled at `image`'s own voxel centres (physical space, no resampling)."""
    size = image.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in reversed(size)], indexing="ij"), axis=-1)[..., ::-1]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    points = np.asarray(image.GetOrigin()) + (index * np.asarray(image.GetSpacing())) @ direction.T
    labels = np.zeros(points.shape[:3], np.uint8)
    for shape in SHAPES:
        labels[shape.contains(points.reshape(-1, 3)).reshape(points.shape[:3])] = shape.label
    result = sitk.GetImageFromArray(labels)
    result.CopyInformation(image)
    return result


@pytest.mark.parametrize("name", list(GRIDS))
def test_seg_from_converted_grid_equals_phantom_on_source_grid(name: str, modules, tmp_path: Path):
    grid, descending = GRIDS[name]
    volume, expected = sample_phantom(grid, SHAPES, -100.0)
    write_series(volume, grid, tmp_path / "dicom", descending_files=descending, file_names="random")
    discovery = modules["import"].discover(tmp_path / "dicom")
    [case] = discovery.cases
    modules["convert"](case)
    image = case.artifacts["images"]["ct"]
    case.artifacts["main"] = labels_at_voxel_centres(image)
    modules["seg"](case)

    seg_path = tmp_path / "out.seg.dcm"
    write_dataset_atomically(case.artifacts["segs"]["ct"], seg_path)
    assert dciodvfy_errors(seg_path) == []
    masks = read_seg_masks(seg_path, case.series["ct"].sop_instance_uids)
    decoded = np.zeros_like(expected)
    for value, segment in ((1, "Kidney"), (2, "Tumor"), (3, "Cyst")):
        decoded[masks[segment]] = value
    assert (expected > 0).sum() > 500
    np.testing.assert_array_equal(decoded, expected)


def test_converted_image_keeps_dicom_values_at_the_same_points(modules, tmp_path: Path):
    grid, _ = GRIDS["oblique-30-about-x"]
    volume, _ = sample_phantom(grid, SHAPES, -100.0, noise_sd=20.0, rng=np.random.default_rng(1))
    write_series(volume, grid, tmp_path / "dicom")
    [case] = modules["import"].discover(tmp_path / "dicom").cases
    modules["convert"](case)
    reference = case.series["ct"].geometry.reference_image(sitk.sitkFloat32)
    image = case.artifacts["images"]["ct"]
    on_source = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, -5000.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(on_source), np.round(volume), atol=0.5)


def test_seg_frames_reference_source_slices_in_position_order(modules, tmp_path: Path):
    grid, _ = GRIDS["axial-descending-files"]
    volume, _ = sample_phantom(grid, SHAPES, -100.0)
    files = write_series(volume, grid, tmp_path / "dicom", descending_files=True)
    [case] = modules["import"].discover(tmp_path / "dicom").cases
    modules["convert"](case)
    case.artifacts["main"] = labels_at_voxel_centres(case.artifacts["images"]["ct"])
    modules["seg"](case)
    seg = case.artifacts["segs"]["ct"]
    series = case.series["ct"]
    assert [Path(p).name for p in series.files] == [p.name for p in files]  # ascending position, not file order
    referenced = {
        item.ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for item in derivation.SourceImageSequence
    }
    assert referenced <= set(series.sop_instance_uids)
    positions = [tuple(float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient)
                 for f in seg.PerFrameFunctionalGroupsSequence]
    source_positions = {tuple(float(v) for v in h.ImagePositionPatient) for h in series.headers}
    assert set(positions) <= source_positions




def test_label_map_on_the_source_points_in_any_axis_order_is_rearranged_exactly(modules, tmp_path: Path):
    """Permuted or flipped axes over the same voxel centres (what dcm2niix does) skip resampling: the result must
    equal nearest-neighbour resampling for every axis order and direction; a grid off those points still resamples."""
    grid, _ = GRIDS["oblique-30-about-x"]
    volume, expected = sample_phantom(grid, SHAPES, -100.0)
    write_series(volume, grid, tmp_path / "dicom")
    [case] = modules["import"].discover(tmp_path / "dicom").cases
    series = case.series["ct"]
    on_source = sitk.GetImageFromArray(expected)
    on_source.CopyInformation(series.geometry.reference_image())
    reference = series.geometry.reference_image()
    variants = [sitk.Flip(sitk.PermuteAxes(on_source, list(order)), list(flips))
                for order in itertools.permutations(range(3)) for flips in itertools.product((False, True), repeat=3)]
    for labelmap in variants:
        np.testing.assert_array_equal(on_source_grid(labelmap, series.geometry), expected)
    shifted = sitk.Image(on_source)
    shifted.SetOrigin(tuple(np.asarray(on_source.GetOrigin()) + 0.3))
    resampled = sitk.Resample(shifted, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    assert (expected > 0).sum() > 500 and len(variants) == 48
    np.testing.assert_array_equal(on_source_grid(shifted, series.geometry), sitk.GetArrayFromImage(resampled))


def segmented_case(modules: dict[str, Any], tmp_path: Path, provenance: dict | None = None) -> Case:
    """An axial phantom series imported, converted, labelled at its voxel centres and encoded as a SEG (of weights
    with `provenance`, when given)."""
    grid, _ = GRIDS["axial"]
    volume, _ = sample_phantom(grid, SHAPES, -100.0)
    write_series(volume, grid, tmp_path / "dicom")
    [case] = modules["import"].discover(tmp_path / "dicom").cases
    modules["convert"](case)
    case.artifacts["main"] = labels_at_voxel_centres(case.artifacts["images"]["ct"])
    if provenance:
        case.artifacts["provenance"] = provenance
    modules["seg"](case)
    return case


def test_organizer_writes_the_seg_of_a_case_whose_label_map_has_another_name(modules, tmp_path: Path):
    """No label map named `main` (a chain that names its result otherwise): the SEG is all DataOrganizer needs
    unless a label map file or QC overlay is asked for."""
    case = segmented_case(modules, tmp_path)
    case.artifacts["fused"] = case.artifacts.pop("main")
    modules["organize"](case)
    [written] = case.artifacts["files"]
    assert written.name == f"{KIDNEY.name}.seg.dcm" and written.parent.name == case.id
    assert dciodvfy_errors(written) == []


def test_a_write_that_fails_fails_the_case_naming_the_file_and_leaves_nothing(modules, tmp_path: Path):
    """A full disk (writes past 8 KiB fail) and a folder the pattern needs that is a file: the case fails with one
    line naming the file; no temporary, no partial SEG, no empty case folder is left."""
    case = segmented_case(modules, tmp_path)
    organizer = modules["organize"]
    out = organizer.context.output_dir
    before = sorted(out.rglob("*"))
    with pytest.raises(CaseError, match=rf"cannot write {case.id}/{KIDNEY.name}\.seg\.dcm: File too large"), \
            file_size_limit(8192):
        organizer(case)
    assert sorted(out.rglob("*")) == before
    (out / case.id).write_text("a file where the case folder goes")
    with pytest.raises(CaseError, match=rf"cannot write {case.id}/{KIDNEY.name}\.seg\.dcm: "):
        organizer(case)
    (out / case.id).unlink()
    assert sorted(out.rglob("*")) == before


def test_seg_names_the_record_file_digests_and_converter_of_every_fused_model(modules, tmp_path: Path):
    """What a reviewer checks against Zenodo, for two fused models (as breast), one of them converted from v1."""
    a = {"file": "Dataset009_Breast.zip", "url": "https://zenodo.org/records/11998679/files/Dataset009_Breast.zip",
         "record": "11998679", "md5": "a" * 32, "sha256": "b" * 64, "converter": ""}
    b = {"file": "Task779_Kidney.zip", "url": "https://zenodo.org/records/8277846/files/Task779_Kidney.zip",
         "record": "8277846", "md5": "c" * 32, "sha256": "d" * 64, "converter": "nnU-Net v1 to v2 by aimi 0.1.0"}
    case = segmented_case(modules, tmp_path, {"tumor": b, "breast_fgt": a})
    seg_path = tmp_path / "out.seg.dcm"
    write_dataset_atomically(case.artifacts["segs"]["ct"], seg_path)

    assert dciodvfy_errors(seg_path) == []
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    [algorithm] = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence
    assert algorithm.AlgorithmSource == "Zenodo record 11998679 + 8277846"
    assert algorithm.AlgorithmVersion == "1.0.0 Dataset009_Breast.zip + Task779_Kidney.zip"
    parameters = dict(item.split("=", 1) for item in algorithm.AlgorithmParameters.split(","))
    assert {key: value for key, value in parameters.items() if key.startswith("tumor_")} == {
        f"tumor_{key}": value for key, value in b.items() if value}
    assert parameters["breast_fgt_md5"] == "a" * 32 and "breast_fgt_converter" not in parameters
    assert seg.ContentDescription == f"md5 {'a' * 27} md5 {'c' * 27}"  # LO: 64 characters for both
