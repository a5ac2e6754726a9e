"""A QC overlay PNG: the source slice with the most segmented voxels, label colours over the windowed image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from aimi.dicom.geometry import SeriesGeometry

MIN_SIDE = 256
COLOURS = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]],
    dtype=np.float32,
)


def overlay_png(image: sitk.Image, labels: np.ndarray, geometry: SeriesGeometry, modality: str, path: Path) -> None:
    """`labels` is on the source grid (slices, rows, columns); the image is resampled onto it for display."""
    reference = geometry.reference_image(sitk.sitkFloat32)
    pixels = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0))
    frame = int(np.argmax((labels > 0).reshape(labels.shape[0], -1).sum(axis=1)))
    grey = _window(pixels[frame], modality)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    label = labels[frame]
    colour = COLOURS[np.minimum(label, len(COLOURS) - 1)]
    rgb = np.where(label[..., None] > 0, 0.55 * rgb + 0.45 * colour, rgb)
    picture = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    scale = max(1, -(-MIN_SIDE // min(picture.size)))  # small grids are enlarged, pixel edges kept sharp
    picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST).save(path, format="PNG")


def _window(pixels: np.ndarray, modality: str) -> np.ndarray:
    low, high = (-160.0, 240.0) if modality == "CT" else tuple(np.percentile(pixels, [1, 99]).tolist())
    return (np.clip((pixels - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.float32)
