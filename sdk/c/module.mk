# C SDK for Proxy-Wasm plugins (wasm32-wasi, clang).
#
# A plugin is built by compiling its .c together with the SDK runtime:
#   $(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) -o X.wasm X.c $(SDK_C_SRC)
# Add -DPX_ABI_VERSION=PX_ABI_0_1_0 (or _0_2_0) for an older ABI.

SDK_C_SRC := sdk/c/proxy_wasm.c
SDK_C_HDR := sdk/c/proxy_wasm.h
SDK_C_DEPS := $(SDK_C_SRC) $(SDK_C_HDR) sdk/c/px_table.h sdk/c/module.mk
# wasi-libc carries DWARF; keep the name section for trap backtraces.
SDK_C_CFLAGS := -Wextra -Wno-unused-parameter -Wl,--strip-debug

.PHONY: sdk-c
sdk-c: $(SDK_C_DEPS)
