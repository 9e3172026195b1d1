# TCP stack: the namespace + TUN device for the user-space stack, and its benchmark.
# Settings for setup/teardown come from the environment or the make command line
# (TCPST_NS, TCPST_DEV, TCPST_KERNEL_ADDR, TCPST_STACK_ADDR, TCPST_MTU,
# TCPST_MULTI_QUEUE); see setup-scripts/README.md.

.PHONY: setup teardown bench-tcp

setup: ## Create the network namespace and TUN device for the user-space stack (root)
	setup-scripts/setup.sh

teardown: ## Remove the namespace and TUN device made by `make setup` (root)
	setup-scripts/teardown.sh

# BENCH_TCP_ARGS passes options through, e.g. BENCH_TCP_ARGS="--runs 5 --filter bulk".
bench-tcp: ## TCP benchmark: our stack vs smoltcp over TUN vs kernel loopback -> target/bench/tcp.json (root)
	$(CARGO) run --release -p tcp-interop --bin bench_tcp -- --json target/bench/tcp.json $(BENCH_TCP_ARGS)
