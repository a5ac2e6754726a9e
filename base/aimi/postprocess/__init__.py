"""Chain steps that edit label maps: components, regions, size filters, fusion, relabelling."""
