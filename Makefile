# Capsule CRM Sync. `make run` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# Tests and benchmarks use the local PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= $(if $(DATABASE_URL),$(DATABASE_URL),postgres://postgres@127.0.0.1:5432/crmsync)
TEST_REDIS_URL ?= $(if $(REDIS_URL),$(REDIS_URL),redis://127.0.0.1:6379/15)

.PHONY: install run test lint format bench chaos clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Local settings for `make run`: DEBUG, an encryption key made once and kept, the sandbox CRMs.
var/run.env:
	mkdir -p var
	{ echo "export DEBUG=true"; \
	  echo "export SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(48))')"; \
	  echo "export FIELD_ENCRYPTION_KEY=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"; \
	} > $@
	chmod 600 $@

run: install var/run.env
	source var/run.env && source <($(PY) -m integrations.sandbox.env) && \
	  export PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) && \
	  $(PY) manage.py migrate --noinput && \
	  $(PY) manage.py load_demo && \
	  $(PY) manage.py serve_local --port $(PORT)

test: install
	@CRMSYNC_TESTING=true DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(PY) scripts/check_services.py
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks against PostgreSQL, Redis and the sandbox CRMs: one table, and bench-results.json.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/crmsync_bench
BENCH_ENV = DATABASE_URL="$(BENCH_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" DEBUG=false LOG_LEVEL=WARNING \
	ALLOWED_HOSTS=127.0.0.1,localhost,testserver SECRET_KEY=bench-only-secret-key-0123456789-0123456789 \
	FIELD_ENCRYPTION_KEY=YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=

bench: install
	@$(BENCH_ENV) $(PY) scripts/create_database.py
	$(BENCH_ENV) $(PY) manage.py migrate --noinput -v0
	$(BENCH_ENV) $(PY) manage.py bench_all $(BENCH_ARGS)

# Sync under faults (see integrations/management/commands/chaos.py); private Redis and PostgreSQL.
chaos: install
	DJANGO_SETTINGS_MODULE=tests.settings DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(PY) manage.py chaos --restart-redis --restart-postgres $(CHAOS_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
