"""DICOM helpers: series geometry, scanning and selection, synthetic series."""
