# tests/shim: the shim path of the hostcalls that return bytes gives the
# plugin exactly what the plain path gives (real V8, both paths in one
# binary). The WAT plugin is built next to the binary.

SHIM_TEST := $(BUILD)/tests/shim/shim_test
SHIM_TEST_WASMS := $(BUILD)/tests/shim/bytes.wasm $(BUILD)/tests/shim/grow.wasm \
                   $(BUILD)/tests/shim/status.wasm

$(BUILD)/tests/shim/%.wasm: tests/shim/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) --debug-names $< -o $@

$(SHIM_TEST): $(BUILD)/tests/shim/shim_test.o \
              $(CORE_SRCS:%.c=$(BUILD)/%.o) $(STORE_SRCS:%.c=$(BUILD)/%.o) \
              $(V8_OBJS) $(SHIM_TEST_WASMS)
	$(CC) $(LDFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

BINS += $(SHIM_TEST)
TESTS += $(SHIM_TEST)
