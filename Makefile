# Tocsin: `make run` to try it, `make test` to check it. Both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed
DEMO_USER ?= alice
DEMO_PASSWORD ?= tocsin-demo
export TOCSIN_DATA_DIR ?= $(CURDIR)/data

.PHONY: run test install install-test system-deps bench-deps lint typecheck format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

install: $(STAMP)

## run: create .venv, install, migrate, load the demo config and serve on http://127.0.0.1:8080
run: $(STAMP)
	@mkdir -p data
	$(BIN)/tocsin db upgrade
	$(BIN)/tocsin apply -f examples/demo.yaml
	@$(BIN)/tocsin user set-password $(DEMO_USER) --password '$(DEMO_PASSWORD)' --if-unset >/dev/null
	@echo ""
	@echo "  Log in at http://127.0.0.1:8080/login as '$(DEMO_USER)' with password '$(DEMO_PASSWORD)'"
	@echo "  (every user in examples/demo.yaml can get one: .venv/bin/tocsin user set-password <id>)"
	@echo ""
	$(BIN)/tocsin serve

# Debian packages the tests need: Chromium for the browser tests, a real Prometheus
# Alertmanager for the ingestion tests. wrk is for the benchmarks (make bench-deps).
DEBIAN_TEST_PACKAGES := chromium:chromium prometheus-alertmanager:prometheus-alertmanager
system-deps:
	@missing=""; for pair in $(DEBIAN_TEST_PACKAGES); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install-test: $(TEST_STAMP) system-deps

## test: install what the tests need and run the whole suite on SQLite and PostgreSQL
test: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench

format: install-test
	$(BIN)/ruff format src tests bench && $(BIN)/ruff check --fix src tests bench

typecheck: install-test
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data build *.egg-info
