# AIMI Model Hub. `make demo` and `make test` set everything up on a fresh machine (Python 3.11, root for apt).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aimi-setup

include containers/containers.mk

.PHONY: setup test demo bench lint lock clean

setup: $(STAMP)

# One lock (constraints.txt) pins the whole stack; dicom3tools gives the tests dciodvfy; node runs OHIF's SEG reader
# (@cornerstonejs/adapters, pinned by tests/support/ohif/package-lock.json) in the viewer checks.
$(STAMP): constraints.txt base/pyproject.toml tests/support/ohif/package-lock.json
	@command -v dciodvfy >/dev/null || (apt-get update -qq && apt-get install -y -qq dicom3tools)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e 'base[test]'
	npm ci --prefix tests/support/ohif --ignore-scripts --no-audit --no-fund --loglevel=error
	bash tests/support/v1_env.sh >/dev/null  # nnunet 1.7.1 reference env for the v1 conversion tests (outside the repo)
	touch $@

# The tests, then the container check: base and six model images built with podman and run as users run them.
test: setup
	$(PY) -m pytest
	$(MAKE) container-test

# `make demo REAL=1`: `aimi reproduce` on one small published kidney series of IDC (TCGA-KICH; the SEG is 1.2 MB, the CT
# it references at most 50 MB), with the real Zenodo weights (network: IDC's public bucket and Zenodo). Plain
# `make demo` stays offline: a synthetic CT and a tiny model.
DEMO_SEG := 1.2.276.0.7230010.3.1.3.17436516.3902947.1720465128.28033

demo: setup
ifeq ($(REAL),1)
	$(PY) -m aimi.cli reproduce $(DEMO_SEG) -o demo-output/reproduce
else
	$(PY) -m aimi_testkit.demo --out demo-output
endif

# A benchmark, not a test: the incumbent chain (plastimatch, nnU-Net CLI per series, dcmqi) against ours, side by
# side (bench/README.md). BENCH_ARGS=--quick for a 15-minute run.
bench: setup
	$(PY) -m pip install -q -c constraints.txt -e 'base[bench]'
	$(PY) -m bench $(BENCH_ARGS)

lint: setup hadolint compose-check
	$(VENV)/bin/ruff check base tests bench tools

# Re-pin after changing dependencies: every installed distribution of a working environment becomes the lock
# (importlib.metadata, unlike pip freeze, also lists setuptools and argparse, which the images install).
export LOCK_PY := import importlib.metadata as m; names = {d.metadata['Name']: d.version for d in m.distributions()}; \
	print('\n'.join(sorted((f'{n}=={v}' for n, v in names.items() if n not in ('aimi', 'pip')), key=str.lower)))
lock: setup
	@{ sed -n '1,2p' constraints.txt; $(PY) -c "$$LOCK_PY"; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf demo-output .pytest_cache
