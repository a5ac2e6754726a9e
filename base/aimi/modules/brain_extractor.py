"""BrainExtractor - reads: `image`; writes: `labelmap` (the brain mask, on the reference role's grid).

deepbet (its two 3D U-Nets ship in its wheel) on the reference role (T1c), whose mask all four contrasts share. The
image goes to deepbet as a NIfTI-style image with its true affine (SimpleITK's LPS turned into RAS); deepbet
canonicalises it internally and returns the mask in the input's voxel order, so any acquisition orientation works.
The networks are loaded once per run, on the run's device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from aimi.brain.spaces import array_on, to_nibabel
from aimi.case import Case
from aimi.context import RunContext
from aimi.log import event
from aimi.module import CaseError, Module
from aimi.modules.nnunet_runner import resolve_device

log = logging.getLogger("aimi.brain")


@dataclass(frozen=True)
class Settings:
    reference: str = "t1c"
    output: str = "brain_mask"
    threshold: float = 0.5
    dilate_voxels: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold: {self.threshold} must be in (0, 1)")


class BrainExtractor(Module):
    reads = ("image",)
    writes = ("labelmap",)
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        self.device = resolve_device(context.options.device)
        self.extractor: Any = None
        self.loads = 0

    @property
    def stats(self) -> dict[str, Any]:
        return {"model_loads": self.loads, "device": str(self.device)}

    def __call__(self, case: Case) -> None:
        reference = self.settings.reference
        if reference not in case.images:
            raise CaseError(f"case {case.id}: no {reference!r} image to extract the brain from")
        started = time.perf_counter()
        mask = self.extract(case.images[reference])
        voxels = int(sitk.GetArrayViewFromImage(mask).sum())
        if voxels == 0:
            raise CaseError(f"case {case.id}: deepbet found no brain in the {reference!r} series")
        case.labelmaps[self.settings.output] = mask
        case.measurements[self.name] = {
            "reference": reference,
            "brain_ml": voxels * float(np.prod(mask.GetSpacing())) / 1000.0,
            "seconds": round(time.perf_counter() - started, 2),
        }

    def extract(self, image: sitk.Image) -> sitk.Image:
        """The 0/1 brain mask of `image`, on its grid."""
        _, mask, _ = self._extractor().run(
            to_nibabel(sitk.Cast(image, sitk.sitkFloat32)),
            threshold=self.settings.threshold,
            n_dilate=self.settings.dilate_voxels,
        )
        return array_on((np.asarray(mask.dataobj) > 0).astype(np.uint8), image)

    def _extractor(self) -> Any:
        if self.extractor is None:
            from deepbet.bet import BrainExtraction

            self.extractor = BrainExtraction(no_gpu=self.device.type != "cuda")
            self.loads += 1
            event(log, "model.loaded", weights="deepbet", device=self.device)
        return self.extractor
