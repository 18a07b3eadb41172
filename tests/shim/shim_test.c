/*
 * The shim (see pw__pending_t in src/core/core.h) against the plain path:
 * one plugin calls every hostcall that returns bytes, once in a VM whose
 * imports go through the shim and once in a VM whose engine refuses
 * linked imports (so the core falls back on the plain path); what the
 * plugin got must be the same, byte for byte, and right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "../pwtest.h"
#include "../pwtest_v8.h"

#define NREC 21

static pw_map_t *hdrs;
static char big[1000];

static int
t_map_get(const pw_hctx_t *c, pw_map_type_t t, pw_str_t k, pw_str_t *v)
{
    return pw_map_get(hdrs, k, v);
}

static int
t_map_pairs(const pw_hctx_t *c, pw_map_type_t t, pw_pairs_t *out)
{
    pw_map_pairs(hdrs, out);
    return PW_OK;
}

static int
t_echo(void *data, const pw_hctx_t *c, pw_str_t args, uint8_t **res,
    size_t *rlen)
{
    *res = malloc(args.len + 1);
    if (*res == NULL) {
        return PW_ENOMEM;
    }
    memcpy(*res, args.data, args.len);
    (*res)[args.len] = '!';
    *rlen = args.len + 1;
    return PW_OK;
}

/* An engine like V8 but refusing imports linked to other instances. */
static pw_engine_vt_t plain_vt;

typedef struct {
    pw_engine_t *e;
    pw_module_t *mod;
    pw_vm_t *vm;
    pw_plugin_t *p;
    pw_stream_t *s;
    pw_store_t *store;
} run_t;

static int
t_map_add(const pw_hctx_t *c, pw_map_type_t t, pw_str_t k, pw_str_t v)
{
    return pw_map_add(hdrs, k, v);
}

static int logged;

static void
t_log(const pw_hctx_t *c, pw_log_level_t level, pw_str_t msg)
{
    logged += msg.len == 5 && memcmp(msg.data, "hello", 5) == 0;
}

static pw_host_t host = { .map_get = t_map_get, .map_pairs = t_map_pairs,
                          .map_add = t_map_add, .log = t_log };

/* One engine per process (V8): both VMs share it. */
static void
start_wasm(run_t *r, pw_engine_t *e, const pw_engine_vt_t *vt,
    const char *wasm)
{
    pw_vm_conf_t vc = { .host = &host, .vm_id = PW_STR("shimtest") };
    pw_plugin_conf_t pc = { .name = PW_STR("shimtest"),
                            .config = PW_STR("cfg!") };
    pw_test_vm_t t;
    char err[256] = "";

    memset(r, 0, sizeof(*r));
    r->e = e;
    /* each VM its own store: the shared data and queue start empty */
    pw_test_vm_start(&t, vt, e, wasm, vc);
    r->mod = t.mod;
    r->vm = t.vm;
    r->store = t.store;
    PW_CHECK_EQ_INT(pw_vm_register_foreign(r->vm, PW_STR("echo"), t_echo,
                                           NULL), PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_new(r->vm, &pc, &r->p, err, sizeof(err)),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_stream_new(r->p, PW_STREAM_HTTP, NULL, &r->s),
                    PW_OK);
}

static void
start(run_t *r, pw_engine_t *e, const pw_engine_vt_t *vt)
{
    start_wasm(r, e, vt, "bytes.wasm");
}

static void
stop(run_t *r)
{
    pw_stream_free(r->s);
    pw_plugin_free(r->p);
    pw_test_vm_stop(&(pw_test_vm_t){ r->mod, r->vm, r->store });
}

