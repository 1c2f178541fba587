# `make run` starts the control plane locally; `make test` runs the whole suite (CI calls exactly that).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins packaging<24 and an old pycep-parser, which clash with pytest 9: it gets a venv of its own.
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# The real Azure clients the ARM-shaped API is tested with (tests/arm): their pins clash with ours and each other's.
AZUREML_CORE_VENV ?= .venv-azureml-v1
AZURE_AI_ML_VENV ?= .venv-azure-ai-ml
AZURE_CLI_VENV ?= .venv-azure-cli
ARM_CLIENTS := $(AZUREML_CORE_VENV)/.installed $(AZURE_AI_ML_VENV)/.installed $(AZURE_CLI_VENV)/.installed
# Azurite (the Azure Storage emulator) for the Blob snapshot store's contract test, beside the npm peers of
# package.json so their lock file stays as it is.
AZURITE_DIR ?= .azurite
AZURITE := $(AZURITE_DIR)/node_modules/.bin/azurite-blob
# `make run PORT=7072 DATA_DIR=/tmp/cp`: another port or data directory (COMPUTEPLANE_DATA_DIR is honoured too).
PORT ?= 7071
DATA_DIR ?= $(or $(COMPUTEPLANE_DATA_DIR),.computeplane)

.PHONY: run test lint typecheck chromium

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

$(AZUREML_CORE_VENV)/.installed:
	test -x $(AZUREML_CORE_VENV)/bin/python || python3 -m venv $(AZUREML_CORE_VENV)
	$(AZUREML_CORE_VENV)/bin/python -m pip install --quiet azureml-core==1.61.0
	touch $@

$(AZURE_AI_ML_VENV)/.installed:
	test -x $(AZURE_AI_ML_VENV)/bin/python || python3 -m venv $(AZURE_AI_ML_VENV)
	$(AZURE_AI_ML_VENV)/bin/python -m pip install --quiet azure-ai-ml==1.35.0 azure-identity==1.27.0
	touch $@

$(AZURE_CLI_VENV)/.installed:
	test -x $(AZURE_CLI_VENV)/bin/python || python3 -m venv $(AZURE_CLI_VENV)
	$(AZURE_CLI_VENV)/bin/python -m pip install --quiet azure-cli==2.91.0
	touch $@

# The dashboard's browser tests drive the system Chromium (Playwright's own browser download cannot work here).
chromium:
	@command -v chromium >/dev/null || if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing: sudo apt-get install -y chromium (browser tests skip without it)"; fi

run: $(STAMP)
	$(VENV)/bin/computeplane serve --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(VENV)/bin/ruff check shared functions function_app.py computeplane tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy shared functions function_app.py

test: lint typecheck $(CHECKOV) $(ARM_CLIENTS) $(AZURITE) chromium
	CHECKOV=$(abspath $(CHECKOV)) AZUREML_CORE_PYTHON=$(abspath $(AZUREML_CORE_VENV))/bin/python \
	AZURE_AI_ML_PYTHON=$(abspath $(AZURE_AI_ML_VENV))/bin/python AZURE_CLI_AZ=$(abspath $(AZURE_CLI_VENV))/bin/az \
	AZURITE_BLOB=$(abspath $(AZURITE)) $(PY) -m pytest
