"""Stage 5: peak resident memory of `aimi run` (the model's default chain) on the large CT.

The kernel's own account: `os.wait4` returns the child's peak RSS (ru_maxrss, its waited-for children included),
so nothing is sampled and nothing is missed. TTA is off here: mirroring runs patch by patch and leaves the size of
every whole-volume array unchanged, and with it on this stage alone would take far longer on a CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import BenchError, Row, StageResult, tool
from bench.data import MODEL, Inputs

LIMIT_GB = 8.0


def run(inputs: Inputs, env: dict[str, str]) -> StageResult:
    shape = "x".join(str(n) for n in reversed(inputs.large_labels.shape))
    with tempfile.TemporaryDirectory(prefix="aimi-bench-rss-") as work:
        command = [tool("aimi"), "run", MODEL, "-i", str(inputs.large_ct), "-o", work, "--weights",
                   str(inputs.weights), "--device", "cpu", "--no-tta"]
        log = Path(work, "aimi.core.log")
        started = time.perf_counter()
        with log.open("w") as stream:
            process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            tail = "\n".join(log.read_text().strip().splitlines()[-8:])
            raise BenchError(f"aimi run on the {shape} CT failed:\n{tail}")
        case = json.loads(Path(work, "run-report.json").read_text())["cases"][0]
    peak_gb = usage.ru_maxrss * 1024 / 1e9
    modules = ", ".join(f"{label} {value:.1f} s" for label, value in case["seconds"].items())
    return StageResult(
        "memory",
        [Row(f"5. peak RSS of aimi run, {shape} CT (default chain, --no-tta)", None, peak_gb, unit="GB",
             target=f"<= {LIMIT_GB:.0f} GB")],
        equal=True,
        check=f"peak RSS {peak_gb:.2f} GB {'<=' if peak_gb <= LIMIT_GB else '>'} {LIMIT_GB:.0f} GB; "
              f"run took {seconds:.0f} s ({modules})",
    )
