"""Brain MR pre-processing helpers shared by the brain modules: spaces, transforms, registration and the atlas."""
