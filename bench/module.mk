# Benchmarks: `make bench` (pinned to one core when taskset is there).
BENCH_WASMS := $(BUILD)/bench/bench_abi.wasm $(BUILD)/bench/bench_engine.wasm
HOSTCALL_BENCH := $(BUILD)/bench/hostcall_bench
BINS += $(HOSTCALL_BENCH) $(BENCH_WASMS)
BENCHES += bench/run_hostcall_bench.sh

# nginx: one response header added natively, by a plugin, by Lua, by njs
# (wall clock and CPU time; instructions under callgrind in nginx_instr.sh);
# shared data and queue wake-ups across workers (shared_bench.sh); one HTTP
# callout per request (callout_bench.sh).
BENCH_PLUGINS := add_header shared
BENCH_PLUGIN_WASMS := $(BENCH_PLUGINS:%=$(WASM_OUT)/bench_%.wasm)
WASMS += $(BENCH_PLUGIN_WASMS)
ifneq ($(SAN),1)
BENCHES += bench/nginx_bench.sh bench/nginx_instr.sh bench/shared_bench.sh \
           bench/callout_bench.sh
endif

$(BUILD)/bench/%.wasm: bench/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) $< -o $@

# the same header from an AssemblyScript SDK plugin (bench/nginx_instr.sh)
BENCH_AS_WASM := $(WASM_OUT)/bench_as_add_header.wasm
WASMS += $(BENCH_AS_WASM)

$(BENCH_AS_WASM): bench/plugins/as_add_header.ts bench/module.mk
	$(AS_BUILD)

$(BENCH_PLUGIN_WASMS): $(WASM_OUT)/bench_%.wasm: bench/plugins/%.c \
                       $(SDK_C_DEPS) bench/module.mk
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) -o $@ $< $(SDK_C_SRC)

$(HOSTCALL_BENCH): $(BUILD)/bench/hostcall_bench.o $(LIB)
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)
