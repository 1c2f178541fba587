# `make run` starts the control plane locally; `make test` runs the whole suite (CI calls exactly that).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins packaging<24 and an old pycep-parser, which clash with pytest 9: it gets a venv of its own.
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

.PHONY: run test lint typecheck chromium

$(STAMP): pyproject.toml requirements.txt package.json package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30

# The dashboard's browser tests drive the system Chromium (Playwright's own browser download cannot work here).
chromium:
	@command -v chromium >/dev/null || if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing: sudo apt-get install -y chromium (browser tests skip without it)"; fi

run: $(STAMP)
	$(VENV)/bin/computeplane serve

lint: $(STAMP)
	$(VENV)/bin/ruff check shared functions function_app.py computeplane tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy shared functions function_app.py

test: lint typecheck $(CHECKOV) chromium
	CHECKOV=$(abspath $(CHECKOV)) $(PY) -m pytest
