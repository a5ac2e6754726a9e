"""Small synthetic CT series standing in for an IDC collection: a source folder, its manifest, one corrupt series."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom

from aimi.models import load_model
from aimi_testkit.phantoms import demo_grid, write_phantom_series
from aimi_testkit.synthetic import StudyInfo, corrupt_pixel_data
from aimi_testkit.testmodel_cli import spec_for

MODEL = "bamf_nnunet_ct_kidney"
PATIENT_NAME = "SECRET^PATIENT"


@dataclass(frozen=True)
class SeriesSet:
    source: Path
    manifest: Path
    uids: list[str]
    corrupt: str

    @property
    def good(self) -> list[str]:
        return [uid for uid in self.uids if uid != self.corrupt]


def write_series_set(root: Path, count: int, corrupt_index: int) -> SeriesSet:
    """`count` 32x32x24 phantoms (about half a second each with the tiny model), the one at `corrupt_index` with a
    truncated slice that dcm2niix refuses; the manifest lists them in order."""
    intensities = spec_for(load_model(MODEL), "kidney").intensities
    uids = []
    for index in range(count):
        study = StudyInfo.new(f"SECRET-ID-{index:03d}", patient_name=PATIENT_NAME)
        files, _ = write_phantom_series(root / "source" / f"patient{index}", intensities, study=study, seed=index,
                                        grid=demo_grid(rows=32, columns=32, slices=24), file_names="random")
        uids.append(str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID))
        if index == corrupt_index:
            corrupt_pixel_data(files[7])
    manifest = root / "manifest.csv"
    manifest.write_text("SeriesInstanceUID,collection_id\n" + "".join(f"{uid},synthetic\n" for uid in uids))
    return SeriesSet(root / "source", manifest, uids, uids[corrupt_index])
