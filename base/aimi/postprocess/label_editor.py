"""The shape every label-map edit shares: read one label map, change its voxels, write it back (in place unless
the workflow wires the output elsewhere). A post-processing step only says how the voxels change."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from aimi.core.case import Case
from aimi.core.module import Module
from aimi.core.ports import EDITED_LABELS, LABELS_TO_EDIT, ports
from aimi.labelmaps import from_array, to_array


class LabelMapEditor(Module):
    """Base of the steps that edit one label map; subclasses implement `edit`."""

    inputs = ports(labels=LABELS_TO_EDIT)
    outputs = ports(labels=EDITED_LABELS)

    def __call__(self, case: Case) -> None:
        source = self.read(case, "labels")
        self.write(case, "labels", from_array(self.edit(case, to_array(source), source), source))

    def edit(self, case: Case, array: np.ndarray, image: sitk.Image) -> np.ndarray:
        """The edited voxels (z, y, x) of `image`, whose array is `array`."""
        raise NotImplementedError
