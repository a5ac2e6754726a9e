"""The built images, run as a user would: `podman/docker run --network none` with a read-only input mount.

Off by default (minutes; needs the images): `make container-test` builds them with tiny test weights on a local
stand-in for the CUDA base and runs this module with AIMI_CONTAINER_TESTS=1. AIMI_ENGINE (podman) and
AIMI_IMAGE_TAG (test) choose the engine and the model image tag.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.containers.inputs import RUN_ARGS, write_corrupt, write_suitable, write_unsuitable
from tests.containers.lock import NOT_FROZEN, REPO, normal, pins, runtime_stack
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.skipif(os.environ.get("AIMI_CONTAINER_TESTS") != "1",
                                reason="container runs are opt-in: AIMI_CONTAINER_TESTS=1 (make container-test)")

ENGINE = os.environ.get("AIMI_ENGINE", "podman")
TAG = os.environ.get("AIMI_IMAGE_TAG", "test")
VERSION = re.search(r'^version = "(.+)"', (REPO / "base" / "pyproject.toml").read_text(), re.M).group(1)
MODELS = sorted(p.parent.name for p in REPO.glob("models/*/Dockerfile"))
RUN_TIMEOUT_S = 900


def _image(model: str, tag: str = TAG) -> str:
    return f"aimi/{model}:{tag}"


def _engine(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENGINE, *args], capture_output=True, text=True, check=False, timeout=timeout)


def _require(image: str) -> str:
    if _engine("image", "inspect", image).returncode:
        pytest.fail(f"image {image} is missing in {ENGINE}: build it with containers/container-test.sh")
    return image


def run_image(model: str, input_dir: Path, output_dir: Path, *args: str, entrypoint: str | None = None,
              tag: str = TAG) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The image on the two MHub paths, input read-only, no network; returns the process and run-report.json."""
    input_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    command = ["run", "--rm", "--network", "none",
               "-v", f"{input_dir}:/app/data/input_data:ro", "-v", f"{output_dir}:/app/data/output_data"]
    if entrypoint:
        command += ["--entrypoint", entrypoint]
    done = _engine(*command, _require(_image(model, tag)), *args)
    report_path = output_dir / "run-report.json"
    assert report_path.is_file(), f"no run-report.json (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return done, json.loads(report_path.read_text())


@pytest.mark.parametrize("model", MODELS)
def test_default_command_writes_dciodvfy_clean_segs_for_suitable_input(model: str, tmp_path: Path):
    written = write_suitable(model, tmp_path / "in")
    # The image's default command; a model with run options spells it out on the same `aimi run` entrypoint.
    command = [model, "-i", "/app/data/input_data", "-o", "/app/data/output_data", *RUN_ARGS[model]] \
        if model in RUN_ARGS else []
    done, report = run_image(model, tmp_path / "in", tmp_path / "out", *command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(c["id"], c["status"]) for c in report["cases"]] == [(written.case_id, "done")]
    for uid in written.series_uids:
        seg = tmp_path / "out" / uid / f"{model}.seg.dcm"
        assert seg.is_file(), sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*"))
        assert dciodvfy_errors(seg) == []
    assert {w["file"] for w in report["model"]["weights"].values()} == {"aimi-testmodel"}


@pytest.mark.parametrize("model", MODELS)
def test_mhub_run_on_a_folder_with_nothing_suitable_exits_0_with_a_report(model: str, tmp_path: Path):
    write_unsuitable(model, tmp_path / "in")
    done, report = run_image(model, tmp_path / "in", tmp_path / "out", "--workflow", "default",
                             entrypoint="mhub.run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["cases"] == []
    assert report["series"] and all(s["status"] == "skipped" and s["reason"] for s in report["series"])
    assert report["ignored_files"], "the SR and the text file must be listed as ignored"
    assert not list((tmp_path / "out").rglob("*.seg.dcm"))


@pytest.mark.parametrize("model", MODELS)
def test_a_corrupt_series_exits_1_with_the_reason_in_the_report(model: str, tmp_path: Path):
    written = write_corrupt(model, tmp_path / "in")
    done, report = run_image(model, tmp_path / "in", tmp_path / "out", "--config",
                             f"/app/models/{model}/config/default.yml", "--no-tta", *RUN_ARGS.get(model, ()),
                             entrypoint="mhub.run")
    assert done.returncode == 1, done.stderr[-3000:]
    [case] = report["cases"]
    assert (case["id"], case["status"]) == (written.case_id, "failed")
    [uid] = written.series_uids
    assert case["failed_module"] and uid in case["error"], case
    assert not list((tmp_path / "out").rglob("*.seg.dcm"))


@pytest.mark.parametrize("model", MODELS)
def test_image_labels_name_the_model_the_weights_and_the_version(model: str):
    labels = json.loads(_engine("image", "inspect", "--format", "{{json .Config.Labels}}",
                                  _require(_image(model))).stdout)
    assert labels["org.aimi.model"] == model
    assert labels["org.aimi.weights.test-model"] == "1"  # test weights: no digest to claim
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.source"]


def test_base_image_installs_exactly_the_native_runtime_stack_at_the_locked_versions():
    # Every installed distribution, as native runtime_stack() sees them (`pip list` hides some, e.g. argparse).
    listing = "import json, importlib.metadata as m; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    done = _engine("run", "--rm", "--network", "none", "--entrypoint", "python", _require(f"aimi/base:{VERSION}"),
                   "-c", listing, timeout=300)
    assert done.returncode == 0, done.stderr
    in_image = {normal(name): version for name, version in json.loads(done.stdout).items() if normal(name) != "pip"}
    native = runtime_stack()  # aimi's run-time requirements, transitively, as installed in .venv
    differing = {n: (in_image.get(n), native.get(n)) for n in in_image.keys() | native.keys()
                 if in_image.get(n) != native.get(n)}
    assert differing == {}, "image and native environment differ (image, native)"
    locked = pins()
    outside = {n: (v, locked.get(n)) for n, v in in_image.items()
               if n != "aimi" and locked.get(n) != v and not (n in NOT_FROZEN and n not in locked)}
    assert outside == {}, "image versions outside the lock (image, lock)"
    assert {"torch", "torchvision", "nnunetv2", "highdicom", "pydicom", "simpleitk"} <= set(in_image)
