# The two commands a newcomer needs: `make run` (the app) and `make test` (the suite).
# Both install into .venv first; the install is skipped when pyproject.toml has not changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make run HOST=0.0.0.0` serves colleagues on the network; the default is this machine only.
HOST ?= localhost
PORT ?= 8501

.PHONY: install run test clean browser ocr

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT)

test: install browser ocr
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Headless Chromium for tests/test_browser.py, from Debian (Playwright cannot download its own browser
# here). Installed only when missing and apt-get can run; otherwise that test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: chromium could not be installed; the browser test will be skipped"

# Tesseract (with English data) reads scanned PDFs (kb/parsing/ocr.py), from Debian the same way; without it, scans
# are reported as "OCR is not enabled" and the OCR tests are skipped.
ocr:
	@command -v tesseract >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null; } \
	  || echo "note: tesseract could not be installed; scanned PDFs will not be read and the OCR tests skipped"

clean:
	rm -rf $(VENV) .pytest_cache
