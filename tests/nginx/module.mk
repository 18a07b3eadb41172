# nginx end-to-end tests: pytest starts a real nginx with the module and
# real plugins against a Python upstream. WAT modules (mostly invalid ones
# for `nginx -t`) and C test plugins build into build/wasm/nginx/. The suite
# is not run under SAN=1: the module is only built in the rel build.

NGX_TEST_WASM_DIR := $(WASM_OUT)/nginx
NGX_TEST_WATS := $(wildcard tests/nginx/plugins/*.wat)
NGX_TEST_CS := $(wildcard tests/nginx/plugins/*.c)
NGX_TEST_WASMS := \
    $(NGX_TEST_WATS:tests/nginx/plugins/%.wat=$(NGX_TEST_WASM_DIR)/%.wasm) \
    $(NGX_TEST_CS:tests/nginx/plugins/%.c=$(NGX_TEST_WASM_DIR)/%.wasm) \
    $(NGX_TEST_WASM_DIR)/ngxtest_v010.wasm
NGX_PYTEST := $(BUILD)/tests/nginx/pytest.sh

WASMS += $(NGX_TEST_WASMS)

ifneq ($(SAN),1)
BINS += $(NGX_PYTEST)
TESTS += $(NGX_PYTEST)
endif

$(NGX_TEST_WASM_DIR)/%.wasm: tests/nginx/plugins/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) --debug-names $< -o $@

$(NGX_TEST_WASM_DIR)/%.wasm: tests/nginx/plugins/%.c $(SDK_C_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) -o $@ $< $(SDK_C_SRC)

# ngxtest for ABI 0.1.0 (continue_request/_response, no log level)
$(NGX_TEST_WASM_DIR)/ngxtest_v010.wasm: tests/nginx/plugins/ngxtest.c \
                                        $(SDK_C_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) \
	    -DPX_ABI_VERSION=PX_ABI_0_1_0 -o $@ $< $(SDK_C_SRC)

# A one-word command for TESTS: pytest with the module and plugin paths.
$(NGX_PYTEST): tests/nginx/module.mk
	@mkdir -p $(@D)
	printf '%s\n' '#!/bin/sh' 'cd $(CURDIR) || exit 1' \
	    'PW_NGINX_MODULE=$(CURDIR)/$(NGX_MODULE) \' \
	    'PW_WASM_DIR=$(CURDIR)/$(WASM_OUT) \' \
	    'PW_NGINX_WASM_DIR=$(CURDIR)/$(NGX_TEST_WASM_DIR) \' \
	    'exec /usr/bin/python3 -m pytest -q tests/nginx "$$@"' > $@
	chmod +x $@

.PHONY: nginx-test nginx-test-plugins
nginx-test-plugins: $(NGX_TEST_WASMS)

nginx-test: nginx-module $(NGX_PYTEST) $(NGX_TEST_WASMS) $(WASMS)
	$(NGX_PYTEST)

