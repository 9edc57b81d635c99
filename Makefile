# Two entry points for a fresh machine: `make demo` and `make test`.
# Both set up the virtual environment first; setup is skipped when nothing changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A prebuilt mmcv wheel saves the ~40 minute source build; used when present.
WHEELS ?= ../shared/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)/mmcv-*.whl),--find-links $(WHEELS),)
STAMP := $(VENV)/.mmeffformer-installed
REQS := requirements/torch.txt requirements/mminstall.txt requirements/runtime.txt \
        requirements/tests.txt requirements/export.txt requirements/deploy.txt setup.py

.PHONY: setup test lint format demo demo-smoke clean-venv

setup: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/torch.txt
	# mmcv's source build needs the torch above, old setuptools and no isolation.
	$(PIP) install -q "setuptools<70" wheel ninja
	$(PIP) install -q $(FIND_LINKS) --no-build-isolation -c requirements/runtime.txt \
		-r requirements/mminstall.txt
	# runtime.txt then pins the setuptools that torch and mmengine need (see there).
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt \
		-r requirements/export.txt -r requirements/deploy.txt
	MMEFFFORMER_SKIP_MIM=1 $(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import torch, mmcv.ops, mmdet, mmseg, mmeffformer; \
		assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

test: setup
	$(PY) -m pytest tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: setup
	$(PY) tools/demo.py --out demo_out

demo-smoke: setup
	$(PY) tools/demo.py --out demo_out/smoke --smoke

clean-venv:
	rm -rf $(VENV)
