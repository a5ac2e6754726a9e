"""Stage 6: the strongest peer, nnU-Net's own folder mode, and what overlapping the chain's stages buys.

Peer: `nnUNetv2_predict_from_modelfolder -i DIR` (the code path of `nnUNetv2_predict -i DIR`: model loaded once,
its default 3 preprocessing and 3 export workers) on the series already converted to NIfTI by dcm2niix (untimed;
the project's converter, so both sides see the same rows): NIfTI in, NIfTI out - less work than the project's
DICOM in, SEG out. Project: one `aimi run` over the DICOM folders with its default overlap, and again with
`--workers 0` (one case at a time). Same model, fold 0, TTA, tile step and threads; label maps compared voxel for
voxel. A second pair of runs, overlap on and off, on copies of the large CT (`--no-tta`, where the CPU stages
weigh most next to the network), also gives the overlapped run's peak RSS.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from bench.common import Row, StageResult, interleaved, median, run_tool, run_with_peak_rss, tool
from bench.conversion import incumbent_command
from bench.data import MODEL, Inputs, series_uid

LIMIT_GB = 8.0


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_gb: float
    output: Path
    report: dict[str, Any]
    done_at: list[float]  # when each case ended (its case.done log line), in seconds

    @property
    def steady_per_hour(self) -> float:
        """Series per hour once the pipeline is full: between the first and the last case to end (what a batch of
        thousands of series sees; the fill and drain of a short run weigh less and less)."""
        return 3600.0 * (len(self.done_at) - 1) / (self.done_at[-1] - self.done_at[0])

    def labelmap(self, series_uid: str) -> Path:
        case = next(c for c in self.report["cases"] if series_uid in c["series"].values())
        return self.output / next(p for p in case["outputs"] if p.endswith(".labels.nrrd"))


def run(inputs: Inputs, rounds: int, env: dict[str, str], tta: bool) -> StageResult:
    series = sorted(p for p in inputs.peer_root.iterdir() if p.is_dir())
    large = sorted(p for p in inputs.large_copies.iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory(prefix="aimi-bench-peer-") as folder:
        work = Path(folder)
        nifti = work / "nifti"
        for path in series:
            command, _ = incumbent_command("dcm2niix", path, nifti, stem=f"{path.name}_0000")
            run_tool(command, env)

        def peer(index: int) -> tuple[float, Path]:
            output = work / f"peer-{index}"
            return run_tool(_peer_command(inputs, nifti, output, tta), env), output

        def project(index: int) -> tuple[Run, Run]:
            return (_aimi(inputs, inputs.peer_root, work / f"on-{index}", env, tta),
                    _aimi(inputs, inputs.peer_root, work / f"off-{index}", env, tta, "--workers", "0"))

        a, b = interleaved(rounds, peer, project)
        large_runs = [(_aimi(inputs, inputs.large_copies, work / f"large-on-{index}", env, False),
                       _aimi(inputs, inputs.large_copies, work / f"large-off-{index}", env, False, "--workers", "0"))
                      for index in range(rounds)]
        differ = {path.name: _difference(a[-1][1] / f"{path.name}.nii.gz", b[-1][0].labelmap(series_uid(path)))
                  for path in series}
        same = _same_outputs(b[-1][0], b[-1][1]) and _same_outputs(*large_runs[-1])
    n, n_large = len(series), len(large)
    shape = "x".join(str(v) for v in reversed(inputs.large_labels.shape))
    peak = max(on.peak_gb for on, _ in large_runs)
    return StageResult(
        "peer",
        [Row(f"6. series/hour, {n} series 160x160x60: nnU-Net folder mode (NIfTI -> NIfTI) vs aimi run "
             "(DICOM -> SEG)", median([3600 * n / s for s, _ in a]), median([3600 * n / on.seconds for on, _ in b]),
             unit="/h", target=">= 1.5x", higher_is_better=True),
         Row(f"6. overlap, same {n} series: aimi run --workers 0 vs default [series/hour]",
             median([3600 * n / off.seconds for _, off in b]), median([3600 * n / on.seconds for on, _ in b]),
             unit="/h", higher_is_better=True),
         Row(f"6. overlap, {n_large} x {shape} CT, --no-tta: aimi run --workers 0 vs default [series/hour]",
             median([3600 * n_large / off.seconds for _, off in large_runs]),
             median([3600 * n_large / on.seconds for on, _ in large_runs]), unit="/h", higher_is_better=True),
         Row(f"6. overlap, {n_large} x {shape} CT, --no-tta, steady state (first to last case to end): "
             "--workers 0 vs default [series/hour]", median([off.steady_per_hour for _, off in large_runs]),
             median([on.steady_per_hour for on, _ in large_runs]), unit="/h", target=">= 1.3x",
             higher_is_better=True),
         Row(f"6. peak RSS, overlap on, {n_large} x {shape} CT", None, peak, unit="GB",
             target=f"< {LIMIT_GB:.0f} GB")],
        equal=not any(differ.values()) and same,
        check=f"label maps of nnU-Net folder mode and aimi run at the same voxel centres ({n} series): "
              f"{sum(differ.values())} voxels differ; overlap on and off: every label map "
              f"{'identical' if same else 'DIFFERS'} (both sets); peak RSS {peak:.2f} GB",
        notes=[f"{'TTA on' if tta else '--no-tta'} (large CT: --no-tta); fold 0; tile step 0.5; the peer with "
               "nnU-Net's default -npp 3 -nps 3; the project with its default workers (from the cores)"],
    )


def _peer_command(inputs: Inputs, nifti: Path, output: Path, tta: bool) -> list[str | Path]:
    return [tool("nnUNetv2_predict_from_modelfolder"), "-i", nifti, "-o", output, "-m", inputs.model_folder,
            "-f", "0", "-device", "cpu", "--disable_progress_bar", *([] if tta else ["--disable_tta"])]


def _aimi(inputs: Inputs, folder: Path, output: Path, env: dict[str, str], tta: bool, *extra: str) -> Run:
    command = [tool("aimi"), "run", MODEL, "-i", folder, "-o", output, "--weights", inputs.weights,
               "--workflow", inputs.workflow, "--device", "cpu", "--set", "DataOrganizer.labelmap_format=nrrd",
               *([] if tta else ["--no-tta"]), *extra]
    output.mkdir(parents=True)
    log = output.parent / f"{output.name}.log"
    seconds, peak = run_with_peak_rss(command, env, log)
    return Run(seconds, peak, output, json.loads((output / "run-report.json").read_text()), _done_at(log))


def _done_at(log: Path) -> list[float]:
    """The time of each case.done line of an `aimi run` log (its logging format: date, time with milliseconds)."""
    times = []
    for line in log.read_text().splitlines():
        if " case.done " in line:
            clock = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            times.append(clock.timestamp())
    return times


def _difference(theirs: Path, ours: Path) -> int:
    """Voxels where nnU-Net's label map (dcm2niix's grid) and the project's (source grid) disagree."""
    mine = sitk.ReadImage(str(ours))
    other = sitk.Resample(sitk.ReadImage(str(theirs)), mine, sitk.Transform(), sitk.sitkNearestNeighbor, 255,
                          sitk.sitkUInt8)
    return int(np.count_nonzero(sitk.GetArrayViewFromImage(other) != sitk.GetArrayViewFromImage(mine)))


def _same_outputs(on: Run, off: Run) -> bool:
    """Overlap changes when work is done, never what: the same label map for every case."""
    if [c["id"] for c in on.report["cases"]] != [c["id"] for c in off.report["cases"]]:
        return False
    return all(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(on.labelmap(c["id"])))),
                              sitk.GetArrayFromImage(sitk.ReadImage(str(off.labelmap(c["id"])))))
               for c in on.report["cases"])
