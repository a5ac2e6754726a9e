"""Brain MR: the chain steps (bias correction, registration, brain extraction, atlas) and their helpers."""
