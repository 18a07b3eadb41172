# pwrun: a command-line Proxy-Wasm host that plays scripted exchanges.
PWRUN_SRCS := $(wildcard tools/pwrun/*.c)
PWRUN_OBJS := $(PWRUN_SRCS:%.c=$(BUILD)/%.o)
PWRUN := $(BUILD)/pwrun

BINS += $(PWRUN)

$(PWRUN): $(PWRUN_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(PWRUN_OBJS) $(LIB) $(LDLIBS)

.PHONY: pwrun-objs
pwrun-objs: $(PWRUN_OBJS)
