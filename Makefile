# Every target that needs Python creates .venv on first use and installs what it needs, so
# `make test` and `make local` work as the first command on a fresh machine (Python 3.11+).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# The AWS SAM CLI pins its own dependencies (boto3, cfn-lint, pydantic...) which would fight ours,
# so it lives in its own venv. SAM=sam uses an installed SAM CLI instead.
SAM_CLI_VERSION := 1.170.0
SAM_VENV := .tools/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
SAM ?= $(SAM_VENV)/bin/sam
# Install the pinned one only when it is the one in use.
SAM_DEPS := $(if $(filter $(SAM_VENV)/bin/sam,$(SAM)),$(SAM_STAMP))
# Validation is offline: it needs a region (for ARNs) but no credentials and no network.
LINT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY ?= 0
# Extra `sam build` flags, e.g. SAM_BUILD_FLAGS=--use-container (Docker instead of python3.13).
SAM_BUILD_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv sam-cli test test-fast lint format local schema requirements validate-config build clean events simulate timeline cost bench reconcile sam-local

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11 or newer" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the project into $(VENV) (about a minute, first run only)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools warns that a folder named like a package in the working directory would shadow the
	@# editable install: the packages live under layers/common/ and devtools/, nothing at the root.
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Create .venv and install the project with its development tools

$(SAM_STAMP):
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)'
	@rm -f $(SAM_VENV)/.installed-* && touch $@

sam-cli: $(SAM_STAMP) ## Install the pinned AWS SAM CLI into .tools/sam (used by lint and build)

test: $(STAMP) ## Run every test (unit, integration under moto, e2e over loopback); `make test-fast` is quicker
	@echo "running every test (several minutes on two cores; make test-fast skips the slow ones)"
	$(BIN)/pytest

