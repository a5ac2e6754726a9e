"""ComponentSizeFilter (lung nodules) and FuseLabelMaps (breast) on label maps with exactly known answers."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from skimage.draw import line

from aimi.postprocess.component_size_filter import Settings as SizeSettings
from aimi.postprocess.component_size_filter import axial_diameter_mm, filter_components
from aimi.postprocess.fuse_label_maps import Settings as FuseSettings
from aimi.postprocess.fuse_label_maps import fuse
from aimi.postprocess.keep_largest_components import keep_largest
from aimi.postprocess.mask_to_region import mask_to_region
from aimi.postprocess.remap_labels import remap

SPACING = (0.7, 0.7, 2.5)  # x, y, z as SimpleITK orders them


def grid(shape_zyx: tuple[int, int, int], direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    image = sitk.Image([shape_zyx[2], shape_zyx[1], shape_zyx[0]], sitk.sitkUInt8)
    image.SetSpacing(SPACING)
    image.SetDirection(direction)
    return image


def draw_nodule(array: np.ndarray, start_yx: tuple[int, int], steps_yx: tuple[int, int], slices: range) -> None:
    """A thin nodule from voxel (y, x) to (y + dy, x + dx) on each slice: its corner extent in the axial plane is
    0.7 * sqrt((|dy| + 1)^2 + (|dx| + 1)^2) mm."""
    rr, cc = line(start_yx[0], start_yx[1], start_yx[0] + steps_yx[0], start_yx[1] + steps_yx[1])
    for z in slices:
        array[z, rr, cc] = 2


# (steps (dy, dx), physical extent mm): 0.7 * sqrt(17) = 2.886, sqrt(20) = 3.130, sqrt(1825) = 29.905,
# sqrt(1850) = 30.108 - two just below/above each bound, drawn along oblique in-plane axes
NODULES = {"2.9 mm": ((0, 3), 2.886), "3.1 mm": ((3, 1), 3.130), "29.9 mm": ((14, 39), 29.905),
           "30.1 mm": ((42, 0), 30.108)}


def nodule_phantom() -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    array = np.zeros((6, 120, 120), np.uint8)
    starts = {"2.9 mm": (5, 5), "3.1 mm": (5, 60), "29.9 mm": (30, 5), "30.1 mm": (60, 100)}
    for name, (steps, _) in NODULES.items():
        draw_nodule(array, starts[name], steps, range(1, 3))  # two 2.5 mm slices thick
    return array, starts


def test_each_nodule_measures_its_designed_axial_extent():
    array, starts = nodule_phantom()
    image = grid(array.shape)
    for name, (steps, expected) in NODULES.items():
        single = np.zeros_like(array)
        draw_nodule(single, starts[name], steps, range(1, 3))
        assert axial_diameter_mm(np.argwhere(single > 0), image) == pytest.approx(expected, abs=1e-3), name


def test_nodules_outside_3_to_30_mm_are_removed_exactly():
    array, starts = nodule_phantom()
    result, measured = filter_components(array, grid(array.shape), SizeSettings(labels=[2], min_diameter_mm=3.0,
                                                                                 max_diameter_mm=30.0))
    expected = np.zeros_like(array)
    for name in ("3.1 mm", "29.9 mm"):
        draw_nodule(expected, starts[name], NODULES[name][0], range(1, 3))
    np.testing.assert_array_equal(result, expected)
    assert sorted(m["kept"] for m in measured) == [False, False, True, True]


def test_diameter_is_measured_in_patient_space_on_an_oblique_acquisition():
    """The same 29.9 mm nodule in a grid tilted 30 degrees about the x axis: in-plane it lies along x (unchanged
    by the tilt), so only that x extent (0.7 * 43 = 30.1 mm) and the tilted y extent count."""
    angle = np.radians(30.0)
    tilted = (1, 0, 0, 0, np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle))
    single = np.zeros((4, 8, 60), np.uint8)
    single[1, 3, 5:48] = 2  # 43 voxels along x
    assert axial_diameter_mm(np.argwhere(single > 0), grid(single.shape, tilted)) == pytest.approx(
        np.hypot(43 * 0.7, 0.7 * np.cos(angle) + 2.5 * np.sin(angle)), abs=1e-6)


def test_nodules_touching_the_lung_wall_stay_and_outside_ones_go():
    lungs = np.zeros((6, 60, 80), np.uint8)
    lungs[:, 5:55, 5:35] = 1
    lungs[:, 5:55, 45:75] = 1
    lungs[2:4, 20:24, 20:24] = 2  # inside the right lung
    lungs[2:4, 20:24, 35:38] = 2  # against the right lung's wall, outside it
    lungs[2:4, 56:59, 38:42] = 2  # outside both lungs, in the mediastinum below
    result = mask_to_region(keep_largest(lungs, [1], 2, 0.2), [2], [1])
    assert (result[2:4, 20:24, 20:24] == 2).all() and (result[2:4, 20:24, 35:38] == 2).all()
    assert (result[2:4, 56:59, 38:42] == 0).all()


def test_liver_remap_keeps_liver_and_inner_tumor_and_drops_organs_and_detached_tumor():
    raw = np.zeros((10, 40, 40), np.uint8)
    raw[1:9, 5:30, 5:30] = 8  # liver
    raw[3:6, 10:15, 10:15] = 9  # tumor inside the liver
    raw[3:6, 34:38, 34:38] = 9  # "tumor" detached from the liver body
    raw[1:3, 32:38, 2:8] = 1  # spleen
    raw[6:9, 32:38, 12:20] = 6  # small intestine
    result = keep_largest(remap(raw, {8: 1, 9: 2}, "background"), [1, 2], 1, 0.0)
    expected = np.zeros_like(raw)
    expected[1:9, 5:30, 5:30] = 1
    expected[3:6, 10:15, 10:15] = 2
    np.testing.assert_array_equal(result, expected)


def test_breast_fusion_keeps_fgt_and_three_separate_tumors():
    model_a = np.zeros((12, 60, 100), np.uint8)  # 1 breast, 2 fibroglandular tissue
    model_a[2:10, 5:55, 5:45] = 1
    model_a[2:10, 5:55, 55:95] = 1
    model_a[4:8, 20:40, 15:35] = 2
    model_a[4:8, 20:40, 65:85] = 2
    model_a[0, 0:2, 0:2] = 1  # a speck of "breast" outside both breasts
    model_b = np.zeros_like(model_a)  # 1 tumor
    tumors = [(slice(5, 7), slice(25, 28), slice(20, 23)), (slice(5, 7), slice(10, 13), slice(60, 63)),
              (slice(3, 5), slice(45, 48), slice(80, 83))]
    for where in tumors:
        model_b[where] = 1
    model_b[5:7, 57:60, 47:52] = 1  # "tumor" between the breasts, outside them
    settings = FuseSettings(layers=[
        {"source": "first", "labels": [1, 2], "value": 1},
        {"source": "first", "labels": [2], "value": 2},
        {"source": "second", "labels": [1], "value": 3, "within": [1, 2]},
    ])
    fused = fuse({"first": keep_largest(model_a, [1, 2], 2, 0.0), "second": model_b}, settings.parsed)
    assert set(np.unique(fused)) == {0, 1, 2, 3}
    assert (fused == 2).sum() == 2 * 4 * 20 * 20 - sum(  # FGT preserved, less where tumors cover it
        int(((model_a[w] == 2)).sum()) for w in tumors)
    for where in tumors:
        assert (fused[where] == 3).all()
    assert fused[0, 0, 0] == 0 and (fused[5:7, 57:60, 47:52] == 0).all()
    image = grid(fused.shape)
    kept, measured = filter_components(fused, image, SizeSettings(labels=[3], min_volume_mm3=10.0))
    assert [m["kept"] for m in measured] == [True, True, True]
    np.testing.assert_array_equal(kept, fused)


def test_fuse_settings_name_the_bad_layer():
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        FuseSettings(layers=[{"source": "first", "labels": [1], "value": 1}, {"source": "second", "value": 2}])
    with pytest.raises(ValueError, match=r"layers\[0\]\.source: 'tumor' is not an input port; one of first, second"):
        FuseSettings(layers=[{"source": "tumor", "labels": [1], "value": 1}])
