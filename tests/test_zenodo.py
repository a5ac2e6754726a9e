"""Weights from a Zenodo record, on a loopback server shaped like Zenodo (`AIMI_ZENODO_URL` points at it): the
record's size and MD5 are checked before anything is unpacked, downloads resume, and an archive carried in by hand
(`aimi weights import`) gets the same checks, model folder and provenance. The archive holds a real tiny nnU-Net
model, which NNUnetRunner then loads."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimi.cli import main
from aimi.core.context import RunContext, RunOptions
from aimi.errors import ConfigError, FetchError
from aimi.inference.nnunet_runner import NNUnetRunner, Settings
from aimi.manifest import Manifest, load_manifest
from aimi.models import load_model
from aimi.weights import (
    check_image_weights,
    digest_problems,
    fetch,
    import_archive,
    model_folder,
    parse_digests,
    provenance,
)
from tests.support.zenodo import Zenodo, serving

RECORD = "4242"
FILE = "Dataset779_Kidney.zip"
FOLDER = "Dataset779_Kidney/nnUNetTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture
def zenodo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Zenodo]:
    with serving(RECORD) as server:
        monkeypatch.setenv("AIMI_ZENODO_URL", server.url)
        yield server


@pytest.fixture(scope="module")
def archive(kidney_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The tiny kidney model laid out as a v2 release zip: Dataset779_Kidney/<trainer>__<plans>__<config>/..."""
    folder = model_folder(kidney_weights, load_model("bamf_nnunet_ct_kidney").manifest,
                          load_model("bamf_nnunet_ct_kidney").manifest.weights[0])
    path = tmp_path_factory.mktemp("zip") / FILE
    with zipfile.ZipFile(path, "w") as zf:
        for item in sorted(folder.rglob("*")):
            if item.is_file() and not item.name.startswith("."):
                zf.write(item, f"{FOLDER}/{item.relative_to(folder)}")
    return path.read_bytes()


def manifest(tmp_path: Path, *, sha256: str = "") -> Manifest:
    path = tmp_path / "manifest.toml"
    path.write_text(f"""
[model]
name = "test_model"
version = "1.0.0"

[[weights]]
id = "kidney"
url = "https://zenodo.org/records/{RECORD}/files/{FILE}"
record = "{RECORD}"
file = "{FILE}"
sha256 = "{sha256}"
format = "nnunet-v2"
license = "CC BY-NC 4.0"

[weights.nnunet]
version = 2
dataset = "Dataset779_Kidney"
configuration = "3d_fullres"
""")
    return load_manifest(path)


def leftovers(weights: Path) -> list[str]:
    return sorted(str(p.relative_to(weights)) for p in weights.rglob("*")) if weights.exists() else []


def test_fetch_checks_the_record_unpacks_and_the_runner_loads_the_model(zenodo: Zenodo, archive: bytes,
                                                                        tmp_path: Path) -> None:
    zenodo.files[FILE] = archive
    model = manifest(tmp_path)
    [folder] = fetch(model, tmp_path / "w", progress=False)
    facts = provenance(tmp_path / "w", model, model.entry("kidney"))
    assert facts == {"file": FILE, "url": model.entry("kidney").url, "record": RECORD, "converter": "",
                     "md5": hashlib.md5(archive).hexdigest(), "sha256": hashlib.sha256(archive).hexdigest()}
    context = RunContext("test_model", tmp_path, model, tmp_path / "w", tmp_path / "out", RunOptions())
    runner = NNUnetRunner(Settings(weights="kidney", device="cpu"), context)
    assert runner.loads == 1 and runner.model.folder == folder
    assert not (tmp_path / "w" / ".download").exists()


@pytest.mark.parametrize(("lie", "message"), [
    ({"checksum": "md5:" + "0" * 32}, r"md5 mismatch: the record states 0{32}, the file has [0-9a-f]{32}"),
    ({"size": 12345}, r"size mismatch: the record states 12345 bytes, the file has \d+"),
])
def test_a_file_unlike_its_record_is_refused_naming_both_values_and_nothing_is_kept(
        lie: dict[str, object], message: str, zenodo: Zenodo, archive: bytes, tmp_path: Path) -> None:
    zenodo.files[FILE] = archive
    zenodo.stated[FILE] = lie
    with pytest.raises(FetchError, match=rf"{FILE}: {message}"):
        fetch(manifest(tmp_path), tmp_path / "w", progress=False)
    assert leftovers(tmp_path / "w") == []


