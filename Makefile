# Two commands for a newcomer: `make run` and `make test`. Both set up .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CONFIG ?= config/demo.yml
SET ?=

.PHONY: run test lint setup demo benchmarks notebook-outputs clean-outputs

setup: $(INSTALLED)

$(INSTALLED): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(INSTALLED)

run: $(INSTALLED)
	$(PY) -m helpers run --config $(CONFIG) $(foreach s,$(SET),--set $(s))

test: $(INSTALLED)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -n 2 --dist loadgroup

demo: $(INSTALLED)
	$(PY) -m helpers demo --config $(CONFIG)

benchmarks: $(INSTALLED)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

# Refresh the reference outputs of the `nbval-check-output` cells from the small test world.
notebook-outputs: $(INSTALLED)
	$(PY) -m helpers refresh-notebook-outputs

clean-outputs:
	rm -rf outputs/runs outputs/latest
