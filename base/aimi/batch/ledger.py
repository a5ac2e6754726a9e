"""The batch ledger: one row per series of the manifest, its state and why (SQLite, WAL, one transaction per change).

States: pending -> running -> done | failed | skipped. A run killed at any moment leaves at most one row `running`;
the next run puts it back to pending (an interruption is not a failed attempt) and requeues any `done` row whose
outputs are missing, so the ledger and the files on disk agree before work starts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aimi.report import now

STATES = ("pending", "running", "done", "failed", "skipped")
TERMINAL = ("done", "failed", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    uid TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    interruptions INTEGER NOT NULL DEFAULT 0,
    module TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '[]',
    seconds REAL NOT NULL DEFAULT 0,
    updated TEXT NOT NULL,
    measurements TEXT NOT NULL DEFAULT '{}'
)
"""
#: Columns added after the first release, for ledgers written before them: name -> definition.
_ADDED_COLUMNS = {"measurements": "TEXT NOT NULL DEFAULT '{}'"}


@dataclass(frozen=True)
class Entry:
    """One series' row; `attempts` counts finished attempts (done or failed), not interrupted ones."""

    uid: str
    state: str
    attempts: int
    interruptions: int
    module: str
    reason: str
    outputs: tuple[str, ...]
    seconds: float
    updated: str
    measurements: dict[str, object] = field(default_factory=dict)  # step -> what it measured (the run report's)

    def as_dict(self) -> dict[str, object]:
        return {"series_uid": self.uid, "state": self.state, "attempts": self.attempts,
                "interruptions": self.interruptions, "failed_module": self.module or None,
                "reason": self.reason or None, "outputs": list(self.outputs), "seconds": round(self.seconds, 3),
                "updated": self.updated, **({"measurements": self.measurements} if self.measurements else {})}


class Ledger:
    """Durable per-series state; every change is one committed transaction, so a killed process loses none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(series)")}
        for name, definition in _ADDED_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE series ADD COLUMN {name} {definition}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add(self, uids: Iterable[str]) -> None:
        """Register the manifest's series (known ones keep their state)."""
        with self._transaction() as db:
            start = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM series").fetchone()[0]
            db.executemany("INSERT OR IGNORE INTO series (uid, position, updated) VALUES (?, ?, ?)",
                           [(uid, start + i, now()) for i, uid in enumerate(uids)])

    def recover(self, output_dir: Path) -> list[str]:
        """Requeue rows a killed run left `running` and `done` rows whose outputs are gone; returns their UIDs."""
        with self._transaction() as db:
            interrupted = [r[0] for r in db.execute("SELECT uid FROM series WHERE state = 'running'")]
            db.execute("UPDATE series SET state = 'pending', interruptions = interruptions + 1, updated = ? "
                       "WHERE state = 'running'", (now(),))
            lost = [uid for uid, outputs in db.execute("SELECT uid, outputs FROM series WHERE state = 'done'")
                    if not all((output_dir / p).is_file() for p in json.loads(outputs))]
            db.executemany("UPDATE series SET state = 'pending', outputs = '[]', updated = ? WHERE uid = ?",
                           [(now(), uid) for uid in lost])
        return interrupted + lost

    def todo(self, uids: Iterable[str], retries: int) -> list[str]:
        """The manifest's series still to run, in manifest order: pending ones and failed ones with retries left."""
        wanted = set(uids)
        rows = self._db.execute("SELECT uid FROM series WHERE state = 'pending' OR (state = 'failed' AND attempts <= ?)"
                                " ORDER BY position", (retries,))
        return [uid for (uid,) in rows if uid in wanted]

    def start(self, uid: str) -> None:
        self._set(uid, "UPDATE series SET state = 'running', updated = ? WHERE uid = ?", (now(), uid))

    def finish(self, uid: str, state: str, *, module: str = "", reason: str = "", outputs: Iterable[str] = (),
               seconds: float = 0.0, measurements: dict[str, object] | None = None) -> None:
        """Record a finished attempt (done, failed or skipped) with its reason, outputs and measurements,
        atomically."""
        if state not in TERMINAL:
            raise ValueError(f"finish: state {state!r} is not one of {', '.join(TERMINAL)}")
        self._set(uid, "UPDATE series SET state = ?, attempts = attempts + 1, module = ?, reason = ?, outputs = ?, "
                  "seconds = ?, updated = ?, measurements = ? WHERE uid = ?",
                  (state, module, reason, json.dumps(list(outputs)), seconds, now(), json.dumps(measurements or {}),
                   uid))

    def _set(self, uid: str, sql: str, values: tuple[object, ...]) -> None:
        with self._transaction() as db:
            if db.execute(sql, values).rowcount != 1:
                raise KeyError(f"ledger {self.path}: no series {uid}")

    def entries(self, uids: Iterable[str] | None = None) -> list[Entry]:
        """Rows in manifest order (only `uids` when given)."""
        wanted = set(uids) if uids is not None else None
        rows = self._db.execute("SELECT uid, state, attempts, interruptions, module, reason, outputs, seconds, "
                                "updated, measurements FROM series ORDER BY position")
        return [Entry(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8], json.loads(r[9]))
                for r in rows if wanted is None or r[0] in wanted]
