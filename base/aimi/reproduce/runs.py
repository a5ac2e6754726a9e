"""`aimi reproduce`: re-run the model on series IDC published AIMI SEGs for, and compare with those SEGs.

In: an IDCClient (the bundled index), a Source (IDC downloads or a local stand-in laid out as they would be), a
SeriesInstanceUID (image series or AIMI SEG) or a model and a sample size, and `Settings`. Out, under OUT:
published/<SEG uid>/ (the SEG as downloaded), source/<series uid>/ (one series) or run/ (the `aimi run` or
`aimi batch` output: SEGs, run-report.json / batch-report.json), the tables of aimi.reproduce.tables,
qc-overlay.png (one series) and reproduce-report.json (atomic): the series, model, workflow, published SEG(s) and
the metrics per segment. Exit 0 when it ran (the agreement is a result), 1 when the chain failed on a series or a
segment fell under --min-dice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimi.app import REPORT_NAME as RUN_REPORT
from aimi.app import run_model
from aimi.atomic import prepare_output_folder
from aimi.batch.engine import REPORT_NAME as BATCH_REPORT
from aimi.batch.engine import BatchSettings, run_batch
from aimi.batch.sources import Source
from aimi.core.context import RunOptions
from aimi.core.log import event
from aimi.core.workflow import load_workflow
from aimi.errors import EXIT_FAILED, EXIT_OK, ConfigError
from aimi.evaluate import SegmentResult, evaluate_pair
from aimi.models import load_model
from aimi.registry import registry
from aimi.report import now, versions, write_report
from aimi.reproduce.downloads import SegHeader, fetched, read_seg
from aimi.reproduce.index import IndexedSeries, SqlIndex, Target, index_version, input_modality, lookup, sample_segs
from aimi.reproduce.overlay import write_overlay
from aimi.reproduce.tables import TABLE4, below, segment_table, write_tables
from aimi.weights import WeightsMissing, fetch, require_weights

log = logging.getLogger("aimi.reproduce")

PUBLISHED, SOURCE, RUN = "published", "source", "run"
REPORT_NAME = "reproduce-report.json"
OVERLAY_NAME = "qc-overlay.png"
AS_PUBLISHED = "as-published"
SEG_SUFFIX = ".seg.dcm"
S3_ENDPOINT = "https://s3.amazonaws.com"  # IDC's public AWS buckets, as idc-index's s5cmd calls name it


@dataclass(frozen=True)
class Settings:
    output_dir: Path
    weights_dir: Path
    options: RunOptions
    workflow: str | None = None  # None: as-published where the model has it, else default
    assignments: list[str] = field(default_factory=list)
    min_dice: float | None = None


def reproduce_series(bundled: SqlIndex, source: Source, uid: str, settings: Settings) -> int:
    """Re-run the model on one series and compare with the SEG(s) IDC published for it."""
    target = lookup(bundled, uid)
    workflow = _checked_workflow(target.model, settings.workflow)
    out = settings.output_dir
    prepare_output_folder(out)
    started = now()
    published = _published(source, target, out / PUBLISHED)
    series = published[0].referenced_series
    _ensure_weights(target.model, settings.weights_dir)
    series_dir = fetched(source, series, out / SOURCE / series)
    status = run_model(target.model, series_dir, out / RUN, workflow=workflow, weights_dir=settings.weights_dir,
                       options=settings.options, assignments=settings.assignments)
    run_report = json.loads((out / RUN / RUN_REPORT).read_text())
    reproduced = _seg_of_run(run_report, series, out / RUN)
    if status != EXIT_OK or reproduced is None:
        print(f"aimi reproduce: series {series}: {_why_no_seg(run_report)}")
        return EXIT_FAILED
    results = [result for seg in published for result in evaluate_pair(seg.path, reproduced, series)]
    write_tables(results, out, f"series {series}, {target.model} workflow {workflow}")
    write_overlay(series_dir, published[0].path, reproduced, input_modality(target.model), out / OVERLAY_NAME)
    shortfall = below(results, settings.min_dice)
    write_report(out / REPORT_NAME, {
        **_header(target.model, workflow, target.rule, started, settings),
        "series": series, "study": target.segs[0].study, "collection": target.segs[0].collection,
        "published": [_seg_entry(seg) for seg in published],
        "reproduced_seg": str(reproduced), "run_report": str(out / RUN / RUN_REPORT),
        "qc_overlay": str(out / OVERLAY_NAME), "segments": [r.as_row() for r in results], "below_min_dice": shortfall,
    })
    print(f"series {series}: {target.model} ({workflow}) against the SEG IDC published ({target.rule})")
    print(segment_table(results), end="")
    print(f"report: {out / REPORT_NAME}; QC overlay: {out / OVERLAY_NAME}")
    return _verdict(shortfall, [])


def reproduce_sample(bundled: SqlIndex, source: Source, model: str, count: int, seed: int, settings: Settings) -> int:
    """Re-run the model on `count` series with published AI SEGs (chosen by `seed`) as one batch; Table 4 of
    AI against AI over them."""
    workflow = _checked_workflow(model, settings.workflow)
    out = settings.output_dir
    prepare_output_folder(out)
    started = now()
    published = [read_seg(fetched(source, uid, out / PUBLISHED / uid), uid) for uid in sample_segs(bundled, model,
                                                                                                     count, seed)]
    _ensure_weights(model, settings.weights_dir)
    series = list(dict.fromkeys(seg.referenced_series for seg in published))
    run_batch(series, source, BatchSettings(model, out / RUN, settings.weights_dir, settings.options,
                                            workflow=workflow, assignments=settings.assignments))
    entries = {e["series_uid"]: e for e in json.loads((out / RUN / BATCH_REPORT).read_text())["series"]}
    results: list[SegmentResult] = []
    failures = []
    for seg in published:
        entry = entries[seg.referenced_series]
        outputs = [name for name in entry["outputs"] if name.endswith(SEG_SUFFIX)]
        if entry["state"] != "done" or not outputs:
            failures.append(f"series {seg.referenced_series}: {entry['state']} ({entry['reason'] or 'no SEG'})")
            continue
        results += evaluate_pair(seg.path, out / RUN / outputs[0], seg.referenced_series)
    write_tables(results, out, f"{len(published)} published AI SEGs of {model} (seed {seed}), workflow {workflow}")
    shortfall = below(results, settings.min_dice)
    write_report(out / REPORT_NAME, {
        **_header(model, workflow, f"published AI SEGs of {model}", started, settings),
        "sample": {"count": count, "seed": seed},
        "published": [_seg_entry(seg) for seg in published], "batch_report": str(out / RUN / BATCH_REPORT),
        "failures": failures, "segments": [r.as_row() for r in results], "below_min_dice": shortfall,
    })
    print((out / TABLE4).read_text(), end="")
    print(f"report: {out / REPORT_NAME}")
    return _verdict(shortfall, failures)


def plan(bundled: SqlIndex, uid: str, settings: Settings) -> list[str]:
    """What `reproduce UID` would download, with the s5cmd command for each (nothing is fetched)."""
    target = lookup(bundled, uid)
    workflow = _checked_workflow(target.model, settings.workflow)
    out = settings.output_dir
    lines = [f"model {target.model}, workflow {workflow} ({target.rule}; idc-index-data {index_version()})"]
    lines += [_download_line("published AI SEG", seg, out / PUBLISHED / seg.uid) for seg in target.segs]
    if target.series is None:
        lines.append("source series: the one the SEG references (read from it once downloaded)")
    else:
        lines.append(_download_line("source series", target.series, out / SOURCE / target.series.uid))
    return lines


def _download_line(what: str, series: IndexedSeries, folder: Path) -> str:
    return (f"{what} {series.uid} ({series.modality}, {series.collection}, {series.size_mb:.1f} MB): "
            f"s5cmd --no-sign-request --endpoint-url {S3_ENDPOINT} cp '{series.url}' '{folder}/'")


def workflow_for(model: str, asked: str | None) -> str:
    """The workflow asked for, else the one IDC's SEGs were made with where the model has it, else default."""
    if asked:
        return asked
    return AS_PUBLISHED if AS_PUBLISHED in load_model(model).workflows() else "default"


