"""nnU-Net v1's order of preprocessing on the nnunetv2 runtime, for model folders converted from v1.

v1 (GenericPreprocessor.resample_and_normalize) resamples the cropped image, then normalises it on the resampled
grid with the resampled nonzero mask; nnunetv2 normalises, then resamples. Where an image needs resampling the two
differ: a z-score mean/std taken before vs after resampling (a uniform shift), CT clipping before vs after the cubic
spline (values near air). A converted model must see what v1 fed its network, so its plans ask for
`V1OrderPreprocessor`.

nnunetv2 looks preprocessors up by class name inside its own package, so plans.json cannot name ours in
`preprocessor_name` (it keeps `DefaultPreprocessor`, and plain nnunetv2 still loads the folder). The configuration
names it under `PLANS_KEY` instead, as a dotted path like `network_class_name`; `use_plans_preprocessor` hands the
predictor a configuration manager whose `preprocessor_class` is that class. Folders without the key are untouched.
"""

from __future__ import annotations

import pydoc
from typing import Any

import numpy as np
from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

#: Key of a plans.json configuration naming the preprocessor class (dotted path) that replaces preprocessor_name.
PLANS_KEY = "aimi_preprocessor_class"
V1_ORDER = "aimi.v1_preprocessing.V1OrderPreprocessor"


class V1OrderPreprocessor(DefaultPreprocessor):
    """DefaultPreprocessor for inference with v1's step order: transpose, crop to nonzero, resample, normalise."""

    def run_case_npy(self, data: np.ndarray, seg: np.ndarray | None, properties: dict,
                     plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                     dataset_json: dict | str) -> tuple[np.ndarray, np.ndarray, dict]:
        if seg is not None:
            raise ValueError("V1OrderPreprocessor preprocesses images for inference only (no segmentation input)")
        axes = plans_manager.transpose_forward
        data = data.astype(np.float32).transpose([0, *[a + 1 for a in axes]])
        spacing = [properties["spacing"][a] for a in axes]
        properties["shape_before_cropping"] = data.shape[1:]
        data, nonzero, properties["bbox_used_for_cropping"] = crop_to_nonzero(data)  # nonzero: 0 inside, -1 outside
        properties["shape_after_cropping_and_before_resampling"] = data.shape[1:]
        data[np.isnan(data)] = 0  # as v1 does before resampling
        target = configuration_manager.spacing
        shape = compute_new_shape(data.shape[1:], spacing, target)
        data = configuration_manager.resampling_fn_data(data, shape, spacing, target)
        nonzero = configuration_manager.resampling_fn_seg(nonzero, shape, spacing, target)
        data = self._normalize(data, nonzero, configuration_manager,
                               plans_manager.foreground_intensity_properties_per_channel)
        return data, nonzero.astype(np.int8), properties

    def _normalize(self, data: np.ndarray, seg: np.ndarray, configuration_manager: ConfigurationManager,
                   foreground_intensity_properties_per_channel: dict) -> np.ndarray:
        """nnunetv2's normalisers, then v1's zeroing outside the (resampled) nonzero mask where the plans use it."""
        data = super()._normalize(data, seg, configuration_manager, foreground_intensity_properties_per_channel)
        for c, (scheme, masked) in enumerate(zip(configuration_manager.normalization_schemes,
                                                 configuration_manager.use_mask_for_norm, strict=True)):
            if masked and scheme != "NoNormalization":
                data[c][seg[0] < 0] = 0
        return data


class _PlansPreprocessorConfiguration(ConfigurationManager):
    """The predictor's configuration, with the preprocessor the plans name under PLANS_KEY."""

    def __init__(self, configuration: dict, preprocessor: type[DefaultPreprocessor]) -> None:
        super().__init__(configuration)
        self._preprocessor = preprocessor

    @property
    def preprocessor_class(self) -> type[DefaultPreprocessor]:
        return self._preprocessor


def use_plans_preprocessor(predictor: Any) -> bool:
    """Give an initialised nnUNetPredictor the preprocessor its plans name under PLANS_KEY; False if they name none.

    Raises ValueError naming the class when it is not a DefaultPreprocessor subclass.
    """
    configuration = predictor.configuration_manager.configuration
    name = configuration.get(PLANS_KEY)
    if name is None:
        return False
    preprocessor = pydoc.locate(name)
    if not (isinstance(preprocessor, type) and issubclass(preprocessor, DefaultPreprocessor)):
        raise ValueError(f"plans.json names {PLANS_KEY} {name!r}, which is not an nnU-Net DefaultPreprocessor class")
    predictor.configuration_manager = _PlansPreprocessorConfiguration(configuration, preprocessor)
    return True