test-fast: $(STAMP) ## Run the tests without the slow ones
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) $(SAM_DEPS) ## Ruff (lint + format check), mypy, cfn-lint and sam validate --lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/common/voice_webhooks devtools/voicedev
	@# Every function is a module named `app`: check them one at a time.
	@for f in functions/*/app.py; do echo "mypy $$f"; $(BIN)/mypy $$f || exit 1; done
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml --region $(LINT_REGION)

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

local: $(STAMP) ## Run the API and an embedded AWS endpoint on 127.0.0.1 (no Docker); ARGS=--verbose: handler logs
	$(BIN)/voice-webhooks-local $(ARGS)

simulate: $(STAMP) ## Play Twilio for whole calls against make local: make simulate SCENARIO=all ARGS="--shuffle"
	$(BIN)/voice-webhooks-simulate $(SCENARIO) $(ARGS)

reconcile: $(STAMP) ## One reconciler run against make local (after make simulate ARGS="--drop 0.3"): docs/reconciliation.md
	$(BIN)/voice-webhooks-reconcile $(ARGS)

timeline: $(STAMP) ## Print what a session stored: make timeline ID=<session id or CallSid>
	@test -n "$(ID)" || { echo "usage: make timeline ID=<session id or CallSid> [ARGS=...]" >&2; exit 2; }
	$(BIN)/voice-webhooks-timeline $(ID) $(ARGS)

cost: $(STAMP) ## Measure a typical call in process and rewrite docs/cost.md's tables (ARGS="--calls 50")
	$(BIN)/python -m voicedev.cost --write $(ARGS)

# Never part of `make test`: it times things, so its figures belong to the machine that ran it.
bench: $(STAMP) ## Time cold starts, warm requests, local load and package size against their floors; rewrites docs/benchmarks.md (BENCH_QUICK=1: smoke run, writes nothing)
	$(BIN)/python -m voicedev.bench --write $(ARGS)

.PHONY: reliability-report
# The suite is part of `make test` (its slow part too); this runs it alone and turns its summary
# (.pytest_cache/reliability-summary.json) into the figures of docs/reliability.md.
# (The test that checks the document's figures block is left out of this run: the block is its output.)
reliability-report: $(STAMP) ## Run the reliability suite, slow part included, and rewrite docs/reliability.md's figures
	$(BIN)/pytest tests/reliability -q \
	  --deselect tests/reliability/test_report.py::test_the_document_carries_figures_in_the_generated_form
	$(BIN)/python -m tests.reliability.report --write docs/reliability.md

schema: $(STAMP) ## Regenerate schema/flow-config.schema.json from the pydantic model
	$(BIN)/python -m voicedev.flow_config_cli --write-schema schema/flow-config.schema.json

events: $(STAMP) ## Regenerate the signed sample events in events/ (sam local invoke -e events/<name>.json)
	$(BIN)/python -m voicedev.sample_events

requirements: $(STAMP) ## Regenerate layers/common/requirements.txt from pyproject.toml
	$(BIN)/python -m voicedev.requirements --write layers/common/requirements.txt

validate-config: $(STAMP) ## Check a flow configuration file: make validate-config FILE=config/flows.json
	$(BIN)/voice-webhooks-validate-config $(or $(FILE),config/flows.example.json)

# ARCH: the Architecture template parameter (arm64, the default, or x86_64); give `sam deploy` the same.
ARCH ?= arm64
# sam build needs python3.13 (the Lambda runtime's version): PATH's, else pyenv's 3.13 when it has one.
PY313_ENV := $(shell python3.13 -c '' >/dev/null 2>&1 || { v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -1); test -n "$$v" && echo "PYENV_VERSION=$${PYENV_VERSION:+$$PYENV_VERSION:}$$v"; })
build: $(SAM_DEPS) ## sam build (ARCH=arm64|x86_64; needs python3.13 on PATH or in pyenv, or SAM_BUILD_FLAGS=--use-container)
	@if [[ " $(SAM_BUILD_FLAGS) " != *" --use-container "* ]] && ! env $(PY313_ENV) python3.13 -c '' >/dev/null 2>&1; then \
	  echo "sam build needs python3.13 (the Lambda runtime's version) on PATH: install it (or pyenv install 3.13)," >&2; \
	  echo "  or, with Docker: make build SAM_BUILD_FLAGS=--use-container    (see docs/deploy.md, docs/sam-local.md)" >&2; \
	  exit 1; \
	fi
	@# --use-container: in the real build image, else the offline stand-in, with the wheels served from this
	@# host (voicedev/sam_local/build_container.py; docs/sam-local.md#sam-build-in-a-container).
	@if [[ " $(SAM_BUILD_FLAGS) " == *" --use-container "* ]]; then \
	  $(MAKE) --no-print-directory $(STAMP) && \
	  echo "SAM=$(SAM) $(BIN)/python -m voicedev.sam_local.build_container --arch $(ARCH) $(SAM_BUILD_FLAGS)" && \
	  SAM=$(SAM) $(BIN)/python -m voicedev.sam_local.build_container --arch $(ARCH) $(SAM_BUILD_FLAGS); \
	else \
	  echo "$(SAM) build --template template.yaml --parameter-overrides Architecture=$(ARCH) $(SAM_BUILD_FLAGS)" && \
	  env $(PY313_ENV) $(SAM) build --template template.yaml --parameter-overrides Architecture=$(ARCH) $(SAM_BUILD_FLAGS); \
	fi
	@# What no function imports (twilio's REST client and its HTTP stack, botocore's models of the
	@# AWS services never called) stays out of the layer: the lists are in the script.
	$(PYTHON) devtools/voicedev/layer_trim.py .aws-sam/build/CommonLayer/python --report .aws-sam/layer-trim.json
	@# Lambda's /opt is read-only: an uncompiled layer is compiled from source at every cold start
	@# (300+ ms here, docs/benchmarks.md). unchecked-hash: the .pyc stay valid in the zip.
	@if env $(PY313_ENV) python3.13 -c '' >/dev/null 2>&1; then \
	  env $(PY313_ENV) python3.13 -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build/CommonLayer/python \
	    && echo "compiled the layer to .pyc (python3.13)"; \
	else echo "python3.13 not on PATH: the layer is not precompiled (slower cold starts)" >&2; fi
	@du -sh .aws-sam/build/*/ | sed 's|.aws-sam/build/||'

# Docker (a private dockerd when none runs), the Lambda image (pulled, or the offline stand-in),
# a moto endpoint on the Docker bridge: docs/sam-local.md. ARGS="--events fallback --skip-api".
sam-local: $(STAMP) $(SAM_DEPS) ## Every sample event through sam local invoke, the emulator through sam local start-api
	SAM=$(SAM) $(BIN)/python -m voicedev.sam_local $(if $(SAM_LOCAL_ARCH),--arch $(SAM_LOCAL_ARCH)) $(ARGS)

clean: ## Remove the virtual environment, caches and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
