# nsvm front door. `make demo` and `make test` work on a fresh Debian 12
# machine: they install what is missing, configure, build and run.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 10
NSVM := $(BUILD_DIR)/nsvm

.PHONY: all deps configure build demo test test-sanitize bench fuzz fuzz-build clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake --preset default -B $(BUILD_DIR)

configure: $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The demo needs only the CLI: build just that target (the tests come with `make test`).
demo: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target nsvm
	@./scripts/demo.sh $(NSVM)

test: deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	@./scripts/oracle-ci.sh $(NSVM)
	@./scripts/fuzz-smoke.sh

# ASan + UBSan build of everything, whole ctest suite, LeakSanitizer on; any
# report fails the test that triggered it (halt_on_error, -fno-sanitize-recover).
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LSAN_OPTIONS=report_objects=1

test-sanitize: deps
	cmake --preset sanitize
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS)

# The figures come from the library built as an embedder builds it for
# speed (-O3, link-time optimization: the `bench` preset, build-bench/); the
# allocation test and the peers' timing use the default build.
BENCH_DIR ?= build-bench

bench: deps build
	cmake --preset bench
	cmake --build $(BENCH_DIR) -j $(JOBS) --target nsvm_bench
	@./scripts/bench.sh $(BENCH_DIR) $(BUILD_DIR)

fuzz-build: deps
	cmake --preset fuzz
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	@./scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-bench build-sanitize build-fuzz
