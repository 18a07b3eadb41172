# pwrun tests: the JSON unit test (C) and the end-to-end pytest suite that
# runs the real pwrun binary on real plugins.
PWRUN_TEST_DIR := $(BUILD)/tests/pwrun
PWRUN_JSON_TEST := $(PWRUN_TEST_DIR)/json_test
PWRUN_PYTEST := $(PWRUN_TEST_DIR)/pytest.sh
PWRUN_WATS := $(wildcard tests/pwrun/wat/*.wat)
PWRUN_WAT_WASMS := $(PWRUN_WATS:tests/pwrun/wat/%.wat=$(PWRUN_TEST_DIR)/%.wasm)

BINS += $(PWRUN_JSON_TEST) $(PWRUN_PYTEST)
WASMS += $(PWRUN_WAT_WASMS)
# the end-to-end suite runs on V8, then on w2c (one cache for the run)
TESTS += $(PWRUN_JSON_TEST) $(PWRUN_PYTEST) \
         "env PWRUN_ENGINE=w2c PWRUN_ENGINE_CACHE=$(CURDIR)/$(BUILD)/w2c-cache $(PWRUN_PYTEST)"

$(PWRUN_JSON_TEST): $(PWRUN_TEST_DIR)/json_test.o $(BUILD)/tools/pwrun/json.o
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $^ -lm

$(PWRUN_TEST_DIR)/%.wasm: tests/pwrun/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) --debug-names $< -o $@

# A one-word command for TESTS: pytest with the binary and wasm paths.
$(PWRUN_PYTEST): tests/pwrun/module.mk
	@mkdir -p $(@D)
	printf '%s\n' '#!/bin/sh' 'cd $(CURDIR) || exit 1' \
	    'PWRUN=$(CURDIR)/$(PWRUN) PWRUN_WASM_DIR=$(CURDIR)/$(WASM_OUT) \' \
	    'PWRUN_WAT_DIR=$(CURDIR)/$(PWRUN_TEST_DIR) \' \
	    'exec /usr/bin/python3 -m pytest -q tests/pwrun "$$@"' > $@
	chmod +x $@

.PHONY: pwrun-test
pwrun-test: $(PWRUN) $(PWRUN_JSON_TEST) $(PWRUN_PYTEST) $(PWRUN_WAT_WASMS)
	$(PWRUN_JSON_TEST)
	$(PWRUN_PYTEST)
