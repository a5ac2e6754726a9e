"""DICOM Segmentation: coded segment tables, the BINARY SEG writer and the reader used by tests and evaluation."""

from aimi.seg.reader import read_seg_labelmap, read_seg_masks
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg, write_dataset_atomically

__all__ = [
    "SegHeader",
    "SegmentSpec",
    "build_seg",
    "parse_segments",
    "read_seg_labelmap",
    "read_seg_masks",
    "write_dataset_atomically",
]
