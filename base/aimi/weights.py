"""Model weights on disk: where they live, fetching them from Zenodo, and proving where they came from.

Reads: a model's Manifest and the weights dir. Writes: `<weights_dir>/<model>/<id>/` (an nnU-Net v2 model folder:
dataset.json, plans.json, fold_k/checkpoint_final.pth) with `.aimi-weights.json` (url, file, sha256, fetched_at) in
it; nnU-Net v1 archives land in `<weights_dir>/<model>/<id>.v1/` until `aimi weights convert-v1` converts them.
Downloads stream into `<weights_dir>/.download/` and reach their final place by one rename, so a folder that exists
is complete. The archive is deleted after unpacking; its digest stays in the provenance file for the SEG writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from aimi.atomic import replace_folder
from aimi.manifest import Manifest, WeightsEntry

log = logging.getLogger(__name__)

PROVENANCE_FILE = ".aimi-weights.json"
DOWNLOAD_DIR = ".download"
#: Seconds to wait for a TCP connection: offline machines must fail fast, not wait for the read timeout.
CONNECT_TIMEOUT_S = 5.0
_CHUNK = 1 << 20


class WeightsMissing(Exception):
    """A model's weights are not (completely) in the weights dir; the message says how to get them."""


class FetchError(RuntimeError):
    """A download could not be completed or verified; nothing partial was left in the weights dir."""


class WeightsNeedConversion(FetchError):
    """nnU-Net v1 weights were fetched; they must be converted to a v2 model folder before use."""


def default_weights_dir() -> Path:
    """`$AIMI_WEIGHTS`, else `/app/weights` (inside the images), else `~/.cache/aimi/weights`."""
    if os.environ.get("AIMI_WEIGHTS"):
        return Path(os.environ["AIMI_WEIGHTS"]).expanduser()
    if Path("/app/weights").is_dir():
        return Path("/app/weights")
    return Path.home() / ".cache" / "aimi" / "weights"


def model_folder(weights_dir: Path, manifest: Manifest, entry: WeightsEntry) -> Path:
    """The nnU-Net v2 model folder of `entry`, as the NNUnetRunner loads it."""
    return Path(weights_dir) / manifest.name / entry.id


def v1_folder(weights_dir: Path, manifest: Manifest, entry: WeightsEntry) -> Path:
    """Where a fetched nnU-Net v1 model folder waits for `aimi weights convert-v1`."""
    return Path(weights_dir) / manifest.name / f"{entry.id}.v1"


def missing_parts(folder: Path) -> list[str]:
    """What an nnU-Net v2 model folder lacks to be usable: the folder, dataset.json, plans.json or any checkpoint."""
    if not folder.is_dir():
        return [f"{folder} does not exist"]
    lacking = [name for name in ("dataset.json", "plans.json") if not (folder / name).is_file()]
    if not any(folder.glob("fold_*/checkpoint_final.pth")):
        lacking.append("fold_*/checkpoint_final.pth")
    return [f"{folder} lacks {', '.join(lacking)}"] if lacking else []


def require_weights(weights_dir: Path, manifest: Manifest) -> dict[str, Path]:
    """The model folder of every entry by id; WeightsMissing says where it looked and what to run."""
    folders = {entry.id: model_folder(weights_dir, manifest, entry) for entry in manifest.weights}
    problems = [problem for folder in folders.values() for problem in missing_parts(folder)]
    if problems:
        raise WeightsMissing(_missing_message(weights_dir, manifest, problems))
    return folders


def _missing_message(weights_dir: Path, manifest: Manifest, problems: list[str]) -> str:
    """Where we looked and exactly how to get the weights (or a test model, or convert v1 weights)."""
    lines = [f"weights of {manifest.name} are missing in {weights_dir}:", *(f"  - {p}" for p in problems)]
    for entry in manifest.weights:
        if v1_folder(weights_dir, manifest, entry).is_dir():
            lines.append(f"nnU-Net v1 weights are there: run `{_convert_command(weights_dir, manifest, entry)}`")
    lines += [
        f"Get them with `aimi weights fetch {manifest.name} --weights {weights_dir}`,",
        f"or build a tiny test model with `aimi testmodel {manifest.name} <dir>` and run with `--weights <dir>`.",
        "(weights dir: --weights, else $AIMI_WEIGHTS, else /app/weights, else ~/.cache/aimi/weights)",
    ]
    return "\n".join(lines)


def _convert_command(weights_dir: Path, manifest: Manifest, entry: WeightsEntry) -> str:
    return (f"aimi weights convert-v1 {v1_folder(weights_dir, manifest, entry)} "
            f"{model_folder(weights_dir, manifest, entry)}")


