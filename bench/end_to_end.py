"""Stages 2 and 4: the fixed cost per series, and end-to-end series per hour, on the small series.

Incumbent, per series and each in a new process as MHub runs it: the converter (plastimatch), nnU-Net's CLI
`nnUNetv2_predict_from_modelfolder` (stand-in for the v1 CLI: import, weight load, one case) and dcmqi
`itkimage2segimage`. Project: one `aimi run` over the folder of all the series (the kidney chain without
post-processing, as the incumbent ships it), and one over the first subset for stage 2.
Stage 2 compares the incumbent's nnU-Net processes alone with the project's whole run (conversion and SEG
included), so the project carries more work than the incumbent there.
Checks: stage 2, the label maps of both predict paths at the same voxel centres; stage 4, the SEG masks decoded
by referenced SOP instance. Both sides run TTA (nnU-Net's default and the incumbent's) unless --no-tta.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import yaml

from aimi.seg.segments import parse_segments
from bench.chain import discover_one, modules, series_of
from bench.common import Row, StageResult, interleaved, median, run_tool, tool
from bench.conversion import incumbent_command
from bench.data import MODEL, Inputs, SmallSeries
from bench.seg_encoding import DCMQI_SKIP_EMPTY, dcmqi_metadata, decoded_labels

STEPS = ("convert", "nnU-Net", "SEG")
#: The project's modules that do each incumbent step's work (report seconds per module and case).
PROJECT_STEPS = {"convert": ("NiftiConverter",), "nnU-Net": ("NNUnetRunner",),
                 "SEG": ("DsegConverter", "DataOrganizer")}


@dataclass
class IncumbentRound:
    seconds: dict[str, dict[str, float]]  # series name -> step -> wall seconds
    labelmaps: dict[str, Path]
    segs: dict[str, Path]

    def total(self, names: list[str], steps: tuple[str, ...] = STEPS) -> float:
        return sum(self.seconds[name][step] for name in names for step in steps)


@dataclass
class ProjectRound:
    wall: float
    report: dict[str, Any]
    output: Path

    def module_seconds(self, labels: tuple[str, ...]) -> float:
        return sum(case["seconds"].get(label, 0.0) for case in self.report["cases"] for label in labels)

    def outputs(self, series_uid: str) -> list[Path]:
        case = next(c for c in self.report["cases"] if c["series"]["ct"] == series_uid)
        return [self.output / p for p in case["outputs"]]


@dataclass(frozen=True)
class Setup:
    inputs: Inputs
    work: Path
    env: dict[str, str]
    converter: str
    tta: bool
    metadata: Path


def run(inputs: Inputs, rounds: int, env: dict[str, str], converter: str, tta: bool) -> list[StageResult]:
    with tempfile.TemporaryDirectory(prefix="aimi-bench-e2e-") as work:
        segments = yaml.safe_load(inputs.workflow.read_text())["modules"]["DsegConverter"]
        specs = parse_segments(segments["segments"], "segments")
        metadata = Path(work, "meta.json")
        step = modules(inputs, Path(work), ("DsegConverter",))["DsegConverter"]
        metadata.write_text(json.dumps(dcmqi_metadata(specs, step.settings), indent=1))
        setup = Setup(inputs, Path(work), env, converter, tta, metadata)
        first = [s for s in inputs.small if s.folder.parent == inputs.small_first]

        def project(index: int) -> tuple[ProjectRound, ProjectRound]:
            return (_project_round(setup, inputs.small_first, f"first-{index}"),
                    _project_round(setup, inputs.small_root, f"all-{index}"))

        a, b = interleaved(rounds, lambda index: _incumbent_round(setup, index), project)
        fixed = _fixed_cost(a, [p for p, _ in b], first, setup)
        end = _end_to_end(a, [p for _, p in b], inputs, specs, setup)
    return [fixed, end]


def _incumbent_round(setup: Setup, index: int) -> IncumbentRound:
    result = IncumbentRound({}, {}, {})
    for series in setup.inputs.small:
        root = setup.work / f"incumbent-{index}" / series.name
        convert, _ = incumbent_command(setup.converter, series.folder, root / "in", stem=f"{series.name}_0000")
        labelmap, seg = root / "out" / f"{series.name}.nii.gz", root / "seg.dcm"
        predict = _predict_command(setup, root)
        encode = [tool("itkimage2segimage"), "--inputImageList", labelmap, "--inputDICOMDirectory", series.folder,
                  "--outputDICOM", seg, "--inputMetadata", setup.metadata, *DCMQI_SKIP_EMPTY]
        result.seconds[series.name] = {step: run_tool(command, setup.env)
                                       for step, command in zip(STEPS, (convert, predict, encode), strict=True)}
        result.labelmaps[series.name], result.segs[series.name] = labelmap, seg
    return result


def _predict_command(setup: Setup, root: Path) -> list[str | Path]:
    """nnU-Net's CLI on `root/in`, label maps to `root/out`: fold 0, one worker each, TTA as the bench says."""
    return [tool("nnUNetv2_predict_from_modelfolder"), "-i", root / "in", "-o", root / "out",
            "-m", setup.inputs.model_folder, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
            "--disable_progress_bar", *([] if setup.tta else ["--disable_tta"])]


