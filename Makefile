# `make run` and `make test` each create .venv and install the project first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
GOAL ?= Build a task management API with user authentication

.PHONY: install bytecode run test lint format migration bench clean

# The checks extra too: `make run` serves every queue, the checks worker's included.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,checks]'
	touch $(STAMP)

install: $(STAMP)

# The project's own modules as bytecode, brought up to date (0.2 s when nothing changed).
# Where PYTHONDONTWRITEBYTECODE is set (this machine, CI, containers) nothing else writes it,
# and every process would compile them from source at start: a worker serves 0.3 s later,
# and its workflow sandbox compiles them again for every run it starts or replays.
SOURCES := activities agents api bench checks cli core offline tests workers workflows
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 $(SOURCES) > /dev/null

run: bytecode
	$(BIN)/orchestrator run "$(GOAL)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint bytecode
	$(BIN)/pytest

# Lint fixes first: a fix can leave code the formatter then tidies.
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The next revision id is one past the newest file in versions/; REV=NNNN overrides it.
MIGRATIONS := core/persistence/migrations/versions
NEXT_REV = $(shell ls $(MIGRATIONS) | sed -n 's/^\([0-9][0-9]*\)_.*\.py$$/\1/p' | sort -n | tail -n 1 | awk '{printf "%04d", $$1 + 1}')

migration: $(STAMP)
	@test -n "$(MESSAGE)" || { echo 'usage: make migration MESSAGE="what changed" [REV=NNNN]' >&2; exit 2; }
	$(BIN)/python -m core.persistence.migrations.new_revision "$(or $(REV),$(NEXT_REV))" "$(MESSAGE)"

bench: bytecode
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.makespan
	$(BIN)/python -m bench.throughput --runs 20
	$(BIN)/python -m bench.recovery --server-restart --heartbeat-timeout 2
	$(BIN)/python -m bench.compare

clean:
	rm -rf $(VENV) .orchestrator deliverables .pytest_cache .mypy_cache .ruff_cache
