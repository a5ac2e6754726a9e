"""Helpers for end-to-end chain tests: run `aimi run` in-process and decode what it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from highdicom.color import CIELabColor

from aimi.cli import main
from aimi.core.workflow import load_workflow
from aimi.io.dseg_converter import DsegConverter
from aimi.models import load_model
from aimi.registry import registry
from aimi.seg.segments import SegmentSpec
from aimi_testkit.seg_reader import read_seg_masks
from aimi_testkit.synthetic import StudyInfo, grid_from_image, write_series
from aimi_testkit.synthetic_brain import BrainStudy
from tests.support.ohif_reader import ends_in_padding, ohif_labels
from tests.support.readers import dcmqi_labels

#: The brain chain's atlas grid in the tests (mm): coarse, for CPU time.
BRAIN_ATLAS_SPACING_MM = 2.0
#: A 2 mm atlas grid and registrations stopped at half resolution: the same Dice, a third of the run time.
BRAIN_FAST = ("--set", f"AtlasRegistration.spacing_mm={BRAIN_ATLAS_SPACING_MM:g}",
              "--set", "RigidRegistration.shrink_factors=[4,2]", "--set", "RigidRegistration.smoothing_mm=[2.0,1.0]",
              "--set", "AtlasRegistration.shrink_factors=[4,2]", "--set", "AtlasRegistration.smoothing_mm=[2.0,1.0]")


class BrainRun(NamedTuple):
    """The brain chain once over a four-contrast study on a real head: what was written, and what the chain did."""

    study: BrainStudy
    status: int
    report: dict[str, Any]
    out: Path


def run_chain(model: str, input_dir: Path, output_dir: Path, weights: Path, *extra: str) -> tuple[int, dict]:
    """`aimi run` without TTA (8x cheaper on CPU), exporting the label map beside each SEG."""
    status = main(["run", model, "-i", str(input_dir), "-o", str(output_dir), "--weights", str(weights),
                   "--no-tta", "--set", "DataOrganizer.labelmap_format=nrrd", *extra])
    return status, json.loads((output_dir / "run-report.json").read_text())


def real_ct_as_dicom(nifti: Path, out: Path, crop: tuple[slice, slice, slice] | None = None) -> list[Path]:
    """A real NIfTI CT written as a DICOM series (optionally a crop of it), geometry kept."""
    image = sitk.ReadImage(str(nifti))
    if crop:
        image = image[crop]
    grid, volume = grid_from_image(image)
    return write_series(volume, grid, out, study=StudyInfo.new("REAL"), series_description="real CT")


def sorted_by_position(files: list[Path]) -> list[Path]:
    def position(path: Path) -> float:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        iop = np.asarray(ds.ImageOrientationPatient, float)
        return float(np.dot(np.cross(iop[:3], iop[3:]), np.asarray(ds.ImagePositionPatient, float)))
    return sorted(files, key=position)


def decoded_labels(seg_path: Path, source_files: list[Path], segments: dict[int, str]) -> np.ndarray:
    """The SEG's segments (label value -> SegmentLabel) as one label map, frames in source position order."""
    ordered = sorted_by_position(source_files)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in ordered]
    masks = read_seg_masks(seg_path, uids)
    rows, columns = next(iter(masks.values())).shape[1:]
    labels = np.zeros((len(uids), rows, columns), np.uint8)
    for value, name in segments.items():
        labels[masks[name]] = value
    return labels


def exported_image(seg_path: Path) -> sitk.Image:
    """The label map the chain exported beside `seg_path`, on the source grid."""
    return sitk.ReadImage(str(seg_path.with_name(seg_path.name.replace(".seg.dcm", ".labels.nrrd"))))


def exported_labels(seg_path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(exported_image(seg_path))


def assert_viewers_read_it(seg_path: Path, model: str, source_files: list[Path], work: Path) -> None:
    """3D Slicer's reader (dcmqi) and OHIF's (@cornerstonejs/adapters) decode the SEG into the chain's label map on
    the source grid (`source_files` in the exported label map's slice order), voxel for voxel, in the table's
    colours."""
    segments = segment_table(model)
    values, table = {s.name: s.label for s in segments}, {s.label: s.rgb for s in segments}
    expected = exported_labels(seg_path)
    present = {int(v) for v in np.unique(expected)} - {0}
    decoded = {"dcmqi (3D Slicer)": dcmqi_labels(seg_path, exported_image(seg_path), values, work / "dcmqi")}
    if ends_in_padding(seg_path):  # every frame present and still an odd byte count: OHIF 5.14's known refusal
        with pytest.raises(AssertionError, match="Unexpected 1-bit SEG PixelData length"):
            ohif_labels(seg_path, source_files, values, work / "ohif")
    else:
        decoded["@cornerstonejs/adapters (OHIF)"] = ohif_labels(seg_path, source_files, values, work / "ohif")
    for reader, (labels, colours) in decoded.items():
        np.testing.assert_array_equal(labels, expected, err_msg=reader)
        assert present <= set(colours) and colours == {v: table[v] for v in colours}, (reader, colours, table)


def segment_colours(seg_path: Path) -> dict[int, tuple[int, int, int]]:
    """Segment number -> the RGB its RecommendedDisplayCIELabValue stands for, as a viewer reads it back."""
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    return {int(s.SegmentNumber): tuple(CIELabColor.from_dicom_value(s.RecommendedDisplayCIELabValue).to_rgb())
            for s in seg.SegmentSequence}


def segment_table(model: str) -> list[SegmentSpec]:
    """The segment table of the model's default workflow (its DsegConverter)."""
    chain = load_workflow(load_model(model).workflow_path("default"), registry())
    [settings] = [step.settings for step in chain.steps if step.module is DsegConverter]
    return settings.parsed_segments


def table_colours(model: str) -> dict[int, tuple[int, int, int] | None]:
    """Segment number -> the RGB of the model's segment table."""
    return {number: spec.rgb for number, spec in enumerate(segment_table(model), start=1)}


def segment_codes(seg_path: Path) -> dict[int, tuple[str, str, str]]:
    """Segment number -> (SegmentLabel, property type code, category code), as written."""
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    return {int(s.SegmentNumber): (s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
                                   s.SegmentedPropertyCategoryCodeSequence[0].CodeValue)
            for s in seg.SegmentSequence}