def check_reproducible(model: str) -> None:
    """ConfigError for a model whose case is more than one series: IDC holds each UPENN-GBM contrast in a study
    of its own, and the brain chain assembles its four contrasts from one study."""
    importer = load_workflow(load_model(model).workflow_path("default"), registry()).steps[0].settings
    case = getattr(importer, "case", "series")
    if case != "series":
        raise ConfigError(f"{model} assembles one case from several series of a {case}; reproduce re-runs models "
                          "that segment one series at a time (IDC holds each UPENN-GBM contrast in a study of its "
                          "own)")


def _checked_workflow(model: str, asked: str | None) -> str:
    check_reproducible(model)
    workflow = workflow_for(model, asked)
    load_model(model).workflow_path(workflow)  # ConfigError naming the model's workflows
    return workflow


def _published(source: Source, target: Target, folder: Path) -> list[SegHeader]:
    """The published AI SEG(s) of the target's series, downloaded; asked for an image series, the study's AI SEGs
    that reference another series are left out (ConfigError when none references it)."""
    segs = [read_seg(fetched(source, seg.uid, folder / seg.uid), seg.uid) for seg in target.segs]
    if target.series is None:
        return segs
    mine = [seg for seg in segs if seg.referenced_series == target.series.uid]
    if not mine:
        others = ", ".join(f"{seg.series_uid} -> {seg.referenced_series}" for seg in segs)
        raise ConfigError(f"series {target.series.uid}: none of the {len(segs)} AIMI AI SEG(s) of its study "
                          f"references it ({others}); give one of the series they reference")
    return mine


