# tests/reader: unit tests and libFuzzer targets of the wasm binary reader
# (src/core/wasm.c) and the Proxy-Wasm pairs map (src/core/map.c).
#
#   make build/rel/tests/reader/reader_test   the unit tests (+ WAT fixtures)
#   make fuzz                                  libFuzzer targets in build/fuzz
#   build/fuzz/fuzz_wasm build/fuzz/seeds_wasm    fuzz until stopped

READER_DIR := $(BUILD)/tests/reader
READER_WATS := $(wildcard tests/reader/wat/*.wat)
READER_WASMS := $(READER_WATS:tests/reader/wat/%.wat=$(READER_DIR)/%.wasm)
READER_WAT_FLAGS := --enable-threads --enable-memory64 \
                    --enable-multi-memory --enable-exceptions --debug-names
READER_TEST := $(READER_DIR)/reader_test
READER_OBJS := $(READER_DIR)/reader_test.o $(BUILD)/src/core/wasm.o \
               $(BUILD)/src/core/map.o

BINS += $(READER_TEST)
WASMS += $(READER_WASMS)
TESTS += $(READER_TEST) tests/reader/fuzz_smoke.sh

$(READER_DIR)/%.wasm: tests/reader/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) $(READER_WAT_FLAGS) $< -o $@

# The test finds its fixtures beside itself; it wraps the allocator to
# inject failures and count what stays allocated.
$(READER_TEST): $(READER_OBJS) $(READER_WASMS)
	$(CC) $(SANFLAGS) -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
	    -Wl,--wrap=free $(filter %.o,$^) -o $@

# ---- fuzzing (clang + libFuzzer; not part of `make all`) -------------------

FUZZ_DIR := build/fuzz
FUZZ_CC := clang
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -Iinclude \
               -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined
FUZZ_HDRS := include/pw/pw_types.h include/pw/pw_engine.h \
             include/pw/pw_wasm.h include/pw/pw_map.h
FUZZ_WASM_SEEDS := \
    $(READER_WATS:tests/reader/wat/%.wat=$(FUZZ_DIR)/seeds_wasm/%.wasm)

.PHONY: fuzz
fuzz: $(FUZZ_DIR)/fuzz_wasm $(FUZZ_DIR)/fuzz_map $(FUZZ_WASM_SEEDS) \
      $(FUZZ_DIR)/seeds_map/spec

$(FUZZ_DIR)/fuzz_wasm: tests/reader/fuzz_wasm.c src/core/wasm.c $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) tests/reader/fuzz_wasm.c src/core/wasm.c -o $@

$(FUZZ_DIR)/fuzz_map: tests/reader/fuzz_map.c src/core/map.c $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) tests/reader/fuzz_map.c src/core/map.c -o $@

$(FUZZ_DIR)/seeds_wasm/%.wasm: tests/reader/wat/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) $(READER_WAT_FLAGS) $< -o $@

# The spec's example {"a": "1"}, {"b": "22"} and an empty map.
$(FUZZ_DIR)/seeds_map/spec:
	@mkdir -p $(@D)
	printf '\002\000\000\000\001\000\000\000\001\000\000\000' > $@
	printf '\001\000\000\000\002\000\000\000' >> $@
	printf '\141\000\061\000\142\000\062\062\000' >> $@
	printf '\000\000\000\000' > $(@D)/empty
