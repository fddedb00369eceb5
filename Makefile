# Shardcar's front door. `make run` starts the proxy with the embedded default config;
# `make test` is exactly what CI runs after installing dependencies (.ci/run).
SHELL := /bin/bash
CARGO ?= cargo
ARGS ?=

.PHONY: fuzz-ci fuzz-build run build test ebpf-test lint fmt fmt-check clippy unit host-check bench bench-ci bench-baseline bench-build bench-ir bench-ir-baseline bench-tls

run: build
	./target/release/shardcar $(ARGS)

build:
	$(CARGO) build --release --workspace

test: fmt-check clippy unit ebpf-test

# eBPF interception (`--features ebpf`; needs clang + libbpf-dev to build, root + bpftool to
# run the namespace/cgroup tests, which skip loudly otherwise). The default build needs none.
ebpf-test:
	$(CARGO) clippy -p shardcar --all-targets --features ebpf -- -D warnings
	$(CARGO) test -p shardcar --features ebpf --test intercept_ebpf

unit:
	$(CARGO) test --workspace --all-targets

lint: fmt-check clippy

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Prints how this host differs from kernel-config/ (sysctls, tools, kernel options). Changes nothing.
host-check:
	@sh kernel-config/host-check.sh

# Benchmarks (bench-harness/, binary `shardbench`; scenarios and sets are data in bench-harness/).
# `bench`: the full set against direct, HAProxy and nginx (≤ 15 min), report in perf-reports/.
# `bench-ci`: direct vs Shardcar (≤ 4 min) compared with perf-reports/baseline.json; fails on a
# regression beyond bench-harness/gate.toml. `bench-baseline`: rewrite the baseline deliberately.
bench-build:
	$(CARGO) build --release -p shardcar -p shardload -p shardbench

bench: bench-build
	./target/release/shardbench run --set full

# TLS against HAProxy: keepalive h1 over TLS 1.3 (shardbench set `tls`), then new mTLS
# handshakes per core (openssl s_time -new, bench-harness/handshakes.sh).
bench-tls: bench-build
	./target/release/shardbench run --set tls
	bench-harness/handshakes.sh target/release

bench-ci: bench-build
	./target/release/shardbench ci
	bench-harness/ir-gate.sh target/release

# The instruction gate alone (callgrind instructions/request of the h1 and L4 paths against
# perf-reports/ir-baseline.txt, ±5 %), and its deliberate rewrite after an intended change.
bench-ir: bench-build
	bench-harness/ir-gate.sh target/release

bench-ir-baseline: bench-build
	bench-harness/ir-gate.sh target/release --baseline

bench-baseline: bench-build
	./target/release/shardbench baseline

# Fuzzing (nightly + cargo-fuzz, libFuzzer with ASan): every target in fuzz/fuzz_targets runs
# FUZZ_SECONDS from the committed seeds in fuzz/corpus/<target>; new inputs go to a scratch
# corpus under target/, crashes to fuzz/artifacts/<target>/ (and fail the run).
FUZZ_TARGETS = request_head response_head chunked config_yaml h2_frames h1_framing
FUZZ_SECONDS ?= 20

fuzz-build:
	$(CARGO) +nightly fuzz build

fuzz-ci: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t && \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
	  $(CARGO) +nightly fuzz run $$t target/fuzz-corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    2>&1 | grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|panicked|SUMMARY|Done' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
