# TCP stack: the namespace + TUN device for the user-space stack, and its benchmark.
# Settings for setup/teardown come from the environment or the make command line
# (TCPST_NS, TCPST_DEV, TCPST_KERNEL_ADDR, TCPST_STACK_ADDR, TCPST_MTU,
# TCPST_MULTI_QUEUE); see setup-scripts/README.md.

.PHONY: setup teardown bench-tcp bench-tcp-loss

setup: ## Create the network namespace and TUN device for the user-space stack (root)
	setup-scripts/setup.sh

teardown: ## Remove the namespace and TUN device made by `make setup` (root)
	setup-scripts/teardown.sh

# BENCH_TCP_ARGS passes options through, e.g. BENCH_TCP_ARGS="--runs 5 --filter bulk".
bench-tcp: ## TCP benchmark: our stack vs smoltcp over TUN vs kernel loopback -> target/bench/tcp.json (root)
	$(CARGO) run --release -p tcp-interop --bin bench_tcp -- --json target/bench/tcp.json $(BENCH_TCP_ARGS)

# BENCH_TCP_LOSS_ARGS passes options through, e.g. BENCH_TCP_LOSS_ARGS="--loss 5 --runs 3".
bench-tcp-loss: ## Loss recovery vs Linux at 1/5/10% loss, with and without reordering -> target/bench/tcp_loss.json (root)
	$(CARGO) run --release -p tcp-interop --bin loss_matrix -- --json target/bench/tcp_loss.json $(BENCH_TCP_LOSS_ARGS)
