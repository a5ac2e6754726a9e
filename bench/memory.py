"""Stage 5: peak resident memory of `aimi run` (the model's default chain) on the large CT.

The kernel's own account (bench.common.run_with_peak_rss), so nothing is sampled and nothing is missed. TTA is
off here: mirroring runs patch by patch and leaves the size of every whole-volume array unchanged, and with it on
this stage alone would take far longer on a CPU.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.common import BenchError, Row, StageResult, run_with_peak_rss, tool
from bench.data import MODEL, Inputs

LIMIT_GB = 8.0


def run(inputs: Inputs, env: dict[str, str]) -> StageResult:
    shape = "x".join(str(n) for n in reversed(inputs.large_labels.shape))
    with tempfile.TemporaryDirectory(prefix="aimi-bench-rss-") as work:
        command = [tool("aimi"), "run", MODEL, "-i", str(inputs.large_ct), "-o", work, "--weights",
                   str(inputs.weights), "--device", "cpu", "--no-tta"]
        try:
            seconds, peak_gb = run_with_peak_rss(command, env, Path(work, "aimi.log"))
        except BenchError as error:
            raise BenchError(f"aimi run on the {shape} CT failed: {error}") from None
        case = json.loads(Path(work, "run-report.json").read_text())["cases"][0]
    modules = ", ".join(f"{label} {value:.1f} s" for label, value in case["seconds"].items())
    return StageResult(
        "memory",
        [Row(f"5. peak RSS of aimi run, {shape} CT (default chain, --no-tta)", None, peak_gb, unit="GB",
             target=f"<= {LIMIT_GB:.0f} GB")],
        equal=True,
        check=f"peak RSS {peak_gb:.2f} GB {'<=' if peak_gb <= LIMIT_GB else '>'} {LIMIT_GB:.0f} GB; "
              f"run took {seconds:.0f} s ({modules})",
    )
