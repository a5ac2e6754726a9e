"""Overlap, surface and detection metrics between a reference mask and a predicted mask on one voxel grid.

Pure numpy/scipy. Masks are bool arrays of one shape; `spacing` gives the voxel size in mm along each array
axis (for aimi's (slice, row, column) arrays: slice step, row spacing, column spacing).

Definitions (the voxel-border convention of MONAI's `compute_surface_dice` / `compute_hausdorff_distance`):
- Border voxels: mask voxels with a 6-connected background neighbour (mask minus its binary erosion; outside the
  array counts as background).
- Surface distances: from each border voxel centre of one mask to the nearest border voxel centre of the other,
  in mm, by a Euclidean distance transform with `sampling=spacing`.
- NSD at tolerance t: (reference border voxels within t of the predicted border + predicted border voxels within
  t of the reference border) / (all border voxels of both).
- HD95: the larger of the two directed 95th percentiles (linear interpolation) of those distances.
- MSD (mean symmetric surface distance, the authors' notebooks' "MSD"): the mean of both directions' distances
  together.
- Detection: connected components (26-connectivity); a reference component is a true positive when any predicted
  voxel overlaps it, else a false negative; a predicted component that overlaps no reference voxel is a false
  positive.

Empty masks (decided here, used everywhere in aimi evaluate):
- both empty: Dice 1, NSD 1, HD95 and MSD 0 (the prediction agrees perfectly: nothing there, nothing found);
- exactly one empty: Dice 0, NSD 0, HD95 and MSD NaN (no surface to measure a distance to; NaN is left out of means
  and counted separately, where inf would make every mean inf).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from aimi import labelmaps

#: 6-connectivity structuring element: a voxel is interior only when its face neighbours are all in the mask.
_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)
#: 26-connectivity: lesion voxels touching at an edge or corner are one lesion.
_FULL_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)
HD_PERCENTILE = 95.0


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed distances in mm: from each reference border voxel to the prediction's border, and back."""

    reference_to_prediction: np.ndarray
    prediction_to_reference: np.ndarray


@dataclass(frozen=True)
class Detection:
    """Lesion counts: reference components found (tp) or missed (fn), predicted components with no match (fp)."""

    true_positives: int
    false_positives: int
    false_negatives: int


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1.0 when both are empty."""
    _check_pair(reference, prediction)
    return labelmaps.dice(reference, prediction)


def border(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with at least one face neighbour outside the mask (or outside the array)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_FACE_NEIGHBOURS, border_value=0)


def surface_distances(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Border-to-border distances in mm; computed on the union bounding box (plus one voxel), which gives the same
    borders and distances as the full grid at a fraction of the cost."""
    _check_pair(reference, prediction)
    if len(spacing) != reference.ndim:
        raise ValueError(f"spacing {tuple(spacing)} needs one value per array axis ({reference.ndim})")
    box = _union_box(reference, prediction)
    ref_border, pred_border = border(reference[box]), border(prediction[box])
    return SurfaceDistances(
        reference_to_prediction=_distances_to(ref_border, pred_border, spacing),
        prediction_to_reference=_distances_to(pred_border, ref_border, spacing),
    )


def nsd(distances: SurfaceDistances, tolerance_mm: float) -> float:
    """Normalised surface Dice at `tolerance_mm`: the share of both borders within tolerance of the other."""
    if tolerance_mm < 0:
        raise ValueError(f"tolerance {tolerance_mm} mm must be >= 0")
    ref, pred = distances.reference_to_prediction, distances.prediction_to_reference
    if ref.size + pred.size == 0:
        return 1.0
    if ref.size == 0 or pred.size == 0:
        return 0.0
    return (int((ref <= tolerance_mm).sum()) + int((pred <= tolerance_mm).sum())) / (ref.size + pred.size)


def hd95(distances: SurfaceDistances) -> float:
    """95% Hausdorff distance in mm: 0 when both masks are empty, NaN when only one is."""
    ref, pred = distances.reference_to_prediction, distances.prediction_to_reference
    empty = _distance_of_empty(distances)
    return empty if empty is not None else float(max(np.percentile(ref, HD_PERCENTILE),
                                                      np.percentile(pred, HD_PERCENTILE)))


def msd(distances: SurfaceDistances) -> float:
    """Mean symmetric surface distance in mm: 0 when both masks are empty, NaN when only one is."""
    ref, pred = distances.reference_to_prediction, distances.prediction_to_reference
    empty = _distance_of_empty(distances)
    return empty if empty is not None else float((ref.sum() + pred.sum()) / (ref.size + pred.size))


def _distance_of_empty(distances: SurfaceDistances) -> float | None:
    """A distance metric's value when a mask is empty: 0 for both, NaN for one; None when neither is."""
    sizes = (distances.reference_to_prediction.size, distances.prediction_to_reference.size)
    if sum(sizes) == 0:
        return 0.0
    return float("nan") if 0 in sizes else None


def detection(reference: np.ndarray, prediction: np.ndarray) -> Detection:
    """Component-level lesion detection by any-voxel overlap (26-connected components)."""
    _check_pair(reference, prediction)
    ref_components, ref_count = ndimage.label(reference, structure=_FULL_CONNECTIVITY)
    pred_components, pred_count = ndimage.label(prediction, structure=_FULL_CONNECTIVITY)
    found = np.unique(ref_components[prediction & reference])
    matched = np.unique(pred_components[prediction & reference])
    true_positives = int(np.count_nonzero(found))
    return Detection(
        true_positives=true_positives,
        false_positives=pred_count - int(np.count_nonzero(matched)),
        false_negatives=ref_count - true_positives,
    )


def _distances_to(source_border: np.ndarray, target_border: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance from each `source_border` voxel centre to the nearest `target_border` voxel centre (mm)."""
    if not source_border.any() or not target_border.any():
        return np.zeros(0) if not source_border.any() else np.full(int(source_border.sum()), np.inf)
    field = ndimage.distance_transform_edt(~target_border, sampling=[float(s) for s in spacing])
    return field[source_border]


def _union_box(reference: np.ndarray, prediction: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of both masks, one voxel wider on each side (clipped to the array)."""
    union = reference | prediction
    if not union.any():
        return tuple(slice(0, 0) for _ in union.shape)
    boxes = ndimage.find_objects(union.astype(np.uint8))[0]
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(boxes, union.shape, strict=True))


def _check_pair(reference: np.ndarray, prediction: np.ndarray) -> None:
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} != prediction shape {prediction.shape}: resample first")
    if reference.dtype != bool or prediction.dtype != bool:
        raise ValueError(f"masks must be bool, got {reference.dtype} and {prediction.dtype}")
