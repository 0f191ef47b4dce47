# The two commands that matter: `make run` and `make test`. Both build their own virtualenv.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist), each with embedded engines of its own: the suite mostly waits
# for services and engines, so two on two cores take about 9 minutes instead of 15.
PYTEST_WORKERS ?= 2
# The service catalog `make run` applies; ITSM_CATALOG in the environment overrides it.
ITSM_CATALOG ?= deploy/catalog.example.yaml

.PHONY: run test lint format clean prometheus chromium bench

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: the whole stack on embedded PostgreSQL and Kafka-protocol broker, fed by simulated events
run: $(STAMP)
	$(BIN)/itsm-metrics up --simulate --catalog $(ITSM_CATALOG)

## test: the whole suite against real engines
test: $(STAMP) prometheus chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

## prometheus: promtool and a Prometheus server for the rules tests (Debian package; best effort)
prometheus:
	@bash scripts/ensure-prometheus.sh

## chromium: headless Chromium for the printable pages' rendering tests (Debian package; best effort)
chromium:
	@bash scripts/ensure-chromium.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP)
	$(BIN)/python -m benchmarks
