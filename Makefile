# `make run` starts the control plane locally; `make test` runs the whole suite (CI calls exactly that).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck

$(STAMP): pyproject.toml requirements.txt package.json package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/computeplane serve

lint: $(STAMP)
	$(VENV)/bin/ruff check shared functions function_app.py computeplane tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy shared functions function_app.py

test: lint typecheck
	$(PY) -m pytest
