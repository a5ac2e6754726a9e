"""`make image-<model>` on the real-weights path, with a Zenodo stand-in on this machine's loopback as the mirror
(AIMI_ZENODO_URL): no manifest edit, the record's MD5 becomes the image's label, and the image's default command
writes a dciodvfy-clean SEG from the weights it baked; a tampered archive fails the build naming the file and both
digests. The archive is the model's test image's tiny model, zipped as the real release lays its model out.

Part of `make container-test` (AIMI_CONTAINER_TESTS=1, the :test images built, AIMI_STANDIN_BASE the CUDA stand-in).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimi.manifest import WeightsEntry, load_manifest
from tests.containers.inputs import write_suitable
from tests.containers.lock import REPO
from tests.containers.test_container_images import _engine, _image, _require, run_image
from tests.support.validators import dciodvfy_errors
from tests.support.zenodo import Zenodo, serving

pytestmark = pytest.mark.skipif(os.environ.get("AIMI_CONTAINER_TESTS") != "1",
                                reason="container runs are opt-in: AIMI_CONTAINER_TESTS=1 (make container-test)")

#: nnU-Net v2 weights (the v1 release layout is proved against nnunet 1.7.1 in tests/test_convert_v1.py).
MODEL = "bamf_nnunet_ct_lung"
TAG = "zenodo-standin"
BUILD_TIMEOUT_S = 1800


def _entry() -> WeightsEntry:
    [entry] = load_manifest(REPO / "models" / MODEL / "manifest.toml").weights
    return entry


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The test image's tiny model as the release zip lays it out: `<dataset>/<trainer>__<plans>__<config>/`."""
    entry, out = _entry(), tmp_path_factory.mktemp("release")
    created = _engine("create", _require(_image(MODEL, "test")))
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip()
    try:
        copied = _engine("cp", f"{container}:/app/weights/{MODEL}/{entry.id}", str(out / "model"))
        assert copied.returncode == 0, copied.stderr
    finally:
        _engine("rm", container)
    nn = entry.nnunet
    top = f"{nn.dataset}/{nn.trainer}__{nn.plans}__{nn.configuration}"
    with zipfile.ZipFile(out / entry.file, "w") as zf:
        for item in sorted(p for p in (out / "model").rglob("*") if p.is_file() and not p.name.startswith(".")):
            zf.write(item, f"{top}/{item.relative_to(out / 'model')}")
    return (out / entry.file).read_bytes()


@pytest.fixture
def zenodo() -> Iterator[Zenodo]:
    with serving(_entry().record) as server:
        yield server


def build_image(zenodo_url: str) -> subprocess.CompletedProcess[str]:
    """`make image-MODEL` as a user runs it, on the CI stand-in base, tagged apart from the user's :latest."""
    standin = os.environ.get("AIMI_STANDIN_BASE")
    if not standin:
        pytest.fail("AIMI_STANDIN_BASE is not set: run the container tests with containers/container-test.sh")
    return subprocess.run(
        [str(REPO / "containers" / "build-images.sh"), "--offline", "--base-image", standin, "--tag", TAG, MODEL],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=REPO,
        env={**os.environ, "AIMI_ZENODO_URL": zenodo_url})


@pytest.mark.parametrize("model", [MODEL])
def test_image_built_from_the_record_runs_its_default_command(model: str, zenodo: Zenodo, release: bytes,
                                                             tmp_path: Path) -> None:
    entry, md5 = _entry(), hashlib.md5(release).hexdigest()
    zenodo.files[entry.file] = release
    try:
        built = build_image(zenodo.url)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        labels = json.loads(_engine("image", "inspect", "--format", "{{json .Config.Labels}}",
                                    _image(model, TAG)).stdout)
        assert labels["org.aimi.weights.digests"] == f"{entry.id}=md5:{md5}"
        assert labels["org.aimi.weights.test-model"] == "0"

        written = write_suitable(model, tmp_path / "in")
        done, report = run_image(model, tmp_path / "in", tmp_path / "out", tag=TAG)  # the image's CMD
    finally:
        _engine("rmi", "--force", _image(model, TAG))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(c["id"], c["status"]) for c in report["cases"]] == [(written.case_id, "done")]
    [seg] = (tmp_path / "out").rglob(f"{model}.seg.dcm")
    assert dciodvfy_errors(seg) == []
    baked = report["model"]["weights"][entry.id]
    assert (baked["file"], baked["record"], baked["md5"]) == (entry.file, entry.record, md5)
    assert baked["sha256"] == hashlib.sha256(release).hexdigest()


@pytest.mark.parametrize("model", [MODEL])
def test_a_tampered_archive_fails_the_build_naming_the_file_and_both_digests(model: str, zenodo: Zenodo,
                                                                            release: bytes) -> None:
    """The mirror serves other bytes than the record states (size unchanged): the build stops before unpacking."""
    entry = _entry()
    tampered = bytearray(release)
    tampered[len(tampered) // 2] ^= 0xFF
    zenodo.files[entry.file] = bytes(tampered)
    zenodo.stated[entry.file] = {"checksum": "md5:" + hashlib.md5(release).hexdigest()}

    built = build_image(zenodo.url)
    _engine("rmi", "--force", _image(model, TAG))

    assert built.returncode != 0
    log = built.stdout + built.stderr
    assert (f"{entry.file}: md5 mismatch: the record states {hashlib.md5(release).hexdigest()}, "
            f"the file has {hashlib.md5(tampered).hexdigest()}") in log, log[-3000:]
    assert "Traceback" not in log
