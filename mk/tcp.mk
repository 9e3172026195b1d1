# TCP stack: the namespace + TUN device for the user-space stack, and its benchmark.
# Settings for setup/teardown come from the environment or the make command line
# (TCPST_NS, TCPST_DEV, TCPST_KERNEL_ADDR, TCPST_STACK_ADDR, TCPST_MTU,
# TCPST_MULTI_QUEUE); see setup-scripts/README.md.

.PHONY: setup teardown bench-tcp bench-tcp-loss

setup: ## Create the namespace tcpst, the user-space stacks' TUN devices (tun0: web server, tun1: loadgen) and a veth route to them from this host (root)
	setup-scripts/setup.sh

teardown: ## Remove the namespace and TUN devices made by `make setup` (root)
	setup-scripts/teardown.sh

# BENCH_TCP_ARGS passes options through, e.g. BENCH_TCP_ARGS="--runs 5 --filter bulk".
bench-tcp: ## TCP benchmark: our stack vs smoltcp over TUN vs kernel loopback -> target/bench/tcp.json (root)
	$(CARGO) run --release -p tcp-interop --bin bench_tcp -- --json target/bench/tcp.json $(BENCH_TCP_ARGS)

# BENCH_TCP_LOSS_ARGS passes options through, e.g. BENCH_TCP_LOSS_ARGS="--loss 5 --runs 3".
bench-tcp-loss: ## Loss recovery vs Linux at 1/5/10% loss, with and without reordering -> target/bench/tcp_loss.json (root)
	$(CARGO) run --release -p tcp-interop --bin loss_matrix -- --json target/bench/tcp_loss.json $(BENCH_TCP_LOSS_ARGS)

# Mutation testing is long (about 1,100 mutants at 5-10 s each) and so not part of
# `make test`. MUTANTS_JOBS sets parallel builds; MUTANTS_ARGS passes options through,
# e.g. MUTANTS_ARGS="--shard 0/8" or MUTANTS_ARGS="--iterate" (skip mutants a previous
# run in target/mutants caught).
MUTANTS_JOBS ?= 2
.PHONY: mutants
mutants: ## Mutation testing of tcpstack's connection and stack logic (cargo-mutants; hours) -> target/mutants/mutants.out
	@command -v cargo-mutants >/dev/null || { echo "cargo-mutants is not installed: run 'cargo install --locked cargo-mutants'" >&2; exit 2; }
	$(CARGO) mutants -p tcpstack --profile mutants -j $(MUTANTS_JOBS) --minimum-test-timeout 60 \
		-f 'tcpstack/src/conn/*.rs' -f 'tcpstack/src/stack/*.rs' -f tcpstack/src/stack.rs -f tcpstack/src/sink.rs \
		-o target/mutants $(MUTANTS_ARGS)
