"""Manifests and weights: fetched from a loopback HTTP server, never from Zenodo."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from aimi import download
from aimi.manifest import ManifestError, load_manifest
from aimi.weights import (
    PROVENANCE_FILE,
    FetchError,
    WeightsMissing,
    WeightsNeedConversion,
    default_weights_dir,
    fetch,
    model_folder,
    provenance,
    require_weights,
    verify,
)

V2_FOLDER = "Dataset999_Test/nnUNetTrainer__nnUNetPlans__3d_fullres"
V2_MEMBERS = {
    f"{V2_FOLDER}/dataset.json": b'{"labels": {"background": 0, "kidney": 1}}',
    f"{V2_FOLDER}/plans.json": b'{"plans_name": "nnUNetPlans"}',
    f"{V2_FOLDER}/fold_0/checkpoint_final.pth": b"not really a checkpoint",
    "Dataset999_Test/README.txt": b"hello",
}
V1_FOLDER = "nnUNet/3d_fullres/Task999_Test/nnUNetTrainerV2__nnUNetPlansv2.1"
V1_MEMBERS = {f"{V1_FOLDER}/plans.pkl": b"pickle", f"{V1_FOLDER}/fold_0/model_final_checkpoint.model": b"m"}

NNUNET_V2 = 'version = 2\ndataset = "Dataset999_Test"\nconfiguration = "3d_fullres"'
NNUNET_V1 = 'version = 1\ntask = "Task999_Test"\nconfiguration = "3d_fullres"'


def manifest_text(url: str, *, sha256: str = "", fmt: str = "nnunet-v2", nnunet: str = NNUNET_V2) -> str:
    file = url.rsplit("/", 1)[-1]
    return f"""
[model]
name = "test_model"
version = "1.0.0"

[[weights]]
id = "organ"
url = "{url}"
file = "{file}"
sha256 = "{sha256}"
format = "{fmt}"
license = "CC BY-NC 4.0"

[weights.nnunet]
{nnunet}
"""


def write_manifest(folder: Path, url: str, **kwargs: str) -> Path:
    path = folder / "manifest.toml"
    path.write_text(manifest_text(url, **kwargs))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> str:
    """Write the archive and return its sha256."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """A loopback HTTP server over a folder that counts the requests it serves."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    srv = Server(served)
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    return tmp_path / "weights"


def served_manifest(server: Server, tmp_path: Path, members: dict[str, bytes], *, with_sha: bool = True, **kw):
    """Serve a zip of `members` and load a manifest pointing at it; returns (manifest, sha256 of the zip)."""
    digest = write_zip(server.root / "Model.zip", members)
    path = write_manifest(tmp_path, f"{server.url}/Model.zip", sha256=digest if with_sha else "", **kw)
    return load_manifest(path), digest


def leftovers(weights_dir: Path) -> list[Path]:
    return sorted(p for p in weights_dir.rglob("*")) if weights_dir.exists() else []


def test_fetch_downloads_verifies_and_unpacks_a_v2_model_folder(server, tmp_path, weights_dir):
    manifest, digest = served_manifest(server, tmp_path, V2_MEMBERS)

    folders = fetch(manifest, weights_dir, progress=False)

    folder = weights_dir / "test_model" / "organ"
    assert folders == [folder] == [model_folder(weights_dir, manifest, manifest.entry("organ"))]
    assert (folder / "plans.json").read_bytes() == V2_MEMBERS[f"{V2_FOLDER}/plans.json"]
    assert (folder / "fold_0" / "checkpoint_final.pth").is_file()
    assert require_weights(weights_dir, manifest) == {"organ": folder}
    assert provenance(weights_dir, manifest, manifest.entry("organ")) == {
        "file": "Model.zip", "sha256": digest, "url": f"{server.url}/Model.zip", "record": "",
        "md5": hashlib.md5((server.root / "Model.zip").read_bytes()).hexdigest(), "converter": ""}
    assert json.loads((folder / PROVENANCE_FILE).read_text())["fetched_at"]
    assert verify(manifest, weights_dir) == []
    assert not (weights_dir / ".download").exists()


