"""The benchmark's inputs, built once into a cache folder outside the repository and reused by later runs.

The tiny kidney model (`aimi testmodel`: a real nnU-Net v2 folder, fitted in minutes on 2 cores) is the network of
both sides; the large CT and the small series are the synthetic kidney phantom written as classic CT DICOM.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import yaml
from pydicom.uid import generate_uid

from aimi.models import ModelFolder, load_model
from aimi.weights import model_folder
from aimi_testkit.phantoms import demo_grid, write_phantom_series
from aimi_testkit.synthetic import GridSpec, StudyInfo
from aimi_testkit.testmodel_cli import build_for_model, spec_for

MODEL = "bamf_nnunet_ct_kidney"
WEIGHTS_ID = "kidney"
#: A typical abdominal CT: 0.8 mm pixels (410 mm field of view), 1 mm slices.
LARGE_PIXEL_MM, LARGE_SLICE_MM = 0.8, 1.0
#: One 32^3 patch of the tiny model (2 mm pixels, 3 mm slices), 20 slices (the CT selection rule's minimum).
SMALL_GRID = {"rows": 32, "columns": 32, "slices": 20}
FIRST_SET = "a"  # the small series of the fixed-cost stage; the end-to-end stage reads the parent (a/ and b/)
#: The peer stage's series: 160x160x60 at a CT's own resolution (0.8 mm pixels, 1 mm slices), so that the CPU
#: work (reading, conversion, resampling to and from the tiny model's 2x2x3 mm grid, SEG) weighs as it does next to
#: a real network on a GPU, while the tiny network on a CPU stays cheap (a 64x64x20 grid: 9 patches).
PEER_GRID = {"rows": 160, "columns": 160, "slices": 60, "pixel_spacing": (0.8, 0.8), "slice_step": 1.0}
COMPLETE = ".complete"


@dataclass(frozen=True)
class SmallSeries:
    folder: Path
    series_uid: str

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class Inputs:
    model: ModelFolder
    weights: Path
    model_folder: Path
    large_ct: Path
    large_labels: np.ndarray  # the phantom's true labels, (slices, rows, columns) in source frame order
    small_root: Path
    small: list[SmallSeries]
    workflow: Path
    peer_root: Path  # one folder per series (the peer stage)
    large_copies: Path  # the large CT several times, each copy its own study and series (the overlap row)

    @property
    def small_first(self) -> Path:
        return self.small_root / FIRST_SET


def prepare(cache: Path, *, large_shape: tuple[int, int, int], n_small: int, n_first: int, n_peer: int = 10,
            n_large: int = 6) -> Inputs:
    """Everything both sides read; each part is rebuilt only when its folder is missing or was left incomplete."""
    model = load_model(MODEL)
    weights = _once(cache / "weights", lambda d: build_for_model(model, d))
    rows, columns, slices = large_shape
    large = _once(cache / f"ct-{rows}x{columns}x{slices}", lambda d: _write_large_ct(d, model, large_shape))
    small_root = _once(cache / f"small-{n_small}-{n_first}", lambda d: _write_small(d, model, n_small, n_first))
    peer_root = _once(cache / f"peer-{n_peer}", lambda d: _write_peer(d, model, n_peer))
    copies = _once(cache / f"ct-{rows}x{columns}x{slices}-x{n_large}", lambda d: _copy_series(large / "dicom", d,
                                                                                               n_large))
    return Inputs(
        model=model,
        weights=weights,
        model_folder=model_folder(weights, model.manifest, model.manifest.entry(WEIGHTS_ID)),
        large_ct=large / "dicom",
        large_labels=np.load(large / "labels.npy"),
        small_root=small_root,
        small=[SmallSeries(p, series_uid(p)) for p in sorted(small_root.glob("*/s*"))],
        workflow=raw_workflow(model, cache),
        peer_root=peer_root,
        large_copies=copies,
    )


def _once(folder: Path, build: object) -> Path:
    if not (folder / COMPLETE).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"  building {folder.name} in {folder.parent} (once; reused by later runs)", flush=True)
        build(folder)  # type: ignore[operator]
        (folder / COMPLETE).touch()
    return folder


def _write_large_ct(folder: Path, model: ModelFolder, shape: tuple[int, int, int]) -> None:
    rows, columns, slices = shape
    grid = GridSpec.axial(rows=rows, columns=columns, slices=slices, pixel_spacing=(LARGE_PIXEL_MM, LARGE_PIXEL_MM),
                          slice_step=LARGE_SLICE_MM)
    _, labels = write_phantom_series(folder / "dicom", spec_for(model, WEIGHTS_ID).intensities, grid=grid,
                                     study=StudyInfo.new("BENCH-LARGE"), series_description="BENCH ABDOMEN 1MM")
    np.save(folder / "labels.npy", labels)


def _write_small(folder: Path, model: ModelFolder, n_small: int, n_first: int) -> None:
    """One centred kidney (not a pair) so the organ and its lesions lie inside the small field of view."""
    intensities = spec_for(model, WEIGHTS_ID).intensities
    for index in range(n_small):
        subset = FIRST_SET if index < n_first else "b"
        write_phantom_series(folder / subset / f"s{index:02d}", intensities, grid=demo_grid(**SMALL_GRID),
                             paired=False, seed=index, study=StudyInfo.new(f"BENCH-{index:02d}"),
                             series_description="BENCH SMALL 3MM")


def _write_peer(folder: Path, model: ModelFolder, n_peer: int) -> None:
    intensities = spec_for(model, WEIGHTS_ID).intensities
    for index in range(n_peer):
        write_phantom_series(folder / f"p{index:02d}", intensities, grid=demo_grid(**PEER_GRID), seed=100 + index,
                             study=StudyInfo.new(f"PEER-{index:02d}"), series_description="BENCH PEER 3MM")


def _copy_series(source: Path, folder: Path, copies: int) -> None:
    """The same images as `copies` studies: new study, series and instance UIDs, pixels untouched."""
    files = sorted(p for p in source.iterdir() if p.is_file())
    for index in range(copies):
        study, series = generate_uid(), generate_uid()
        target = folder / f"c{index}"
        target.mkdir()
        for path in files:
            dataset = pydicom.dcmread(path)
            dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
            dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            dataset.save_as(target / path.name, enforce_file_format=True)


def series_uid(folder: Path) -> str:
    first = next(p for p in sorted(folder.iterdir()) if p.is_file())
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


def raw_workflow(model: ModelFolder, cache: Path) -> Path:
    """The kidney chain without KeepLargestComponents: the SEG holds raw nnU-Net output, as the incumbent's does
    (its post-processor's result is never used), so both sides must produce the same SEG."""
    workflow = yaml.safe_load(model.workflow_path("default").read_text())
    workflow["execute"] = [step for step in workflow["execute"]
                           if not (isinstance(step, dict) and step.get("module") == "KeepLargestComponents")]
    path = cache / "kidney-raw.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False, allow_unicode=True))
    return path
