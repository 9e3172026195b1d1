# Front door. `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help build test lint fmt
help:
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## Build everything in release mode
	$(CARGO) build --release --workspace

lint: ## rustfmt check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

test: lint ## Lint, then run every test
	$(CARGO) test --workspace

# Area-specific targets (setup, benches, ...) live in mk/*.mk.
-include mk/*.mk
