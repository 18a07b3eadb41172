# tests/unit: unit tests of the core (src/core) with a fake engine and a
# recording fake host; no V8. Linked against the core and store objects
# only.
#
#   make build/rel/tests/unit/core_test && build/rel/tests/unit/core_test
#   build/rel/tests/unit/core_test http_call     only tests matching
#
# The WAT fixtures are built next to the binary, which finds them through
# /proc/self/exe.

UNIT_DIR := $(BUILD)/tests/unit
UNIT_TEST := $(UNIT_DIR)/core_test
UNIT_WASMS := $(patsubst tests/unit/wat/%.wat,$(UNIT_DIR)/%.wasm,\
                $(wildcard tests/unit/wat/*.wat))
UNIT_CORE_OBJS := $(addprefix $(BUILD)/src/core/,vm.o module.o hostcalls.o \
                    wasi.o watchdog.o map.o wasm.o \
                    batch.o wbuf.o)
UNIT_OBJS := $(addprefix $(UNIT_DIR)/,core_test.o fake_engine.o \
               fake_host.o) $(UNIT_CORE_OBJS) $(STORE_OBJS)

$(UNIT_DIR)/%.wasm: tests/unit/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) $< -o $@

$(UNIT_TEST): $(UNIT_OBJS) $(UNIT_WASMS)
	$(CC) $(SANFLAGS) $(filter %.o,$^) -lpthread -o $@

BINS += $(UNIT_TEST)
WASMS += $(UNIT_WASMS)
TESTS += $(UNIT_TEST)

.PHONY: unit-test
unit-test: $(UNIT_TEST)
	$(UNIT_TEST)
