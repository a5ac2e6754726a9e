"""Stage 1: DICOM -> model input for the large CT.

Incumbent: `plastimatch convert` to `.nii.gz` (MHub's default NiftiConverter engine), or `dcm2niix -z y` (its
other engine) with `--incumbent-converter dcm2niix`; MHub's sort step before it is not timed, which favours it.
Project: the DicomImporter scan (headers, once) plus NiftiConverter (dcm2niix uncompressed, read into memory,
geometry checked), in-process as in `aimi run`; Python imports are paid once per run and are not counted.
Check: the two volumes hold the same value at every voxel centre (sampled in physical space, so the row flip
of dcm2niix does not matter).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bench.chain import discover_one, modules, series_of
from bench.common import Row, StageResult, interleaved, median, run_tool, timed, tool
from bench.data import Inputs

CONVERTERS = ("plastimatch", "dcm2niix")
OUTSIDE = -32768.0  # the value a voxel centre of one grid gets when it lies outside the other grid


def incumbent_command(converter: str, source: Path, target_dir: Path,
                      stem: str = "image") -> tuple[list[str | Path], Path]:
    """The command and the `.nii.gz` it writes: what MHub's NiftiConverter runs for each engine."""
    target = target_dir / f"{stem}.nii.gz"
    if converter == "plastimatch":
        return [tool("plastimatch"), "convert", "--input", source, "--output-img", target], target
    target_dir.mkdir(parents=True, exist_ok=True)
    return [tool("dcm2niix"), "-z", "y", "-b", "n", "-f", stem, "-o", target_dir, source], target


def run(inputs: Inputs, rounds: int, env: dict[str, str], converter: str) -> StageResult:
    shape = "x".join(str(n) for n in reversed(inputs.large_labels.shape))
    with tempfile.TemporaryDirectory(prefix="aimi-bench-convert-") as work:
        steps = modules(inputs, Path(work), ("DicomImporter", "NiftiConverter"))

        def incumbent(index: int) -> tuple[float, Path]:
            command, target = incumbent_command(converter, inputs.large_ct, Path(work, f"incumbent-{index}"))
            return run_tool(command, env), target

        def project(index: int) -> tuple[float, float, sitk.Image]:
            scan, case = timed(lambda: discover_one(steps["DicomImporter"], inputs.large_ct))
            convert, image = timed(lambda: steps["NiftiConverter"].convert(series_of(case)))  # type: ignore[attr-defined]
            return scan, convert, image

        a, b = interleaved(rounds, incumbent, project)
        mismatches = _mismatching_voxels(sitk.ReadImage(str(a[-1][1]), sitk.sitkFloat32), b[-1][2])
    label = f"{converter} .nii.gz" if converter == "plastimatch" else "dcm2niix -z y"
    return StageResult(
        "conversion",
        [Row(f"1. DICOM -> model input, {shape} CT ({label} vs scan + NiftiConverter)",
             median([t for t, _ in a]), median([scan + convert for scan, convert, _ in b]), target=">= 20x")],
        equal=mismatches == 0,
        check=f"volumes at the same voxel centres: {mismatches} voxels differ",
        notes=[f"project split (medians): DicomImporter scan {median([s for s, _, _ in b]):.2f} s, NiftiConverter "
               f"(dcm2niix uncompressed + read + geometry check) {median([c for _, c, _ in b]):.2f} s"],
    )


def _mismatching_voxels(incumbent: sitk.Image, project: sitk.Image) -> int:
    """Voxels of the project's volume whose value differs from the incumbent's at the same physical point."""
    on_grid = sitk.Resample(incumbent, project, sitk.Transform(), sitk.sitkNearestNeighbor, OUTSIDE, sitk.sitkFloat32)
    return int(np.count_nonzero(sitk.GetArrayViewFromImage(on_grid) != sitk.GetArrayViewFromImage(project)))
