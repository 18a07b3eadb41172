# Test plugins: the configurable C test plugin (three ABI versions) and
# AssemblyScript plugins built with @solo-io/proxy-runtime from npm.

TESTPLUGIN_WASMS := $(WASM_OUT)/testplugin.wasm \
                    $(WASM_OUT)/testplugin_v020.wasm \
                    $(WASM_OUT)/testplugin_v010.wasm
TESTPLUGIN_DEPS := tests/plugins/testplugin.c $(SDK_C_DEPS) \
                   tests/plugins/module.mk

WASMS += $(TESTPLUGIN_WASMS)

.PHONY: test-plugins
test-plugins: $(TESTPLUGIN_WASMS) $(AS_WASMS)

$(WASM_OUT)/testplugin.wasm: $(TESTPLUGIN_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) -o $@ \
	    tests/plugins/testplugin.c $(SDK_C_SRC)

$(WASM_OUT)/testplugin_v020.wasm: $(TESTPLUGIN_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) \
	    -DPX_ABI_VERSION=PX_ABI_0_2_0 -o $@ \
	    tests/plugins/testplugin.c $(SDK_C_SRC)

$(WASM_OUT)/testplugin_v010.wasm: $(TESTPLUGIN_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) \
	    -DPX_ABI_VERSION=PX_ABI_0_1_0 -o $@ \
	    tests/plugins/testplugin.c $(SDK_C_SRC)
