"""Model weights on disk: where they live, fetching them from Zenodo, and proving where they came from.

Reads: a model's Manifest and the weights dir. Writes: `<weights_dir>/<model>/<id>/` (an nnU-Net v2 model folder:
dataset.json, plans.json, fold_k/checkpoint_final.pth) with `.aimi-weights.json` (url, file, sha256, fetched_at) in
it; nnU-Net v1 archives land in `<weights_dir>/<model>/<id>.v1/` until `aimi weights convert-v1` converts them.
Downloads stream into `<weights_dir>/.download/` and reach their final place by one rename, so a folder that exists
is complete. The archive is deleted after unpacking; its digest stays in the provenance file for the SEG writer.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aimi.atomic import replace_folder
from aimi.download import digests, download, opener, read_record, record_file, safe_unpack
from aimi.errors import ConfigError, FetchError
from aimi.manifest import Manifest, WeightsEntry

log = logging.getLogger(__name__)

PROVENANCE_FILE = ".aimi-weights.json"
#: What a model folder's provenance says: the archive (file, url, Zenodo record, md5, sha256) and, for nnU-Net v1
#: weights, the converter that made the v2 folder.
PROVENANCE_KEYS = ("file", "url", "record", "md5", "sha256", "converter")
#: The file a tiny test model (`aimi testmodel`) records as its source: a SEG from it says it is no published model.
TESTMODEL_FILE = "aimi-testmodel"
#: The checkpoints nnU-Net v2 saves per fold; releases ship either (NNUnetRunner.checkpoint picks one).
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")
DOWNLOAD_DIR = ".download"
_CHUNK = 1 << 20


class WeightsMissing(Exception):
    """A model's weights are not (completely) in the weights dir; the message says how to get them."""


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
    if not any(any(folder.glob(f"fold_*/{name}")) for name in CHECKPOINT_NAMES):
        lacking.append(f"fold_*/{' or '.join(CHECKPOINT_NAMES)}")
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


def fetch(manifest: Manifest, weights_dir: Path, *, timeout_s: float = 30, progress: bool = True,
          save_record: bool = False) -> list[Path]:
    """Download, verify and unpack every entry not already in place; returns the model folders, one per entry.

    An entry with a Zenodo `record` is checked against that record (size and MD5) and, where the manifest pins one,
    its sha256. Raises FetchError (unreachable host, HTTP error, digest or size mismatch, file not in the record,
    unsafe or unexpected archive) and WeightsNeedConversion for nnU-Net v1 weights that could not be converted.
    `save_record` keeps each record's JSON beside the model folders, for `aimi weights import` offline.
    """
    weights_dir = Path(weights_dir)
    return [_fetch_entry(manifest, entry, weights_dir, timeout_s, progress, save_record)
            for entry in manifest.weights]


def import_archive(manifest: Manifest, weights_dir: Path, archive: Path, *, entry_id: str = "",
                   md5: str = "", size: int = -1, record_json: Path | None = None) -> Path:
    """An archive obtained by hand (no network), checked as fetch checks it - against the record JSON saved by
    `aimi weights fetch --print-record`, or the MD5 (and size) given - then unpacked as fetch unpacks it."""
    entry = _entry_for(manifest, entry_id, archive)
    if record_json is not None:
        try:
            stated = record_file(json.loads(record_json.read_text()), entry.record or "?", entry.file)
        except (OSError, ValueError) as error:
            raise FetchError(f"{record_json}: not a readable Zenodo record: {error}") from None
        md5, size = stated.md5, stated.size
    if not md5 and not entry.sha256:
        raise FetchError(f"{archive}: nothing to check it against: give --md5 (and --size) from the Zenodo record, "
                         "or --record-json saved by `aimi weights fetch --print-record`")
    facts = _check_archive(archive, entry, md5=md5.lower(), size=size)
    staging = weights_dir / DOWNLOAD_DIR
    staging.mkdir(parents=True, exist_ok=True)
    copy = staging / f".{entry.file}.{os.getpid()}.import"
    shutil.copyfile(archive, copy)
    target = _target(weights_dir, manifest, entry)
    _install(copy, entry, staging, target, facts)
    return _finish_v1(weights_dir, manifest, entry) if entry.format == "nnunet-v1" else target


def _entry_for(manifest: Manifest, entry_id: str, archive: Path) -> WeightsEntry:
    if entry_id:
        return manifest.entry(entry_id)
    by_file = [entry for entry in manifest.weights if entry.file == archive.name]
    if len(by_file) == 1:
        return by_file[0]
    if len(manifest.weights) == 1:
        return manifest.weights[0]
    ids = ", ".join(entry.id for entry in manifest.weights)
    raise FetchError(f"{archive.name}: which weights entry is it? give --id (one of {ids})")


