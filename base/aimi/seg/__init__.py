"""DICOM Segmentation: coded segment tables and the BINARY SEG writer."""

from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg, write_dataset_atomically

__all__ = ["SegHeader", "SegmentSpec", "build_seg", "parse_segments", "write_dataset_atomically"]
