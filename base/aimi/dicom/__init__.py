"""DICOM helpers: series geometry, scanning, selection and resampling onto a series grid."""
