# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export DJANGO_DEBUG ?= 0
export DSR_SITE_URL ?= http://127.0.0.1:$(PORT)
# The demo signs in without an authenticator app; production keeps two-factor sign-in on.
run: export DSR_REQUIRE_2FA ?= 0

.PHONY: run test bench install install-dev messages clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Translations are compiled at install, with pure Python (no gettext tools needed).
messages: $(VENV)/.installed
	$(PY) manage.py dsr_compile_messages

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Run the product: SQLite under var/, demo data, web + Celery worker + beat (Ctrl-C stops all).
run: install messages
	mkdir -p var/mail var/celery/queue var/celery/control
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py dsr_demo_load
	@echo "Serving http://127.0.0.1:$(PORT)/  (dashboard: http://127.0.0.1:$(PORT)/dashboard/, API docs: /api/docs/, mail: var/mail/)"
	$(VENV)/bin/honcho -f Procfile.run start -p $(PORT)

## Run the test suite (SQLite unless DATABASE_URL/REDIS_URL point at real services; CI sets them).
test: install-dev messages
	$(PY) -m pytest

## The same without the browser tests (marker `browser`), for a quicker run; CI runs them all.
.PHONY: test-fast
test-fast: install-dev messages
	$(PY) -m pytest -m "not browser"

## Benchmarks: results printed and written to bench/RESULTS.md.
bench: install-dev
	$(PY) bench/run.py

clean:
	rm -rf var/celery var/static
