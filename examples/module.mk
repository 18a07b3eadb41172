# Example plugins written with the C SDK: examples/<name>.c ->
# build/wasm/<name>.wasm.

EXAMPLES := hello http_headers config_header body_redact callout_auth \
            shared_counter queue_producer queue_consumer metrics
EXAMPLE_WASMS := $(EXAMPLES:%=$(WASM_OUT)/%.wasm)
WASMS += $(EXAMPLE_WASMS)

.PHONY: examples
examples: $(EXAMPLE_WASMS)

$(EXAMPLE_WASMS): $(WASM_OUT)/%.wasm: examples/%.c $(SDK_C_DEPS) \
                  examples/module.mk
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) -o $@ $< $(SDK_C_SRC)
