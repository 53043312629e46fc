# The front door. `make demo` and `make test` set everything up from nothing but Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit integration e2e lint format bench schemas broker mutation clean chromium wrk console screenshots

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("orderlog needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# (setuptools notes every editable install of a flat layout with a warning block; it is not about this project)
$(STAMP): pyproject.toml | $(BIN)/python
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)            ## simulate ~2,000 orders into ./orderlog.db and summarise the store
	$(BIN)/orderlog demo

test: $(STAMP) chromium   ## the whole suite: unit, integration (SQLite, PostgreSQL), end to end, the console in Chromium
	$(BIN)/python -m pytest

# The console's browser tests drive Debian's Chromium (Playwright cannot download its own browsers
# everywhere). Installed when this machine lets us (root, or sudo without a password); otherwise
# those tests skip, saying so in one line.
# A Debian package installed when missing (as root, or with sudo that asks no password); $(1) the
# command, $(2) what it is for. Without it, what needs it skips and says so.
define debian_package
	@command -v $(1) >/dev/null 2>&1 || { \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	  echo "make: installing $(1) (Debian package) for $(2)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -qq --no-install-recommends $(1) >/dev/null 2>&1 \
	  || { $$sudo apt-get update -qq >/dev/null 2>&1 \
	       && $$sudo apt-get install -y -qq --no-install-recommends $(1) >/dev/null 2>&1; } \
	  || echo "make: could not install $(1) here: $(2) will skip"; }
endef

chromium:
	$(call debian_package,chromium,the console's browser tests)

wrk:
	$(call debian_package,wrk,the console's benchmark)

console: $(STAMP)         ## the operations console on http://127.0.0.1:8000 (add a user first: see README)
	$(BIN)/orderlog console

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

lint: $(STAMP)            ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

screenshots: $(STAMP) chromium  ## the README's console pictures (docs/screenshots), retaken by the browser tests
	ORDERLOG_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/browser

bench: $(STAMP) wrk       ## the figures in the README, measured on this machine
	$(BIN)/python -m bench

broker: $(STAMP)          ## a Kafka-protocol broker (Tansu, in memory) on 127.0.0.1:9092, to try the Kafka commands
	$(BIN)/python -m tests.kafka_broker

schemas: $(STAMP)         ## write a new Avro schema version where a declaration changed
	$(BIN)/orderlog schemas write

# Not in CI: minutes to hours. One worker at the lowest priority, so a shared machine keeps its CPU.
MUTMUT  := $(VENV)/.mutmut-3.8.1
MUTANTS ?=
$(MUTMUT): | $(STAMP)
	$(BIN)/python -m pip install --quiet 'mutmut==3.8.1'
	@touch $(MUTMUT)

mutation: $(STAMP) $(MUTMUT)  ## mutation testing (mutmut) of domain, audit, sources, privacy; MUTANTS='orderlog.domain.*' narrows it
	nice -n 19 $(BIN)/mutmut run --max-children 1 $(foreach pattern,$(MUTANTS),'$(pattern)')
	$(BIN)/mutmut export-cicd-stats
	@$(BIN)/python -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); print(s)'

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache *.egg-info mutants