def fetch(manifest: Manifest, weights_dir: Path, *, timeout_s: float = 30, progress: bool = True) -> list[Path]:
    """Download, verify and unpack every entry not already in place; returns the model folders, one per entry.

    Raises FetchError (unreachable host, HTTP error, sha256 mismatch, unsafe or unexpected archive) and
    WeightsNeedConversion for nnU-Net v1 weights, which are fetched but not yet usable.
    """
    weights_dir = Path(weights_dir)
    return [_fetch_entry(manifest, entry, weights_dir, timeout_s, progress) for entry in manifest.weights]


def _fetch_entry(manifest: Manifest, entry: WeightsEntry, weights_dir: Path, timeout_s: float, progress: bool) -> Path:
    """One entry: skip when its folder is present and matches the manifest, else download and replace it."""
    v1 = entry.format == "nnunet-v1"
    target = v1_folder(weights_dir, manifest, entry) if v1 else model_folder(weights_dir, manifest, entry)
    if _is_current(target, entry, v1):
        log.info("%s: %s already present in %s", manifest.name, entry.file, target)
    else:
        _download_and_install(entry, weights_dir, target, timeout_s, progress)
    recorded = _read_provenance(target)["sha256"]
    if not entry.sha256:
        log.warning("sha256 of %s is %s: record it in manifest.toml", entry.file, recorded)
    return _finish_v1(weights_dir, manifest, entry) if v1 else target


def _is_current(target: Path, entry: WeightsEntry, v1: bool) -> bool:
    """Present, complete and recorded as fetched from the archive the manifest names (and its digest, if given)."""
    complete = (target / "plans.pkl").is_file() if v1 else not missing_parts(target)
    return complete and bool(_read_provenance(target)) and not _provenance_problems(target, entry)


def _finish_v1(weights_dir: Path, manifest: Manifest, entry: WeightsEntry) -> Path:
    """Convert fetched v1 weights to the v2 model folder once; it carries the v1 folder's provenance record, so a
    re-fetched v1 archive (new record) or a folder from an older converter is converted again. A failed conversion
    says what to run after fixing it."""
    from aimi.convert_v1 import ConversionError, convert_v1, is_current_conversion

    folder, source = model_folder(weights_dir, manifest, entry), v1_folder(weights_dir, manifest, entry)
    same_source = _read_provenance(folder) == _read_provenance(source)
    if not missing_parts(folder) and same_source and is_current_conversion(folder):
        return folder
    try:
        return convert_v1(source, folder, replace=True)
    except ConversionError as err:
        raise WeightsNeedConversion(
            f"{entry.file} holds nnU-Net v1 weights, now in {source}, that could not be converted ({err}); "
            f"convert them to an nnU-Net v2 model folder with `{_convert_command(weights_dir, manifest, entry)}`"
        ) from err


def _download_and_install(entry: WeightsEntry, weights_dir: Path, target: Path, timeout_s: float,
                          progress: bool) -> None:
    """Download to a temp file, verify, unpack to a temp dir, then move the model folder into place."""
    staging = weights_dir / DOWNLOAD_DIR
    staging.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{entry.file}.", suffix=".part", dir=staging)
    archive = Path(name)
    unpacked = Path(tempfile.mkdtemp(prefix=f"{entry.id}.", dir=staging))
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(entry, out, timeout_s, progress)
        if entry.sha256 and digest != entry.sha256:
            raise FetchError(f"{entry.file}: sha256 mismatch: expected {entry.sha256}, got {digest} "
                             f"(downloaded from {entry.url}; the download was deleted)")
        _safe_unpack(archive, unpacked, entry)
        archive.unlink()
        folder = _locate_model_folder(unpacked, entry)
        write_provenance(folder, url=entry.url, file=entry.file, sha256=digest)
        replace_folder(folder, target)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)
        with contextlib.suppress(OSError):  # only when empty: another fetch may be using it
            staging.rmdir()


