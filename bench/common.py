"""What every stage shares: pinned threads, checked subprocesses, ABAB rounds, the result table, machine facts."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")

#: Environment variables that cap the threads of torch/OpenMP/BLAS (Python) and ITK (plastimatch, dcmqi).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
VENV_BIN = Path(sys.executable).parent


class BenchError(RuntimeError):
    """A tool failed or the two sides disagree: the benchmark stops rather than print a ratio it cannot back."""


@dataclass(frozen=True)
class Row:
    """One line of the table; `higher_is_better` flips the ratio (series per hour)."""

    stage: str
    incumbent: float | None
    project: float | None
    unit: str = "s"
    target: str = ""
    higher_is_better: bool = False

    def ratio(self) -> float | None:
        if not self.incumbent or not self.project:
            return None
        return self.project / self.incumbent if self.higher_is_better else self.incumbent / self.project


@dataclass
class StageResult:
    """A stage's rows, whether its outputs were checked equal (and how), and notes for the reader."""

    name: str
    rows: list[Row]
    equal: bool
    check: str
    notes: list[str] = field(default_factory=list)


def pinned_env(threads: int) -> dict[str, str]:
    """The environment every child process gets: the same thread caps and this venv's tools first on PATH."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("nnUNet_raw", "/nonexistent")  # silences nnU-Net's warnings; the predictor never reads them
    env.setdefault("nnUNet_preprocessed", "/nonexistent")
    env.setdefault("nnUNet_results", "/nonexistent")
    return env


def tool(name: str) -> str:
    """A command-line tool from this venv (or PATH); a clear error naming the package when it is missing."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise BenchError(f"{name} not found: install it into .venv (see bench/README.md for the pinned packages)")
    return found


def run_tool(args: Sequence[str | Path], env: dict[str, str], timeout_s: float = 1800.0) -> float:
    """Run one command, return its wall seconds; any non-zero exit stops the benchmark with the output's tail."""
    command = [str(a) for a in args]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise BenchError(f"{Path(command[0]).name} exited {done.returncode}:\n{tail}")
    return seconds


def run_with_peak_rss(args: Sequence[str | Path], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run one command (output to `log`), return its wall seconds and peak RSS in GB: the kernel's own account
    (`os.wait4` ru_maxrss, its waited-for children included), so nothing is sampled and nothing is missed."""
    started = time.perf_counter()
    with log.open("w") as stream:
        process = subprocess.Popen([str(a) for a in args], env=env, stdout=stream, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-8:])
        raise BenchError(f"{Path(str(args[0])).name} exited {os.waitstatus_to_exitcode(status)}:\n{tail}")
    return seconds, usage.ru_maxrss * 1024 / 1e9


def timed(function: Callable[[], A]) -> tuple[float, A]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def interleaved(rounds: int, incumbent: Callable[[int], A], project: Callable[[int], B]) -> tuple[list[A], list[B]]:
    """A B A B ...: both sides see the same machine state (caches, load, thermal) in every round."""
    a_results, b_results = [], []
    for index in range(rounds):
        a_results.append(incumbent(index))
        b_results.append(project(index))
        print(f"    round {index + 1}/{rounds} done", flush=True)
    return a_results, b_results


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError):
        return "unknown"


def machine_facts(threads: int) -> list[str]:
    """What a reader needs to compare these figures with another machine's."""
    import torch

    packages = ("aimi", "torch", "nnunetv2", "highdicom", "pydicom", "SimpleITK", "numpy", "dcm2niix",
                "plastimatch", "dcmqi")
    return [
        f"cpu: {_cpu_model()}; os.cpu_count {os.cpu_count()}; usable cores {len(os.sched_getaffinity(0))}; "
        f"memory {_memory_gib()}",
        f"threads: torch {torch.get_num_threads()} in-process; {', '.join(THREAD_VARIABLES)} = {threads} "
        "for every child; nnU-Net's CLI sets torch threads to os.cpu_count() itself",
        f"python {platform.python_version()} on {platform.platform()}",
        "versions: " + ", ".join(f"{name} {_version(name)}" for name in packages),
    ]


def format_table(results: Sequence[StageResult]) -> str:
    """`stage | incumbent | project | ratio | target`; a ratio only where the stage's outputs were checked equal."""
    lines = ["| stage | incumbent | project | ratio | target |", "|---|---|---|---|---|"]
    for result in results:
        for row in result.rows:
            ratio = row.ratio()
            shown = f"{ratio:.3g}x" if ratio is not None and result.equal else ("n/a" if ratio is None else
                                                                                   "withheld: outputs differ")
            lines.append(f"| {row.stage} | {_value(row.incumbent, row.unit)} | {_value(row.project, row.unit)} "
                         f"| {shown} | {row.target} |")
    return "\n".join(lines)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
