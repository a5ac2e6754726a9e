"""The overlapped pipeline on plain stages: order kept, overlap real, a stage's failure its job's alone, the memory
budget respected. (The chain on it: tests/test_chain_kidney.py, tests/batch.)"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from aimi.core.pipeline import Job, Pipeline, Stage


@dataclass
class Trace:
    """What the stages saw: per stage, the jobs it ran; the jobs in flight at once; errors."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ran: dict[int, list[int]] = field(default_factory=dict)
    inside: int = 0
    most_inside: int = 0
    device_inside: int = 0
    most_on_device: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    def stage(self, number: int, on_device: bool, fail_on: frozenset[int] = frozenset(),
              sleep_s: float = 0.0) -> Stage:
        def run(job: Job) -> None:
            if job.work["failed"]:
                return
            with self.lock:
                self.inside += 1
                self.most_inside = max(self.most_inside, self.inside)
                self.device_inside += on_device
                self.most_on_device = max(self.most_on_device, self.device_inside)
            try:
                time.sleep(sleep_s * random.random())
                if job.work["value"] in fail_on:
                    raise RuntimeError(f"stage {number} cannot take {job.work['value']}")
                job.work["path"].append(number)
                with self.lock:
                    self.ran.setdefault(number, []).append(job.work["value"])
            finally:
                with self.lock:
                    self.inside -= 1
                    self.device_inside -= on_device
        return Stage(run, on_device)

    def on_error(self, job: Job, message: str) -> None:
        job.work["failed"] = True
        self.errors[job.work["value"]] = message.splitlines()[0]


def run_all(pipeline: Pipeline, values: list[int], cost: int = 0) -> list[Job]:
    done = []
    with pipeline:
        for value in values:
            pipeline.submit({"value": value, "path": [], "failed": False}, tag=f"t{value}", cost=cost)
            done += list(pipeline.ready())
        done += list(pipeline.drain())
    return done


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_jobs_come_back_in_submission_order_having_passed_every_stage(workers: int):
    random.seed(workers)
    trace = Trace()
    stages = [trace.stage(0, False, sleep_s=0.01), trace.stage(1, True, sleep_s=0.01), trace.stage(2, False,
                                                                                                   sleep_s=0.01)]
    done = run_all(Pipeline(stages, workers=workers, budget_bytes=1 << 40, on_error=trace.on_error), list(range(12)))
    assert [job.work["value"] for job in done] == list(range(12))
    assert [job.tag for job in done] == [f"t{v}" for v in range(12)]
    assert all(job.work["path"] == [0, 1, 2] for job in done)
    assert trace.most_on_device <= 1  # the network sees one case at a time, whatever the CPU workers
    if workers == 0:
        assert trace.most_inside == 1
    else:
        assert trace.most_inside >= 2  # cases really overlap


def test_a_failing_stage_fails_only_its_job_and_the_later_stages_skip_it():
    trace = Trace()
    stages = [trace.stage(0, False), trace.stage(1, True, fail_on=frozenset({3})), trace.stage(2, False)]
    done = run_all(Pipeline(stages, workers=2, budget_bytes=1 << 40, on_error=trace.on_error), list(range(6)))
    assert [job.work["value"] for job in done] == list(range(6))
    assert [job.work["failed"] for job in done] == [False, False, False, True, False, False]
    assert done[3].work["path"] == [0]
    assert trace.errors == {3: "RuntimeError: stage 1 cannot take 3"}
    assert 3 not in trace.ran[2] and sorted(trace.ran[2]) == [0, 1, 2, 4, 5]


def test_the_memory_budget_bounds_the_jobs_in_flight_and_a_job_larger_than_it_runs_alone():
    trace = Trace()
    stages = [trace.stage(0, False, sleep_s=0.02), trace.stage(1, True, sleep_s=0.02),
              trace.stage(2, False, sleep_s=0.02)]
    done = run_all(Pipeline(stages, workers=2, budget_bytes=100, on_error=trace.on_error), list(range(8)), cost=100)
    assert len(done) == 8 and trace.most_inside == 1
    trace = Trace()
    stages = [trace.stage(0, False, sleep_s=0.02), trace.stage(1, True, sleep_s=0.02),
              trace.stage(2, False, sleep_s=0.02)]
    done = run_all(Pipeline(stages, workers=2, budget_bytes=100, on_error=trace.on_error), list(range(8)), cost=250)
    assert len(done) == 8 and trace.most_inside == 1  # each alone over the budget: still run, one by one


def test_a_stage_that_raises_past_the_runner_does_not_hang_the_run():
    def broken(job: Job) -> None:
        if job.work["value"] == 1:
            raise SystemExit("a library called exit()")
        job.work["path"].append("ok")

    trace = Trace()
    done = run_all(Pipeline([Stage(broken, False), Stage(broken, True)], workers=1, budget_bytes=1 << 40,
                            on_error=trace.on_error), [0, 1, 2])
    assert [job.work["failed"] for job in done] == [False, True, False]
    assert trace.errors[1] == "SystemExit: a library called exit()"
