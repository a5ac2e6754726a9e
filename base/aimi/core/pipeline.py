"""Cases through a chain's stages at the same time: while one case is in the network, the next is read and
preprocessed and the one before is exported and written.

Inputs: the stages (consecutive phases of the chain's steps with the same place: CPU or device, in chain order;
aimi.core.runner builds them), jobs submitted in order, each with its estimated memory. Outputs: the jobs, done, in
the order they were submitted, whatever order their stages finished them in.

Each stage has its own threads (a device stage exactly one, so the network sees one case at a time) and a bounded
queue in front; a job enters only while the jobs in flight fit the memory budget (a job larger than the budget runs
alone). A stage never raises: the runner's stage functions turn a failure into the job's result, and the later
stages pass a failed job through untouched. With `workers=0` every stage runs in the submitting thread, one job
after another: the same code, no threads (for debugging, and --fail-fast).
"""

from __future__ import annotations

import itertools
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Job:
    """One unit of work: what the stages act on (`work`), the caller's `tag`, and its memory estimate."""

    index: int
    work: Any
    tag: Any = None
    cost: int = 0


@dataclass(frozen=True)
class Stage:
    run: Callable[[Job], None]
    on_device: bool


_STOP = object()


class Pipeline:
    def __init__(self, stages: list[Stage], *, workers: int, budget_bytes: int,
                 on_error: Callable[[Job, str], None]) -> None:
        """`workers`: threads per CPU stage (0: everything inline); `on_error`: a stage's uncaught failure, which
        must not kill its thread (the runner records it as the case's failure)."""
        self.stages = stages
        self.workers = workers
        self.budget = budget_bytes
        self.on_error = on_error
        self._indices = itertools.count()
        self._submitted = 0
        self._yielded = 0
        self._finished: dict[int, Job] = {}
        self._in_flight = 0
        self._room = threading.Condition()
        self._done: queue.Queue[Job] = queue.Queue()
        self._queues: list[queue.Queue[Any]] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        if workers > 0:
            self._start()

    def threads_of(self, stage: Stage) -> int:
        return 1 if stage.on_device else self.workers

    def _start(self) -> None:
        self._queues = [queue.Queue(maxsize=self.threads_of(s)) for s in self.stages]
        for number, stage in enumerate(self.stages):
            remaining = [self.threads_of(stage)]
            for worker in range(self.threads_of(stage)):
                thread = threading.Thread(target=self._work, args=(number, remaining), daemon=True,
                                          name=f"aimi-stage{number}-{'device' if stage.on_device else 'cpu'}-{worker}")
                thread.start()
                self._threads.append(thread)

    def submit(self, work: Any, *, tag: Any = None, cost: int = 0) -> None:
        """Queue `work`; blocks while the jobs in flight leave no room for it in the memory budget."""
        job = Job(next(self._indices), work, tag, cost)
        self._submitted += 1
        if not self.workers:
            for stage in self.stages:
                self._run(stage, job)
            self._done.put(job)
            return
        with self._room:
            self._room.wait_for(lambda: self._in_flight == 0 or self._in_flight + cost <= self.budget)
            self._in_flight += cost
        self._queues[0].put(job)

    def ready(self) -> Iterator[Job]:
        """The jobs done so far that follow, in submission order, the last one yielded; does not wait."""
        while True:
            try:
                job = self._done.get_nowait()
            except queue.Empty:
                break
            self._finished[job.index] = job
        yield from self._in_order()

    def drain(self) -> Iterator[Job]:
        """Every job not yet yielded, in submission order, waiting for each; then the stage threads end."""
        self.close()
        while self._yielded < self._submitted:
            if self._yielded not in self._finished:
                job = self._done.get()
                self._finished[job.index] = job
            yield from self._in_order()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queues:
            for _ in range(self.threads_of(self.stages[0])):
                self._queues[0].put(_STOP)

    def _in_order(self) -> Iterator[Job]:
        while self._yielded in self._finished:
            job = self._finished.pop(self._yielded)
            self._yielded += 1
            yield job

    def _work(self, number: int, remaining: list[int]) -> None:
        stage, source = self.stages[number], self._queues[number]
        last = number == len(self.stages) - 1
        while (job := source.get()) is not _STOP:
            self._run(stage, job)
            if last:
                self._finish(job)
            else:
                self._queues[number + 1].put(job)
        with self._room:
            remaining[0] -= 1
            if remaining[0] or last:
                return
        for _ in range(self.threads_of(self.stages[number + 1])):
            self._queues[number + 1].put(_STOP)

    def _run(self, stage: Stage, job: Job) -> None:
        try:
            stage.run(job)
        except BaseException as error:  # a stage thread must outlive any failure, or the run would hang
            self.on_error(job, f"{type(error).__name__}: {error}\n{traceback.format_exc()}")

    def _finish(self, job: Job) -> None:
        with self._room:
            self._in_flight -= job.cost
            self._room.notify_all()
        self._done.put(job)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
