# The README's commands. .ci/run calls `make test` and nothing else.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint bench chaos

install:
	@bash scripts/install.sh

demo: install
	$(VENV)/bin/tianwang demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

bench: install
	@set -e; for b in benchmarks/bench_*.py; do $(PY) $$b; done

# Fault scenarios on real Mosquitto, InfluxDB and ingest; one JSON line each (docs/operations.md).
chaos: install
	$(PY) -m firmware_sim.chaos