def _target(weights_dir: Path, manifest: Manifest, entry: WeightsEntry) -> Path:
    v1 = entry.format == "nnunet-v1"
    return v1_folder(weights_dir, manifest, entry) if v1 else model_folder(weights_dir, manifest, entry)


def _fetch_entry(manifest: Manifest, entry: WeightsEntry, weights_dir: Path, timeout_s: float, progress: bool,
                 save_record: bool) -> Path:
    """One entry: skip when its folder is present and matches the manifest, else download and replace it."""
    v1 = entry.format == "nnunet-v1"
    target = _target(weights_dir, manifest, entry)
    if _is_current(target, entry, v1):
        log.info("%s: %s already present in %s", manifest.name, entry.file, target)
    else:
        _download_and_install(manifest, entry, weights_dir, target, timeout_s, progress, save_record)
    if not entry.sha256 and not entry.record:
        log.warning("%s: neither a Zenodo record nor a sha256 in manifest.toml: unverified", entry.file)
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
    converted, fetched = _read_provenance(folder), _read_provenance(source)
    converted.pop("converter", None)
    fetched.pop("converter", None)
    same_source = converted == fetched
    if not missing_parts(folder) and same_source and is_current_conversion(folder):
        return folder
    try:
        return convert_v1(source, folder, replace=True)
    except ConversionError as err:
        raise WeightsNeedConversion(
            f"{entry.file} holds nnU-Net v1 weights, now in {source}, that could not be converted ({err}); "
            f"convert them to an nnU-Net v2 model folder with `{_convert_command(weights_dir, manifest, entry)}`"
        ) from err


def _download_and_install(manifest: Manifest, entry: WeightsEntry, weights_dir: Path, target: Path,
                          timeout_s: float, progress: bool, save_record: bool) -> None:
    """Download (resumable when a record states the size), verify, unpack to a temp dir, move the folder into place."""
    staging = weights_dir / DOWNLOAD_DIR
    staging.mkdir(parents=True, exist_ok=True)
    if entry.record:
        record_json = read_record(entry.record, timeout_s=timeout_s)
        stated = record_file(record_json, entry.record, entry.file)
        if save_record:
            saved = weights_dir / manifest.name / f"{entry.id}.zenodo-record.json"
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(record_json, indent=2) + "\n")
        archive = staging / f".{entry.file}.record-{entry.record}.download"  # kept between runs: resumed
        try:
            download(stated.url, archive, stated.size, label=entry.file, timeout_s=timeout_s, progress=progress)
        except FetchError:
            if not archive.exists():  # refused, not interrupted: nothing to resume
                _discard(archive, staging)
            raise
        try:
            facts = _check_archive(archive, entry, md5=stated.md5, size=stated.size)
        except FetchError:
            _discard(archive, staging)
            raise
    else:
        fd, name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".download", dir=staging)
        archive = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                _download(entry, out, timeout_s, progress)
            facts = _check_archive(archive, entry)
        except BaseException:
            _discard(archive, staging)
            raise
    _install(archive, entry, staging, target, facts)


def _discard(archive: Path, staging: Path) -> None:
    """A download that failed its checks: deleted, and the staging folder with it when nothing else is in it."""
    archive.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        staging.rmdir()


def _check_archive(archive: Path, entry: WeightsEntry, *, md5: str = "", size: int = -1) -> dict[str, str]:
    """Size and MD5 as the publisher states them, and the manifest's sha256 where it pins one; FetchError naming
    the file and both values. Returns the provenance facts (file, url, record, md5, sha256)."""
    actual_size = archive.stat().st_size
    if size >= 0 and actual_size != size:
        raise FetchError(f"{entry.file}: size mismatch: the record states {size} bytes, the file has {actual_size}")
    actual_md5, actual_sha256 = digests(archive)
    if md5 and actual_md5 != md5:
        raise FetchError(f"{entry.file}: md5 mismatch: the record states {md5}, the file has {actual_md5}; "
                         "nothing was unpacked")
    if entry.sha256 and actual_sha256 != entry.sha256:
        raise FetchError(f"{entry.file}: sha256 mismatch: the manifest pins {entry.sha256}, the file has "
                         f"{actual_sha256}; nothing was unpacked")
    return {"url": entry.url, "file": entry.file, "record": entry.record, "md5": actual_md5,
            "sha256": actual_sha256}


def _install(archive: Path, entry: WeightsEntry, staging: Path, target: Path, facts: dict[str, str]) -> None:
    """Unpack a checked archive into a temp dir, record where it came from, move the model folder into place."""
    unpacked = Path(tempfile.mkdtemp(prefix=f".{entry.id}.", dir=staging))
    try:
        safe_unpack(archive, unpacked, entry.file, entry.url)
        archive.unlink()
        folder = _locate_model_folder(unpacked, entry)
        write_provenance(folder, **facts)
        replace_folder(folder, target)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)
        with contextlib.suppress(OSError):  # only when empty: another fetch may be using it
            staging.rmdir()


