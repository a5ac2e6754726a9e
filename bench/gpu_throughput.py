"""GPU batch throughput: series per hour of the whole chain against nnU-Net's own folder mode, with the GPU's
utilisation sampled, on a real-size network (bench.gpu's random BAMF-sized model as the kidney model's weights).

    python -m bench.gpu_throughput [--series 8] [--slices 150] [--smoke] [--json FILE]   (bench/gpu.sh runs it)

Three runs over the same CT series (512 x 512 x slices at 0.8 x 0.8 x 1 mm), fold 0, no TTA: nnU-Net's folder mode
(`nnUNetv2_predict_from_modelfolder -i DIR`, default 3 + 3 workers) on the series converted to NIfTI by dcm2niix
(untimed: NIfTI in, NIfTI out), `aimi run` (DICOM in, SEG out) with its default overlap, and `aimi run --workers 0`.
`nvidia-smi` samples utilisation every 200 ms during each run. `--smoke` runs the same code on the CPU, small.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from aimi.models import load_model
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.synthetic import GridSpec, StudyInfo
from aimi_testkit.testmodel_cli import spec_for
from bench.common import pinned_env, run_tool, tool
from bench.conversion import incumbent_command
from bench.data import MODEL, WEIGHTS_ID, raw_workflow, series_uid
from bench.gpu import FULL, SMOKE, plans, write_model


@dataclass
class Side:
    name: str
    seconds: float
    series: int
    gpu_utilisation: float | None  # mean percent over the run, None without nvidia-smi

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.series / self.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--smoke", action="store_true", help="CPU, 64 x 64 x 40 series, 3 of them")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device visible: `python -m bench.gpu_throughput --smoke` runs the same code on the CPU",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="aimi-gpu-throughput-") as folder:
        sides, agreement = measure(Path(folder), args)
    print_table(sides, agreement)
    if args.json:
        args.json.write_text(json.dumps({"sides": [asdict(s) for s in sides], "agreement": agreement}, indent=2))
    return 0


def measure(work: Path, args: argparse.Namespace) -> tuple[list[Side], float]:
    size = SMOKE if args.smoke else FULL
    device = "cpu" if args.smoke else "cuda"
    n = 3 if args.smoke else args.series
    shape = (40, 64, 64) if args.smoke else (args.slices, 512, 512)
    weights = work / "weights"
    model_dir = weights / MODEL / WEIGHTS_ID
    model_dir.mkdir(parents=True)
    write_model(model_dir, plans(size["patch"], size["spacing"], shape))
    dicom, nifti = _series(work, n, shape), work / "nifti"
    env = pinned_env(len(os.sched_getaffinity(0)))
    for path in sorted(dicom.iterdir()):
        run_tool(incumbent_command("dcm2niix", path, nifti, stem=f"{path.name}_0000")[0], env)
    peer_out = work / "peer"
    peer = [tool("nnUNetv2_predict_from_modelfolder"), "-i", nifti, "-o", peer_out, "-m", model_dir, "-f", "0",
            "-device", device, "--disable_tta", "--disable_progress_bar"]
    workflow = raw_workflow(load_model(MODEL), work)

    def aimi(name: str, *extra: str) -> list[str | Path]:
        return [tool("aimi"), "run", MODEL, "-i", dicom, "-o", work / name, "--weights", weights, "--workflow",
                workflow, "--device", device, "--no-tta", "--folds", "0", "--set",
                "DataOrganizer.labelmap_format=nrrd", *extra]

    sides = [_sampled("nnU-Net folder mode (NIfTI -> NIfTI, -npp 3 -nps 3)", peer, env, n),
             _sampled("aimi run, overlap on (DICOM -> SEG)", aimi("on"), env, n),
             _sampled("aimi run --workers 0 (DICOM -> SEG)", aimi("off", "--workers", "0"), env, n)]
    return sides, _agreement(dicom, peer_out, work / "on")


def _series(work: Path, n: int, shape: tuple[int, int, int]) -> Path:
    intensities = spec_for(load_model(MODEL), WEIGHTS_ID).intensities
    slices, rows, columns = shape
    grid = GridSpec.axial(rows=rows, columns=columns, slices=slices, pixel_spacing=(0.8, 0.8), slice_step=1.0)
    for index in range(n):
        write_phantom_series(work / "dicom" / f"g{index:02d}", intensities, grid=grid, seed=index,
                             study=StudyInfo.new(f"GPU-{index:02d}"), series_description="GPU THROUGHPUT")
    return work / "dicom"


def _sampled(name: str, command: list[str | Path], env: dict[str, str], n: int) -> Side:
    """Run `command`, sampling the GPU's utilisation beside it with nvidia-smi (when there is one)."""
    smi = shutil.which("nvidia-smi")
    sampler = subprocess.Popen([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                               stdout=subprocess.PIPE, text=True) if smi else None
    started = time.perf_counter()
    try:
        run_tool(command, env)
    finally:
        seconds = time.perf_counter() - started
        samples: list[float] = []
        if sampler is not None:
            sampler.terminate()
            output, _ = sampler.communicate()
            samples = [float(v) for v in output.split() if v.replace(".", "", 1).isdigit()]
    print(f"  {name}: {seconds:.1f} s", flush=True)
    return Side(name, seconds, n, round(float(np.mean(samples)), 1) if samples else None)


def _agreement(dicom: Path, peer: Path, ours: Path) -> float:
    """Fraction of voxels where nnU-Net's and the project's label maps agree (a random network has near ties)."""
    report = json.loads((ours / "run-report.json").read_text())
    equal = total = 0
    for path in sorted(dicom.iterdir()):
        case = next(c for c in report["cases"] if c["id"] == series_uid(path))
        mine = sitk.ReadImage(str(ours / next(p for p in case["outputs"] if p.endswith(".labels.nrrd"))))
        theirs = sitk.Resample(sitk.ReadImage(str(peer / f"{path.name}.nii.gz")), mine, sitk.Transform(),
                               sitk.sitkNearestNeighbor, 255, sitk.sitkUInt8)
        a, b = sitk.GetArrayViewFromImage(theirs), sitk.GetArrayViewFromImage(mine)
        equal, total = equal + int(np.count_nonzero(a == b)), total + a.size
    return equal / total


def print_table(sides: list[Side], agreement: float) -> None:
    peer = sides[0]
    print("\n| run | s | series/hour | vs folder mode | mean GPU utilisation |")
    print("|---|---|---|---|---|")
    for side in sides:
        utilisation = "-" if side.gpu_utilisation is None else f"{side.gpu_utilisation:.0f}%"
        print(f"| {side.name} | {side.seconds:.1f} | {side.per_hour:.0f} | {side.per_hour / peer.per_hour:.2f}x "
              f"| {utilisation} |")
    print(f"\nlabel maps, folder mode vs aimi run: {100 * agreement:.4f}% of voxels equal (random weights: near ties)")


if __name__ == "__main__":
    sys.exit(main())
