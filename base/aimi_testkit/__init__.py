"""The test kit: synthetic DICOM series and studies, phantoms, a SEG reader and tiny real nnU-Net models.

The product (`aimi`) does not import it, except the two commands that exist for testing and the demo
(`aimi testmodel`, `make demo`); tests, the bench and the container tests do.
"""
