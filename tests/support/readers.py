"""The SEG as the viewers' own readers decode it: dcmqi's segimage2itkimage (3D Slicer's DICOM SEG reader, PyPI
dcmqi). A SEG that highdicom writes and pydicom reads back can still open wrong in Slicer: this is the check that it
does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SEGIMAGE2ITKIMAGE = Path(sys.executable).parent / "segimage2itkimage"


def dcmqi_labels(seg_path: Path, reference: sitk.Image, values: dict[str, int],
                 work: Path) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    """The label map dcmqi decodes from `seg_path`, on `reference`'s grid (nearest neighbour in physical space),
    with each segment (by SegmentLabel) given its value in `values`; and the display colour dcmqi reads per value."""
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(SEGIMAGE2ITKIMAGE), "--inputDICOM", str(seg_path), "--outputDirectory", str(work),
                           "--outputType", "nrrd", "--prefix", "seg"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"dcmqi cannot read {seg_path}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    groups = json.loads((work / "seg-meta.json").read_text())["segmentAttributes"]
    labels = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint16)
    colours: dict[int, tuple[int, int, int]] = {}
    for index, group in enumerate(groups, start=1):
        image = sitk.ReadImage(str(work / f"seg-{index}.nrrd"))
        on_reference = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(),
                                                             sitk.sitkNearestNeighbor, 0, image.GetPixelID()))
        for segment in group:
            value = values[segment["SegmentLabel"]]
            labels[on_reference == segment["labelID"]] = value
            colours[value] = tuple(segment["recommendedDisplayRGBValue"])
    return labels, colours
