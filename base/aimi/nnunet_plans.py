"""plans.json entries shared by every nnU-Net v2 model folder aimi writes (test models, converted v1 models)."""

from __future__ import annotations

from typing import Any

RESAMPLING_FUNCTION = "resample_data_or_seg_to_shape"


def resampling_entries() -> dict[str, Any]:
    """nnU-Net's default resampling: order 3 data, 1 segmentations and probabilities, order 0 along a separate z
    axis when the spacing anisotropy exceeds 3 (v1's and v2's threshold alike)."""
    return {
        "resampling_fn_data": RESAMPLING_FUNCTION,
        "resampling_fn_seg": RESAMPLING_FUNCTION,
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": RESAMPLING_FUNCTION,
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
    }
