"""Label maps onto a DICOM series' own grid: what the SEG writer, the label-map export and the QC overlay share."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from aimi.dicom.geometry import SeriesGeometry

#: How far (in label-map voxels) a source voxel centre may lie from a label-map voxel centre and still be that voxel.
ALIGNED_TOLERANCE = 1e-3


def on_source_grid(labelmap: sitk.Image, geometry: SeriesGeometry) -> np.ndarray:
    """The label map sampled at the source series' voxel centres: (slices, rows, columns) in source frame order.

    Nearest-neighbour resampling in physical space; a label map whose voxel centres already are the source grid's
    (nnU-Net's output on the dcm2niix grid: the same points, axes flipped or permuted) is only rearranged, which
    gives the same array without the resampling pass over the whole volume.
    """
    aligned = _aligned_array(labelmap, geometry)
    if aligned is not None:
        return aligned
    resampled = sitk.Resample(labelmap, geometry.reference_image(), sitk.Transform(), sitk.sitkNearestNeighbor,
                              0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled)


def role_on_source_grid(labels: sitk.Image | Mapping[str, sitk.Image], role: str,
                        geometry: SeriesGeometry) -> np.ndarray:
    """One label map for every series (LabelMap) or one per role (SeriesLabelMaps), on `role`'s series grid."""
    if isinstance(labels, Mapping):
        if role not in labels:
            raise KeyError(f"no label map for series role {role!r} (have: {', '.join(sorted(labels)) or 'none'})")
        labels = labels[role]
    return on_source_grid(labels, geometry)


def _aligned_array(labelmap: sitk.Image, geometry: SeriesGeometry) -> np.ndarray | None:
    """`labelmap`'s uint8 voxels in the source grid's (z, y, x) order when both grids hold the same voxel centres,
    each source axis running along one label-map axis (either way); None when they do not, or the type differs."""
    if labelmap.GetPixelID() != sitk.sitkUInt8 or labelmap.GetDimension() != 3:
        return None
    size = np.asarray(geometry.size)
    axes_mm = np.asarray(geometry.direction).reshape(3, 3) * np.asarray(geometry.spacing)  # column a: one step

    def index_of(source_index: np.ndarray) -> np.ndarray:
        point = np.asarray(geometry.origin) + axes_mm @ source_index
        return np.asarray(labelmap.TransformPhysicalPointToContinuousIndex([float(v) for v in point]))

    start = index_of(np.zeros(3))
    steps = np.asarray([index_of(np.eye(3)[a]) for a in range(3)]) - start  # row a: one step along source axis a
    mapping = np.rint(steps)
    if not (np.all(np.abs(mapping).sum(axis=0) == 1) and np.all(np.abs(mapping).sum(axis=1) == 1)
            and np.allclose(start, np.rint(start), atol=ALIGNED_TOLERANCE)
            and np.allclose(index_of(size - 1.0), np.rint(start) + mapping.T @ (size - 1), atol=ALIGNED_TOLERANCE)):
        return None
    axes = np.abs(mapping).argmax(axis=1)  # the label-map axis each source axis runs along
    signs = mapping[np.arange(3), axes]
    first = np.rint(start).astype(int)
    if not np.array_equal(np.asarray(labelmap.GetSize())[axes], size) or np.any(
            first[axes] != np.where(signs > 0, 0, size - 1)):
        return None  # the same points only where the grids overlap: resample (it fills the rest with 0)
    view = sitk.GetArrayViewFromImage(labelmap)  # (z, y, x): numpy axis i is image axis 2 - i
    view = view[tuple(slice(None, None, -1) if signs[list(axes).index(2 - i)] < 0 else slice(None)
                      for i in range(3))]
    return np.array(view.transpose([2 - axes[2 - i] for i in range(3)]), order="C")  # a copy outlives the image