def test_fetch_twice_downloads_once(server, tmp_path, weights_dir):
    manifest, _ = served_manifest(server, tmp_path, V2_MEMBERS)

    first = fetch(manifest, weights_dir, progress=False)
    second = fetch(manifest, weights_dir, progress=False)

    assert first == second
    assert server.requests == ["/Model.zip"]


def test_fetch_without_record_or_sha256_warns_it_is_unverified(server, tmp_path, weights_dir, caplog):
    manifest, digest = served_manifest(server, tmp_path, V2_MEMBERS, with_sha=False)

    with caplog.at_level(logging.WARNING, logger="aimi.weights"):
        fetch(manifest, weights_dir, progress=False)

    assert "Model.zip: neither a Zenodo record nor a sha256 in manifest.toml: unverified" in caplog.text
    assert provenance(weights_dir, manifest, manifest.weights[0])["sha256"] == digest


def test_wrong_sha256_fails_naming_both_digests_and_leaves_nothing(server, tmp_path, weights_dir):
    digest = write_zip(server.root / "Model.zip", V2_MEMBERS)
    wrong = "0" * 64
    manifest = load_manifest(write_manifest(tmp_path, f"{server.url}/Model.zip", sha256=wrong))

    with pytest.raises(FetchError) as caught:
        fetch(manifest, weights_dir, progress=False)

    assert "Model.zip" in str(caught.value)
    assert wrong in str(caught.value) and digest in str(caught.value)
    assert leftovers(weights_dir) == []


def test_refetch_with_a_new_digest_replaces_the_folder(server, tmp_path, weights_dir):
    manifest, _ = served_manifest(server, tmp_path, V2_MEMBERS, with_sha=False)
    fetch(manifest, weights_dir, progress=False)
    changed = {**V2_MEMBERS, f"{V2_FOLDER}/plans.json": b'{"plans_name": "v2"}'}
    manifest, digest = served_manifest(server, tmp_path, changed)

    [folder] = fetch(manifest, weights_dir, progress=False)

    assert (folder / "plans.json").read_bytes() == b'{"plans_name": "v2"}'
    assert provenance(weights_dir, manifest, manifest.weights[0])["sha256"] == digest
    assert sorted(p.name for p in folder.parent.iterdir()) == ["organ"]


def test_fetch_replaces_a_folder_of_unknown_origin(server, tmp_path, weights_dir):
    manifest, digest = served_manifest(server, tmp_path, V2_MEMBERS, with_sha=False)
    folder = weights_dir / "test_model" / "organ"
    (folder / "fold_0").mkdir(parents=True)
    for name in ("dataset.json", "plans.json", "fold_0/checkpoint_final.pth"):
        (folder / name).write_text("test model")

    fetch(manifest, weights_dir, progress=False)

    assert (folder / "plans.json").read_bytes() == V2_MEMBERS[f"{V2_FOLDER}/plans.json"]
    assert provenance(weights_dir, manifest, manifest.weights[0])["sha256"] == digest


def test_zip_with_parent_path_is_refused(server, tmp_path, weights_dir):
    manifest, _ = served_manifest(server, tmp_path, {**V2_MEMBERS, "../evil": b"x"})

    with pytest.raises(FetchError, match=r"unsafe path '\.\./evil'"):
        fetch(manifest, weights_dir, progress=False)

    assert leftovers(weights_dir) == []
    assert not (tmp_path / "evil").exists()


def test_zip_with_absolute_path_is_refused(server, tmp_path, weights_dir):
    manifest, _ = served_manifest(server, tmp_path, {**V2_MEMBERS, "/tmp/evil": b"x"})

    with pytest.raises(FetchError, match="unsafe path"):
        fetch(manifest, weights_dir, progress=False)


