# recdash: `make run` starts the dashboard, `make test` runs the test suite. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m streamlit run app.py

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: install  # between edits: everything but the browser (tests/e2e) and PostgreSQL (tests/team) tests
	$(PY) -m pytest -n 2 --dist loadfile -m "not e2e and not postgres"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
