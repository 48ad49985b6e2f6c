# `make demo` and `make test` set everything up themselves: .venv, pinned installs, C++ build.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build/py
# Reinstall the pinned dependencies whenever requirements.txt changes.
DEPS   := $(VENV)/.deps-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup build onnxruntime-headers test test-cpp test-py test-asan test-tsan test-sanitize test-cross test-fuzz fuzz demo bench clean

setup: $(DEPS)

$(DEPS): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.deps-*
	@touch $@

# ONNX Runtime's C header for the C++ point benchmark's ONNX Runtime row (before the build that finds it)
onnxruntime-headers:
	benchmarks/cpp/onnxruntime_headers.sh

# Editable install: builds kd_edge._runtime, libkd_edge.so, kd-edge-run and the C++ tests
# in $(BUILD) (incremental), and puts kd-edge-run in $(VENV)/bin.
build: $(DEPS)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure

test-py: build
	$(PY) -m pytest

# The C++ tests again under AddressSanitizer + UndefinedBehaviorSanitizer, and under
# ThreadSanitizer (Debug builds of the runtime in build/asan and build/tsan; TVM's own
# libraries are not instrumented).
SANITIZED = cmake -S . -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKD_EDGE_BUILD_PYTHON=OFF \
            -DPython_EXECUTABLE=$(CURDIR)/$(PY) -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(VENV)/bin/ninja

test-asan: build
	$(SANITIZED) -B build/asan -DKD_EDGE_SANITIZE=address,undefined
	cmake --build build/asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build/asan --output-on-failure

test-tsan: build
	$(SANITIZED) -B build/tsan -DKD_EDGE_SANITIZE=thread
	cmake --build build/tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --test-dir build/tsan --output-on-failure

test-sanitize: test-asan test-tsan

# The C++ suite cross-built for each target (cmake/<target>.cmake, no TVM library) and run under
# qemu-user, its golden artifacts compiled for that target: `make test-cross CROSS_TARGETS=aarch64`.
# Targets whose toolchain or emulator is missing (per kd_edge's target table) are skipped, naming
# the Debian packages to install.
CROSS_TARGETS := aarch64 armv7 riscv64
test-cross: build
	@for t in $(CROSS_TARGETS); do \
	  missing=$$($(PY) -c "from kd_edge.deploy import cross_tools_missing; print(*cross_tools_missing('$$t'))") || exit 1; \
	  if [ -n "$$missing" ]; then \
	    echo "SKIPPED cross tests for $$t: apt-get install $$missing (.ci/run installs them)"; continue; fi; \
	  echo "== C++ tests for $$t under qemu-user"; \
	  cmake -S . -B build/cross-$$t -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/$$t.cmake -DCMAKE_BUILD_TYPE=Release \
	    -DPython_EXECUTABLE=$(CURDIR)/$(PY) -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(VENV)/bin/ninja >/dev/null || exit 1; \
	  cmake --build build/cross-$$t || exit 1; \
	  ctest --test-dir build/cross-$$t --output-on-failure || exit 1; \
	done

# libFuzzer on the manifest reader (csrc/fuzz): `make fuzz FUZZ_SECONDS=600` for a long run; make test
# runs it briefly. Seeds in csrc/fuzz/corpus (deep nesting among them); what it finds grows
# build/fuzz/corpus, and a crashing input is written to build/fuzz/crash-*.
FUZZ_SECONDS ?= 20
FUZZ_PACKAGES := clang libclang-rt-dev
fuzz: build
	@if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' | \
	    clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then \
	  echo "SKIPPED fuzz run: clang with libFuzzer is missing (apt-get install $(FUZZ_PACKAGES); .ci/run installs them)"; \
	  exit 0; fi; \
	cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DKD_EDGE_FUZZ=ON -DKD_EDGE_BUILD_TESTS=OFF -DKD_EDGE_WITH_VM=OFF -DPython_EXECUTABLE=$(CURDIR)/$(PY) \
	  -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(VENV)/bin/ninja >/dev/null && \
	cmake --build build/fuzz --target fuzz_manifest && mkdir -p build/fuzz/corpus && \
	cd build/fuzz && ./fuzz_manifest -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	  -print_final_stats=1 corpus ../../csrc/fuzz/corpus

test-fuzz: fuzz

test: test-cpp test-py test-sanitize test-cross test-fuzz

# The shipped Burgers models through compile, accuracy check, C++ control loop, benchmark and report.
demo: build
	$(VENV)/bin/kd-edge run burgers

# Latency of every model and backend: one process per model for the small batches and another
# for the full grid (in one shared process, thread pools left spinning by earlier runs took the
# second core from ONNX Runtime's two-thread sessions); writes build/bench/latency-*.json and
# build/bench/latency.{md,png}.
BENCH_MODELS := reference_mlp $(notdir $(patsubst %/student.pt,%,$(wildcard models/*/student.pt)))
bench: onnxruntime-headers build
	mkdir -p build/bench
	rm -f build/bench/latency*.json
	for model in $(BENCH_MODELS); do for part in grid "not grid"; do \
	  $(PY) -m pytest benchmarks --benchmark-only --benchmark-max-time=0.5 -q -k "$$model and $$part" \
	    --benchmark-json="build/bench/latency-$$model-$$(echo $$part | tr ' ' _).json" || exit 1; \
	done; done
	$(PY) benchmarks/report.py build/bench/latency-*.json
	$(PY) benchmarks/point_latency.py

clean:
	rm -rf build .pytest_cache
