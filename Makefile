# One command each for a fresh Debian machine with Python 3.11: `make test` and `make serve`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint serve clean chromium redis

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned, so nothing later resolves a bare `torch` into a CUDA download.
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The web UI tests drive Debian's Chromium through Playwright (never a downloaded browser); installed here as root.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "No $(CHROMIUM): the browser tests will be skipped (as root: apt-get install -y chromium)"; fi; \
	fi

# The service tests start their own redis-server on a free port (never the system's 6379); installed here as root.
redis:
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else echo "No redis-server: the service's Redis tests will fail (as root: apt-get install -y redis-server)"; fi; \
	fi

test: lint chromium redis
	$(BIN)/pytest

# The whole service on http://127.0.0.1:8000: API, web UI and in-process workers with the embedded default weights.
HOST ?= 127.0.0.1
PORT ?= 8000
serve: $(STAMP)
	$(BIN)/esrgan serve --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV)
