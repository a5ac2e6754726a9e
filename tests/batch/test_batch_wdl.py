"""workflows/aimi_batch.wdl: passes `miniwdl check`, and runs end to end under miniwdl without containers (the
`aimi_host` backend) over 3 batches of a local source, gathering one SEG per good series and every batch's ledger."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.batch.batch_series import MODEL, write_series_set

REPO = Path(__file__).resolve().parents[2]
WDL = REPO / "workflows" / "aimi_batch.wdl"
CONFIG = REPO / "workflows" / "miniwdl-local.cfg"
MINIWDL = [sys.executable, "-m", "WDL"]


def test_workflow_passes_miniwdl_check():
    done = subprocess.run([*MINIWDL, "check", "--strict", "--suppress", "CommandShellCheck", str(WDL)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_workflow_runs_three_batches_locally_and_gathers_segs_and_ledgers(kidney_weights: Path, tmp_path: Path):
    series = write_series_set(tmp_path, count=6, corrupt_index=3)
    args = [f"manifest={series.manifest}", f"model={MODEL}", "batch_size=2", f"source_dir={series.source}",
            f"aimi={sys.executable} -m aimi.batch.cli", "extra_args=--no-tta", "extra_args=--device",
            "extra_args=cpu", "extra_args=--weights", f"extra_args={kidney_weights}"]
    done = subprocess.run([*MINIWDL, "run", "--cfg", str(CONFIG), str(WDL), *args, "--dir", str(tmp_path / "runs"),
                           "--error-json"], capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = json.loads(done.stdout)["outputs"]
    segs = sorted(Path(p).name for p in outputs["aimi_batch.segs"])
    assert segs == sorted(f"{uid}.{MODEL}.seg.dcm" for uid in series.good)
    assert len(outputs["aimi_batch.ledgers"]) == 3
    states = {}
    for ledger in outputs["aimi_batch.ledgers"]:
        with sqlite3.connect(ledger) as db:
            states.update(db.execute("SELECT uid, state FROM series").fetchall())
    assert states == {uid: "failed" if uid == series.corrupt else "done" for uid in series.uids}
    reports = [json.loads(Path(p).read_text()) for p in outputs["aimi_batch.reports"]]
    assert sum(r["summary"]["done"] for r in reports) == 5
