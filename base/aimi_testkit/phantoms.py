"""Synthetic studies for the demo, tests and benchmarks: organ-like blobs with a test model's class intensities.

The first foreground label forms two large ellipsoids (paired organs: kidneys, lungs, breasts); each further label
is a smaller blob inside one of them (tumor, cyst, nodule), so the model's post-processing has something real
to keep. Intensities come from the test kit's testmodels.toml, the same the tiny model learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aimi_testkit.synthetic import Ellipsoid, GridSpec, StudyInfo, sample_phantom, write_series

ORGAN_RADII_MM = (24.0, 20.0, 20.0)
LESION_RADIUS_MM = 10.0
ORGAN_OFFSET_MM = 30.0


def demo_grid(**overrides: object) -> GridSpec:
    """An axial grid at the tiny models' own spacing (2 mm in plane, 3 mm slices): 9 patches of 32^3 on a CPU."""
    options: dict[str, object] = {"rows": 64, "columns": 64, "slices": 24, "pixel_spacing": (2.0, 2.0),
                                  "slice_step": 3.0}
    options.update(overrides)
    return GridSpec.axial(**options)  # type: ignore[arg-type]


def phantom_shapes(intensities: Mapping[int, Sequence[float]], centre: Sequence[float] = (0.0, 0.0, 0.0),
                   channel: int = 0, *, organ: int | None = None, lesions: Sequence[int] | None = None,
                   paired: bool = True) -> list[Ellipsoid]:
    """An organ (by default the lowest foreground label; two of them when `paired`) and lesions on its surface,
    touching it from outside: exophytic like many renal tumors and cysts, one connected component with it."""
    labels = sorted(v for v in intensities if v != 0)
    organ = labels[0] if organ is None else organ
    lesions = [v for v in labels if v != organ] if lesions is None else list(lesions)
    cx, cy, cz = centre
    shapes = []
    for side in (-1, 1) if paired else (0,):
        centre_of_organ = (cx + side * ORGAN_OFFSET_MM, cy, cz)
        shapes.append(Ellipsoid(centre_of_organ, ORGAN_RADII_MM, intensities[organ][channel], organ))
    touching = ORGAN_RADII_MM[1] + LESION_RADIUS_MM - 1.0  # 1 mm of overlap: one component
    for index, label in enumerate(lesions):
        side = (-1 if index % 2 == 0 else 1) if paired else 0
        lateral = side * ORGAN_OFFSET_MM if paired else 14.0 * (index - 0.5 * (len(lesions) - 1))
        shapes.append(Ellipsoid((cx + lateral, cy - touching, cz), (LESION_RADIUS_MM,) * 3,
                                intensities[label][channel], label))
    return shapes


def write_phantom_series(out_dir: Path, intensities: Mapping[int, Sequence[float]], *, grid: GridSpec | None = None,
                         study: StudyInfo | None = None, seed: int = 0, noise_sd: float = 10.0,
                         organ: int | None = None, lesions: Sequence[int] | None = None, paired: bool = True,
                         **series_options: object) -> tuple[list[Path], np.ndarray]:
    """One synthetic series of the phantom; returns its files and the true label map (source frame order)."""
    grid = grid or demo_grid()
    shapes = phantom_shapes(intensities, organ=organ, lesions=lesions, paired=paired)
    volume, labels = sample_phantom(grid, shapes, float(intensities[0][0]), noise_sd=noise_sd,
                                    rng=np.random.default_rng(seed))
    if series_options.get("modality") == "MR":
        volume = np.clip(volume, 0.0, None)  # MR signal is a magnitude
    files = write_series(volume, grid, out_dir, study=study, **series_options)  # type: ignore[arg-type]
    return files, labels
