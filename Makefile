# slawatch developer tasks. `make help` lists every target.
SHELL := bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SLAWATCH := $(BIN)/slawatch
INSTALLED := $(VENV)/.installed

.PHONY: help install test test-unit test-integration lint format typecheck check \
	fetch stack-up stack-down stack-status demo bench clean dashboards grafana-schemas top lock

help: ## List the targets
	@echo "Usage: make TARGET"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Create .venv with Python 3.11 and install slawatch (editable, its SLA core compiled by mypyc when a C compiler is there) with the dev tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev
	@$(BIN)/python -c "from flows.core.native import describe; print(describe())"
	@touch $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(MAKE) install

test: $(INSTALLED) ## Run the whole test suite (starts a private Kafka + QuestDB for the session)
	$(BIN)/pytest

test-unit: $(INSTALLED) ## Run the tests that need no services
	$(BIN)/pytest -m "not integration"

test-integration: $(INSTALLED) ## Run only the tests against the real Kafka and QuestDB
	$(BIN)/pytest -m integration

lint: $(INSTALLED) ## Check style: ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## Fix what ruff can fix and reformat
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(INSTALLED) ## Type-check the package with mypy --strict
	$(BIN)/mypy

check: lint typecheck test ## lint, typecheck and test: what a change must pass

fetch: $(INSTALLED) ## Fetch the Kafka and QuestDB jars from Maven Central (done by stack-up when needed)
	$(SLAWATCH) stack fetch

stack-up: $(INSTALLED) ## Start the local Kafka + QuestDB (reuses a running one)
	$(SLAWATCH) stack up

stack-down: $(INSTALLED) ## Stop the local Kafka + QuestDB
	$(SLAWATCH) stack down

stack-status: $(INSTALLED) ## Say whether the local stack runs and where
	$(SLAWATCH) stack status

demo: $(INSTALLED) ## The main job: local Kafka + QuestDB, a week of history, the live monitor and simulator, and the live wallboard (Ctrl-C stops)
	$(SLAWATCH) demo

dashboards: $(INSTALLED) ## Regenerate Grafana's dashboards and alerting files in dashboards/provisioning
	$(SLAWATCH) dashboards

grafana-schemas: ## Regenerate the JSON Schemas from npm @grafana/schema (pinned; needs Node and npm)
	dashboards/schemas/generate.sh

top: $(INSTALLED) ## The live wallboard in this terminal, from the local stack's QuestDB (Ctrl-C stops)
	$(SLAWATCH) top --from-stack

bench: $(INSTALLED) ## Run every benchmark on a private stack, table + RESULT line (~10 min; BENCH_ARGS=--quick ~2 min)
	$(BIN)/python -m bench $(BENCH_ARGS)

lock: $(INSTALLED) ## Regenerate requirements.lock (the image's hash-pinned dependencies) from pyproject.toml with uv
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet -o requirements.lock

clean: ## Remove Python and tool caches (keeps .venv and the jar cache)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
