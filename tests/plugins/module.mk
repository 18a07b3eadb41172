# Test plugins: the configurable C test plugin (three ABI versions) and
# AssemblyScript plugins built with @solo-io/proxy-runtime from npm.

TESTPLUGIN_WASMS := $(WASM_OUT)/testplugin.wasm \
                    $(WASM_OUT)/testplugin_v020.wasm \
                    $(WASM_OUT)/testplugin_v010.wasm
TESTPLUGIN_DEPS := tests/plugins/testplugin.c $(SDK_C_DEPS) \
                   tests/plugins/module.mk

WASMS += $(TESTPLUGIN_WASMS)

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

# AssemblyScript plugins (ABI 0.2.0, malloc instead of
# proxy_on_memory_allocate, start section, wasi_unstable.proc_exit): real
# third-party SDK output for compatibility tests. Needs `make deps`.
AS_PLUGINS := as_headers as_local
AS_WASMS := $(AS_PLUGINS:%=$(WASM_OUT)/%.wasm)
AS_MODULES := $(CURDIR)/deps/npm/node_modules
WASMS += $(AS_WASMS)

# One AssemblyScript plugin from its .ts ($<) to $@ (also used by
# bench/module.mk). asc prints the SDK's own warnings; keep them in a log,
# show it on failure.
define AS_BUILD
	@mkdir -p $(@D)
	@test -x $(ASC) || { echo "$(ASC) missing: run make deps"; exit 1; }
	$(ASC) $< -b $@ --path $(AS_MODULES) --use abort=abort_proc_exit \
	    --optimize > $(@:.wasm=.asc.log) 2>&1 \
	    || { cat $(@:.wasm=.asc.log); rm -f $@; exit 1; }
endef

$(AS_WASMS): $(WASM_OUT)/%.wasm: tests/plugins/as/%.ts tests/plugins/module.mk
	$(AS_BUILD)

.PHONY: test-plugins
test-plugins: $(TESTPLUGIN_WASMS) $(AS_WASMS)
