"""Chain steps that run models: nnU-Net in-process, and the device choice they share."""
