# proxy-wasm-c
#
#   make deps      install what a fresh Debian 12 machine needs
#   make           library, V8 backend, SDK, plugins, pwrun
#   make test      every test (unit, engine, store, pwrun end-to-end)
#   make test SAN=1  the same under AddressSanitizer + UBSan
#   make demo      nginx on 127.0.0.1:8080 with example plugins in front of
#                  a real upstream (Ctrl-C stops it)
#   make demo-pwrun  the example plugins through pwrun
#   make bench     benchmarks (bench/)
#
# Each area owns a fragment (module.mk) that adds to the variables below.

SAN ?=
ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else
BUILD := build/rel
SANFLAGS :=
endif
WASM_OUT := build/wasm
export BUILD WASM_OUT

CC := gcc
CXX := g++
# libnode-dev installed system-wide wins; else the copy make deps unpacked.
LIBNODE_PREFIX ?= $(shell dpkg -s libnode-dev >/dev/null 2>&1 && \
                    echo /usr || echo $(CURDIR)/deps/libnode/usr)
LIBNODE_INC := $(LIBNODE_PREFIX)/include/node
LIBNODE_LIB := $(LIBNODE_PREFIX)/lib/x86_64-linux-gnu

WARN := -Wall -Wextra -Werror -Wno-unused-parameter
# -fno-plt: a call into another library (nginx, libnode, libc) reads its
# GOT slot at the call site instead of jumping through a PLT stub, one
# instruction-cache line less per call on the request path.
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -fPIC -fno-plt -fno-semantic-interposition $(WARN) -Iinclude -Isrc $(SANFLAGS)
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++17 -fPIC -fno-plt -fno-semantic-interposition $(WARN) -Iinclude -Isrc -isystem $(LIBNODE_INC) \
            $(SANFLAGS) -fno-rtti
LDFLAGS += $(SANFLAGS) -L$(LIBNODE_LIB) -Wl,-rpath,$(LIBNODE_LIB)
LDLIBS += -lnode -lstdc++ -lpthread -lm

# wasm toolchains
WASM_CC := clang
WASM_CFLAGS := --target=wasm32-wasi -mexec-model=reactor -O2 -Isdk/c \
               -Wall -Werror
WAT2WASM := wat2wasm
ASC := $(CURDIR)/deps/npm/node_modules/.bin/asc

# The library: core + store + engine backends.
CORE_SRCS := $(wildcard src/core/*.c)
STORE_SRCS := $(wildcard src/store/*.c)
V8_SRCS := $(wildcard src/engine/v8/*.cc)
LIB := $(BUILD)/libpw.a
LIB_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o) $(STORE_SRCS:%.c=$(BUILD)/%.o) \
            $(V8_SRCS:%.cc=$(BUILD)/%.o)

# Fragments append to these.
BINS :=
WASMS :=
TESTS :=          # commands run by `make test`, in order
BENCHES :=

.PHONY: all deps test check demo demo-pwrun bench clean check-layering docs
all: $(LIB) bins wasms

include $(wildcard src/*/module.mk src/engine/*/module.mk sdk/*/module.mk \
                   tools/*/module.mk tests/*/module.mk bench/module.mk \
                   examples/module.mk nginx/module.mk)

.PHONY: bins wasms
bins: $(BINS)
wasms: $(WASMS)

deps:
	bash scripts/deps.sh

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c | check-layering
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

# The core and the store must stay free of nginx and V8 headers.
check-layering:
	@bad=$$(grep -rlE '#\s*include\s*[<"](ngx_|nginx|v8|libplatform|node)' \
	        src/core src/store 2>/dev/null); \
	if [ -n "$$bad" ]; then \
	    echo "layering: nginx/V8 header included in: $$bad"; exit 1; fi

test: all
	@scripts/run_tests.sh $(TESTS)

# Everything on a fresh machine: dependencies, the suite, the suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer. CI runs this.
check:
	$(MAKE) deps
	$(MAKE) -j2 all
	$(MAKE) test
	$(MAKE) test-valgrind
	$(MAKE) -j2 SAN=1 all
	$(MAKE) SAN=1 test

demo:
	$(MAKE) deps
	$(MAKE) -j2 all
	examples/nginx/demo.sh

demo-pwrun:
	$(MAKE) deps
	$(MAKE) -j2 all
	examples/demo.sh

bench: all $(BENCHES)
	@set -e; for b in $(BENCHES); do $$b; done

docs: $(BUILD)/gen_abi_support
	$(BUILD)/gen_abi_support > docs/ABI_SUPPORT.md

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
