"""BrainExtractor: a brain mask on the reference role's grid, shared by every contrast.

deepbet (its two 3D U-Nets ship in its wheel) on the reference role (T1c), whose mask all four contrasts share. The
image goes to deepbet as a NIfTI-style image with its true affine (SimpleITK's LPS turned into RAS); deepbet
canonicalises it internally and returns the mask in the input's voxel order, so any acquisition orientation works.
deepbet scales its crop to 256^3 voxels whatever their size, so thick-slice series are first resampled to isotropic
`spacing_mm` voxels (it was trained on ~1 mm T1) and the mask brought back to the series grid.
The networks are loaded once per run, on the run's device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from aimi.brain.spaces import array_on, resample, to_nibabel
from aimi.brain.template import grid_at
from aimi.core.case import Case
from aimi.core.context import RunContext
from aimi.core.log import event
from aimi.core.module import Module
from aimi.core.ports import IMAGES, LABELMAP, MEASURED, Port, ports
from aimi.errors import CaseError
from aimi.inference.device import resolve_device

log = logging.getLogger("aimi.brain")


@dataclass(frozen=True)
class Settings:
    reference: str = "t1c"
    threshold: float = 0.5
    dilate_voxels: int = 0
    spacing_mm: float = 1.0  # isotropic voxels deepbet sees; 0: the series' own voxels
    device: str = "auto"  # auto (CUDA when visible), cpu or cuda; --device

    def __post_init__(self) -> None:
        if self.spacing_mm < 0:
            raise ValueError(f"spacing_mm: {self.spacing_mm} must be >= 0")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold: {self.threshold} must be in (0, 1)")


class BrainExtractor(Module):
    inputs = ports(images=Port(IMAGES, "the volumes, by role; the reference role's is used", "images"))
    outputs = ports(mask=Port(LABELMAP, "the brain mask (0/1) on the reference role's grid", "brain_mask"),
                    measurements=MEASURED)
    Settings = Settings
    on_device = True  # deepbet's network: one case at a time, beside other cases' CPU steps

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        self.device = resolve_device(settings.device)
        self.extractor: Any = None
        self.loads = 0

    @property
    def stats(self) -> dict[str, Any]:
        return {"model_loads": self.loads, "device": str(self.device)}

    def __call__(self, case: Case) -> None:
        reference = self.settings.reference
        images = self.read(case, "images")
        if reference not in images:
            raise CaseError(f"case {case.id}: no {reference!r} image to extract the brain from")
        started = time.perf_counter()
        mask = self.extract(images[reference])
        voxels = int(sitk.GetArrayViewFromImage(mask).sum())
        if voxels == 0:
            raise CaseError(f"case {case.id}: deepbet found no brain in the {reference!r} series")
        self.write(case, "mask", mask)
        self.write(case, "measurements", {self.name: {
            "reference": reference,
            "brain_ml": voxels * float(np.prod(mask.GetSpacing())) / 1000.0,
            "seconds": round(time.perf_counter() - started, 2),
        }})

    def extract(self, image: sitk.Image) -> sitk.Image:
        """The 0/1 brain mask of `image`, on its grid."""
        image = sitk.Cast(image, sitk.sitkFloat32)
        identity = sitk.Transform(3, sitk.sitkIdentity)
        spacing = self.settings.spacing_mm
        isotropic = resample(image, grid_at(image, spacing), identity, sitk.sitkLinear) if spacing else image
        _, mask, _ = self._extractor().run(
            to_nibabel(isotropic), threshold=self.settings.threshold, n_dilate=self.settings.dilate_voxels
        )
        mask = array_on((np.asarray(mask.dataobj) > 0).astype(np.uint8), isotropic)
        if not spacing:
            return mask
        fraction = resample(sitk.Cast(mask, sitk.sitkFloat32), image, identity, sitk.sitkLinear)
        return sitk.Cast(fraction >= 0.5, sitk.sitkUInt8)

    def _extractor(self) -> Any:
        if self.extractor is None:
            from deepbet.bet import BrainExtraction

            self.extractor = BrainExtraction(no_gpu=self.device.type != "cuda")
            self.loads += 1
            event(log, "model.loaded", weights="deepbet", device=self.device)
        return self.extractor
