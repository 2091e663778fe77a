# Two commands do everything: `make run` (set up, then the main job) and `make test`.
# The environment lives in .venv and is reinstalled only when a pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fwi-installed
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
TORCH_VERSION ?= 2.13.0

.PHONY: run test test-all lint bench mutations mutations-ci setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@# The CPU build of torch first: an unpinned requirement would pull a multi-GB CUDA build.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[test,zarr]" $(foreach d,$(PLUGIN_DIRS),-e $(d))
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/fwi run --backbone vit --peft lora --physics deepwave

# The lint extras too: the docs' snippet tests run the ruff beside this Python (and skip without it).
test: $(STAMP)
	@test -x $(VENV)/bin/ruff || $(PY) -m pip install -q -e ".[lint]"
	$(PY) -m pytest -q

# ruff over the code, then mypy over the modules pyproject.toml lists ([tool.mypy] files).
lint: $(STAMP)
	@$(PY) -c "import ruff, mypy" 2>/dev/null || $(PY) -m pip install -q -e ".[lint]"
	$(VENV)/bin/ruff check src plugins tests benchmarks examples
	$(VENV)/bin/mypy

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" 

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Plants named bugs one at a time in a scratch copy and reports which the tests catch (about 8 min
# on 2 cores); rerun after every refactor. mutations-ci: the quick handful .ci/run runs (about 1 min).
mutations: $(STAMP)
	$(PY) benchmarks/mutations.py --json benchmarks/results/mutations.json

mutations-ci: $(STAMP)
	$(PY) benchmarks/mutations.py --subset ci

clean:
	rm -rf $(VENV) runs .pytest_cache
