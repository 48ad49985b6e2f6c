# `make demo` and `make test` set everything up themselves: .venv, pinned installs, C++ build.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build/py
# Reinstall the pinned dependencies whenever requirements.txt changes.
DEPS   := $(VENV)/.deps-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup build test test-cpp test-py demo bench clean

setup: $(DEPS)

$(DEPS): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.deps-*
	@touch $@

# Editable install: builds kd_edge._runtime, libkd_edge.so, kd-edge-run and the C++ tests
# in $(BUILD) (incremental), and puts kd-edge-run in $(VENV)/bin.
build: $(DEPS)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure

test-py: build
	$(PY) -m pytest

test: test-cpp test-py

demo: build
	$(PY) examples/demo.py

# Latency of every model and backend in one run; writes build/bench/latency.{json,md,png}.
bench: build
	mkdir -p build/bench
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-max-time=0.5 --benchmark-json=build/bench/latency.json -q
	$(PY) benchmarks/report.py build/bench/latency.json

clean:
	rm -rf build .pytest_cache