def test_a_manifest_pin_is_checked_too(zenodo: Zenodo, archive: bytes, tmp_path: Path) -> None:
    zenodo.files[FILE] = archive
    with pytest.raises(FetchError, match=rf"sha256 mismatch: the manifest pins {'a' * 64}, the file has"):
        fetch(manifest(tmp_path, sha256="a" * 64), tmp_path / "w", progress=False)
    assert leftovers(tmp_path / "w") == []


def test_a_zip_that_climbs_out_of_its_folder_is_refused_and_nothing_is_kept(zenodo: Zenodo, archive: bytes,
                                                                            tmp_path: Path) -> None:
    """A record whose file checks out (size, MD5 as stated) can still carry a hostile path: refused before any
    member is written."""
    hostile = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(hostile, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        target.writestr("../../outside.txt", b"x")
    zenodo.files[FILE] = hostile.getvalue()
    with pytest.raises(FetchError, match=rf"{FILE}: unsafe path '../../outside.txt' in the archive"):
        fetch(manifest(tmp_path), tmp_path / "w", progress=False)
    assert leftovers(tmp_path / "w") == [] and not (tmp_path / "outside.txt").exists()


def test_a_file_missing_from_the_record_names_what_it_holds(zenodo: Zenodo, tmp_path: Path) -> None:
    zenodo.files["Other.zip"] = b"x"
    with pytest.raises(FetchError, match=rf"record {RECORD} has no file '{FILE}' \(it holds: Other.zip\)"):
        fetch(manifest(tmp_path), tmp_path / "w", progress=False)


def test_an_unreachable_record_fails_in_seconds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    monkeypatch.setenv("AIMI_ZENODO_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(FetchError, match=rf"Zenodo record {RECORD}: cannot reach"):
        fetch(manifest(tmp_path), tmp_path / "w", progress=False)
    assert time.monotonic() - started < 5


def test_an_interrupted_download_resumes_where_it_stopped(zenodo: Zenodo, archive: bytes, tmp_path: Path) -> None:
    zenodo.files[FILE] = archive
    zenodo.drop_once = True
    [folder] = fetch(manifest(tmp_path), tmp_path / "w", progress=False)
    ranges = [r for path, r in zenodo.requests if path.endswith("/content")]
    assert ranges == ["", f"bytes={len(archive) // 2}-"]
    assert (folder / "plans.json").is_file()


def test_import_offline_gives_the_same_folder_and_provenance_as_fetch(zenodo: Zenodo, archive: bytes,
                                                                      tmp_path: Path) -> None:
    zenodo.files[FILE] = archive
    model = manifest(tmp_path)
    [fetched] = fetch(model, tmp_path / "online", progress=False, save_record=True)
    record = tmp_path / "online" / "test_model" / "kidney.zenodo-record.json"
    carried = tmp_path / FILE
    carried.write_bytes(archive)
    imported = import_archive(model, tmp_path / "offline", carried, record_json=record)
    assert sorted(p.relative_to(imported) for p in imported.rglob("*")) == sorted(
        p.relative_to(fetched) for p in fetched.rglob("*"))
    assert provenance(tmp_path / "offline", model, model.entry("kidney")) == provenance(
        tmp_path / "online", model, model.entry("kidney"))
    with pytest.raises(FetchError, match="md5 mismatch"):
        import_archive(model, tmp_path / "again", carried, md5="0" * 32)
    assert leftovers(tmp_path / "again") == []


def test_aimi_weights_import_command(archive: bytes, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The command checks before it unpacks: a wrong MD5 is exit 1 with one line, nothing installed."""
    carried = tmp_path / FILE
    carried.write_bytes(archive)
    status = main(["weights", "import", "bamf_nnunet_ct_kidney", str(carried), "--md5", "0" * 32,
                   "--weights", str(tmp_path / "w")])
    error = capsys.readouterr().err
    assert status == 1 and "md5 mismatch" in error and "Traceback" not in error
    assert leftovers(tmp_path / "w") == []


def test_image_digests_come_from_the_record_and_an_image_refuses_other_weights(
        zenodo: Zenodo, archive: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make images` reads the digest from the record (no hand edit); the image's `aimi run` checks the weights
    it holds against it before anything runs."""
    zenodo.files[FILE] = archive
    model = manifest(tmp_path)
    script = Path(__file__).resolve().parents[1] / "containers" / "weights_digests.py"
    printed = subprocess.run([sys.executable, str(script), str(model.path)], capture_output=True, text=True,
                             check=True, env={**os.environ, "AIMI_ZENODO_URL": zenodo.url}).stdout.strip()
    assert printed == f"kidney=md5:{hashlib.md5(archive).hexdigest()}"
    fetch(model, tmp_path / "w", progress=False)
    assert digest_problems(model, tmp_path / "w", parse_digests(printed)) == []
    monkeypatch.setenv("AIMI_WEIGHTS_DIGESTS", printed)
    check_image_weights(model, tmp_path / "w")
    monkeypatch.setenv("AIMI_WEIGHTS_DIGESTS", "kidney=sha256:" + "0" * 64)
    with pytest.raises(ConfigError, match=r"kidney: Dataset779_Kidney.zip should have sha256 0{64}, the weights "
                                          r"folder holds [0-9a-f]{64}"):
        check_image_weights(model, tmp_path / "w")


def test_a_release_with_fold_all_and_checkpoint_best_under_a_nested_folder_loads(
        zenodo: Zenodo, archive: bytes, tmp_path: Path) -> None:
    """As some releases lay models out: a top folder above nnU-Net's results tree, one `fold_all` model, its
    `checkpoint_best.pth`. Unpacked by fetch, loaded by NNUnetRunner with `checkpoint: checkpoint_best.pth`."""
    nested = tmp_path / FILE
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(nested, "w") as target:
        for name in source.namelist():
            renamed = name.replace("/fold_0/", "/fold_all/").replace("checkpoint_final.pth", "checkpoint_best.pth")
            target.writestr(f"release-1.0/nnUNet_results/{renamed}", source.read(name))
    zenodo.files[FILE] = nested.read_bytes()
    model = manifest(tmp_path)
    [folder] = fetch(model, tmp_path / "w", progress=False)
    assert (folder / "fold_all" / "checkpoint_best.pth").is_file()
    context = RunContext("test_model", tmp_path, model, tmp_path / "w", tmp_path / "out", RunOptions())
    with pytest.raises(ConfigError, match=r"no fold_\*/checkpoint_final.pth \(checkpoints found: "
                                          r"fold_all/checkpoint_best.pth\)"):
        NNUnetRunner(Settings(weights="kidney", device="cpu"), context)
    runner = NNUnetRunner(Settings(weights="kidney", device="cpu", checkpoint="checkpoint_best.pth"), context)
    assert runner.model.folds == ("all",) and runner.loads == 1


@pytest.fixture
def fetched(zenodo: Zenodo, archive: bytes, tmp_path: Path) -> RunContext:
    """A run context whose weights folder holds the kidney test model, fetched from the stand-in."""
    zenodo.files[FILE] = archive
    model = manifest(tmp_path)
    fetch(model, tmp_path / "w", progress=False)
    return RunContext("test_model", tmp_path, model, tmp_path / "w", tmp_path / "out", RunOptions())


def test_a_channel_mapping_unlike_the_models_dataset_json_stops_the_run_before_any_case(fetched: RunContext) -> None:
    with pytest.raises(ConfigError, match=r"maps T1, FLAIR but kidney's dataset.json names CT \(missing: CT\)"):
        NNUnetRunner(Settings(weights="kidney", device="cpu", channels={"T1": "t1", "FLAIR": "flair"}), fetched)


def test_a_model_whose_labels_differ_from_the_workflows_stops_the_run_before_any_case(fetched: RunContext) -> None:
    """Another release of the model (here: one class fewer than the workflow reads) is refused naming its labels."""
    assert NNUnetRunner(Settings(weights="kidney", device="cpu", labels=[3, 1, 2]), fetched).loads == 1
    with pytest.raises(ConfigError, match=r"reads labels 1, 2, 3, 4 of kidney, but its dataset.json has 1 kidney, "
                                          r"2 tumor, 3 cyst; is this the release the manifest names\?"):
        NNUnetRunner(Settings(weights="kidney", device="cpu", labels=[1, 2, 3, 4]), fetched)


def test_a_region_trained_model_is_checked_by_the_values_it_writes() -> None:
    """nnU-Net's region training (BraTS as nnU-Net v2 ships it): labels map to lists, the output follows
    regions_class_order."""
    from aimi.inference.nnunet_runner import _output_values

    dataset = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
               "regions_class_order": [1, 2, 3]}
    assert _output_values(dataset) == {1: "whole tumor", 2: "tumor core", 3: "enhancing tumor"}
