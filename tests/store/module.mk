# Store tests: linked against the store's objects only.

STORE_TEST := $(BUILD)/tests/store/store_test

BINS += $(STORE_TEST)
TESTS += $(STORE_TEST)

$(STORE_TEST): $(BUILD)/tests/store/store_test.o $(STORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) $^ -lpthread -o $@

.PHONY: test-store
test-store: $(STORE_TEST)
	$(STORE_TEST)