def _project_round(setup: Setup, folder: Path, name: str) -> ProjectRound:
    output = setup.work / f"aimi-{name}"
    command = [tool("aimi"), "run", MODEL, "-i", folder, "-o", output, "--weights", setup.inputs.weights,
               "--workflow", setup.inputs.workflow, "--device", "cpu", "--set", "DataOrganizer.labelmap_format=nrrd",
               *([] if setup.tta else ["--no-tta"])]
    wall = run_tool(command, setup.env)
    return ProjectRound(wall, json.loads((output / "run-report.json").read_text()), output)


def _fixed_cost(incumbent: list[IncumbentRound], project: list[ProjectRound], first: list[SmallSeries],
                setup: Setup) -> StageResult:
    names = [s.name for s in first]
    chains = {s.name: _labelmap_difference(incumbent[-1].labelmaps[s.name], project[-1].outputs(s.series_uid))
              for s in first}
    same_input = {s.name: _same_input_difference(setup, s, project[-1]) for s in first if chains[s.name]}
    n = len(first)
    return StageResult(
        "fixed-cost",
        [Row(f"2. per series, {n} small series: nnU-Net CLI process each vs one aimi run (whole chain) [s/series]",
             median([r.total(names, ("nnU-Net",)) / n for r in incumbent]), median([r.wall / n for r in project]),
             target=">= 5x")],
        equal=not any(same_input.values()),
        check=f"label maps of both predict paths at the same voxel centres ({n} series): {sum(chains.values())} "
              f"voxels differ{_same_input_text(same_input)}",
        notes=[_tta_note(setup), *_row_order_note(same_input)],
    )


