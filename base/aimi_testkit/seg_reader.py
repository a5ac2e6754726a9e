"""DICOM SEG -> masks on the source slices, for tests and evaluation; reads SEGs from aimi, dcmqi and highdicom.

Frames are matched to source slices by the SOP instances they reference (PS3.3 C.7.6.16.2.6), never by position
in the file; source slices that no frame references are empty (writers omit empty frames, PS3.3 C.8.20.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

#: SpatialLocationsPreserved values (PS3.3 C.7.6.1.1.2 "Source Image Sequence") that forbid indexing by source.
_NOT_PRESERVED = ("NO", "REORIENTED_ONLY")


def read_seg_masks(seg_path: Path | Dataset, source_sop_uids: Sequence[str]) -> dict[str, np.ndarray]:
    """Per SegmentLabel, a bool array (len(source_sop_uids), rows, cols): frame k is the mask on source_sop_uids[k].

    BINARY, FRACTIONAL (any value > 0) and LABELMAP SEGs; a LABELMAP's background segment (number 0) is left out.
    """
    seg = _open(seg_path)
    label_by_number = {int(item.SegmentNumber): str(item.SegmentLabel) for item in seg.SegmentSequence}
    numbers = [number for number in seg.segment_numbers if number > 0]  # 0: a LABELMAP SEG's background
    labels = [label_by_number[number] for number in numbers]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"SEG {seg.SOPInstanceUID}: segment label(s) {duplicates} used by several segments")
    stacked = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(source_sop_uids),
        segment_numbers=numbers,
        ignore_spatial_locations=not _states_not_preserved(seg),
        assert_missing_frames_are_empty=True,
    )
    return {label: stacked[..., i].astype(bool) for i, label in enumerate(labels)}


def read_seg_labelmap(
    seg_path: Path | Dataset, source_sop_uids: Sequence[str], label_of: dict[str, int] | None = None
) -> np.ndarray:
    """A uint8 label map (len(source_sop_uids), rows, cols); later segments are painted over earlier ones.

    `label_of` maps SegmentLabel -> label value; by default a segment's value is its SegmentNumber.
    """
    seg = _open(seg_path)
    masks = read_seg_masks(seg, source_sop_uids)
    numbers = {str(item.SegmentLabel): int(item.SegmentNumber) for item in seg.SegmentSequence}
    values = label_of if label_of is not None else numbers
    missing = sorted(set(masks) - set(values))
    if missing:
        raise ValueError(f"label_of has no value for segment(s) {missing}; it gives {sorted(values)}")
    out_of_range = {label: values[label] for label in masks if not 0 <= values[label] <= 255}
    if out_of_range:
        raise ValueError(f"label values must fit uint8 (0-255), got {out_of_range}")
    labelmap = np.zeros(next(iter(masks.values())).shape, dtype=np.uint8)
    for label in sorted(masks, key=numbers.__getitem__):
        labelmap[masks[label]] = values[label]
    return labelmap


def _open(seg_path: Path | Dataset) -> hd.seg.Segmentation:
    if isinstance(seg_path, hd.seg.Segmentation):
        return seg_path
    if isinstance(seg_path, Dataset):
        return hd.seg.Segmentation.from_dataset(seg_path, copy=True)
    return hd.seg.segread(seg_path)


def _states_not_preserved(seg: Dataset) -> bool:
    """True when a frame says its pixels do not line up with the source (PS3.3 C.7.6.1.1.2).

    highdicom also refuses frames that leave SpatialLocationsPreserved out; dcmqi writes pixel-aligned frames
    without it, so an absent value is accepted here and only an explicit "not preserved" is refused.
    """
    groups = list(seg.get("PerFrameFunctionalGroupsSequence", [])) + list(seg.get("SharedFunctionalGroupsSequence", []))
    return any(
        source.get("SpatialLocationsPreserved") in _NOT_PRESERVED
        for group in groups
        for derivation in group.get("DerivationImageSequence", [])
        for source in derivation.get("SourceImageSequence", [])
    )
