# espwire: `make dev` runs the whole pipeline on this machine, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: dev test lint typecheck unit bench bench-quick schema clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/espwire dev $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

schema: $(STAMP)
	$(VENV)/bin/espwire schema > espwire/schemas/event.schema.json

bench: $(STAMP)
	$(PY) -m benchmarks.run --mode full

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run --mode quick

clean:
	rm -rf $(VENV) espwire-data .mypy_cache .ruff_cache .pytest_cache
