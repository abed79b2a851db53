# recdash: `make run` starts the dashboard, `make test` runs the test suite. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make test` also needs two system packages (.ci/run installs them in CI): Chromium for the browser tests and
# PostgreSQL's server for the team tests. Found where the tests look for them; set empty to see what happens without.
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser)
PG_INITDB ?= $(if $(RECDASH_PG_BIN),$(wildcard $(RECDASH_PG_BIN)/initdb),$(or $(shell command -v initdb),$(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/initdb)))))
MISSING = $(strip $(if $(CHROMIUM),,chromium) $(if $(PG_INITDB),,postgresql))
APT = $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y $(MISSING)

.PHONY: install run test suite prerequisites test-fast lint bench clean

# The editable install is in "compat" mode: a plain path entry for this folder. setuptools' default (a finder
# behind Python's own path search) loses to the folder named recdash that holds this clone whenever Python runs
# from the folder above it (`python -m recdash` there: "cannot import name '__version__'").
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m streamlit run app.py

test: install prerequisites
	$(PY) -m ruff check .
	@$(MAKE) --no-print-directory suite

suite:  # the test suite alone (no set-up); its last line names the tests skipped for a missing system package
	@$(PY) -m pytest -n 2 --dist loadfile -rs $(PYTEST_ARGS); status=$$?; \
	if [ -n "$(MISSING)" ]; then \
	  echo "make test: SKIPPED the tests that need $(MISSING) (not installed; install with: $(APT))"; \
	fi; exit $$status

prerequisites:  # stop before the suite would skip the browser or team tests; SKIP_MISSING=1 runs the rest anyway
	@if [ -n "$(MISSING)" ] && [ -z "$(SKIP_MISSING)" ]; then \
	  echo "make test needs system packages that are not installed here: $(MISSING). Install them with:"; \
	  echo "    $(APT)"; \
	  echo "then run make test again (or make test SKIP_MISSING=1 to skip those tests, or make test-fast)."; \
	  exit 2; \
	fi

test-fast: install  # between edits: everything but the browser (tests/e2e) and PostgreSQL (tests/team) tests
	$(PY) -m pytest -n 2 --dist loadfile -m "not e2e and not postgres"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
