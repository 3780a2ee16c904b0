# OCSF Embedding Studio: `make run` starts the app on the demo data, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.deps-stamp
DEMO := data/demo/ocsf_demo.parquet
HOST ?= localhost
PORT ?= 8501
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-fast bench setup demo-data clean browser

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

demo-data: $(DEMO)

$(DEMO): | $(STAMP)
	$(PY) -m engine generate --out $(DEMO)

run: $(STAMP) $(DEMO)
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

browser:
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || true)
	@test -x $(CHROMIUM) || (echo "the browser test needs Debian's chromium at $(CHROMIUM): apt-get install chromium" && exit 1)

test: $(STAMP) browser
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/augment.py
	$(PY) bench/train_throughput.py
	$(PY) bench/explore.py

clean:
	rm -rf $(VENV) data/demo .pytest_cache
