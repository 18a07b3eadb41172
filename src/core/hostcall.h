/*
 * Hostcall internals shared by the env (Proxy-Wasm) and WASI handlers.
 *
 * Guest memory policy: every pointer and size from the plugin goes through
 * pw__hc_span(): sizes are u32, sums are computed in 64 bits, and the range
 * must lie inside the current memory. A bad pointer makes the hostcall
 * answer INVALID_MEMORY_ACCESS (WASI: FAULT); it never traps the plugin and
 * never touches memory outside the guest. Host pointers into guest memory
 * are re-derived after every call into the plugin (allocation).
 */
#ifndef PW_HOSTCALL_H
#define PW_HOSTCALL_H

#include <string.h>

#include "core/core.h"

/*
 * A handler's return: a status (>= 0) for the guest, PW__HC_TRAP, or
 * PW__HC_DEFER when the bytes to return wait in vm->pending for the shim.
 */
#define PW__HC_TRAP (-1)
#define PW__HC_DEFER (-2)

typedef struct {
    pw_vm_t *vm;
    pw_einstance_t *inst;
    uint8_t *base;
    size_t size;
    const char *trap;             /* reason when returning PW__HC_TRAP */
    pw_hctx_t c;
    unsigned index;               /* of the hostcall in the table */
    unsigned defer:1;             /* bytes may wait in vm->pending */
    unsigned fast:1;              /* PW_IMPORT_FAST: never call the guest */
    unsigned post:1;              /* write post_val at post_ptr last */
    uint32_t post_ptr;
    uint32_t post_val;
} pw__hc_t;

typedef int (*pw__hc_fn_t)(pw__hc_t *hc, const pw_val_t *a);

struct pw__hostcall_s {
    const char *module;           /* "env", or "wasi" for both WASI names */
    const char *name;
    const char *sig;
    unsigned abi;
    pw__hc_fn_t fn;
    const char *note;
    unsigned shim;                /* linked through the shim: 1 returns
                                     bytes (fast path too), 2 returns bytes
                                     (never fast), 3 a status only (fast
                                     path too) */
};

int pw__hc_mem(pw__hc_t *hc);

/*
 * Inline: every hostcall goes through these, and -fPIC keeps gcc from
 * inlining global functions across their callers.
 */
static inline int
pw__hc_span(pw__hc_t *hc, uint32_t ptr, uint32_t len, uint8_t **p)
{
    if ((uint64_t) ptr + len > hc->size || hc->base == NULL) {
        return PW_EBOUNDS;
    }
    *p = hc->base + ptr;
    return PW_OK;
}

static inline int
pw__hc_str(pw__hc_t *hc, uint32_t ptr, uint32_t len, pw_str_t *s)
{
    uint8_t *p;

    if (len == 0) {
        s->data = "";
        s->len = 0;
        return PW_OK;
    }
    if (pw__hc_span(hc, ptr, len, &p) != PW_OK) {
        return PW_EBOUNDS;
    }
    s->data = (const char *) p;
    s->len = len;
    return PW_OK;
}

static inline int
pw__hc_put_u32(pw__hc_t *hc, uint32_t ptr, uint32_t v)
{
    uint8_t *p, b[4];

    if (pw__hc_span(hc, ptr, 4, &p) != PW_OK) {
        return PW_EBOUNDS;
    }
    b[0] = (uint8_t) v;
    b[1] = (uint8_t) (v >> 8);
    b[2] = (uint8_t) (v >> 16);
    b[3] = (uint8_t) (v >> 24);
    memcpy(p, b, 4);
    return PW_OK;
}

static inline int
pw__hc_put_u64(pw__hc_t *hc, uint32_t ptr, uint64_t v)
{
    uint8_t *p, b[8];
    int i;

    if (pw__hc_span(hc, ptr, 8, &p) != PW_OK) {
        return PW_EBOUNDS;
    }
    for (i = 0; i < 8; i++) {
        b[i] = (uint8_t) (v >> (8 * i));
    }
    memcpy(p, b, 8);
    return PW_OK;
}
uint64_t pw__hc_clock(pw__hc_t *hc, int monotonic);
/* Log once per VM and hostcall that the host lacks it. */
int pw__hc_unimplemented(pw__hc_t *hc);

#define PW__U32(v) ((uint32_t) (v).of.i32)

/* WASI handlers (wasi.c); the table in hostcalls.c names them. */
#define PW__WASI_HANDLERS(X)                                                \
    X(args_get) X(args_sizes_get) X(environ_get) X(environ_sizes_get)       \
    X(clock_res_get) X(clock_time_get) X(fd_write) X(fd_close)              \
    X(fd_noseek) X(fd_fdstat_get) X(fd_badf) X(nosys) X(notcapable)         \
    X(path_open) X(poll_oneoff) X(proc_exit) X(sched_yield) X(random_get)

#define PW__WASI_DECL(n) int pw__wasi_##n(pw__hc_t *hc, const pw_val_t *a);
PW__WASI_HANDLERS(PW__WASI_DECL)
#undef PW__WASI_DECL

#endif /* PW_HOSTCALL_H */
