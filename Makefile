# Two entry points for a fresh machine: `make demo` and `make test`.
# Both set up the virtual environment first; setup is skipped when nothing changed.
#
# STACK picks a supported stack, pinned in requirements/constraints/$(STACK).txt:
#   current  torch 2.13.0 (CPU) + mmcv 2.1.0 / mmengine 0.10.7 / mmdet 3.3.0 / mmseg 1.2.2 (.venv)
#   classic  torch 2.1.2 + the same OpenMMLab packages, numpy 1.26 (.venv-classic)
#   onedl    torch 2.13.0 + the OneDL fork: onedl-mmcv 2.3.6 and friends (.venv-onedl)
# `make test` runs the full suite on current; `make test-compat STACK=classic` runs the
# compatibility suite (tests marked `compat`) on another stack.
PYTHON ?= python3
STACK ?= current
CONSTRAINTS := requirements/constraints/$(STACK).txt
VENV ?= $(if $(filter current,$(STACK)),.venv,.venv-$(STACK))
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Prebuilt mmcv wheels (cp311, with ops) save the ~40 minute source build; used when present.
WHEELS ?= ../shared/wheels
MMCV_WHEEL_current := $(WHEELS)/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl
MMCV_WHEEL_classic := $(WHEELS)/torch-2.1/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl
MMCV_WHEEL_onedl := $(WHEELS)/onedl_mmcv-2.3.6-cp311-cp311-linux_x86_64.whl
MMCV_WHEEL := $(wildcard $(MMCV_WHEEL_$(STACK)))
FIND_LINKS := $(if $(MMCV_WHEEL),--find-links $(dir $(MMCV_WHEEL)),)
# The development install is editable; the other stacks get `pip install .` with its
# dependencies, as a user would run it (a test then checks that the pins stayed).
INSTALL_SELF_current := MMEFFFORMER_SKIP_MIM=1 $(PIP) install -q --no-build-isolation -e .
INSTALL_SELF := $(or $(INSTALL_SELF_$(STACK)),$(PIP) install -q .)
STAMP := $(VENV)/.mmeffformer-installed
DEPS := $(CONSTRAINTS) $(wildcard requirements/*.txt) setup.py

.PHONY: setup test test-compat lint format demo demo-smoke clean-venv

ifeq ($(wildcard $(CONSTRAINTS)),)
$(error STACK=$(STACK) is not a supported stack; choose one of: $(notdir $(basename $(wildcard requirements/constraints/*.txt))))
endif

setup: $(STAMP)

$(STAMP): $(DEPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(CONSTRAINTS) torch
	# Without a prebuilt wheel mmcv builds from source: it needs the torch above, old
	# setuptools and no build isolation (--no-deps: the stack's pin comes back below).
	$(if $(MMCV_WHEEL),,$(PIP) install -q --no-deps "setuptools<70" wheel ninja)
	$(PIP) install -q $(FIND_LINKS) --no-build-isolation -r $(CONSTRAINTS)
	$(INSTALL_SELF)
	$(PY) -c "import torch, mmcv.ops, mmdet, mmseg, mmeffformer; print('$(STACK):', \
		'torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, \
		'mmseg', mmseg.__version__)"
	touch $@

# The suite runs in TEST_WORKERS processes (pytest-xdist), one test module per worker at a
# time, so the expensive module fixtures (exports, quantizations) are built once; modules
# in collection order, which tests/conftest.py starts with the expensive ones.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	MMEFFFORMER_STACK=$(STACK) $(PYTEST) --durations=20

test-compat: setup
	MMEFFFORMER_STACK=$(STACK) $(PYTEST) -m compat

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
