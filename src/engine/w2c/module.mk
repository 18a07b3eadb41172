# The w2c backend (src/engine/w2c): plugins compiled ahead of time with
# wasm2c and cc. w2c_abi.h and w2c_rt.c are also compiled into every plugin
# object the backend builds, so the library carries them as text.

W2C_SRCS := src/engine/w2c/w2c_engine.c src/engine/w2c/w2c_glue.c
W2C_TEXT := $(BUILD)/src/engine/w2c/w2c_text.c
W2C_OBJS := $(W2C_SRCS:%.c=$(BUILD)/%.o) $(W2C_TEXT:.c=.o) \
            $(BUILD)/src/engine/engines.o
LIB_OBJS += $(W2C_OBJS)

# each line a C string literal
W2C_AS_TEXT = { echo 'const char $(1)[] ='; \
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' \
        -e 's/$$/\\n"/' $(2); echo ';'; }

$(W2C_TEXT): src/engine/w2c/w2c_abi.h src/engine/w2c/w2c_rt.c \
             src/engine/w2c/module.mk
	@mkdir -p $(@D)
	{ echo '/* generated from w2c_abi.h and w2c_rt.c: do not edit */'; \
	  $(call W2C_AS_TEXT,pw__w2c_abi_text,src/engine/w2c/w2c_abi.h); \
	  $(call W2C_AS_TEXT,pw__w2c_rt_text,src/engine/w2c/w2c_rt.c); } > $@.tmp
	mv $@.tmp $@

$(W2C_TEXT:.c=.o): $(W2C_TEXT)
	$(CC) $(CFLAGS) -c $< -o $@
