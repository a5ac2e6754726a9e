"""`make bench`: the incumbent chain (plastimatch, nnU-Net CLI per series, dcmqi) against AIMI Model Hub, side by side.

A benchmark, not a test: both sides run for real in this process tree on the same synthetic DICOM, interleaved,
with thread counts pinned equal; a ratio is printed only after their outputs were checked equal.
"""
