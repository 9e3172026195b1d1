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
