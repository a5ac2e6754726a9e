"""The SEG as OHIF decodes it: @cornerstonejs/adapters (OHIF's DICOM SEG reader) run in node by ohif/decode_seg.mjs.
A SEG that highdicom writes and pydicom reads back can still open wrong, or in the wrong colours, in OHIF: this is
the check that it does not. Needs node and `npm ci --prefix tests/support/ohif` (the Makefile's setup)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

OHIF = Path(__file__).resolve().parent / "ohif"
DECODE_SEG = OHIF / "decode_seg.mjs"
SETUP = "npm ci --prefix tests/support/ohif --ignore-scripts --no-audit --no-fund"


def _node() -> str:
    """node, and the adapter installed beside the script; fail (not skip) without them, so a missing setup is seen."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the OHIF SEG reader check needs Node.js (>= 20)")
    if not (OHIF / "node_modules" / "@cornerstonejs" / "adapters").is_dir():
        pytest.fail(f"{OHIF / 'node_modules'} is missing: run `{SETUP}` from the repository root")
    return node


def _runs_to_mask(runs: list[int], size: int) -> np.ndarray:
    """[start, length, ...] runs of row-major pixel indices -> a flat boolean mask."""
    mask = np.zeros(size, bool)
    for start, length in zip(runs[::2], runs[1::2], strict=True):
        mask[start : start + length] = True
    return mask


def ohif_decode(seg_path: Path, source_files: list[Path], work: Path) -> dict:
    """The raw JSON that decode_seg.mjs writes for `seg_path` over `source_files` (linked into `work`/source, so
    the node script reads exactly these files)."""
    node = _node()
    source = work.resolve() / "source"
    if source.is_dir():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    for k, path in enumerate(source_files):
        (source / f"{k:05d}.dcm").symlink_to(Path(path).resolve())
    out = source.parent / "ohif.json"
    done = subprocess.run([node, str(DECODE_SEG), str(Path(seg_path).resolve()), str(source), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=OHIF)
    output = done.stdout[-2000:] + done.stderr[-4000:]
    assert done.returncode == 0, f"OHIF's SEG reader cannot read {seg_path} (node {DECODE_SEG.name}):\n{output}"
    return json.loads(out.read_text())


def ohif_labels(seg_path: Path, source_files: list[Path], values: dict[str, int],
                work: Path) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    """The label map OHIF decodes from `seg_path`, shaped (slices in the order of `source_files`, rows, columns), with
    each segment (by SegmentLabel) given its value in `values`; and the RGB colour OHIF shows per value (from
    RecommendedDisplayCIELabValue; a segment without one gets OHIF's default colour and is left out here)."""
    decoded = ohif_decode(seg_path, source_files, work)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in source_files]
    slice_of = {str(ds.SOPInstanceUID): k for k, ds in enumerate(headers)}
    assert sorted(decoded["sources"]) == sorted(slice_of), "node read other source instances than the files given"
    rows, cols = int(headers[0].Rows), int(headers[0].Columns)
    labels = np.zeros((len(headers), rows * cols), np.uint16)
    colours: dict[int, tuple[int, int, int]] = {}
    unknown = set(decoded["voxels"]) - set(decoded["segments"])
    assert not unknown, f"OHIF decoded voxels of segment numbers {sorted(unknown)} that the SEG does not describe"
    for number, segment in decoded["segments"].items():
        assert segment["label"] in values, f"segment {number} {segment['label']!r} is not one of {sorted(values)}"
        value = values[segment["label"]]
        if segment["rgb"] is not None:
            colours[value] = tuple(segment["rgb"])
        for sop, runs in decoded["voxels"].get(number, {}).items():
            assert sop in slice_of, f"OHIF put segment {number} on {sop}, which is not one of the source files"
            labels[slice_of[sop], _runs_to_mask(runs, rows * cols)] = value
    return labels.reshape(len(headers), rows, cols), colours


def ends_in_padding(seg_path: Path) -> bool:
    """Whether a BINARY SEG's bit-packed frames fill an odd number of bytes, so that its PixelData ends in the
    padding byte PS3.5 8.1.1 requires: OHIF's reader (@cornerstonejs/adapters 5.14) refuses those. The writer adds
    an empty frame to avoid it; only a SEG that already has every frame (each segment on each slice) keeps it."""
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    return ((int(seg.NumberOfFrames) * int(seg.Rows) * int(seg.Columns) + 7) // 8) % 2 == 1
