# churnstream: every target sets up what it needs (.venv with all packages) on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help install demo test unit lint bench benchtools clean tools

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install churnstream with everything it needs

demo: $(STAMP) ## embedded Tansu + Redis, worker, API and simulated traffic (Ctrl-C stops)
	$(VENV)/bin/churnstream demo

test: $(STAMP) lint tools ## lint, then unit + integration tests on real Tansu + Redis + worker + API
	$(PY) -m pytest -n 2 --dist loadfile

tools: ## promtool (Debian prometheus) and headless Chromium + chromedriver for the tests, if missing
	@command -v promtool >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing the Debian packages prometheus (promtool), chromium, chromium-driver"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus chromium chromium-driver >/dev/null; }

unit: $(STAMP) tools ## unit tests and doctests only (no services)
	$(PY) -m pytest tests/unit core state stream api offline services cli

lint: $(STAMP) ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

benchtools: ## wrk (Debian package) for the API benchmark's closed loop, if missing
	@command -v wrk >/dev/null || { \
	  echo "installing the Debian package wrk"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null \
	  || echo "wrk unavailable: bench/api_latency.py uses its asyncio client"; }

bench: $(STAMP) benchtools ## every benchmark (worker, memory, learner, sweep, API, evaluate) -> bench/results.md
	$(PY) bench/run_all.py

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .churnstream *.egg-info
