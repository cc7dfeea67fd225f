# placelink: two commands on a fresh machine with Python 3.11, pip and make.
#   make demo   set up, generate the small synthetic county, run the whole pipeline, print where to look
#   make test   set up and run lint + the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
# uv must use this machine's Python: its managed-Python download cannot reach the web here.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell $$(command -v python3.11 || echo $(PYTHON)) -c "import sys; print(sys.executable)")
UV := $(shell command -v uv 2>/dev/null || echo $(PYTHON) -m uv)
RUN := $(UV) run --frozen --no-sync

.PHONY: test-long setup demo test lint bench ui mlflow-ui dbt-docs clean

setup: .venv/.placelink-synced

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (these machines), every process would otherwise
# compile dagster, dbt, GX and pandas from source on import (importing the code location 14 s -> 6.6 s)
.venv/.placelink-synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
		{ echo "installing uv with pip"; $(PYTHON) -m pip install --quiet --disable-pip-version-check uv; }
	$(UV) sync --frozen --compile-bytecode --extra spark
	@touch $@

demo: setup
	$(RUN) placelink demo

lint: setup
	$(RUN) ruff check .
	@if ls dbt_project/models >/dev/null 2>&1; then $(RUN) sqlfluff lint dbt_project/models dbt_project/macros --processes 2; fi

# two pytest-xdist workers (tests/conftest.py explains the grouping); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2
# The tests' temporary homes live in RAM (tmpfs /dev/shm) where there is one: every Dagster event is a SQLite
# commit, and each commit's fsync cost 32 ms on this machine's disk against 1 ms in tmpfs (a tiny full refresh
# makes ~4,000 of them). One folder per checkout, so two checkouts' runs never share it; removed after a
# passing run, kept after a failing one for a look. TEST_TMP= (empty) uses pytest's default under /tmp.
TEST_TMP ?= $(if $(wildcard /dev/shm/.),/dev/shm/placelink-tests$(subst /,-,$(CURDIR)),)
test: lint
	$(RUN) pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) \
		-m "not long" $(if $(TEST_TMP),--basetemp=$(TEST_TMP)) $(PYTEST_ARGS)
	$(if $(TEST_TMP),rm -rf $(TEST_TMP))

# The tests marked `long`, each a whole run that takes minutes on 2 cores on its own (the Spark equivalence test,
# docs/scaling.md; the encoded county through the demo, README "Linking without sharing identifiers"): more than
# make test's 15-minute budget holds, so they are their own target; CI (.ci/run) runs it after make test.
test-long: setup
	$(RUN) pytest -n $(if $(filter 0,$(TEST_WORKERS)),0,2) -m long $(if $(TEST_TMP),--basetemp=$(TEST_TMP)-long) $(PYTEST_ARGS)
	$(if $(TEST_TMP),rm -rf $(TEST_TMP)-long)

bench: setup
	$(RUN) python benchmarks/run.py --scale $${SCALE:-small} $${BENCH_ARGS:-}
	# person-linkage quality on labelled sets we did not generate (FEBRL 2/4 need benchmarks/.venv-peers, which run.py
	# builds); LINKAGE_QUALITY_ARGS narrows it (CI's smoke run: one FEBRL and one UK-style set)
	$(RUN) python benchmarks/linkage_quality.py $${LINKAGE_QUALITY_ARGS:-}

ui: setup
	$(RUN) placelink ui

mlflow-ui: setup
	$(RUN) placelink mlflow-ui

dbt-docs: setup
	$(RUN) placelink dbt-docs

clean:
	rm -rf .placelink dbt_project/target dbt_project/logs .pytest_cache
