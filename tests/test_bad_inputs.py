"""Real-world input never takes a run down: every class of bad and unusual DICOM in tests/support/bad_inputs.py,
mixed into ONE folder with good series, through `aimi run` once and `aimi batch` once.

Per class: the status and reason it must get; every series the importer accepts is segmented into a
dciodvfy-clean SEG; the exit code is 0 (nothing that was accepted failed); no traceback and no planted patient name
in stdout, stderr, the log or the report; nothing written outside OUT; no temporary left in it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.support.bad_inputs import CLASSES, Expect, write_corpus
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

MODEL = "bamf_nnunet_ct_kidney"


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    out: Path


@dataclass
class Corpus:
    root: Path
    expected: dict[str, Expect]
    before: dict[str, float]  # every file under the work folder and its mtime, before any run


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.lstat().st_mtime for p in folder.rglob("*")}


def _aimi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aimi.cli", *args], capture_output=True, text=True, timeout=1800,
                          check=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    work = tmp_path_factory.mktemp("bad-inputs")
    expected = write_corpus(work / "in")
    return Corpus(work, expected, _tree(work))


@pytest.fixture(scope="module")
def run(corpus: Corpus, kidney_weights: Path) -> Run:
    out = corpus.root / "out"
    done = _aimi("run", MODEL, "-i", str(corpus.root / "in"), "-o", str(out), "--weights", str(kidney_weights),
                 "--no-tta")
    return Run(done.returncode, done.stdout, done.stderr, json.loads((out / "run-report.json").read_text()), out)


@pytest.fixture(scope="module")
def batch(corpus: Corpus, run: Run, kidney_weights: Path) -> Run:
    """The same folder as `aimi batch --source`, over every series UID the corpus holds (the illegal one too)."""
    uids = sorted({e.series_uid for e in corpus.expected.values() if pydicom.uid.UID(e.series_uid).is_valid})
    manifest = corpus.root / "manifest.txt"
    manifest.write_text("".join(f"{uid}\n" for uid in uids))
    out = corpus.root / "batch-out"
    done = _aimi("batch", MODEL, "--manifest", str(manifest), "--source", str(corpus.root / "in"), "-o", str(out),
                 "--weights", str(kidney_weights), "--no-tta")
    return Run(done.returncode, done.stdout, done.stderr, json.loads((out / "batch-report.json").read_text()), out)


def test_the_corpus_has_at_least_forty_classes() -> None:
    assert len(CLASSES) >= 40


@pytest.mark.parametrize("name", list(CLASSES))
def test_each_class_gets_its_status_and_reason(name: str, corpus: Corpus, run: Run) -> None:
    expect = corpus.expected[name]
    series = {s["series_uid"]: s for s in run.report["series"]}
    ignored = {i["file"]: i["reason"] for i in run.report["ignored_files"]}
    if expect.status == "ignored" or expect.series_uid not in series:
        assert re.fullmatch(expect.status, "ignored"), f"{name}: no series entry"
        for file in expect.files:
            assert re.search(expect.reason, ignored[file]), f"{name}: {file}: {ignored.get(file)}"
        assert not expect.series_uid or expect.series_uid not in series
        return
    entry = series[expect.series_uid]
    assert re.fullmatch(expect.status, entry["status"]), f"{name}: {entry}"
    assert re.search(expect.reason, entry["reason"]), f"{name}: {entry['reason']!r}"
    if expect.series_warning:
        assert any(re.search(expect.series_warning, w) for w in entry.get("warnings", [])), f"{name}: {entry}"
    for file in expect.files:  # files left out are reported against their series and among the ignored files
        assert file in ignored, f"{name}: {file} not listed"


def test_every_accepted_series_is_segmented_into_a_clean_seg_and_the_run_exits_0(corpus: Corpus, run: Run) -> None:
    selected = [s for s in run.report["series"] if s["status"] == "selected"]
    cases = {c["id"]: c for c in run.report["cases"]}
    assert len(selected) >= 15
    assert run.status == 0, [c for c in cases.values() if c["status"] != "done"]
    for series in selected:
        case = cases[series["series_uid"]]
        assert case["status"] == "done", case
        [seg] = [run.out / p for p in case["outputs"] if p.endswith(".seg.dcm")]
        assert dciodvfy_errors(seg) == [], (series["description"][:40], seg)
        header = pydicom.dcmread(seg, stop_before_pixels=True)
        assert header.ReferencedSeriesSequence[0].SeriesInstanceUID == series["series_uid"]


def test_an_implausible_ct_is_segmented_with_a_warning(corpus: Corpus, run: Run) -> None:
    warned = {c["id"]: c.get("warnings", []) for c in run.report["cases"]}
    for name, expect in corpus.expected.items():
        if expect.warning:
            assert any(re.search(expect.warning, w) for w in warned[expect.series_uid]), name
    assert sum(bool(w) for w in warned.values()) == sum(bool(e.warning) for e in corpus.expected.values())


@pytest.mark.parametrize("which", ["run", "batch"])
def test_no_traceback_and_no_planted_name_reaches_any_output(which: str, corpus: Corpus, run: Run,
                                                             batch: Run) -> None:
    result = run if which == "run" else batch
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    texts |= {str(p.relative_to(result.out)): p.read_text(errors="replace") for p in result.out.rglob("*")
              if p.is_file() and p.suffix in (".json", ".log", ".txt", ".csv")}
    names = [e.patient_name for e in corpus.expected.values() if e.patient_name]
    assert len(names) >= 40
    for where, text in texts.items():
        assert "Traceback" not in text, where
        planted = [name for name in names if name in text or name.replace("^", " ") in text]
        assert planted == [], f"{where} carries {planted[:3]}"


def test_nothing_is_written_outside_out_and_no_temporary_is_left(corpus: Corpus, run: Run, batch: Run) -> None:
    after = _tree(corpus.root)
    outside = {path for path in set(after) - set(corpus.before)
               if not path.startswith(("out", "batch-out", "manifest.txt"))}
    assert outside == set()
    changed = {path for path, mtime in corpus.before.items() if after.get(path) != mtime and path != "in"}
    assert changed == set()
    for out in (run.out, batch.out):
        assert [p for p in out.rglob("*") if ".partial" in p.name] == []
        assert [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())] == []


def test_batch_segments_every_accepted_series_and_explains_the_rest(corpus: Corpus, run: Run, batch: Run) -> None:
    states = {s["series_uid"]: s for s in batch.report["series"]}
    outcome: dict[str, Callable[[dict[str, Any]], bool]] = {
        "selected": lambda s: s["state"] == "done",
        "skipped": lambda s: s["state"] == "skipped",
        "rejected": lambda s: s["state"] == "skipped" and s["reason"],
    }
    run_status = {s["series_uid"]: s["status"] for s in run.report["series"]}
    for name, expect in corpus.expected.items():
        if not pydicom.uid.UID(expect.series_uid).is_valid or expect.series_uid not in run_status:
            continue  # no series to ask IDC or the source for
        entry = states[expect.series_uid]
        assert outcome[run_status[expect.series_uid]](entry), f"{name}: {entry}"
        if run_status[expect.series_uid] == "rejected":
            assert re.search(expect.reason, entry["reason"]), f"{name}: {entry['reason']!r}"
    assert batch.status == 0, batch.stdout[-2000:]
