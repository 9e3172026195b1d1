# The user-space TCP path: the web server and loadgen on our own TCP stack, through the
# TUN devices `make setup` makes (root). Extra flags: WEB_ARGS (web server),
# LOADGEN_ARGS (loadgen). bench-user settings come from the environment:
# BENCH_USER_RUNS (3), BENCH_USER_SECS (5), BENCH_USER_C10K_SECS (30).

USER_NS ?= tcpst
USER_ADDR ?= 10.77.0.2
LOADGEN_ARGS ?=

.PHONY: run-user demo-user bench-user

run-user: ## Serve www/ from the user-space TCP stack at http://10.77.0.2:8080/ (root; make setup first)
	$(BUILD_BINARIES)
	@echo "Fetch it from this host:       curl http://$(USER_ADDR):8080/"
	@echo "or from inside the namespace:  sudo ip netns exec $(USER_NS) curl http://$(USER_ADDR):8080/"
	@echo "Counters: kill -USR1 <pid>; stop with Ctrl-C."
	target/release/webserver --net user $(WEB_ARGS)

demo-user: ## Web server on the user-space stack, driven 5 s by loadgen on its own user-space stack; report and both stacks' counters (root; make setup first)
	$(BUILD_BINARIES)
	@set -e; out=$$(mktemp); \
	target/release/webserver --net user $(WEB_ARGS) >$$out & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; rm -f $$out' EXIT; \
	for i in $$(seq 200); do grep -q Serving $$out && break; kill -0 $$pid 2>/dev/null || { cat $$out; wait $$pid || exit $$?; exit 1; }; sleep 0.05; done; \
	grep -q Serving $$out || { echo "the web server did not start within 10 s"; exit 1; }; \
	target/release/loadgen --net user -c 64 -d 5s $(LOADGEN_ARGS) \
		http://$(USER_ADDR):8080/ http://$(USER_ADDR):8080/files/1k.txt; \
	kill -TERM $$pid; wait $$pid; echo; echo "web server:"; cat $$out

bench-user: ## User-space path vs kernel path (webserver, loadgen, c10k) in a private namespace -> target/bench/user.json (root)
	$(BUILD_BINARIES)
	python3 usernet/bench/bench_user.py