def _ensure_weights(model: str, weights_dir: Path) -> None:
    """The model's weights in place: fetched from Zenodo and verified when missing (FetchError offline)."""
    manifest = load_model(model).manifest
    try:
        require_weights(weights_dir, manifest)
    except WeightsMissing:
        event(log, "reproduce.weights_fetch", model=model, weights=weights_dir)
        fetch(manifest, weights_dir)


def _seg_of_run(run_report: dict[str, Any], series: str, run_dir: Path) -> Path | None:
    for case in run_report["cases"]:
        if series in case["series"].values() and case["status"] == "done":
            return next((run_dir / name for name in case["outputs"] if name.endswith(SEG_SUFFIX)), None)
    return None


def _why_no_seg(run_report: dict[str, Any]) -> str:
    """The failed module and error, or why the importer did not take the series."""
    failed = [f"{c['failed_module']}: {c['error']}" for c in run_report["cases"] if c["status"] == "failed"]
    skipped = [f"{s['status']}: {s['reason']}" for s in run_report["series"] if s.get("reason")]
    return "the chain wrote no SEG (" + ("; ".join(failed + skipped) or "no case") + ")"


def _header(model: str, workflow: str, rule: str, started: str, settings: Settings) -> dict[str, Any]:
    return {"model": model, "workflow": workflow, "model_rule": rule, "idc_index": index_version(),
            "min_dice": settings.min_dice, "versions": versions(), "started": started, "finished": now()}


def _seg_entry(seg: SegHeader) -> dict[str, Any]:
    return {"seg_series": seg.series_uid, "file": str(seg.path), "references": seg.referenced_series,
            "algorithm_names": list(seg.algorithms)}


def _verdict(shortfall: list[str], failures: list[str]) -> int:
    for line in failures + [f"under --min-dice: {s}" for s in shortfall]:
        print(f"aimi reproduce: {line}")
    return EXIT_FAILED if failures or shortfall else EXIT_OK
