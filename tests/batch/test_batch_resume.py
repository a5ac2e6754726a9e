"""`aimi batch` over 12 series from a local source standing in for IDC: killed with SIGKILL mid-way, rerun with the
same command, it ends with exactly one SEG per good series, the corrupt one failed with its reason, and a ledger
that matches the files on disk."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aimi.batch.engine import LEDGER_NAME, REPORT_NAME, SCRATCH_NAME
from tests.batch.batch_series import MODEL, PATIENT_NAME, SeriesSet, write_series_set

KILL_AFTER_DONE = 3


def command(series: SeriesSet, out: Path, weights: Path) -> list[str]:
    return [sys.executable, "-m", "aimi.batch.cli", MODEL, "--manifest", str(series.manifest), "-o", str(out),
            "--source", str(series.source), "--weights", str(weights), "--device", "cpu", "--no-tta",
            "--retries", "1", "--max-scratch-gb", "0.01"]


def ledger_rows(out: Path) -> dict[str, dict]:
    """Read the ledger as another process would while the batch writes it (WAL: readers never block)."""
    path = out / LEDGER_NAME
    if not path.is_file():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        try:
            rows = db.execute("SELECT uid, state, attempts, interruptions, module, reason, outputs FROM series")
            return {r[0]: {"state": r[1], "attempts": r[2], "interruptions": r[3], "module": r[4], "reason": r[5],
                           "outputs": json.loads(r[6])} for r in rows}
        except sqlite3.OperationalError:  # the table is not created yet
            return {}


def run_and_kill(cmd: list[str], out: Path, log: Path) -> int:
    """Start the batch, SIGKILL it once the ledger shows a few series done; returns how many were done then."""
    with open(log, "wb") as stderr:
        process = subprocess.Popen(cmd, stdout=stderr, stderr=stderr)
        deadline = time.monotonic() + 240
        try:
            while time.monotonic() < deadline and process.poll() is None:
                done = sum(r["state"] == "done" for r in ledger_rows(out).values())
                if done >= KILL_AFTER_DONE:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    return done
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    pytest.fail(f"the batch ended (or hung) before {KILL_AFTER_DONE} series were done: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def killed_and_resumed(kidney_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("batch")
    series = write_series_set(root, count=12, corrupt_index=8)
    out = root / "out"
    cmd = command(series, out, kidney_weights)
    done_when_killed = run_and_kill(cmd, out, root / "killed.log")
    state_after_kill = ledger_rows(out)
    resumed = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    return series, out, cmd, done_when_killed, state_after_kill, resumed


@pytest.mark.slow
def test_killed_run_left_work_undone(killed_and_resumed):
    series, _, _, done_when_killed, state_after_kill, _ = killed_and_resumed
    assert KILL_AFTER_DONE <= done_when_killed < len(series.uids)
    assert sum(r["state"] == "done" for r in state_after_kill.values()) < len(series.uids)


@pytest.mark.slow
def test_resumed_run_gives_one_seg_per_good_series_and_fails_the_corrupt_one(killed_and_resumed):
    series, out, _, _, _, resumed = killed_and_resumed
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    segs = sorted(out.rglob("*.seg.dcm"))
    assert sorted(p.parent.name for p in segs) == sorted(series.good)
    assert all(p.name == f"{MODEL}.seg.dcm" for p in segs)
    rows = ledger_rows(out)
    assert {uid: r["state"] for uid, r in rows.items()} == {
        uid: ("failed" if uid == series.corrupt else "done") for uid in series.uids}
    failed = rows[series.corrupt]
    assert failed["module"] == "NiftiConverter" and "dcm2niix" in failed["reason"]
    assert "1 failed" in resumed.stdout and series.corrupt in resumed.stdout


@pytest.mark.slow
def test_ledger_matches_the_files_on_disk_and_nothing_is_left_over(killed_and_resumed):
    series, out, _, _, _, _ = killed_and_resumed
    rows = ledger_rows(out)
    recorded = sorted(p for r in rows.values() if r["state"] == "done" for p in r["outputs"])
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent != out)
    assert recorded == on_disk
    assert all(r["attempts"] == 1 for uid, r in rows.items() if uid != series.corrupt)
    assert not (out / SCRATCH_NAME).exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["summary"] | {"this_run": None} == {"series": 12, "done": 11, "failed": 1, "skipped": 0,
                                                       "pending": 0, "this_run": None}
    assert [s["series_uid"] for s in report["series"]] == series.uids


@pytest.mark.slow
def test_rerun_retries_only_the_failed_series_and_never_reruns_done_ones(killed_and_resumed, tmp_path: Path):
    series, out, cmd, _, _, _ = killed_and_resumed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.seg.dcm")}
    attempts = ledger_rows(out)[series.corrupt]["attempts"]
    again = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    assert again.returncode == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.seg.dcm")} == before
    rows = ledger_rows(out)
    assert rows[series.corrupt]["attempts"] == min(attempts + 1, 2)
    if attempts + 1 >= 2:  # --retries 1 used up: a further rerun leaves it alone
        final = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        assert "this run: 0 in" in final.stdout and ledger_rows(out)[series.corrupt]["attempts"] == 2


@pytest.mark.slow
def test_logs_name_series_by_uid_never_the_patient(killed_and_resumed, tmp_path: Path):
    _, _, _, _, _, resumed = killed_and_resumed
    text = resumed.stdout + resumed.stderr
    assert "series_per_hour=" in text and "eta_min=" in text
    assert PATIENT_NAME not in text and "SECRET-ID" not in text
