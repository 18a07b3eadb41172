# The support matrix generator and the check that docs/ABI_SUPPORT.md is
# what the table says.
GEN_ABI := $(BUILD)/gen_abi_support
BINS += $(GEN_ABI)
TESTS += tools/abi_support/check.sh

$(GEN_ABI): $(BUILD)/tools/abi_support/gen_abi_support.o $(LIB)
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)
