"""A bounded background fetcher: series n+1 downloads while series n is segmented, within a scratch-disk budget.

At most `ahead` fetched series wait for the consumer, and the bytes in scratch (the series being segmented plus
those waiting) stay within `max_bytes`; a single series larger than the budget is still fetched once scratch is
empty, so a batch never stalls. Failures to fetch are handed to the consumer as items with an error.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aimi.batch.sources import Source
from aimi.core.log import event

log = logging.getLogger("aimi.batch.prefetch")


@dataclass(frozen=True)
class Fetched:
    """One series in scratch (`folder`), or why it could not be fetched (`error`)."""

    uid: str
    folder: Path | None
    size: int = 0
    error: str = ""


class Prefetcher:
    def __init__(self, source: Source, uids: list[str], scratch: Path, *, max_bytes: int, ahead: int = 1) -> None:
        self.source, self.uids, self.scratch = source, uids, scratch
        self.max_bytes, self.ahead = max_bytes, max(1, ahead)
        self._ready: deque[Fetched] = deque()
        self._in_use = 0
        self._finished = self._stopped = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._produce, name="aimi-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher:
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join()
        for item in self._ready:
            self._delete(item)

    def __iter__(self) -> Iterator[Fetched]:
        return self.items()

    def items(self, idle: Callable[[], None] = lambda: None, every_s: float = 0.2) -> Iterator[Fetched]:
        """The fetched series in order. While none is ready, `idle` runs every `every_s`: a consumer still
        holding earlier series releases them there, or a full scratch budget would wait for it forever."""
        while True:
            with self._condition:
                arrived = self._condition.wait_for(lambda: self._ready or self._finished, timeout=every_s)
                item = self._ready.popleft() if self._ready else None
                if item is not None:
                    self._condition.notify_all()
                elif arrived:
                    return
            if item is None:
                idle()
            else:
                yield item

    def release(self, item: Fetched) -> None:
        """The consumer is done with a series: delete its scratch copy and free its share of the budget."""
        self._delete(item)
        self._give_back(item.size)

    def _produce(self) -> None:
        try:
            for uid in self.uids:
                item = self._fetch_within_budget(uid)
                if item is None:
                    return
                with self._condition:
                    self._ready.append(item)
                    self._condition.notify_all()
        finally:
            with self._condition:
                self._finished = True
                self._condition.notify_all()

    def _fetch_within_budget(self, uid: str) -> Fetched | None:
        try:
            size = self.source.size_bytes(uid)
        except Exception as error:  # a missing series must not stop the batch
            return Fetched(uid, None, error=str(error))
        with self._condition:
            self._condition.wait_for(lambda: self._stopped or self._fits(size))
            if self._stopped:
                return None
            self._in_use += size
        folder = self.scratch / uid
        shutil.rmtree(folder, ignore_errors=True)
        try:
            self.source.fetch(uid, folder)
        except Exception as error:  # reported per series; the batch goes on
            shutil.rmtree(folder, ignore_errors=True)
            self._give_back(size)
            event(log, "fetch.failed", logging.WARNING, series=uid, error=type(error).__name__)
            return Fetched(uid, None, error=f"{type(error).__name__}: {error}")
        return Fetched(uid, folder, size)

    def _fits(self, size: int) -> bool:
        waiting = len(self._ready) < self.ahead
        return waiting and (self._in_use == 0 or self._in_use + size <= self.max_bytes)

    def _give_back(self, size: int) -> None:
        with self._condition:
            self._in_use -= size
            self._condition.notify_all()

    @staticmethod
    def _delete(item: Fetched) -> None:
        if item.folder is not None:
            shutil.rmtree(item.folder, ignore_errors=True)
