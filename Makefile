# AIMI Model Hub. `make demo` and `make test` set everything up on a fresh machine (Python 3.11, root for apt).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aimi-setup

.PHONY: setup test demo bench lint lock clean

setup: $(STAMP)

# One lock (constraints.txt) pins the whole stack; dicom3tools gives the tests dciodvfy.
$(STAMP): constraints.txt base/pyproject.toml
	@command -v dciodvfy >/dev/null || (apt-get update -qq && apt-get install -y -qq dicom3tools)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e 'base[test]'
	bash tests/support/v1_env.sh >/dev/null  # nnunet 1.7.1 reference env for the v1 conversion tests (outside the repo)
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m aimi.demo --out demo-output

# A benchmark, not a test: the incumbent chain (plastimatch, nnU-Net CLI per series, dcmqi) against ours, side by
# side (bench/README.md). BENCH_ARGS=--quick for a 15-minute run.
bench: setup
	$(PY) -m pip install -q -c constraints.txt -e 'base[bench]'
	$(PY) -m bench $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check base tests

# Re-pin after changing dependencies: the frozen versions of a working environment become the lock.
lock: setup
	@{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^aimi'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf demo-output .pytest_cache
