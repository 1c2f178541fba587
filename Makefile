# `make run` starts the control plane locally; `make test` runs the whole suite (CI calls exactly that).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins packaging<24 and an old pycep-parser, which clash with pytest 9: it gets a venv of its own.
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# Azurite (the Azure Storage emulator) for the Blob snapshot store's contract test, beside the npm peers of
# package.json so their lock file stays as it is.
AZURITE_DIR ?= .azurite
AZURITE := $(AZURITE_DIR)/node_modules/.bin/azurite-blob
# `make run PORT=7072 DATA_DIR=/tmp/cp`: another port or data directory (COMPUTEPLANE_DATA_DIR is honoured too).
PORT ?= 7071
DATA_DIR ?= $(or $(COMPUTEPLANE_DATA_DIR),.computeplane)

.PHONY: run test lint typecheck

$(STAMP): pyproject.toml requirements.txt package.json package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

$(AZURITE):
	npm install --prefix $(AZURITE_DIR) --no-save --no-audit --no-fund --loglevel=error azurite@3.37.0

$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30

run: $(STAMP)
	$(VENV)/bin/computeplane serve --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(VENV)/bin/ruff check shared functions function_app.py computeplane tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy shared functions function_app.py

test: lint typecheck $(CHECKOV) $(AZURITE)
	CHECKOV=$(abspath $(CHECKOV)) AZURITE_BLOB=$(abspath $(AZURITE)) $(PY) -m pytest
