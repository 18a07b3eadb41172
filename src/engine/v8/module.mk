# The V8 backend (src/engine/v8): the only C++ and the only V8 user.
# Its objects are part of $(LIB) through V8_SRCS in the top Makefile.
# V8_OBJS lets test and tool fragments link the backend alone; it also
# needs the wasm reader, $(BUILD)/src/core/wasm.o (signatures), and
# -lnode (in LDLIBS).

V8_OBJS := $(V8_SRCS:%.cc=$(BUILD)/%.o)

# v8-fast-api-calls.h ships only under nodejs/deps/v8/include (the same
# V8 headers as include/node, which stays first on the path).
V8_FAST_INC := $(LIBNODE_PREFIX)/include/nodejs/deps/v8/include
$(V8_OBJS): CXXFLAGS += -isystem $(V8_FAST_INC)
