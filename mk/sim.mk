# The whole-system simulation (sim/): the web server and loadgen on two user-space TCP
# stacks over a hostile simulated link, mock time and simulated files, one seed.

SIM_COUNT ?= 3000
SIM := ./target/release/sim

.PHONY: sim
sim: ## Simulate a batch of seeds (SIM_COUNT=3000); SEED=N replays one (VERBOSE=1, TRACE=file), SEEDS=A..B runs a range
	@$(CARGO) build --release -q -p sim
	@if [ -n "$(SEED)" ]; then \
		$(SIM) --seed $(SEED) $(if $(VERBOSE),--verbose) $(if $(TRACE),--trace $(TRACE)); \
	elif [ -n "$(SEEDS)" ]; then \
		$(SIM) --seeds $(SEEDS); \
	else \
		$(SIM) --count $(SIM_COUNT); \
	fi

# Each seed's event hash, which covers every packet's bytes, time and fate: two builds
# that give every seed the same hash put the same packets on the wire. Record before a
# refactor, record after, diff. HASHES is the output file.
SIM_HASH_SEEDS ?= 0..200
HASHES ?= target/sim-hashes.txt

.PHONY: sim-hashes
sim-hashes: ## Event hash of each seed (SIM_HASH_SEEDS=0..200, then the regression seeds) -> HASHES=target/sim-hashes.txt
	@$(CARGO) build --release -q -p sim
	@set -e; tmp=$$(mktemp); trap 'rm -f $$tmp' EXIT; \
	$(SIM) --seeds $(SIM_HASH_SEEDS) --hashes $(HASHES) --no-coverage-check; \
	$(SIM) --seed-file sim/regression-seeds.txt --hashes $$tmp; \
	cat $$tmp >> $(HASHES); echo "$$(wc -l < $(HASHES)) seeds' hashes in $(HASHES)"
