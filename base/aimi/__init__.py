"""AIMI Model Hub: the BAMF AIMI nnU-Net models as chains of reusable modules, DICOM in, DICOM SEG out."""

__version__ = "0.1.0"
