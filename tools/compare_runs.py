"""Compare two `aimi run` output folders of the same inputs: SEGs, label maps and run reports, apart from what
must differ between runs (new UIDs, dates and times, software versions, timings).

    python tools/compare_runs.py BEFORE_OUT AFTER_OUT

Used to show that a refactoring left every chain's output unchanged: run the old commit from a temporary git
worktree (PYTHONPATH=<worktree>/base AIMI_MODELS=<worktree>/models) and the new one on the same inputs and the
same weights, on one machine (tiny-model output depends on the CPU's arithmetic). Exit 1 when anything differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

#: Attributes that a new run must change: instance identity, creation times, software versions.
VOLATILE_DICOM = {"SOPInstanceUID", "SeriesInstanceUID", "MediaStorageSOPInstanceUID", "DimensionOrganizationUID",
                  "ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime", "SeriesDate",
                  "SeriesTime", "ContributionDateTime", "SoftwareVersions", "ImplementationVersionName",
                  "ImplementationClassUID"}
VOLATILE_REPORT = {"started", "finished", "versions", "seconds"}


def dicom_differences(a: Dataset, b: Dataset, where: str = "") -> list[str]:
    found = []
    for keyword in sorted({e.keyword for e in a} | {e.keyword for e in b}):
        if not keyword or keyword in VOLATILE_DICOM:
            continue
        left, right = a.get(keyword), b.get(keyword)
        if isinstance(left, Sequence) and isinstance(right, Sequence) and len(left) == len(right):
            for index, (x, y) in enumerate(zip(left, right, strict=True)):
                found += dicom_differences(x, y, f"{where}{keyword}[{index}].")
        elif keyword == "PixelData":
            if not np.array_equal(a.pixel_array, b.pixel_array):
                found.append(f"{where}PixelData: {int((a.pixel_array != b.pixel_array).sum())} pixels differ")
        elif left != right:
            found.append(f"{where}{keyword}: {str(left)[:80]!r} != {str(right)[:80]!r}")
    return found


def image_differences(a: Path, b: Path) -> list[str]:
    x, y = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    found = [f"{name} differs" for name in ("Size", "Origin", "Spacing", "Direction")
             if not np.allclose(getattr(x, f"Get{name}")(), getattr(y, f"Get{name}")())]
    if not found and not np.array_equal(sitk.GetArrayFromImage(x), sitk.GetArrayFromImage(y)):
        found.append(f"{int((sitk.GetArrayFromImage(x) != sitk.GetArrayFromImage(y)).sum())} voxels differ")
    return found


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE_REPORT}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def report_differences(a: Path, b: Path) -> list[str]:
    left, right = stable(json.loads(a.read_text())), stable(json.loads(b.read_text()))
    return [f"{key}: {json.dumps(left.get(key))[:300]} != {json.dumps(right.get(key))[:300]}"
            for key in sorted(set(left) | set(right)) if left.get(key) != right.get(key)]


def compare(before: Path, after: Path) -> dict[str, list[str]]:
    files = {p.relative_to(before) for p in before.rglob("*") if p.is_file() and not p.name.endswith(".log")}
    files |= {p.relative_to(after) for p in after.rglob("*") if p.is_file() and not p.name.endswith(".log")}
    result: dict[str, list[str]] = {}
    for relative in sorted(files):
        a, b = before / relative, after / relative
        if not (a.is_file() and b.is_file()):
            result[str(relative)] = [f"only in {'before' if a.is_file() else 'after'}"]
        elif relative.name.endswith(".seg.dcm"):
            result[str(relative)] = dicom_differences(pydicom.dcmread(a), pydicom.dcmread(b))
        elif relative.name.endswith((".nrrd", ".nii", ".nii.gz")):
            result[str(relative)] = image_differences(a, b)
        elif relative.name == "run-report.json":
            result[str(relative)] = report_differences(a, b)
        else:
            result[str(relative)] = [] if a.read_bytes() == b.read_bytes() else ["bytes differ"]
    return result


def main(argv: list[str]) -> int:
    before, after = Path(argv[0]), Path(argv[1])
    result = compare(before, after)
    for name, found in result.items():
        print(f"{'same' if not found else 'DIFFERS'}  {name}")
        for line in found:
            print(f"         {line}")
    return 1 if any(result.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
