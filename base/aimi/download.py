"""HTTP downloads for weights: a Zenodo record read through its API, a file fetched with resume, digests checked.

A Zenodo record (`<base>/api/records/<id>`) lists each file's `key`, `size`, `checksum` (`md5:<hex>`) and download
link; a DOI record's files cannot change without a new version, so the record is the publisher's pin and no digest
needs to be typed into a manifest. The base URL comes from `AIMI_ZENODO_URL` (default https://zenodo.org), so that
tests, mirrors and caches can stand in for Zenodo; download links in the record are taken under that base.

Not zenodo-get (PyPI `zenodo-get`): it downloads whole records by glob through its own CLI and has no way to point
it at another base URL, which tests and mirrors need; the record API it uses is two requests, done here.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from aimi.errors import FetchError

ZENODO_URL_ENV = "AIMI_ZENODO_URL"
ZENODO_URL = "https://zenodo.org"
#: Seconds to wait for a TCP connection: offline machines must fail fast, not wait for the read timeout.
CONNECT_TIMEOUT_S = 5.0
#: Attempts per download; each one resumes where the last stopped (HTTP Range).
ATTEMPTS = 4
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RecordFile:
    """One file of a Zenodo record, as the record states it."""

    record: str
    key: str
    size: int
    md5: str
    url: str


def zenodo_url() -> str:
    return os.environ.get(ZENODO_URL_ENV, "").rstrip("/") or ZENODO_URL


def read_record(record: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
    """The record's JSON from `<base>/api/records/<record>`; FetchError when it cannot be read."""
    url = f"{zenodo_url()}/api/records/{record}"
    try:
        with opener().open(urllib.request.Request(url, headers={"Accept": "application/json"}),
                           timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise FetchError(f"Zenodo record {record}: HTTP {error.code} {error.reason} from {url}") from None
    except urllib.error.URLError as error:
        raise FetchError(f"Zenodo record {record}: cannot reach {url} ({error.reason}) (offline?)") from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise FetchError(f"Zenodo record {record}: unreadable answer from {url}: {error!r}") from None


def record_file(record_json: dict[str, Any], record: str, key: str) -> RecordFile:
    """The file `key` of a record's JSON; FetchError naming the files the record does hold."""
    files = record_json.get("files") or []
    for item in files:
        if item.get("key") == key:
            algorithm, _, md5 = str(item.get("checksum", "")).partition(":")
            if algorithm != "md5" or len(md5) != 32:
                raise FetchError(f"Zenodo record {record}: {key} has no md5 checksum ({item.get('checksum')!r})")
            link = (item.get("links") or {}).get("self") or f"/api/records/{record}/files/{key}/content"
            return RecordFile(record, key, int(item.get("size", -1)), md5.lower(), _under_base(link))
    held = ", ".join(str(item.get("key")) for item in files) or "no files"
    raise FetchError(f"Zenodo record {record} has no file {key!r} (it holds: {held}); check file in the manifest")


def _under_base(link: str) -> str:
    """A record's download link with its scheme and host replaced by the configured base URL's."""
    parts = urllib.parse.urlsplit(link)
    return zenodo_url() + parts.path + (f"?{parts.query}" if parts.query else "")


def download(url: str, partial: Path, size: int, *, label: str, timeout_s: float = 30.0,
             progress: bool = True) -> None:
    """`url` into `partial`, resuming what is already there (HTTP Range) over up to ATTEMPTS connections; the
    file is complete (`size` bytes) when this returns."""
    host = urllib.parse.urlsplit(url).netloc
    for attempt in range(1, ATTEMPTS + 1):
        have = partial.stat().st_size if partial.exists() else 0
        if have == size:
            return
        if have > size:
            partial.unlink()
            have = 0
        try:
            _stream(url, partial, have, size, label, timeout_s, progress)
        except urllib.error.HTTPError as error:
            raise FetchError(f"{label}: HTTP {error.code} {error.reason} from {url}") from None
        except urllib.error.URLError as error:
            raise FetchError(f"cannot reach {host} to download {label} ({error.reason}) (offline?)") from None
        except (OSError, http.client.HTTPException) as error:
            if attempt == ATTEMPTS:
                raise FetchError(f"download of {label} from {host} failed {ATTEMPTS} times, last: {error!r}; "
                                 f"run the command again to resume from {partial.stat().st_size} bytes") from None
            time.sleep(min(2.0 ** attempt, 10.0) / 10)
    if not partial.exists() or partial.stat().st_size != size:
        raise FetchError(f"{label}: download ended at {partial.stat().st_size if partial.exists() else 0} of "
                         f"{size} bytes")


def _stream(url: str, partial: Path, have: int, size: int, label: str, timeout_s: float, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with opener().open(request, timeout=timeout_s) as response:
        resumed = have and response.status == 206
        mode = "ab" if resumed else "wb"
        start = have if resumed else 0
        with open(partial, mode) as out, tqdm(total=size, initial=start, unit="B", unit_scale=True, desc=label,
                                              disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        received = partial.stat().st_size
        if received > size:
            partial.unlink()
            raise FetchError(f"{label}: size mismatch: the record states {size} bytes, the file has {received}")
        if received < size:
            raise http.client.IncompleteRead(b"", size - received)


def safe_unpack(archive: Path, dest: Path, name: str, source: str = "") -> None:
    """Extract a zip (`name`, downloaded from `source`) after refusing every member that is absolute or climbs out
    with '..'."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                parts = PurePosixPath(member.replace("\\", "/"))
                if parts.is_absolute() or ".." in parts.parts or (parts.parts and ":" in parts.parts[0]):
                    raise FetchError(f"{name}: unsafe path {member!r} in the archive (absolute or '..'); refused to "
                                     "unpack it")
            zf.extractall(dest)
    except zipfile.BadZipFile as err:
        raise FetchError(f"{name}{f' from {source}' if source else ''} is not a valid zip archive: {err}") from err


def digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file, read once."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


class _ShortConnect:
    """Connect with CONNECT_TIMEOUT_S, then read with the caller's timeout: an offline host fails in seconds."""

    timeout: float
    sock: socket.socket

    def connect(self) -> None:
        read_timeout = self.timeout
        self.timeout = min(CONNECT_TIMEOUT_S, read_timeout)
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self.timeout = read_timeout
        self.sock.settimeout(read_timeout)


class _HTTPConnection(_ShortConnect, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ShortConnect, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)
