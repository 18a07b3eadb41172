# Benchmarks: `make bench` (pinned to one core when taskset is there).
BENCH_WASMS := $(BUILD)/bench/bench_abi.wasm $(BUILD)/bench/bench_engine.wasm
HOSTCALL_BENCH := $(BUILD)/bench/hostcall_bench
BINS += $(HOSTCALL_BENCH) $(BENCH_WASMS)
BENCHES += bench/run_hostcall_bench.sh

$(BUILD)/bench/%.wasm: bench/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) $< -o $@

$(HOSTCALL_BENCH): $(BUILD)/bench/hostcall_bench.o $(LIB)
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)
