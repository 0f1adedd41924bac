# The two commands a newcomer needs: `make run` (the app) and `make test` (the suite).
# Both install into .venv first; the install is skipped when pyproject.toml has not changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/kb --help

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
