# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    install what serves, migrate, seed assets, serve on 127.0.0.1:8000 with the order processor
#   make test   install that and the test tools, and run the whole suite
# Without DATABASE_URL both start an embedded PostgreSQL under .data/.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-dev run test lint bench bench-history clean demo staff reconcile manage cluster-test bot

# What serves (requirements.txt) for `make run` and the everyday commands; the test tools on top
# (requirements-dev.txt, which includes it) for tests, lint and benchmarks.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	@./scripts/run.sh

test: install-dev
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) .data

# Load test (scripts/bench/run.py, docs/PERFORMANCE.md): gunicorn + wrk vs pgbench on the same
# PostgreSQL, portfolio and history latency, portfolio history per period against 100 ms p50,
# process_orders fills/s. BENCH_QUICK=1 for a smoke run, BENCH_PHASES=portfolio_history for one phase.
bench: install-dev
	$(PY) scripts/bench/run.py

# Portfolio history, activities and market bars for a user with 10,000 fills and 30 days of
# minute prices (scripts/bench/portfolio_history.py): p50/p95 and the SQL statements of each.
# The data set is built once and reused while unchanged (ARGS=--rebuild to build it anew).
bench-history: install-dev
	$(PY) scripts/bench/portfolio_history.py $(ARGS)

# Everyday commands without activating the virtualenv (each is `.venv/bin/python manage.py ...`).
demo: install  ## demo users with holdings, orders and a week of history
	$(PY) manage.py seed_demo

staff: install  ## make staff NAME=sam GROUP=Support (or Operations): creates the account if new
	$(PY) manage.py add_staff_to_group "$(NAME)" "$(or $(GROUP),Support)" --create

reconcile: install  ## every balance against its ledger; non-zero exit on any mismatch
	$(PY) manage.py reconcile_ledger

manage: install  ## make manage CMD="process_orders --once"
	$(PY) manage.py $(CMD)

# The example bot (examples/alpaca_bot.py) against a running `make run`: it needs Alpaca's SDK,
# which the service does not, so this installs it (the version the tests use) the first time.
$(VENV)/.installed-bot: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet "$$(grep '^alpaca-py==' requirements-dev.txt)"
	touch $@

bot: $(VENV)/.installed-bot  ## make bot ARGS=... (BOT_SECONDS=0 runs until Ctrl-C)
	$(PY) examples/alpaca_bot.py $(ARGS)

# Local cluster under load with parts killed (scripts/cluster/run.py, docs/SCALING.md): primary,
# streaming replica, PgBouncer, Redis, two gunicorns, two process_orders, all on free ports.
cluster-test: install-dev
	$(PY) scripts/cluster/run.py
