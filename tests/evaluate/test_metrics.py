"""Dice, NSD, HD95 and detection: hand-computed cases exact, MONAI's implementation matched on anisotropic shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aimi.evaluate import metrics

ANISOTROPIC = [(2.5, 0.7, 0.9), (0.5, 2.0, 2.0), (3.0, 0.8, 0.8)]


def cube(shape: tuple[int, int, int], start: tuple[int, int, int], side: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + side) for s in start)] = True
    return mask


def ellipsoid(shape: tuple[int, int, int], spacing, centre_mm, radii_mm) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum(((grid[i] * spacing[i] - centre_mm[i]) / radii_mm[i]) ** 2 for i in range(3)) <= 1.0


def shifted_cube_distances(side: int, k: int, step: float) -> np.ndarray:
    """Border distances of a cube shifted by k slices, by hand: slice step `step`, in-plane spacing > k * step.

    Bottom layer: every voxel k*step from the other cube's bottom; layers 1..k-1: wall voxels (k - z)*step;
    top layer: interior voxels k*step from the other cube's top (walls nearer in-plane are >= one voxel away);
    all other wall voxels lie on the other cube's wall (0).
    """
    wall = 4 * side - 4
    distances = [k * step] * side**2
    for z in range(1, side - 1):
        distances += [(k - z) * step if z < k else 0.0] * wall
    distances += [0.0] * wall + [k * step] * (side - 2) ** 2
    return np.asarray(distances)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cubes_shifted_by_k_slices_match_hand_computed_values(k: int) -> None:
    spacing, side = (0.5, 2.0, 2.0), 8
    reference = cube((20, 12, 12), (2, 2, 2), side)
    prediction = cube((20, 12, 12), (2 + k, 2, 2), side)
    expected = shifted_cube_distances(side, k, spacing[0])
    distances = metrics.surface_distances(reference, prediction, spacing)

    assert metrics.dice(reference, prediction) == (side - k) / side
    assert np.array_equal(np.sort(distances.reference_to_prediction), np.sort(expected))
    assert np.array_equal(np.sort(distances.prediction_to_reference), np.sort(expected))
    assert metrics.hd95(distances) == float(np.percentile(expected, 95))
    for tolerance in (0.0, 0.5, k * 0.5):
        assert metrics.nsd(distances, tolerance) == np.mean(expected <= tolerance)


def test_cubes_shifted_in_plane_have_exact_dice_and_hausdorff() -> None:
    spacing = (3.0, 0.8, 0.8)
    reference = cube((10, 20, 20), (2, 4, 4), 6)
    prediction = cube((10, 20, 20), (2, 4, 6), 6)  # 2 columns = 1.6 mm
    distances = metrics.surface_distances(reference, prediction, spacing)

    assert metrics.dice(reference, prediction) == 4 / 6
    assert distances.reference_to_prediction.max() == pytest.approx(1.6)
    assert metrics.nsd(distances, 1.6) == 1.0


def test_identical_masks_score_perfectly() -> None:
    mask = ellipsoid((12, 30, 30), ANISOTROPIC[0], (15, 10, 13), (9, 7, 8))
    distances = metrics.surface_distances(mask, mask, ANISOTROPIC[0])
    assert (metrics.dice(mask, mask), metrics.nsd(distances, 0.0), metrics.hd95(distances)) == (1.0, 1.0, 0.0)


def test_empty_masks_follow_the_documented_conventions() -> None:
    empty, full = np.zeros((5, 6, 7), bool), cube((5, 6, 7), (1, 1, 1), 3)
    both = metrics.surface_distances(empty, empty, (1, 1, 1))
    assert (metrics.dice(empty, empty), metrics.nsd(both, 2.0), metrics.hd95(both)) == (1.0, 1.0, 0.0)
    for reference, prediction in ((empty, full), (full, empty)):
        one = metrics.surface_distances(reference, prediction, (1, 1, 1))
        assert metrics.dice(reference, prediction) == 0.0
        assert metrics.nsd(one, 100.0) == 0.0
        assert math.isnan(metrics.hd95(one)) and math.isnan(metrics.msd(one))
    assert metrics.msd(both) == 0.0


def test_masks_touching_the_array_edge_have_borders_there() -> None:
    mask = np.ones((3, 4, 4), bool)
    assert metrics.border(mask).sum() == mask.sum() - 2 * 2  # only the middle slice's 2x2 centre is interior


def test_detection_counts_components_by_overlap() -> None:
    reference = np.zeros((10, 20, 20), bool)
    prediction = np.zeros_like(reference)
    reference[1:3, 1:3, 1:3] = True  # found
    reference[6:8, 10:12, 10:12] = True  # missed
    reference[1, 15, 15] = reference[2, 16, 16] = True  # one lesion: corner-connected voxels
    prediction[2:4, 2:4, 2:4] = True
    prediction[2, 16, 16] = True
    prediction[8, 1:3, 15:18] = True  # false positive

    assert metrics.detection(reference, prediction) == metrics.Detection(2, 1, 1)
    assert metrics.detection(reference, np.zeros_like(reference)) == metrics.Detection(0, 0, 3)


def test_masks_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="resample first"):
        metrics.dice(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 3), bool))


def monai_scores(reference: np.ndarray, prediction: np.ndarray, spacing, tolerance: float) -> tuple[float, ...]:
    """Dice, NSD, HD95 and MSD from MONAI (independent implementation, voxel-border convention, no sub-voxels)."""
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")

    def tensor(mask: np.ndarray):
        return torch.from_numpy(mask[None, None].astype(np.float32))

    y_pred, y = tensor(prediction), tensor(reference)
    return (
        monai_metrics.compute_dice(y_pred, y, include_background=True).item(),
        monai_metrics.compute_surface_dice(y_pred, y, [tolerance], include_background=True,
                                           spacing=list(spacing)).item(),
        monai_metrics.compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95,
                                                 spacing=list(spacing)).item(),
        monai_metrics.compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True,
                                                       spacing=list(spacing)).item(),
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_monai_on_anisotropic_ellipsoids(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spacing = ANISOTROPIC[seed % len(ANISOTROPIC)]
    shape = (24, 40, 40)
    extent = np.asarray(shape) * np.asarray(spacing)
    centre = extent / 2
    radii = extent * rng.uniform(0.15, 0.3, 3)
    reference = ellipsoid(shape, spacing, centre, radii)
    prediction = ellipsoid(shape, spacing, centre + rng.normal(0, 1.5, 3), radii * rng.uniform(0.8, 1.2, 3))
    prediction |= ellipsoid(shape, spacing, extent * 0.85, np.full(3, 4.0))  # a distant false positive
    tolerance = float(rng.choice([2.0, 4.0, 7.0]))

    distances = metrics.surface_distances(reference, prediction, spacing)
    ours = (metrics.dice(reference, prediction), metrics.nsd(distances, tolerance), metrics.hd95(distances),
            metrics.msd(distances))
    theirs = monai_scores(reference, prediction, spacing, tolerance)

    assert abs(ours[0] - theirs[0]) <= 1e-6
    assert abs(ours[1] - theirs[1]) <= 1e-3
    assert abs(ours[2] - theirs[2]) <= float(np.linalg.norm(spacing))
    assert abs(ours[3] - theirs[3]) <= 1e-3, (ours[3], theirs[3])
