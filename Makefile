# Two commands matter: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCAN_VENV := .venv-checkov
SCAN_STAMP := $(SCAN_VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHECKOV := checkov==3.3.30
PACKAGE_DIR := build/package
STAGE ?= dev

.PHONY: run reset test unit lint package scan demo bench clean chromium

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	# chalice 1.34 packages with pip and requires pip<26.3
	$(BIN)/pip install --quiet --upgrade "pip<26.3"
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## the whole service on 127.0.0.1 (moto, API, queue dispatcher, scheduler); RESET=1 starts empty
	RESET=$(RESET) $(BIN)/python -m infra.local.runtime

reset:  ## forget the state `make run` keeps between runs
	rm -rf .local-state

lint: $(STAMP)  ## ruff, and mypy (strict on domain/ and services/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)  ## tests/unit with moto blocked from import (tests/support/without_moto): the core needs no AWS
	PYTHONPATH=tests/support/without_moto $(BIN)/python -m pytest -n auto --dist worksteal tests/unit

chromium: $(CHROMIUM)  ## Debian's Chromium, which the console's browser tests drive (Playwright's own browser download is not reachable)

$(CHROMIUM):
	@echo "Installing Debian's chromium for the console's browser tests (tests/e2e/test_console.py)"
	$(SUDO) apt-get install -y -q chromium >/dev/null || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null)

test: $(STAMP) $(CHROMIUM) lint unit  ## lint, the unit tests without moto, the console's scripts (node --test), then integration (moto) and end-to-end (the console in Chromium too), on every core
	@command -v node >/dev/null || { echo "node (Node.js 18+) runs the console's script tests: apt-get install nodejs"; exit 1; }
	node --test tests/console/
	$(BIN)/python -m pytest -n auto --dist loadfile tests/integration tests/e2e

package: $(STAMP)  ## SAM template for deployment, checked with cfn-lint
	rm -rf $(PACKAGE_DIR)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/chalice package --stage $(STAGE) --merge-template infra/template.json $(PACKAGE_DIR)
	$(BIN)/cfn-lint $(PACKAGE_DIR)/sam.json

$(SCAN_STAMP):  ## checkov in its own environment: its dependencies pin versions our stack does not use
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet "$(CHECKOV)"
	touch $(SCAN_STAMP)

scan: $(SCAN_STAMP)  ## checkov over the packaged template (make package first); every skip carries its reason there
	$(SCAN_VENV)/bin/checkov --file $(PACKAGE_DIR)/sam.json --framework cloudformation --compact --quiet --skip-download

clean:
	rm -rf $(VENV) $(SCAN_VENV) build .pytest_cache .ruff_cache .hypothesis .local-state

demo: $(STAMP)  ## load a generated tenant (10,000 contacts, a year of purchases) into a running `make run`
	$(BIN)/python -m bench.demo

bench: $(STAMP)  ## performance figures as tables (BENCH_CONTACTS, BENCH_INDEX_CONTACTS, BENCH_MEMBERSHIP_CONTACTS, BENCH_CAMPAIGN_RECIPIENTS, BENCH_TRIGGER_CONTACTS, BENCH_SNAPSHOT_CONTACTS, BENCH_SNAPSHOT_MILLION, BENCH_WRITE_ROWS, BENCH_JOURNEY_CONTACTS set the sizes)
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.membership
	$(BIN)/python -m bench.campaign
	$(BIN)/python -m bench.triggers
	$(BIN)/python -m bench.snapshots
	$(BIN)/python -m bench.writes
	$(BIN)/python -m bench.journeys
