"""Chain steps that read and write files: DICOM import, NIfTI conversion, DICOM SEG, the output folder."""
