# Two commands do all the set-up on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test lint unit integration bench install clean tools demo test-faults soak

$(STAMP): pyproject.toml
	@echo "installing the project into $(VENV) (first run, or pyproject.toml changed: a minute or two, quietly)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## run: the whole system in the foreground (embedded broker and MariaDB if needed); Ctrl-C stops it
run: install
	$(BIN)/aiworker-events dev

# kubectl renders deploy/k8s in tests/deploy: Debian's kubernetes-client; promtool checks and unit-tests the alerts
# there: Debian's prometheus package (the server is not started); chromium is the browser tests/console drives through
# Playwright (Playwright's own browser download is not used). Each installed only when missing and we are root
# (otherwise those tests skip or fail and say how to install it).
tools:
	@command -v kubectl >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kubernetes-client; } \
	  || echo "kubectl is missing: install kubernetes-client (sudo apt-get install -y kubernetes-client)"
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; } \
	  || echo "promtool is missing: install prometheus (sudo apt-get install -y --no-install-recommends prometheus)"
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
	  || echo "chromium is missing: install it (sudo apt-get install -y chromium); the console's browser tests drive it"

## demo: with `make run` going in another terminal, play one task's whole life and print its timeline
demo: install
	$(BIN)/aiworker-events demo

## test: lint, types, then every test against a real broker and a real MariaDB (what CI runs)
test: install tools lint
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit tests/streams tests/webhooks

## test-faults: only the fault-injection runs (also part of `make test`)
test-faults: install
	$(BIN)/pytest -q -s -m faults tests/faults

## soak: longer fault and fuzz runs (100,000 events per fault run, 2,000 fuzz examples per property)
soak: install
	AIWORKER_FAULT_EVENTS=100000 AIWORKER_FUZZ_EXAMPLES=2000 $(BIN)/pytest -q -s tests/faults tests/fuzz

bench: install
	@command -v wrk >/dev/null || { test "$$(id -u)" = 0 && apt-get install -y -qq wrk >/dev/null; } || echo 'bench: wrk not installed (apt-get install wrk); bench.ingest uses its Python load generator'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
