"""Post-processing modules on hand-made label maps with exactly known results."""

from __future__ import annotations

import numpy as np
import pytest

from aimi.postprocess.keep_largest_components import Settings as KeepSettings
from aimi.postprocess.keep_largest_components import keep_largest
from aimi.postprocess.mask_to_region import Settings as RegionSettings
from aimi.postprocess.mask_to_region import mask_to_region
from aimi.postprocess.remap_labels import Settings as RemapSettings
from aimi.postprocess.remap_labels import remap


def blocks(*specs: tuple[tuple[slice, slice, slice], int]) -> np.ndarray:
    array = np.zeros((20, 30, 40), np.uint8)
    for where, value in specs:
        array[where] = value
    return array


def test_keep_two_largest_removes_third_component_with_its_tumor():
    left = (slice(2, 10), slice(2, 12), slice(2, 12))  # 800 voxels
    right = (slice(2, 10), slice(2, 12), slice(20, 30))  # 800 voxels
    stray = (slice(14, 16), slice(20, 22), slice(30, 32))  # 8 voxels
    tumor_in_left = (slice(4, 6), slice(4, 6), slice(4, 6))
    tumor_in_stray = (slice(14, 15), slice(20, 21), slice(30, 31))
    array = blocks((left, 1), (right, 1), (stray, 1), (tumor_in_left, 2), (tumor_in_stray, 2))
    result = keep_largest(array, [1, 2, 3], count=2, min_ratio=0.0)
    expected = array.copy()
    expected[stray] = 0
    np.testing.assert_array_equal(result, expected)


def test_tumor_touching_kidney_counts_as_one_component():
    kidney = (slice(2, 10), slice(2, 12), slice(2, 12))
    tumor_outgrowth = (slice(2, 10), slice(2, 12), slice(12, 14))  # tumor bulging out of the kidney
    small = (slice(14, 16), slice(20, 22), slice(30, 32))
    array = blocks((kidney, 1), (tumor_outgrowth, 2), (small, 1))
    result = keep_largest(array, [1, 2, 3], count=1, min_ratio=0.0)
    assert (result == 2).sum() == 8 * 10 * 2
    assert (result[small] == 0).all()


def test_second_component_kept_only_above_min_ratio():
    big = (slice(0, 10), slice(0, 10), slice(0, 10))  # 1000
    medium = (slice(12, 18), slice(12, 18), slice(12, 18))  # 216: 21.6% of big
    array = blocks((big, 1), (medium, 1))
    assert (keep_largest(array, [1], count=2, min_ratio=0.2) == array).all()
    assert (keep_largest(array, [1], count=2, min_ratio=0.25)[medium] == 0).all()


def test_keep_largest_leaves_other_labels_alone():
    organ = (slice(0, 5), slice(0, 5), slice(0, 5))
    other = (slice(10, 12), slice(10, 12), slice(10, 12))
    array = blocks((organ, 1), (other, 5))
    np.testing.assert_array_equal(keep_largest(array, [1], count=1, min_ratio=0.0), array)


def test_mask_to_region_keeps_touching_and_inside_components_only():
    lung = (slice(0, 10), slice(0, 20), slice(0, 20))
    inside = (slice(3, 5), slice(3, 5), slice(3, 5))  # nodule within the lung
    touching = (slice(3, 5), slice(3, 5), slice(20, 22))  # nodule against the lung wall, outside it
    outside = (slice(15, 17), slice(25, 27), slice(35, 37))  # nowhere near the lung
    array = blocks((lung, 1), (inside, 2), (touching, 2), (outside, 2))
    result = mask_to_region(array, [2], [1])
    expected = array.copy()
    expected[outside] = 0
    np.testing.assert_array_equal(result, expected)


def test_remap_maps_listed_values_and_clears_the_rest():
    array = np.array([[[0, 1, 8, 9, 5]]], np.uint8)
    np.testing.assert_array_equal(remap(array, {8: 1, 9: 2}, "background"), [[[0, 0, 1, 2, 0]]])
    np.testing.assert_array_equal(remap(array, {8: 1, 9: 2}, "keep"), [[[0, 1, 1, 2, 5]]])


@pytest.mark.parametrize(
    ("settings", "kwargs", "message"),
    [
        (KeepSettings, {"count": 0}, "count"),
        (KeepSettings, {"min_ratio": 1.5}, "min_ratio"),
        (RegionSettings, {"labels": [2], "region": [2]}, "overlap"),
        (RegionSettings, {"labels": [], "region": [1]}, "labels and region"),
        (RemapSettings, {"unmapped": "drop"}, "unmapped"),
        (RemapSettings, {"mapping": {300: 1}}, "0-255"),
    ],
)
def test_invalid_settings_are_refused_with_the_key_named(settings, kwargs, message):
    with pytest.raises(ValueError, match=message):
        settings(**kwargs)
