# Thread library: benchmarks against tokio (see bench-threads/).
# Extra flags for the bench binary go in BENCH_THREADS_ARGS, e.g.
#   make bench-threads BENCH_THREADS_ARGS="--only spawn_join_1m --runs 3"

BENCH_THREADS_ARGS ?=

.PHONY: bench-threads
bench-threads: ## threadlib vs tokio (spawn, yield, channel, sleepers' memory, copy vs cat) -> target/bench/threads.json
	$(CARGO) build --release -p bench-threads
	$(CARGO) build --release -p threadlib --example copy
	target/release/bench-threads --out target/bench/threads.json \
		--copy-bin target/release/examples/copy --scratch target/bench $(BENCH_THREADS_ARGS)

# Mutation testing of the scheduler is long (about 600 mutants at 30-60 s each) and so
# not part of `make test`. Scheduler tests run under a watchdog (threadlib/tests/support),
# so most scheduler faults fail a test in seconds instead of reaching the timeout.
# Survivors that cannot change behaviour are listed in threadlib/tests/equivalent-mutants.md.
# MUTANTS_JOBS sets parallel builds; MUTANTS_ARGS passes options through, e.g.
# MUTANTS_ARGS="--shard 0/8 --sharding round-robin" (a sample) or MUTANTS_ARGS="--iterate"
# (skip mutants a previous run in target/mutants-threads caught).
MUTANTS_JOBS ?= 2
.PHONY: mutants-threads
mutants-threads: ## Mutation testing of threadlib's scheduler, cancellation, scopes, loops and channels (cargo-mutants; hours) -> target/mutants-threads/mutants.out
	@command -v cargo-mutants >/dev/null || { echo "cargo-mutants is not installed: run 'cargo install --locked cargo-mutants'" >&2; exit 2; }
	$(CARGO) mutants -p threadlib --profile mutants -j $(MUTANTS_JOBS) --minimum-test-timeout 60 \
		-f 'threadlib/src/core/*.rs' -f threadlib/src/cancel.rs -f threadlib/src/scope.rs \
		-f 'threadlib/src/loops/*.rs' -f threadlib/src/sync/channel.rs \
		-o target/mutants-threads $(MUTANTS_ARGS)
