# The README's two commands: `make run` and `make test` (and `make lint`, which CI runs too).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export DJANGO_DEBUG ?= 0
export DSR_SITE_URL ?= http://127.0.0.1:$(PORT)
# Each command picks its settings (config/settings/): run mode for `make run` and the processes it
# starts, the test settings for `make test` (whatever the shell exports).
run var: export DJANGO_SETTINGS_MODULE = config.settings.run
test test-fast: export DJANGO_SETTINGS_MODULE = config.settings.test
LINT_PATHS := dsr config manage.py

.PHONY: run var test test-fast lint bench bench-fulfilment install install-dev messages clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Translations are compiled at install, with pure Python (no gettext tools needed). Compiling reads
# no key and no database, so it runs on the test settings, before var/ exists.
messages: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py dsr_compile_messages

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Prepare var/ for run mode: the secret and audit keys (kept once written), broker and mail folders.
var: $(VENV)/.installed
	$(PY) -m config.var_init

## Run the product: SQLite under var/, demo data, web + Celery worker + beat (Ctrl-C stops all).
run: install messages var
	$(PY) manage.py dsr_demo_shop
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py dsr_demo_load
	@echo "Serving http://127.0.0.1:$(PORT)/  (dashboard: http://127.0.0.1:$(PORT)/dashboard/, API docs: /api/docs/, mail: var/mail/)"
	$(VENV)/bin/honcho -f Procfile.run start -p $(PORT)

## Run the test suite (SQLite unless DATABASE_URL/REDIS_URL point at real services; CI sets them).
test: install-dev messages
	$(PY) -m pytest

## The same without the browser tests (marker `browser`), for a quicker run; CI runs them all.
test-fast: install-dev messages
	$(PY) -m pytest -m "not browser"

## Lint, format check, types and missing migrations over dsr/ and config/ (pyproject.toml); every
## check runs, and any finding fails the target.
lint: install-dev
	@status=0; \
	echo "ruff check"; $(PY) -m ruff check --output-format concise $(LINT_PATHS) || status=1; \
	echo "ruff format --check"; $(PY) -m ruff format --check --output-format concise $(LINT_PATHS) || status=1; \
	echo "mypy"; $(PY) -m mypy $(LINT_PATHS) || status=1; \
	echo "makemigrations --check"; \
	DJANGO_SETTINGS_MODULE=config.settings.test DATABASE_URL=sqlite://:memory: \
		$(PY) manage.py makemigrations --check --dry-run || status=1; \
	exit $$status

## Benchmarks: results printed and written to bench/RESULTS.md.
bench: install-dev
	$(PY) bench/run.py
	@case "$$DATABASE_URL" in postgres*) [ -n "$$REDIS_URL" ] && $(MAKE) --no-print-directory bench-fulfilment || \
	  echo "bench-fulfilment skipped: it needs DATABASE_URL (PostgreSQL) and REDIS_URL";; \
	  *) echo "bench-fulfilment skipped: it needs DATABASE_URL (PostgreSQL) and REDIS_URL";; esac

## Fulfilment (issue 10): the SQL connector, one request end to end with a real worker, a batch of
## 100, a person with 100,000 rows; on PostgreSQL loaded with ../shared/bench/customers.sql + Redis.
bench-fulfilment: install-dev
	$(PY) bench/fulfilment.py

clean:
	rm -rf var/celery var/static
