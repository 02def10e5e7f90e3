# Every target that needs Python creates .venv on first use and installs what it needs, so
# `make test` and `make local` work as the first command on a fresh machine (Python 3.11+).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast lint format local schema requirements validate-config build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11 or newer" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Create .venv and install the project with its development tools

test: $(STAMP) ## Run every test (unit, integration under moto, e2e over loopback)
	$(BIN)/pytest

test-fast: $(STAMP) ## Run the tests without the slow ones
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) ## Ruff (lint + format check), mypy, cfn-lint and sam validate --lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/common/voice_webhooks devtools/voicedev
	@# Every function is a module named `app`: check them one at a time.
	@for f in functions/*/app.py; do echo "mypy $$f"; $(BIN)/mypy $$f || exit 1; done
	$(BIN)/cfn-lint template.yaml

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

local: $(STAMP) ## Run the API and an embedded AWS endpoint on 127.0.0.1 (no Docker)
	$(BIN)/voice-webhooks-local

schema: $(STAMP) ## Regenerate schema/flow-config.schema.json from the pydantic model
	$(BIN)/python -m voice_webhooks.flow_config_cli --write-schema schema/flow-config.schema.json

requirements: $(STAMP) ## Regenerate layers/common/requirements.txt from pyproject.toml
	$(BIN)/python -m voicedev.requirements --write layers/common/requirements.txt

validate-config: $(STAMP) ## Check a flow configuration file: make validate-config FILE=config/flows.json
	$(BIN)/voice-webhooks-validate-config $(or $(FILE),config/flows.example.json)

clean: ## Remove the virtual environment, caches and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
