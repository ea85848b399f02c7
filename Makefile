# Two set-up commands for a new machine: `make demo` and `make test`. Each builds its own
# environment: a pinned uv in .tools/, then .venv/ from uv.lock (no network beyond the registry).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compile every installed module once at set-up: where PYTHONDONTWRITEBYTECODE is set, each
# process would otherwise compile its imports from source again (decision 0009).
export UV_COMPILE_BYTECODE := 1
# Prefect keeps its database (flow runs, logs, artifacts) in the project and gives the
# temporary API server time to migrate a fresh database on a slow machine. Telemetry is off
# from the package itself, whatever starts it (src/manifest_exchange/__init__.py).
export PREFECT_HOME ?= $(CURDIR)/.local/prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: setup demo test lint format audit-deps bench bench-parse bench-store bench-latency stack-up stack-down ui ui-down clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml Makefile | $(UV)
	$(UV) sync --frozen --python $(PYTHON) --quiet
	touch $@

# Prefect creates only the last folder of its home, and the benches import Prefect before
# anything else has made .local.
setup: $(VENV)/.synced
	@mkdir -p "$(PREFECT_HOME)"

demo: setup
	$(BIN)/manifest-exchange demo

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests flows bench
	$(BIN)/ruff format --check src tests flows bench
	$(BIN)/mypy
	$(BIN)/sqlfluff lint sql

format: setup
	$(BIN)/ruff format src tests flows bench
	$(BIN)/ruff check --fix src tests flows bench

# Known vulnerabilities in every locked dependency, from PyPI's advisory data (or
# AUDIT_SERVICE=osv). Needs that service: the CI network reaches the package index only, so CI
# cannot run it (docs/operations.md, "Dependency audit"). --strict fails if any package went unchecked.
AUDIT_SERVICE ?= pypi
audit-deps: setup
	mkdir -p .local
	$(UV) export --frozen --format requirements-txt --no-emit-project --quiet \
		--output-file .local/requirements-audit.txt
	$(BIN)/pip-audit --strict --disable-pip --progress-spinner off \
		--vulnerability-service $(AUDIT_SERVICE) --requirement .local/requirements-audit.txt

# The full exchange on 100k and 1M travellers beside its floor and pydifact (about 15 minutes);
# BENCH_TRAVELLERS="100000" for one size.
# After each bench, the figures table of docs/benchmarks.md is rewritten from bench/results/.
BENCH_TRAVELLERS ?= 100000 1000000
SUMMARISE_BENCH := $(BIN)/python bench/summarise_results.py
bench: setup
	$(BIN)/python bench/bench_exchange.py --travellers $(BENCH_TRAVELLERS)
	$(SUMMARISE_BENCH)

bench-parse: setup
	$(BIN)/python bench/bench_parse.py
	$(SUMMARISE_BENCH)

# Small S3 requests per second from the pipeline's client (what bounds the ledger).
bench-store: setup
	$(BIN)/python bench/bench_store_requests.py

# Landing-to-partner latency with the every-minute deployment running (about 6 minutes).
bench-latency: setup
	$(BIN)/python bench/bench_latency.py
	$(SUMMARISE_BENCH)

# A third command, for operating the exchange in the Prefect UI (not part of set-up): the store,
# a Prefect server on 127.0.0.1:4200, a process worker and the deployments of prefect.yaml.
ui: setup
	$(BIN)/manifest-exchange ui up

ui-down: setup
	$(BIN)/manifest-exchange ui down

stack-up: setup
	$(BIN)/manifest-exchange stack up

stack-down: setup
	$(BIN)/manifest-exchange stack down

clean: ui-down
	rm -rf .local $(VENV) $(TOOLS)
