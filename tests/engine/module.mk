# Engine tests on real wasm (each backend through pw_engine_vt_t; the w2c
# run takes PW_TEST_ENGINE=w2c).
#
# The WAT modules are built next to the test binary, which finds them
# through /proc/self/exe. --debug-names keeps the name section, so trap
# backtraces carry function names.

ENGINE_TEST := $(BUILD)/tests/engine/engine_test
ENGINE_TEST_WASMS := $(patsubst tests/engine/wat/%.wat,\
                       $(BUILD)/tests/engine/%.wasm,\
                       $(wildcard tests/engine/wat/*.wat))

$(BUILD)/tests/engine/%.wasm: tests/engine/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) --debug-names $< -o $@

$(ENGINE_TEST): $(BUILD)/tests/engine/engine_test.o $(V8_OBJS) $(W2C_OBJS) \
                $(BUILD)/src/core/wasm.o $(BUILD)/src/core/wbuf.o \
                $(ENGINE_TEST_WASMS)
	$(CC) $(LDFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

BINS += $(ENGINE_TEST)
TESTS += $(ENGINE_TEST) "env PW_TEST_ENGINE=w2c $(ENGINE_TEST)"

.PHONY: engine-test
engine-test: $(ENGINE_TEST)
	$(ENGINE_TEST)
