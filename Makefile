# Campus: `make run` sets everything up and serves http://127.0.0.1:5000; `make test` runs every test.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make
export FLASK_APP := wsgi
export CAMPUS_CONFIG ?= development

VENDOR := app/static/vendor
VENDOR_FILES := $(VENDOR)/htmx.min.js $(VENDOR)/ext/ws.js $(VENDOR)/pico.min.css

.PHONY: run test lint format bench bench-search vendor clean

run: $(STAMPS)/python $(VENDOR_FILES)
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	$(BIN)/flask sweep-uploads
	@echo "Campus is starting on http://127.0.0.1:5000 (Ctrl-C stops it)"
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: $(STAMPS)/python-dev $(VENDOR_FILES)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMPS)/python-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMPS)/python-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMPS)/python-dev $(VENDOR_FILES)
	$(BIN)/python bench/bench_pages.py

bench-search: $(STAMPS)/python-dev
	$(BIN)/python bench/bench_search.py

vendor: $(VENDOR_FILES)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMPS)/python: requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements.txt
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/python-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@mkdir -p $(STAMPS) && touch $@ $(STAMPS)/python

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(VENDOR)/htmx.min.js: node_modules/.package-lock.json
	@mkdir -p $(VENDOR)/ext
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js

$(VENDOR)/ext/ws.js: node_modules/.package-lock.json
	@mkdir -p $(VENDOR)/ext
	cp node_modules/htmx-ext-ws/dist/ws.min.js $(VENDOR)/ext/ws.js

$(VENDOR)/pico.min.css: node_modules/.package-lock.json
	@mkdir -p $(VENDOR)
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/pico.min.css

clean:
	rm -rf $(VENV) $(STAMPS) node_modules $(VENDOR)