def _download(entry: WeightsEntry, out: Any, timeout_s: float, progress: bool) -> str:
    """Stream `entry.url` into `out` with a progress bar; returns the sha256 computed on the way."""
    host = urllib.parse.urlsplit(entry.url).netloc
    digest = hashlib.sha256()
    try:
        with _opener().open(entry.url, timeout=timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.file, disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise FetchError(f"{entry.url}: HTTP {err.code} {err.reason}; check url in the manifest") from err
    except urllib.error.URLError as err:
        raise FetchError(f"cannot reach {host} to download {entry.file} ({err.reason}) (offline?)") from err
    except (OSError, http.client.HTTPException) as err:
        raise FetchError(f"download of {entry.file} from {host} failed: {err!r}") from err
    return digest.hexdigest()


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


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def _safe_unpack(archive: Path, dest: Path, entry: WeightsEntry) -> None:
    """Extract a zip after refusing every member that is absolute or climbs out with '..'."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                parts = PurePosixPath(member.replace("\\", "/"))
                if parts.is_absolute() or ".." in parts.parts or (parts.parts and ":" in parts.parts[0]):
                    raise FetchError(f"{entry.file}: unsafe path {member!r} in the archive (absolute or '..'); "
                                     "refused to unpack it")
            zf.extractall(dest)
    except zipfile.BadZipFile as err:
        raise FetchError(f"{entry.file} from {entry.url} is not a valid zip archive: {err}") from err


def _locate_model_folder(root: Path, entry: WeightsEntry) -> Path:
    """The nnU-Net model folder the manifest names inside an unpacked archive.

    v2: the folder `<trainer>__<plans>__<configuration>` holding plans.json and dataset.json.
    v1: the folder `nnUNet/<configuration>/<task>/<trainer>__<plans>` holding plans.pkl.
    """
    nn = entry.nnunet
    if nn.version == 1:
        marker, tail = "plans.pkl", ("nnUNet", nn.configuration, nn.task, f"{nn.trainer}__{nn.plans}")
        found = [p.parent for p in root.rglob(marker)]
    else:
        marker, tail = "plans.json", (f"{nn.trainer}__{nn.plans}__{nn.configuration}",)
        found = [p.parent for p in root.rglob(marker) if (p.parent / "dataset.json").is_file()]
    matching = [folder for folder in found if folder.parts[-len(tail):] == tail]
    if len(matching) == 1:
        return matching[0]
    seen = ", ".join(str(folder.relative_to(root)) for folder in found) or "none"
    raise FetchError(f"{entry.file}: expected one nnU-Net model folder .../{'/'.join(tail)}/ with {marker}, "
                     f"found {len(matching)} (folders with {marker}: {seen}); check [weights.nnunet] in the manifest")


def write_provenance(folder: Path, *, url: str, file: str, sha256: str) -> None:
    """Record where a model folder came from (used by fetch, and by testmodel / convert-v1 with sha256 "")."""
    record = {"url": url, "file": file, "sha256": sha256, "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (folder / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _read_provenance(folder: Path) -> dict[str, str]:
    """The provenance record of `folder`, or {} when it has none (or an unreadable one)."""
    try:
        record = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: str(record.get(key, "")) for key in ("url", "file", "sha256", "fetched_at")}


def _provenance_problems(folder: Path, entry: WeightsEntry) -> list[str]:
    """How the provenance of `folder` disagrees with the manifest entry (file, url, sha256 when both are known)."""
    record = _read_provenance(folder)
    if not record:
        return [f"{folder} has no {PROVENANCE_FILE}: where the weights came from is unknown"] if entry.sha256 else []
    problems = [f"{folder}: {key} is {record[key]!r} but the manifest says {getattr(entry, key)!r}"
                for key in ("file", "url") if record[key] != getattr(entry, key)]
    if entry.sha256 and record["sha256"] and record["sha256"] != entry.sha256:
        problems.append(f"{folder}: sha256 of {record['file']} is {record['sha256']} but the manifest says "
                        f"{entry.sha256}")
    return problems


def provenance(weights_dir: Path, manifest: Manifest, entry: WeightsEntry) -> dict[str, str]:
    """file, sha256 and url of the archive `entry`'s model folder came from; sha256 "" when unknown."""
    record = _read_provenance(model_folder(weights_dir, manifest, entry))
    if not record:
        return {"file": entry.file, "sha256": "", "url": entry.url}
    return {key: record[key] for key in ("file", "sha256", "url")}


def verify(manifest: Manifest, weights_dir: Path) -> list[str]:
    """Every problem with a model's weights: missing folders or checkpoints, provenance unlike the manifest."""
    problems: list[str] = []
    for entry in manifest.weights:
        folder = model_folder(weights_dir, manifest, entry)
        if not folder.is_dir() and v1_folder(weights_dir, manifest, entry).is_dir():
            problems.append(f"{entry.id}: nnU-Net v1 weights are not converted yet: run "
                            f"`{_convert_command(weights_dir, manifest, entry)}`")
            continue
        missing = [f"{problem} (run `aimi weights fetch {manifest.name}`)" for problem in missing_parts(folder)]
        problems += missing or _provenance_problems(folder, entry)
    return problems
