"""Batch manifests: SeriesInstanceUIDs from a TXT (one per line), a CSV/TSV with a SeriesInstanceUID column (an
idc-index query result saved with `to_csv`), or a query against idc-index's bundled index.

A manifest is read once per run into a deduplicated list in file order; malformed UIDs are a usage error that names
the file and the line, before any series starts.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from aimi.atomic import write_atomically
from aimi.errors import ConfigError

UID_COLUMN = "SeriesInstanceUID"
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def read_manifest(path: Path) -> list[str]:
    """The series UIDs of a manifest file, deduplicated, in file order."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"manifest {path}: cannot read: {error.strerror}") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise ConfigError(f"manifest {path}: no SeriesInstanceUIDs in it")
    rows = _table_column(path, lines) if _is_table(lines[0][1]) else lines
    return _checked(path, rows)


def _is_table(first_line: str) -> bool:
    return any(sep in first_line for sep in ",\t") or first_line.strip('"') == UID_COLUMN


def _table_column(path: Path, lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The SeriesInstanceUID column of a CSV/TSV with a header row (the first column when no header names it)."""
    delimiter = "\t" if "\t" in lines[0][1] else ","
    rows = list(csv.reader([line for _, line in lines], delimiter=delimiter))
    header = [cell.strip() for cell in rows[0]]
    if UID_COLUMN in header:
        column, body = header.index(UID_COLUMN), list(zip(lines[1:], rows[1:], strict=True))
    elif UID_PATTERN.match(header[0]):
        column, body = 0, list(zip(lines, rows, strict=True))
    else:
        raise ConfigError(f"manifest {path}: a table needs a {UID_COLUMN} column; its columns are {', '.join(header)}")
    return [(n, row[column].strip() if column < len(row) else "") for (n, _), row in body]


def _checked(path: Path, rows: list[tuple[int, str]]) -> list[str]:
    uids: dict[str, None] = {}
    for number, uid in rows:
        if not UID_PATTERN.match(uid) or len(uid) > 64:
            raise ConfigError(f"manifest {path}, line {number}: {uid!r} is not a SeriesInstanceUID")
        uids.setdefault(uid)
    return list(uids)


def query_manifest(client: Any, sql: str, path: Path) -> list[str]:
    """Run an SQL query against idc-index's bundled index (`IDCClient.sql_query`, offline) and save the result as a
    TXT manifest at `path`, so that reruns and other batches see the same list."""
    frame = client.sql_query(sql)
    if UID_COLUMN not in frame.columns:
        raise ConfigError(f"--query must select {UID_COLUMN}; it selected {', '.join(map(str, frame.columns))}")
    uids = list(dict.fromkeys(str(uid) for uid in frame[UID_COLUMN]))
    if not uids:
        raise ConfigError("--query selected no series")
    write_atomically(path, lambda temporary: temporary.write_text("".join(f"{uid}\n" for uid in uids)))
    return uids
