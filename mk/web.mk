# Web server: run it, demo it with loadgen, benchmark it against nginx (see webserver/).
# Extra webserver flags go in WEB_ARGS, e.g. make run WEB_ARGS="--cores 1 --access-log".
# bench-web settings come from the environment: BENCH_WEB_RUNS (3), BENCH_WEB_SECS (5),
# BENCH_WEB_C10K_SECS (30), BENCH_WEB_RATE_SECS (5; each fixed-rate latency run),
# BENCH_WEB_RATE_RUNS (5; runs of each server at each fixed rate),
# BENCH_WEB_CLIENT_RUNS (5; rounds of loadgen vs wrk vs the floor client).

WEB_ARGS ?=
DEMO_PORT ?= 18080

.PHONY: run demo bench-web

run: ## Start the web server on the sample site (www/) at http://127.0.0.1:8080/
	$(BUILD_BINARIES)
	target/release/webserver $(WEB_ARGS)

demo: ## Start the web server, drive it with loadgen for 5 s, print the report, stop it
	$(BUILD_BINARIES)
	@set -e; out=$$(mktemp); \
	target/release/webserver --listen 127.0.0.1:$(DEMO_PORT) $(WEB_ARGS) >$$out & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; rm -f $$out' EXIT; \
	for i in $$(seq 200); do grep -q Serving $$out && break; kill -0 $$pid 2>/dev/null || { cat $$out; wait $$pid || exit $$?; exit 1; }; sleep 0.05; done; \
	grep -q Serving $$out || { echo "the web server did not start within 10 s"; exit 1; }; \
	target/release/loadgen -c 64 -d 5s http://127.0.0.1:$(DEMO_PORT)/ http://127.0.0.1:$(DEMO_PORT)/files/1k.txt; \
	kill -TERM $$pid; wait $$pid; echo; echo "web server:"; cat $$out

bench-web: ## webserver vs nginx (wrk), loadgen vs wrk, c10k memory -> target/bench/web.json
	$(BUILD_BINARIES)
	python3 webserver/bench/bench_web.py
