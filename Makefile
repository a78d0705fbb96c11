# phone-check: `make run` sets everything up and serves the app on http://127.0.0.1:8000; `make test` runs the tests.
# Both create .venv and install requirements-dev.txt the first time (and again whenever a requirements file changes).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Tests run on PostgreSQL when one answers here (pytest-django creates and drops test_<name>), else on SQLite.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/phonecheck
PYTEST_ARGS ?=
# Test processes (pytest-xdist); the tests that share the test Redis database stay in one of them. 0: one process.
TEST_PROCESSES ?= 2
XDIST_ARGS := $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist loadgroup)
ADDRESS ?= 127.0.0.1:8000
# In CI a missing PostgreSQL is an error, not a reason to fall back to SQLite.
services_required := $(filter 1 true TRUE True yes,$(CI) $(REQUIRE_SERVICES))

.PHONY: help install run test lint typecheck worker beat screenshots clean

help:
	@echo "make run     set up .venv, migrate the SQLite database, serve http://127.0.0.1:8000 (ADDRESS=host:port)"
	@echo "make test    run the tests (on PostgreSQL when it answers on 127.0.0.1:5432)"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make typecheck  mypy (what it checks: [tool.mypy] in pyproject.toml)"
	@echo "make screenshots  refresh docs/screenshots/ (README, docs/ui.md) with the browser tests"
	@echo "make worker  a celery worker (needs CELERY_BROKER_URL); make beat: the periodic pending sweep"

install: $(INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt
	@test -x $(PY) || { echo "==> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing requirements-dev.txt into $(VENV) (torch is large: the first time takes minutes)"
	$(PY) -m pip install --progress-bar off -r requirements-dev.txt
	@touch $@

run: $(INSTALLED)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py sync_models
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py ensure_first_user
	$(PY) manage.py runserver $(ADDRESS)

test: $(INSTALLED)
	@if [ -n "$(services_required)" ] || $(PY) -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 1)' 2>/dev/null; then \
		echo "==> tests on PostgreSQL: $(TEST_DATABASE_URL) (test database test_$(notdir $(TEST_DATABASE_URL))$(if $(XDIST_ARGS),_gwN: one per test process))"; \
		PHONECHECK_ENV_FILE= DATABASE_URL='$(TEST_DATABASE_URL)' $(VENV)/bin/pytest $(XDIST_ARGS) $(PYTEST_ARGS); \
	else \
		echo "==> PostgreSQL does not answer on 127.0.0.1:5432: tests on SQLite; the worker integration test skips"; \
		PHONECHECK_ENV_FILE= $(VENV)/bin/pytest $(XDIST_ARGS) $(PYTEST_ARGS); \
	fi

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(INSTALLED)
	$(VENV)/bin/mypy

# The only command that rewrites the tracked screenshots; plain test runs write theirs to test-artifacts/.
screenshots: $(INSTALLED)
	PHONECHECK_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest tests/test_browser_pages.py -m browser -p no:cacheprovider

worker: $(INSTALLED)
	$(VENV)/bin/celery -A phoneapp worker -Q classify,heatmaps --pool prefork --concurrency 2 --without-gossip --without-mingle --without-heartbeat --loglevel INFO

beat: $(INSTALLED)
	$(VENV)/bin/celery -A phoneapp beat --loglevel INFO --schedule $(VENV)/celerybeat-schedule

clean:
	rm -rf staticfiles test-artifacts .pytest_cache
