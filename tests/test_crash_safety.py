"""`kill -9` of `aimi run` at several points - while the model runs, between cases, while a case's files are being
written - never leaves a file that looks like a result and is not one; a rerun leaves OUT holding exactly the
complete outputs and no temporaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from aimi.atomic import is_temporary
from aimi_testkit.phantoms import demo_grid, write_phantom_series
from aimi_testkit.synthetic import StudyInfo
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

MODEL = "bamf_nnunet_ct_kidney"
INTENSITIES = {0: [-100.0], 1: [150.0], 2: [60.0], 3: [0.0]}
SERIES = 3
OUTPUT_SUFFIXES = (".seg.dcm", ".labels.nii.gz", ".qc.png")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    root = tmp_path_factory.mktemp("crash") / "in"
    uids = set()
    for index in range(SERIES):
        files, _ = write_phantom_series(root / f"s{index}", INTENSITIES, study=StudyInfo.new(f"C{index}"), seed=index,
                                        grid=demo_grid(rows=64, columns=64, slices=40))
        uids.add(str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID))
    return root, uids


def _command(inputs: Path, out: Path, weights: Path) -> list[str]:
    return [sys.executable, "-m", "aimi.cli", "run", MODEL, "-i", str(inputs), "-o", str(out), "--weights",
            str(weights), "--no-tta", "--set", "DataOrganizer.labelmap_format=nii.gz",
            "--set", "DataOrganizer.qc_png=true"]


def _kill_when(command: list[str], ready: Callable[[str, Path], bool], out: Path, timeout: float = 600.0) -> bool:
    """Start `command`, SIGKILL it the moment `ready(log so far, out)` holds; False if it finished first."""
    log = out.with_name(out.name + ".log")
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if ready(log.read_text(), out):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.0005)
        process.kill()
        process.wait()
    print(log.read_text()[-3000:])  # shown when the test fails: where the run was
    return False


def _writing(log: str, out: Path) -> bool:
    """A case's files are being staged: a temporary exists in OUT."""
    return any(is_temporary(Path(name)) for _, _, names in os.walk(out) for name in names)


def _after(event: str, delay_s: float) -> Callable[[str, Path], bool]:
    """True from `delay_s` after `event` first appears in the log."""
    seen: list[float] = []

    def ready(log: str, out: Path) -> bool:
        if not seen and event in log:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= delay_s
    return ready


#: Kill points, each a fresh predicate per run: nnU-Net running (0.3 s into the first case; conversion takes ~20 ms),
#: the next case starting, a case's files being staged.
KILL_POINTS: dict[str, Callable[[], Callable[[str, Path], bool]]] = {
    "during inference": lambda: _after("case.start", 0.3),
    "between cases": lambda: _after("case.done", 0.0),
    "while writing a case's files": lambda: _writing,
}


def _results(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name.endswith(OUTPUT_SUFFIXES))


def _assert_only_complete_results(out: Path) -> None:
    for path in _results(out):
        assert not is_temporary(path)
        if path.name.endswith(".seg.dcm"):
            assert dciodvfy_errors(path) == [], path


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_rerun_leaves_exactly_the_complete_outputs(point: str, inputs: tuple[Path, set[str]],
                                                               kidney_weights: Path, tmp_path: Path) -> None:
    folder, uids = inputs
    out = tmp_path / "out"
    command = _command(folder, out, kidney_weights)
    assert _kill_when(command, KILL_POINTS[point](), out), f"the run ended before the kill point ({point})"
    _assert_only_complete_results(out)  # what a reader sees right after the kill

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _assert_only_complete_results(out)
    segs = [p for p in _results(out) if p.name.endswith(".seg.dcm")]
    assert {p.parent.name for p in segs} == uids and len(segs) == SERIES
    assert len(_results(out)) == SERIES * len(OUTPUT_SUFFIXES)
    assert [p for p in out.rglob("*") if ".partial" in p.name] == []
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["run-report.json"]