def _download(entry: WeightsEntry, out: Any, timeout_s: float, progress: bool) -> None:
    """Stream `entry.url` (a manifest without a Zenodo record) into `out` with a progress bar."""
    host = urllib.parse.urlsplit(entry.url).netloc
    try:
        with opener().open(entry.url, timeout=timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.file, disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise FetchError(f"{entry.url}: HTTP {err.code} {err.reason}; check url in the manifest") from err
    except urllib.error.URLError as err:
        raise FetchError(f"cannot reach {host} to download {entry.file} ({err.reason}) (offline?)") from err
    except (OSError, http.client.HTTPException) as err:
        raise FetchError(f"download of {entry.file} from {host} failed: {err!r}") from err


def _locate_model_folder(root: Path, entry: WeightsEntry) -> Path:
    """The nnU-Net model folder the manifest names inside an unpacked archive.

    v2: the folder `<trainer>__<plans>__<configuration>` holding plans.json and dataset.json, at any depth
        (MHub's BAMF releases: `<dataset>/<trainer>__<plans>__<configuration>/`).
    v1: the folder `<configuration>/<task>/<trainer>__<plans>` holding plans.pkl, at any depth (MHub's BAMF
        releases unzip to `3d_fullres/<task>/...` under nnU-Net v1's `nnUNet/` results folder; others ship the
        `nnUNet/` level too).
    """
    nn = entry.nnunet
    if nn.version == 1:
        marker, tail = "plans.pkl", (nn.configuration, nn.task, f"{nn.trainer}__{nn.plans}")
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


def write_provenance(folder: Path, *, url: str, file: str, sha256: str, record: str = "", md5: str = "") -> None:
    """Record where a model folder came from (fetch and import; testmodel / convert-v1 with sha256 "")."""
    facts = {"url": url, "file": file, "record": record, "md5": md5, "sha256": sha256,
             "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (folder / PROVENANCE_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def _read_provenance(folder: Path) -> dict[str, str]:
    """The provenance record of `folder`, or {} when it has none (or an unreadable one)."""
    try:
        record = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: str(record.get(key, "")) for key in (*PROVENANCE_KEYS, "fetched_at")}


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
    """file, url, Zenodo record, md5 and sha256 of the archive `entry`'s model folder came from, and the converter
    that made it an nnU-Net v2 folder ("" when unknown or not converted)."""
    record = _read_provenance(model_folder(weights_dir, manifest, entry))
    if not record:
        return {key: "" for key in PROVENANCE_KEYS} | {"file": entry.file, "url": entry.url, "record": entry.record}
    return {key: record[key] for key in PROVENANCE_KEYS}


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


#: The weights an image was built with, 'id=md5:<hex>,id=sha256:<hex>' (its label, also in its environment).
IMAGE_DIGESTS_ENV = "AIMI_WEIGHTS_DIGESTS"
DIGEST_ALGORITHMS = ("md5", "sha256")


def parse_digests(text: str) -> dict[str, tuple[str, str]]:
    """'id=md5:<hex>,id=sha256:<hex>' -> {id: (algorithm, hex)}; ValueError naming what is malformed."""
    digests = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        weights_id, _, digest = item.partition("=")
        algorithm, _, value = digest.partition(":")
        if not weights_id or algorithm not in DIGEST_ALGORITHMS or not value:
            raise ValueError(f"{item!r}: expected id=md5:<hex> or id=sha256:<hex>")
        digests[weights_id] = (algorithm, value.lower())
    return digests


def digest_problems(manifest: Manifest, weights_dir: Path, expected: dict[str, tuple[str, str]]) -> list[str]:
    """How the weights in place differ from the digests an image was built for (one line per weights entry)."""
    problems = [f"weights ids {sorted(unknown)} are not in {manifest.name}'s manifest"
                for unknown in [set(expected) - {entry.id for entry in manifest.weights}] if unknown]
    for entry in manifest.weights:
        if entry.id not in expected:
            problems.append(f"{entry.id}: no digest given for it")
            continue
        algorithm, value = expected[entry.id]
        held = provenance(weights_dir, manifest, entry).get(algorithm, "")
        if held != value:
            problems.append(f"{entry.id}: {entry.file} should have {algorithm} {value}, the weights folder holds "
                            f"{held or 'no record of it'}")
    return problems


def check_image_weights(manifest: Manifest, weights_dir: Path) -> None:
    """In an image: the weights must be the ones its label names (AIMI_WEIGHTS_DIGESTS), else ConfigError."""
    text = os.environ.get(IMAGE_DIGESTS_ENV, "").strip()
    if not text:
        return
    try:
        problems = digest_problems(manifest, weights_dir, parse_digests(text))
    except ValueError as error:
        problems = [f"{IMAGE_DIGESTS_ENV}: {error}"]
    if problems:
        raise ConfigError("the image's weights are not the ones its label names: " + "; ".join(problems))
