# tests/sdk: the C SDK runtime's pieces that can run natively (its
# context table, sdk/c/px_table.h); the SDK as a whole is tested through
# the plugins the pwrun and nginx suites build with it.

SDK_TEST := $(BUILD)/tests/sdk/table_test

$(SDK_TEST): $(BUILD)/tests/sdk/table_test.o
	$(CC) $(LDFLAGS) $^ -o $@

$(BUILD)/tests/sdk/table_test.o: sdk/c/px_table.h

BINS += $(SDK_TEST)
TESTS += $(SDK_TEST)
