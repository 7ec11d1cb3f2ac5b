# One command each for a fresh Debian machine with Python 3.11: `make test` and `make serve`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint serve clean chromium redis containers docker-wheels docker-requirements device-wheels

# docker/requirements.txt pins the whole runtime closure: the test venv installs exactly what the images install.
$(STAMP): pyproject.toml docker/requirements.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned, so nothing later resolves a bare `torch` into a CUDA download.
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]' -c docker/requirements.txt
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

# The self-hosting test (tests/test_compose.py) builds the CPU images and runs docker-compose.yml with podman, which
# stands in for Docker where no engine runs; ../shared/tools/podman-setup.sh (beside the clone in CI) configures it.
PODMAN_SETUP ?= ../shared/tools/podman-setup.sh
containers: docker-wheels
	@if [ -x $(PODMAN_SETUP) ] && [ "$$(id -u)" = 0 ] && ! podman image exists docker.io/library/python:3.11-slim 2>/dev/null; then \
	  nice -n 10 $(PODMAN_SETUP); \
	elif ! command -v podman >/dev/null; then echo "No podman: the container test will be skipped (README: Self-hosting)"; fi

# torch's CPU wheel for the CPU images (PyPI serves only the CUDA build): pip's local copy if it has one, else PyTorch's
# CPU index. The images run Python 3.11 on manylinux x86_64, whatever this machine is.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_WHEEL_FLAGS := --quiet --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64
docker-wheels: $(STAMP)
	@ls docker/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 \
	  || $(BIN)/pip download $(TORCH_WHEEL_FLAGS) --no-index --dest docker/wheels torch==2.13.0 2>/dev/null \
	  || $(BIN)/pip download $(TORCH_WHEEL_FLAGS) --index-url $(TORCH_CPU_INDEX) --dest docker/wheels torch==2.13.0
	@ls docker/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 \
	  || { echo "docker/wheels/ got no torch 2.13.0 CPU wheel (is $(TORCH_CPU_INDEX) reachable?)" >&2; exit 1; }

# Wheels (Python 3.12, x86-64) of what the GPU check needs and the device machine lacks, into device-wheels/: the one
# `carry` path of its device run (benchmarks/README.md, "GPU check").
device-wheels: $(STAMP)
	bash benchmarks/device_wheels.sh

# After changing dependencies in pyproject.toml (and installing them): re-pin what the images install.
docker-requirements: $(STAMP)
	$(BIN)/python docker/pin_requirements.py

test: lint chromium redis containers
	$(BIN)/pytest

# The whole service on http://127.0.0.1:8000: API, web UI and in-process workers with the embedded default weights.
HOST ?= 127.0.0.1
PORT ?= 8000
serve: $(STAMP)
	$(BIN)/esrgan serve --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV)