def _end_to_end(incumbent: list[IncumbentRound], project: list[ProjectRound], inputs: Inputs, specs: list[Any],
                setup: Setup) -> StageResult:
    names = [s.name for s in inputs.small]
    n = len(names)
    rows = [Row(f"4. end to end, {n} small series: series per hour", median([3600 * n / r.total(names)
                                                                            for r in incumbent]),
                median([3600 * n / r.wall for r in project]), unit="/h", target=">= 3x", higher_is_better=True)]
    labels = {"convert": f"{setup.converter} vs NiftiConverter",
              "nnU-Net": "new CLI process vs NNUnetRunner, its one nnU-Net import and weight load included",
              "SEG": "itkimage2segimage vs DsegConverter + DataOrganizer"}
    for step in STEPS:
        rows.append(Row(f"4. {step} per series ({labels[step]})", median([r.total(names, (step,)) / n
                                                                           for r in incumbent]),
                        median([r.module_seconds(PROJECT_STEPS[step]) / n for r in project])))
    in_modules = sum(PROJECT_STEPS.values(), ())
    rows.append(Row("4. rest per series (aimi: interpreter start, imports, DICOM scan, report)", None,
                    median([(r.wall - r.module_seconds(in_modules)) / n for r in project])))
    importer = modules(inputs, setup.work, ("DicomImporter",))["DicomImporter"]
    chains, encoding = {}, 0
    for series in inputs.small:
        uids = series_of(discover_one(importer, series.folder)).sop_instance_uids
        outputs = project[-1].outputs(series.series_uid)
        ours = decoded_labels(next(p for p in outputs if p.name.endswith(".seg.dcm")), uids, specs)
        chains[series.name] = int(np.count_nonzero(decoded_labels(incumbent[-1].segs[series.name], uids, specs)
                                                   != ours))
        if chains[series.name]:  # is the project's SEG its own label map, voxel for voxel?
            own = sitk.ReadImage(str(next(p for p in outputs if p.name.endswith(".labels.nrrd"))))
            encoding += int(np.count_nonzero(sitk.GetArrayViewFromImage(own) != ours))
    same_input = {s.name: _same_input_difference(setup, s, project[-1]) for s in inputs.small if chains[s.name]}
    encoded = f"; the project's SEGs vs its own label maps there: {encoding} voxels differ" if same_input else ""
    return StageResult("end-to-end", rows, equal=not any(same_input.values()) and encoding == 0,
                       check=f"SEG masks decoded by referenced SOP instance ({n} series): {sum(chains.values())} "
                             f"voxels differ{_same_input_text(same_input)}{encoded}",
                       notes=[_tta_note(setup), *_row_order_note(same_input)])


def _same_input_difference(setup: Setup, series: SmallSeries, project: ProjectRound) -> int:
    """Voxels where the project's label map and nnU-Net's CLI run on the project's own model input disagree.

    Asked only where the two chains disagree: plastimatch keeps DICOM's row order and dcm2niix (the project's
    converter) flips it, so the 8 TTA mirrors reach nnU-Net's sum in another order and a voxel whose classes nearly
    tie can come out either way. Run on dcm2niix's NIfTI of the series (same binary, grid and row order as the
    project's input), the CLI checks the project's prediction itself. Untimed; once per series.
    """
    root = setup.work / "same-input" / series.name
    labelmap = root / "out" / f"{series.name}.nii.gz"
    if not labelmap.is_file():
        convert, _ = incumbent_command("dcm2niix", series.folder, root / "in", stem=f"{series.name}_0000")
        run_tool(convert, setup.env)
        run_tool(_predict_command(setup, root), setup.env)
    return _labelmap_difference(labelmap, project.outputs(series.series_uid))


def _same_input_text(same_input: dict[str, int]) -> str:
    if not same_input:
        return ""
    return (f"; where they differ ({len(same_input)} series), nnU-Net's CLI on the project's own input (dcm2niix) "
            f"vs the project: {sum(same_input.values())} voxels differ")


def _row_order_note(same_input: dict[str, int]) -> list[str]:
    if not same_input or any(same_input.values()):
        return []
    return ["on the same input the project and nnU-Net's CLI agree voxel for voxel, so the ratio is shown; the "
            "chains differ only through their inputs' row order (plastimatch keeps DICOM's, dcm2niix flips it), "
            "which reorders nnU-Net's floating-point sum over the TTA mirrors; --incumbent-converter dcm2niix gives "
            "both chains the same rows"]


def _labelmap_difference(incumbent: Path, project_outputs: list[Path]) -> int:
    """Voxels where nnU-Net CLI's label map (on the converter's grid) and the project's (source grid) disagree."""
    ours = sitk.ReadImage(str(next(p for p in project_outputs if p.name.endswith(".labels.nrrd"))))
    theirs = sitk.Resample(sitk.ReadImage(str(incumbent)), ours, sitk.Transform(), sitk.sitkNearestNeighbor, 255,
                           sitk.sitkUInt8)
    return int(np.count_nonzero(sitk.GetArrayViewFromImage(theirs) != sitk.GetArrayViewFromImage(ours)))


def _tta_note(setup: Setup) -> str:
    mode = "TTA (8-fold mirroring) on both sides" if setup.tta else "--no-tta: TTA off on both sides"
    return f"{mode}; fold 0; tile step 0.5; nnU-Net CLI with -npp 1 -nps 1 (one worker each)"
