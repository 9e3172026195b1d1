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
