"""Test DICOM for the container runs: per model a suitable input, a folder with nothing suitable, a corrupt series.

Phantom intensities and series tags follow tests/test_chain_*.py (what each tiny test model learnt and each model's
selection rules accept). The brain model takes a four-contrast study (aimi_testkit.synthetic_brain) and writes one SEG
per series. A new model adds a PHANTOMS entry (or its own writer); its container test fails until it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.synthetic import StudyInfo, corrupt_pixel_data, write_non_dicom, write_sr
from aimi_testkit.synthetic_brain import ROLES, write_brain_study

BRAIN = "bamf_nnunet_mr_brain"
MR_T2 = {"modality": "MR", "mr_sequence": "T2", "series_description": "t2_tse_tra"}
MR_DCE = {"modality": "MR", "mr_sequence": "T1C", "series_description": "t1_fl3d_tra_dyn_post1"}
#: Every spacing of the brain study times this: small series, a run of a few minutes on a CPU.
BRAIN_SCALE = 2.5

#: model -> write_phantom_series keyword arguments of a series the model selects
PHANTOMS: dict[str, dict[str, Any]] = {
    "bamf_nnunet_ct_kidney": {"intensities": {0: [-100.0], 1: [150.0], 2: [60.0], 3: [0.0]}},
    "bamf_nnunet_ct_liver": {"intensities": {0: [-100.0], 8: [140.0], 9: [60.0]}, "organ": 8, "lesions": [9],
                             "paired": False},
    "bamf_nnunet_ct_lung": {"intensities": {0: [40.0], 1: [-850.0], 2: [200.0]}},
    "bamf_nnunet_mr_prostate": {"intensities": {0: [120.0], 1: [420.0]}, "paired": False, **MR_T2},
    "bamf_nnunet_mr_breast": {"intensities": {0: [30.0], 1: [600.0], 2: [250.0], 3: [1000.0]}, "lesions": [2, 3],
                              **MR_DCE},
}
CT_PHANTOM = PHANTOMS["bamf_nnunet_ct_kidney"]
MR_PHANTOM = PHANTOMS["bamf_nnunet_mr_prostate"]

#: Run options a model's container runs add (all on the user's entrypoints): the brain's coarser atlas grid.
RUN_ARGS: dict[str, tuple[str, ...]] = {BRAIN: ("--set", "AtlasRegistration.spacing_mm=2")}


@dataclass(frozen=True)
class Written:
    """What a run must report: the case id, and the series that get a SEG (suitable) or that break it (corrupt)."""

    case_id: str
    series_uids: tuple[str, ...]


def _uid(path: Path, keyword: str) -> str:
    return str(getattr(pydicom.dcmread(path, stop_before_pixels=True), keyword))


def _phantom(model: str) -> dict[str, Any]:
    if model not in PHANTOMS:
        raise KeyError(f"no test series for {model}: add a PHANTOMS entry in {__file__}")
    return PHANTOMS[model]


def _is_mr(model: str) -> bool:
    return model == BRAIN or _phantom(model).get("modality") == "MR"


def write_suitable(model: str, root: Path) -> Written:
    """Input the model selects: one series (a four-contrast study for the brain)."""
    if model == BRAIN:
        study = write_brain_study(root / "study", scale=BRAIN_SCALE)
        return Written(_uid(study.files["t1c"][0], "StudyInstanceUID"),
                       tuple(study.series_uids[role] for role in ROLES))
    files, _ = write_phantom_series(root / "study" / "series", study=StudyInfo.new("CONTAINER"), noise_sd=5.0,
                                    **_phantom(model))
    uid = _uid(files[0], "SeriesInstanceUID")
    return Written(uid, (uid,))


def write_unsuitable(model: str, root: Path) -> None:
    """Only series the model's selection rules skip (the other modality), an SR and a text file."""
    study = StudyInfo.new("NOTHING")
    write_phantom_series(root / "other-modality", study=study, **(CT_PHANTOM if _is_mr(model) else MR_PHANTOM))
    write_sr(root / "reports", study)
    write_non_dicom(root / "README.txt")


def write_corrupt(model: str, root: Path) -> Written:
    """Suitable input whose (post-contrast, for the brain) series has an eighth slice with half its pixel data."""
    if model == BRAIN:
        study = write_brain_study(root / "broken", scale=BRAIN_SCALE)
        corrupt_pixel_data(study.files["t1c"][7])
        return Written(_uid(study.files["t1c"][0], "StudyInstanceUID"), (study.series_uids["t1c"],))
    files, _ = write_phantom_series(root / "broken", study=StudyInfo.new("CORRUPT"), **_phantom(model))
    corrupt_pixel_data(files[7])
    uid = _uid(files[0], "SeriesInstanceUID")
    return Written(uid, (uid,))
