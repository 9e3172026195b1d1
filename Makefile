# Front door. `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo
# The two binaries, always built together: built alone, each would unify its
# dependencies' features differently and rebuild the shared crates on every switch.
BUILD_BINARIES = $(CARGO) build --release -p webserver -p loadgen

.PHONY: help build test lint fmt fuzz-build
help:
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## Build everything in release mode
	$(CARGO) build --release --workspace

lint: ## rustfmt check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

test: lint fuzz-build ## Lint, build the fuzz targets, then run every test
	$(CARGO) test --workspace

FUZZ_CRATES := $(wildcard */fuzz/Cargo.toml)
fuzz-build: ## Build every cargo-fuzz target (plain cargo; run them with cargo fuzz)
	@for m in $(FUZZ_CRATES); do echo "building $$m"; $(CARGO) build -q --manifest-path $$m || exit 1; done

.PHONY: bench
bench: bench-threads bench-web ## Every benchmark that needs no root (bench-tcp needs root: run it too as root)

# Area-specific targets (setup, benches, ...) live in mk/*.mk.
-include mk/*.mk
