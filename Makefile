# make demo: set up .venv and run the demo hub.  make test: set up and run every test
# (with `make lint` and `make docs` first).  make check: the quick tests only.
# Both bootstrap a fresh Debian machine: Python packages go into .venv, Debian packages
# (Chromium for the browser tests) are installed with apt-get when missing (as root).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# prometheus: the usage-quotas peer's half of benchmarks/cost_report.py, and promtool's backfill for
# the measured-use tests; procps: ps, against which a server's measured memory is checked; faketime: the tests
# that move the clock across midnight; nginx, caddy, systemd (systemd-analyze), openssl: the
# one-machine guide's reverse proxy and units checked by their own tools (test_one_machine.py;
# the tests run their own nginx: where systemd runs, Debian also starts nginx and caddy on
# ports 80 and 443, which `systemctl disable --now nginx caddy` stops)
DEBIAN_PACKAGES := chromium postgresql sqlite3 prometheus faketime nginx caddy systemd openssl procps

.PHONY: demo test check test-midnight lint format docs system-packages server-account clean

$(STAMP): pyproject.toml setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# left behind by the hatchling editable install of old: empty, it shadows the package
	rm -rf $(VENV)/lib/python3*/site-packages/twoi2c_hub
	$(BIN)/python -m pip install --quiet -e '.[test,bench,lint,docs,demo,postgresql,fancy-profiles]'
	touch $(STAMP)

system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "Please install as root: apt-get install$$missing"; exit 1; fi; \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# as root, local servers run as an unprivileged user with a Python of their own (made from
# Debian's python3, with python3-venv)
server-account: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then \
	  dpkg -s python3-venv >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }; \
	  $(BIN)/twoi2c-hub server-account; \
	fi

demo: $(STAMP) server-account
	$(BIN)/twoi2c-hub demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# warnings are errors: a broken link or a stale reference fails the build
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html -q docs docs/_build/html

# two worker processes (pytest-xdist), each taking whole test files: a file's module-scoped
# hub is started once; the tests spend most of their time waiting on hubs and browsers
TEST_WORKERS ?= 2
test: $(STAMP) system-packages server-account lint docs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# the inner loop, in under a minute: the tests that start no hub, browser or PostgreSQL
# and take no seconds each (the markers are in pyproject.toml)
CHECK_MARKERS := not hub and not browser and not postgres and not slow
check: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "$(CHECK_MARKERS)" $(PYTEST_ARGS)

# the tests whose answers depend on the date, with the clock (libfaketime, for the test
# process, the hubs, their services and servers) a minute before and 30 s after the
# midnight that ends this month: a day, a month and a budget period change under them
CLOCK_TESTS ?= tests/test_journeys.py tests/test_usage_service.py
test-midnight: $(STAMP) system-packages server-account
	@month_end=$$(date -ud "$$(date -u +%Y-%m-01) +1 month" +%s); \
	for at in -60 30; do \
	  offset=$$(( month_end + at - $$(date +%s) )); \
	  echo "== the clock at $$(date -ud @$$(( month_end + at )) '+%F %T') UTC"; \
	  faketime -f "+$$offset" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(CLOCK_TESTS) $(PYTEST_ARGS) || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build
