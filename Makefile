# Shardcar's front door. `make run` starts the proxy with the embedded default config;
# `make test` is exactly what CI runs after installing dependencies (.ci/run).
CARGO ?= cargo
ARGS ?=

.PHONY: run build test lint fmt fmt-check clippy unit host-check

run: build
	./target/release/shardcar $(ARGS)

build:
	$(CARGO) build --release --workspace

test: fmt-check clippy unit

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