static uint32_t
rd32(run_t *r, uint32_t ptr)
{
    uint8_t b[4];

    PW_CHECK_EQ_INT(pw_engine_read(r->vm->vt, r->vm->inst, ptr, 4, b),
                    PW_OK);
    return (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16
           | (uint32_t) b[3] << 24;
}

/* Record k: status, ptr, size, cas; *data the bytes when there are some. */
static void
rec(run_t *r, int k, uint32_t f[4], uint8_t **data)
{
    uint32_t base = 1024 + 16 * (uint32_t) k;
    int i;

    for (i = 0; i < 4; i++) {
        f[i] = rd32(r, base + 4 * (uint32_t) i);
    }
    *data = NULL;
    if (f[0] == PW_STATUS_OK && f[2] != 0xAAAAAAAA && f[2] > 0) {
        *data = malloc(f[2]);
        PW_CHECK(*data != NULL);
        PW_CHECK_EQ_INT(pw_engine_read(r->vm->vt, r->vm->inst, f[1], f[2],
                                       *data), PW_OK);
    }
}

static void
check_bytes(run_t *r, int k, int status, const char *want, size_t wlen)
{
    uint32_t f[4];
    uint8_t *d;

    rec(r, k, f, &d);
    if ((int) f[0] != status) {
        fprintf(stderr, "  record %d: status %u, expected %d\n", k, f[0],
                status);
        PW_CHECK(0);
    }
    if (want == NULL) {
        /* failed: the outs stay untouched */
        PW_CHECK_EQ_INT(f[1], 0xAAAAAAAA);
        PW_CHECK_EQ_INT(f[2], 0xAAAAAAAA);
    } else {
        PW_CHECK_EQ_INT(f[2], wlen);
        PW_CHECK(wlen == 0 ? f[1] == 0 : f[1] != 0);
        PW_CHECK(wlen == 0 || memcmp(d, want, wlen) == 0);
    }
    free(d);
}

static void
setup_host(void)
{
    memset(big, 'B', sizeof(big));
    PW_CHECK_EQ_INT(pw_map_new(&hdrs), PW_OK);
    PW_CHECK_EQ_INT(pw_map_add(hdrs, PW_STR(":path"), PW_STR("/")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_add(hdrs, PW_STR("x-small"), PW_STR("abc")),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_map_add(hdrs, PW_STR("x-big"),
                               ((pw_str_t){ big, sizeof(big) })), PW_OK);
    plain_vt = pw_engine_v8;
    plain_vt.instantiate = pw_test_refuse_links;
}

static pw_engine_t *
engine(void)
{
    pw_engine_t *e;
    char err[256];

    PW_CHECK_EQ_INT(pw_engine_v8.init(&(pw_engine_conf_t){ 0 }, &e, err,
                                      sizeof(err)), PW_OK);
    return e;
}

PW_TEST(shim_used_and_right)
{
    pw_engine_t *e;
    pw_action_t act;
    run_t r;
    uint32_t f[4];
    uint8_t *d;

    setup_host();
    e = engine();
    start(&r, e, &pw_engine_v8);
    PW_CHECK(r.vm->shim_inst != NULL);
    PW_CHECK(r.vm->shim_armed);
    PW_CHECK_EQ_INT(pw_http_request_headers(r.s, 0, 1, &act), PW_OK);
    PW_CHECK(!pw_vm_failed(r.vm));

    check_bytes(&r, 0, PW_STATUS_OK, "abc", 3);
    check_bytes(&r, 1, PW_STATUS_NOT_FOUND, NULL, 0);
    check_bytes(&r, 3, PW_STATUS_OK, "cfg!", 4);
    check_bytes(&r, 4, PW_STATUS_OK, "shimtest", 8);
    check_bytes(&r, 5, PW_STATUS_OK, "v1", 2);
    check_bytes(&r, 6, PW_STATUS_OK, "item", 4);
    check_bytes(&r, 7, PW_STATUS_EMPTY, NULL, 0);
    check_bytes(&r, 8, PW_STATUS_OK, "", 0);
    check_bytes(&r, 9, PW_STATUS_OK, "xyz!", 4);
    check_bytes(&r, 10, PW_STATUS_INVALID_MEMORY_ACCESS, NULL, 0);
    check_bytes(&r, 11, PW_STATUS_OK, "", 0);
    check_bytes(&r, 12, PW_STATUS_OK, big, sizeof(big));
    check_bytes(&r, 13, PW_STATUS_INVALID_MEMORY_ACCESS, NULL, 0);
    check_bytes(&r, 14, PW_STATUS_OK, big, sizeof(big));
    check_bytes(&r, 20, PW_STATUS_OK, "abc", 3);
    /* cas written with the value, not when the allocation failed */
    rec(&r, 5, f, &d);
    PW_CHECK(f[3] != 0xAAAAAAAA && f[3] != 0);
    free(d);
    check_bytes(&r, 15, PW_STATUS_INVALID_MEMORY_ACCESS, NULL, 0);
    rec(&r, 15, f, &d);
    PW_CHECK_EQ_INT(f[3], 0xAAAAAAAA);
    /* the status code out of get_status */
    rec(&r, 8, f, &d);
    PW_CHECK_EQ_INT(f[3], 0);
    /* the stash is released when the call leaves */
    PW_CHECK(!r.vm->pending.active);
    stop(&r);
    pw_engine_v8.destroy(e);
    pw_map_free(hdrs);
}

PW_TEST(shim_and_plain_identical)
{
    pw_engine_t *e;
    pw_action_t act;
    run_t a, b;
    uint32_t fa[4], fb[4];
    uint8_t *da, *db;
    int k;

    setup_host();
    e = engine();
    start(&a, e, &pw_engine_v8);
    start(&b, e, &plain_vt);
    PW_CHECK(a.vm->shim_armed);
    PW_CHECK(b.vm->shim_inst == NULL && !b.vm->shim_armed);
    PW_CHECK_EQ_INT(pw_http_request_headers(a.s, 0, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(b.s, 0, 1, &act), PW_OK);
    for (k = 0; k < NREC; k++) {
        rec(&a, k, fa, &da);
        rec(&b, k, fb, &db);
        if (memcmp(fa, fb, sizeof(fa)) != 0) {
            fprintf(stderr, "  record %d: shim %u %u %u %u, plain %u %u %u "
                    "%u\n", k, fa[0], fa[1], fa[2], fa[3], fb[0], fb[1],
                    fb[2], fb[3]);
            PW_CHECK(0);
        }
        PW_CHECK((da == NULL) == (db == NULL));
        PW_CHECK(da == NULL || memcmp(da, db, fa[2]) == 0);
        free(da);
        free(db);
    }
    /* the allocators saw the same sizes in the same order */
    stop(&a);
    stop(&b);
    pw_engine_v8.destroy(e);
    pw_map_free(hdrs);
}

PW_TEST(allocator_trap_fails_vm_alike)
{
    pw_engine_t *e;
    pw_action_t act;
    run_t a, b;

    setup_host();
    e = engine();
    start(&a, e, &pw_engine_v8);
    start(&b, e, &plain_vt);
    PW_CHECK_EQ_INT(pw_http_request_headers(a.s, 1, 1, &act), PW_EFAILED);
    PW_CHECK_EQ_INT(pw_http_request_headers(b.s, 1, 1, &act), PW_EFAILED);
    PW_CHECK(pw_vm_failed(a.vm) && pw_vm_failed(b.vm));
    PW_CHECK_EQ_STR(pw_vm_fail_reason(a.vm), pw_vm_fail_reason(b.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(a.vm),
                    "trap in proxy_on_memory_allocate: ") != NULL);
    PW_CHECK(strstr(pw_vm_fail_reason(a.vm), "unreachable") != NULL);
    PW_CHECK_EQ_STR(pw_vm_last_trap(a.vm)->message,
                    pw_vm_last_trap(b.vm)->message);
    PW_CHECK_EQ_STR(pw_vm_last_trap(a.vm)->message,
                    "plugin failed while allocating memory");
    PW_CHECK(!a.vm->pending.active);
    stop(&a);
    stop(&b);
    pw_engine_v8.destroy(e);
    pw_map_free(hdrs);
}

/* counted by the V8 backend: fast and plain host function calls */
extern unsigned long pw__v8_fast_calls;
extern unsigned long pw__v8_host_calls;

/* Run grow.wasm's scenario; check the value and the calls it took. */
static void
grow_run(run_t *r, int scenario, long fast, long plain, uint32_t want_ptr)
{
    unsigned long f0 = pw__v8_fast_calls, h0 = pw__v8_host_calls;
    pw_action_t act;
    uint32_t f[4];
    uint8_t *d;

    PW_CHECK_EQ_INT(pw_http_request_headers(r->s, (uint32_t) scenario, 1,
                                            &act), PW_OK);
    PW_CHECK(!pw_vm_failed(r->vm));
    if ((long) (pw__v8_fast_calls - f0) != fast
        || (long) (pw__v8_host_calls - h0) != plain)
    {
        fprintf(stderr, "  scenario %d: %lu fast, %lu plain; expected %ld, "
                "%ld\n", scenario, pw__v8_fast_calls - f0,
                pw__v8_host_calls - h0, fast, plain);
        PW_CHECK(0);
    }
    rec(r, 0, f, &d);
    PW_CHECK_EQ_INT(f[0], PW_STATUS_OK);
    PW_CHECK_EQ_INT(f[2], 3);
    PW_CHECK(d != NULL && memcmp(d, "abc", 3) == 0);
    PW_CHECK(want_ptr == 0 || f[1] == want_ptr);
    free(d);
}

/*
 * The fast path is the one taken once the memory is known, needs no plain
 * call at all, and steps aside (to the plain one) exactly when the memory
 * grew since it was last seen: before phase 1, or in the allocator.
 */
PW_TEST(shim_fast_path_and_growth)
{
    pw_engine_t *e;
    run_t r;

    setup_host();
    e = engine();
    start_wasm(&r, e, &pw_engine_v8, "grow.wasm");
    PW_CHECK(r.vm->shim_armed);

    /* the first call learns the memory on the plain phase 1 */
    grow_run(&r, 0, 2, 1, 0);
    grow_run(&r, 0, 2, 0, 0);
    grow_run(&r, 0, 2, 0, 0);
    /* grown before the call: phase 1 plain, phase 2 fast */
    grow_run(&r, 1, 2, 1, 0);
    grow_run(&r, 0, 2, 0, 0);
    /* grown by the allocator: phase 1 fast, phase 2 plain; the value is
     * in the new (third) page */
    grow_run(&r, 2, 2, 1, 2 * 65536);
    grow_run(&r, 0, 2, 0, 0);
    stop(&r);
    pw_engine_v8.destroy(e);
    pw_map_free(hdrs);
}

PW_TEST(shim_bytes_validate)
{
    const char *names[] = { "proxy_get_header_map_value",
                            "proxy_get_status", "proxy_get_shared_data" };
    const pw__hostcall_t *h[3];
    pw_wasm_info_t *info;
    char err[256];
    uint8_t *b;
    size_t len;
    int i;

    for (i = 0; i < 3; i++) {
        h[i] = pw__hostcall_find("env", names[i]);
        PW_CHECK(h[i] != NULL && pw__hostcall_shimmed(h[i]));
    }
    PW_CHECK(!pw__hostcall_shimmed(pw__hostcall_find("env",
                                                     "proxy_http_call")));
    PW_CHECK_EQ_INT(pw__shim_build(h, 3, &b, &len), PW_OK);
    /* the reader sees the imports and exports the core links */
    PW_CHECK_EQ_INT(pw_wasm_parse(b, len, &info, err, sizeof(err)), PW_OK);
    /* plain phase 1 (pages first): the fast path is the binder's */
    PW_CHECK_EQ_INT(info->nimports, 3);
    PW_CHECK_EQ_STR(info->imports[1].module, "pw");
    PW_CHECK_EQ_STR(info->imports[1].name, "proxy_get_status");
    PW_CHECK_EQ_STR(info->imports[1].sig, "iiii:i");
    PW_CHECK(pw_wasm_find_export(info, "proxy_get_status") != NULL);
    PW_CHECK_EQ_STR(pw_wasm_find_export(info, "proxy_get_shared_data")->sig,
                    "iiiii:i");
    pw_wasm_info_free(info);
    free(b);

    PW_CHECK_EQ_INT(pw__shim_binder(h, 3, &b, &len), PW_OK);
    PW_CHECK_EQ_INT(pw_wasm_parse(b, len, &info, err, sizeof(err)), PW_OK);
    /* the table, plain and fast phase 1, plain and fast done, then the
     * plugin's allocator and memory */
    PW_CHECK_EQ_INT(info->nimports, 11);
    PW_CHECK_EQ_INT(info->imports[0].kind, PW_EXTERN_TABLE);
    PW_CHECK_EQ_STR(info->imports[2].module, "pw");
    PW_CHECK_EQ_STR(info->imports[2].sig, "iiii:i");
    PW_CHECK_EQ_STR(info->imports[5].module, "pw.fast");
    PW_CHECK_EQ_STR(info->imports[5].name, "proxy_get_status");
    PW_CHECK_EQ_STR(info->imports[5].sig, "iiii:i");
    PW_CHECK_EQ_STR(info->imports[7].module, "pw");
    PW_CHECK_EQ_STR(info->imports[7].name, "pw.done");
    PW_CHECK_EQ_STR(info->imports[7].sig, "ii:i");
    PW_CHECK_EQ_STR(info->imports[8].module, "pw.fast");
    PW_CHECK_EQ_STR(info->imports[8].name, "pw.done");
    PW_CHECK_EQ_STR(info->imports[9].name, "alloc");
    PW_CHECK_EQ_STR(info->imports[9].sig, "i:i");
    PW_CHECK_EQ_INT(info->imports[10].kind, PW_EXTERN_MEMORY);
    pw_wasm_info_free(info);
    free(b);
}

/* How many values of header x-added the host has. */
static size_t
added(void)
{
    pw_pairs_t pairs;
    size_t i, n = 0;

    pw_map_pairs(hdrs, &pairs);
    for (i = 0; i < pairs.n; i++) {
        n += pairs.pairs[i].key.len == 7
             && memcmp(pairs.pairs[i].key.data, "x-added", 7) == 0;
    }
    return n;
}

/*
 * Hostcalls that return a status only take the fast path too, with the
 * same effect and status as the plain path, errors included.
 */
PW_TEST(status_only_fast_path)
{
    uint64_t ea, eb;
    unsigned long f0, h0;
    pw_action_t act;
    pw_engine_t *e;
    uint32_t st[2];
    run_t a, b;
    size_t n;

    setup_host();
    e = engine();
    PW_CHECK_EQ_INT(pw__hostcall_shimmed(pw__hostcall_find("env",
                    "proxy_add_header_map_value")), 3);
    start_wasm(&a, e, &pw_engine_v8, "status.wasm");
    start_wasm(&b, e, &plain_vt, "status.wasm");
    PW_CHECK(a.vm->shim_armed && !b.vm->shim_armed);

    /* the first call learns the memory on the plain path */
    PW_CHECK_EQ_INT(pw_http_request_headers(a.s, 1, 1, &act), PW_OK);
    n = added();
    f0 = pw__v8_fast_calls;
    h0 = pw__v8_host_calls;
    logged = 0;
    PW_CHECK_EQ_INT(pw_http_request_headers(a.s, 5, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw__v8_fast_calls - f0, 6);
    PW_CHECK_EQ_INT(pw__v8_host_calls - h0, 0);
    PW_CHECK_EQ_INT(added(), n + 5);
    PW_CHECK_EQ_INT(logged, 1);
    PW_CHECK_EQ_INT(pw_engine_read(a.vm->vt, a.vm->inst, 1024, 8, st),
                    PW_OK);
    PW_CHECK(st[0] == PW_STATUS_OK && st[1] == PW_STATUS_OK);

    /* the plain path does the same */
    PW_CHECK_EQ_INT(pw_http_request_headers(b.s, 5, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(added(), n + 10);
    PW_CHECK_EQ_INT(logged, 2);

    /* an error status is the same on both, and counted on both; the
     * events counter moves with it, and only then */
    PW_CHECK_EQ_INT(pw_vm_hostcall_errors(a.vm), 0);
    ea = *pw_vm_events(a.vm);
    eb = *pw_vm_events(b.vm);
    PW_CHECK_EQ_INT(pw_http_request_headers(a.s, 5, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(b.s, 5, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(*pw_vm_events(a.vm), ea);
    PW_CHECK_EQ_INT(*pw_vm_events(b.vm), eb);
    PW_CHECK_EQ_INT(pw_http_request_headers(a.s, 100, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(b.s, 100, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_engine_read(a.vm->vt, a.vm->inst, 1024, 4, &st[0]),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_engine_read(b.vm->vt, b.vm->inst, 1024, 4, &st[1]),
                    PW_OK);
    PW_CHECK_EQ_INT(st[0], PW_STATUS_INVALID_MEMORY_ACCESS);
    PW_CHECK_EQ_INT(st[1], PW_STATUS_INVALID_MEMORY_ACCESS);
    PW_CHECK_EQ_INT(pw_vm_hostcall_errors(a.vm), 1);
    PW_CHECK_EQ_INT(pw_vm_hostcall_errors(b.vm), 1);
    PW_CHECK_EQ_INT(*pw_vm_events(a.vm), ea + 1);
    PW_CHECK_EQ_INT(*pw_vm_events(b.vm), eb + 1);
    PW_CHECK_EQ_INT(added(), n + 20);
    stop(&a);
    stop(&b);
    pw_engine_v8.destroy(e);
    pw_map_free(hdrs);
}

int
main(int argc, char **argv)
{
    return pw_test_main(argc, argv, (pw_test_t[]){
        PW_TEST_ENTRY(shim_used_and_right),
        PW_TEST_ENTRY(shim_and_plain_identical),
        PW_TEST_ENTRY(allocator_trap_fails_vm_alike),
        PW_TEST_ENTRY(shim_bytes_validate),
        PW_TEST_ENTRY(shim_fast_path_and_growth),
        PW_TEST_ENTRY(status_only_fast_path),
        { 0 } });
}
