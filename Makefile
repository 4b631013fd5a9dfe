# `make run` and `make test` each create .venv and install the project first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
GOAL ?= Build a task management API with user authentication

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/orchestrator run "$(GOAL)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.makespan
	$(BIN)/python -m bench.throughput --runs 20
	$(BIN)/python -m bench.recovery --server-restart

clean:
	rm -rf $(VENV) .orchestrator deliverables .pytest_cache .mypy_cache .ruff_cache