def test_unreachable_host_fails_fast_and_says_offline(tmp_path, weights_dir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    manifest = load_manifest(write_manifest(tmp_path, f"http://127.0.0.1:{port}/x.zip"))

    start = time.monotonic()
    with pytest.raises(FetchError, match=r"cannot reach 127\.0\.0\.1:\d+ .*\(offline\?\)"):
        fetch(manifest, weights_dir, progress=False)

    assert time.monotonic() - start < 5
    assert leftovers(weights_dir) == []


def test_silent_host_fails_after_the_connect_timeout_not_the_read_timeout(tmp_path, weights_dir, monkeypatch):
    monkeypatch.setattr(download, "CONNECT_TIMEOUT_S", 0.3)
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepts: once one connection waits, further SYNs are dropped
        filler.connect(listener.getsockname())
        manifest = load_manifest(write_manifest(tmp_path, f"http://127.0.0.1:{listener.getsockname()[1]}/x.zip"))

        start = time.monotonic()
        with pytest.raises(FetchError, match=r"cannot reach .*timed out.*\(offline\?\)"):
            fetch(manifest, weights_dir, timeout_s=30, progress=False)

    assert time.monotonic() - start < 5


def test_http_error_names_the_url(server, tmp_path, weights_dir):
    manifest = load_manifest(write_manifest(tmp_path, f"{server.url}/absent.zip"))

    with pytest.raises(FetchError, match=r"absent\.zip: HTTP 404"):
        fetch(manifest, weights_dir, progress=False)


def test_archive_without_the_named_model_folder_fails_listing_what_it_holds(server, tmp_path, weights_dir):
    nnunet = NNUNET_V2.replace("3d_fullres", "2d")
    manifest, _ = served_manifest(server, tmp_path, V2_MEMBERS, nnunet=nnunet)

    with pytest.raises(FetchError, match=r"nnUNetTrainer__nnUNetPlans__2d.*found 0.*3d_fullres"):
        fetch(manifest, weights_dir, progress=False)

    assert leftovers(weights_dir) == []


#: MHub's BAMF v1 releases unzip into nnU-Net v1's `nnUNet/` results folder: they start at the configuration.
MHUB_V1_MEMBERS = {name.removeprefix("nnUNet/"): data for name, data in V1_MEMBERS.items()}


@pytest.mark.parametrize("members", [V1_MEMBERS, MHUB_V1_MEMBERS], ids=["with nnUNet/", "as MHub ships it"])
def test_v1_archive_is_kept_for_conversion_and_says_how(members, server, tmp_path, weights_dir):
    manifest, _ = served_manifest(server, tmp_path, members, fmt="nnunet-v1", nnunet=NNUNET_V1)

    with pytest.raises(WeightsNeedConversion, match="aimi weights convert-v1"):
        fetch(manifest, weights_dir, progress=False)

    assert (weights_dir / "test_model" / "organ.v1" / "plans.pkl").read_bytes() == b"pickle"
    assert "aimi weights convert-v1" in verify(manifest, weights_dir)[0]
    with pytest.raises(WeightsMissing, match="aimi weights convert-v1"):
        require_weights(weights_dir, manifest)


def test_require_weights_on_empty_dir_says_how_to_get_them(tmp_path, weights_dir):
    manifest = load_manifest(write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip"))

    with pytest.raises(WeightsMissing) as caught:
        require_weights(weights_dir, manifest)

    message = str(caught.value)
    assert f"aimi weights fetch test_model --weights {weights_dir}" in message
    assert "aimi testmodel test_model" in message
    assert str(weights_dir / "test_model" / "organ") in message


def test_require_weights_names_a_missing_checkpoint(tmp_path, weights_dir):
    manifest = load_manifest(write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip"))
    folder = weights_dir / "test_model" / "organ"
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text("{}")
    (folder / "plans.json").write_text("{}")

    with pytest.raises(WeightsMissing, match=r"lacks fold_\*/checkpoint_final\.pth or checkpoint_best\.pth"):
        require_weights(weights_dir, manifest)


def test_verify_reports_a_digest_unlike_the_manifest(server, tmp_path, weights_dir):
    manifest, digest = served_manifest(server, tmp_path, V2_MEMBERS, with_sha=False)
    fetch(manifest, weights_dir, progress=False)
    other = "a" * 64
    manifest = load_manifest(write_manifest(tmp_path, f"{server.url}/Model.zip", sha256=other))

    [problem] = verify(manifest, weights_dir)

    assert digest in problem and other in problem


def test_verify_reports_missing_weights_with_the_fetch_command(tmp_path, weights_dir):
    manifest = load_manifest(write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip"))

    [problem] = verify(manifest, weights_dir)

    assert "does not exist" in problem and "aimi weights fetch test_model" in problem


def test_provenance_without_a_record_has_an_empty_digest(tmp_path, weights_dir):
    manifest = load_manifest(write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip"))

    assert provenance(weights_dir, manifest, manifest.weights[0]) == {
        "file": "Model.zip", "sha256": "", "url": "https://zenodo.org/records/1/files/Model.zip", "record": "",
        "md5": "", "converter": ""}


def test_default_weights_dir_follows_aimi_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMI_WEIGHTS", str(tmp_path))
    assert default_weights_dir() == tmp_path
    monkeypatch.delenv("AIMI_WEIGHTS")
    assert default_weights_dir() in (Path("/app/weights"), Path.home() / ".cache" / "aimi" / "weights")


def test_manifest_reads_every_field(tmp_path):
    manifest = load_manifest(write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip",
                                            fmt="nnunet-v1", nnunet=NNUNET_V1))

    entry = manifest.entry("organ")
    assert (manifest.name, manifest.version, manifest.path) == ("test_model", "1.0.0", tmp_path / "manifest.toml")
    assert (entry.file, entry.sha256, entry.format, entry.license) == ("Model.zip", "", "nnunet-v1", "CC BY-NC 4.0")
    assert (entry.nnunet.task, entry.nnunet.dataset, entry.nnunet.trainer, entry.nnunet.plans) == (
        "Task999_Test", "", "nnUNetTrainerV2", "nnUNetPlansv2.1")


def test_manifest_entry_with_unknown_id_lists_the_ids(tmp_path):
    manifest = load_manifest(write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip"))

    with pytest.raises(ManifestError, match="ids: organ"):
        manifest.entry("liver")


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('format = "nnunet-v2"', 'format = "v3"', r"weights\[0\]\.format: 'v3' is not one of: nnunet-v1, nnunet-v2"),
    ('license =', 'licence = "x"\nlicense =', r"weights\[0\]\.licence: unknown key; valid keys: file, format, id"),
    ('sha256 = ""', 'sha256 = "abc"', r"weights\[0\]\.sha256: 'abc' is not valid"),
    ("version = 2", "version = 1", r"weights\[0\]\.nnunet\.version: 1 does not match format nnunet-v2"),
    ('configuration = "3d_fullres"', 'configuration = "3d"', r"weights\[0\]\.nnunet\.configuration: '3d' is not one"),
    ('name = "test_model"', "", r"model\.name: missing"),
    ('[weights.nnunet]', '[weights.testmodel]\nlabels = {}\n[weights.nnunet]', r"weights\[0\]\.testmodel: unknown key"),
])
def test_manifest_errors_name_the_file_and_key_path(tmp_path, old, new, expected):
    path = write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))

    with pytest.raises(ManifestError, match=expected) as caught:
        load_manifest(path)

    assert str(caught.value).startswith(f"{path}: ")


def test_manifest_with_duplicate_ids_is_refused(tmp_path):
    path = write_manifest(tmp_path, "https://zenodo.org/records/1/files/Model.zip")
    text = path.read_text()
    second = text[text.index("[[weights]]"):]
    path.write_text(text + second)

    with pytest.raises(ManifestError, match=r"weights\[1\]\.id: 'organ' is used twice"):
        load_manifest(path)
