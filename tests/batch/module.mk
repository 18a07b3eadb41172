# tests/batch: callbacks batched into one engine entry (src/core/batch.c)
# against one entry per callback, on real V8 and on w2c (PW_TEST_ENGINE;
# its plugin objects are cached in w2c-cache/ beside the binary). The WAT
# plugins are built next to the binary.

BATCH_TEST := $(BUILD)/tests/batch/batch_test
BATCH_TEST_WASMS := $(BUILD)/tests/batch/seq.wasm $(BUILD)/tests/batch/seq010.wasm \
                    $(BUILD)/tests/batch/noops.wasm \
                    $(BUILD)/tests/batch/noops_resp.wasm \
                    $(BUILD)/tests/batch/lazy.wasm \
                    $(BUILD)/tests/batch/quiet.wasm \
                    $(BUILD)/tests/batch/quiet_lazy.wasm \
                    $(BUILD)/tests/batch/quiet_http.wasm

$(BUILD)/tests/batch/%.wasm: tests/batch/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) --debug-names $< -o $@

$(BATCH_TEST): $(BUILD)/tests/batch/batch_test.o \
               $(CORE_SRCS:%.c=$(BUILD)/%.o) $(STORE_SRCS:%.c=$(BUILD)/%.o) \
               $(V8_OBJS) $(W2C_OBJS) $(BATCH_TEST_WASMS)
	$(CC) $(LDFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

BINS += $(BATCH_TEST)
TESTS += $(BATCH_TEST) "env PW_TEST_ENGINE=w2c $(BATCH_TEST)"
