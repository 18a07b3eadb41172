/*
 * The batch (src/core/batch.c) against one callback per engine entry: the
 * plugin (wat/seq.wat) records every callback with its arguments; a VM
 * whose engine cannot make the batch calls one by one. Both must see the
 * same calls, fail the same way, and the batch must take fewer entries
 * into the engine.
 *
 * On V8 (the default) the batch is a module linked to the plugin; a VM
 * whose engine refuses linked imports has none. With PW_TEST_ENGINE=w2c
 * the engine makes the sequences itself (call_seq); without call_seq it
 * has none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "../pwtest.h"
#include "../pwtest_v8.h"

/* the engine under test (V8 or $PW_TEST_ENGINE) */
static const pw_engine_vt_t *base;
/* it, counting entries (calls from the host into wasm) */
static pw_engine_vt_t counting_vt;
/* the same, unable to make the batch */
static pw_engine_vt_t plain_vt;
static unsigned long entries;

static int
count_call(pw_einstance_t *inst, pw_efunc_t *fn, const pw_val_t *args,
    size_t nargs, pw_val_t *results, size_t nresults, pw_trap_t *trap)
{
    entries++;
    return base->call(inst, fn, args, nargs, results, nresults, trap);
}

static int
count_call_i32(pw_einstance_t *inst, pw_efunc_t *fn, const uint32_t *args,
    size_t nargs, uint32_t *result, pw_trap_t *trap)
{
    entries++;
    return base->call_i32(inst, fn, args, nargs, result, trap);
}

static int
count_call_seq(pw_einstance_t *inst, const pw_eseq_t *seq,
    const uint32_t *args, pw_ecall_go_t go, void *go_data, uint32_t *result,
    size_t *ran, pw_trap_t *trap)
{
    entries++;
    return base->call_seq(inst, seq, args, go, go_data, result, ran, trap);
}

/* whether the VM made sequence k in one entry */
static int
batched(const pw_vm_t *vm, pw__batch_kind_t k)
{
    return vm->batch_n[k] != 0;
}

static int
batched_none(const pw_vm_t *vm)
{
    int k;

    for (k = 0; k < PW__BATCH_MAX; k++) {
        if (batched(vm, (pw__batch_kind_t) k)) {
            return 0;
        }
    }
    return vm->batch_inst == NULL;
}

typedef struct {
    pw_module_t *mod;
    pw_vm_t *vm;
    pw_plugin_t *p;
    pw_store_t *store;
} run_t;

static pw_host_t host;

static void
start(run_t *r, pw_engine_t *e, const pw_engine_vt_t *vt, const char *wasm,
    uint32_t max_call_ms)
{
    pw_vm_conf_t vc = { .host = &host, .vm_id = PW_STR("batch"),
                        .max_call_ms = max_call_ms };
    pw_plugin_conf_t pc = { .name = PW_STR("batch") };
    pw_test_vm_t t;
    char err[256] = "";

    memset(r, 0, sizeof(*r));
    pw_test_vm_start(&t, vt, e, wasm, vc);
    r->mod = t.mod;
    r->vm = t.vm;
    r->store = t.store;
    PW_CHECK_EQ_INT(pw_plugin_new(r->vm, &pc, &r->p, err, sizeof(err)),
                    PW_OK);
}

static void
stop(run_t *r)
{
    pw_plugin_free(r->p);
    pw_test_vm_stop(&(pw_test_vm_t){ r->mod, r->vm, r->store });
}

/* Call the plugin's export name(n) directly (set_trap, set_rh). */
static void
guest_set(run_t *r, const char *name, int32_t n)
{
    pw_efunc_t *fn;
    pw_val_t a = { .kind = PW_I32, .of.i32 = n };

    PW_CHECK_EQ_INT(base->lookup(r->vm->inst, name, &fn, NULL), PW_OK);
    PW_CHECK_EQ_INT(base->call(r->vm->inst, fn, &a, 1, NULL, 0, NULL),
                    PW_OK);
}

/* What the plugin traps in: the callback numbered n (seq.wat). */
static void
set_trap(run_t *r, int32_t n)
{
    guest_set(r, "set_trap", n);
}

/* The plugin's records: count, then (id, a, b, c) each, into rec[]. */
static uint32_t
records(run_t *r, uint32_t rec[][4], uint32_t max)
{
    uint32_t n;

    PW_CHECK_EQ_INT(pw_engine_read(r->vm->vt, r->vm->inst, 1020, 4, &n),
                    PW_OK);
    PW_CHECK(n <= max);
    PW_CHECK_EQ_INT(pw_engine_read(r->vm->vt, r->vm->inst, 1024, 16 * n,
                                   rec), PW_OK);
    return n;
}

static void
same_records(run_t *a, run_t *b)
{
    uint32_t ra[32][4], rb[32][4], na, nb, i;

    na = records(a, ra, 32);
    nb = records(b, rb, 32);
    PW_CHECK_EQ_INT(na, nb);
    for (i = 0; i < na; i++) {
        if (memcmp(ra[i], rb[i], sizeof(ra[i])) != 0) {
            fprintf(stderr, "  record %u: batch %d %d %d %d, plain %d %d %d "
                    "%d\n", i, (int) ra[i][0], (int) ra[i][1],
                    (int) ra[i][2], (int) ra[i][3], (int) rb[i][0],
                    (int) rb[i][1], (int) rb[i][2], (int) rb[i][3]);
            PW_CHECK(0);
        }
    }
}

static pw_engine_t *
engine(void)
{
    pw_engine_conf_t conf = { 0 };
    char err[256], cache[4096];
    pw_engine_t *e;

    counting_vt = *base;
    counting_vt.call = count_call;
    if (base->call_i32 != NULL) {
        counting_vt.call_i32 = count_call_i32;
    }
    if (base->call_seq != NULL) {
        counting_vt.call_seq = count_call_seq;
    }
    plain_vt = counting_vt;
    if (base == &pw_engine_v8) {
        plain_vt.instantiate = pw_test_refuse_links;
    }
    plain_vt.seq_prepare = NULL;
    plain_vt.call_seq = NULL;
    /* w2c: one build of each plugin for all the tests */
    pw_test_beside("w2c-cache", cache, sizeof(cache));
    conf.cache_dir = cache;
    PW_CHECK_EQ_INT(base->init(&conf, &e, err, sizeof(err)), PW_OK);
    return e;
}

/* One HTTP stream: request headers (n=7, eos), then the end. */
static unsigned long
http_stream(run_t *r, int want_rc, pw_action_t *act)
{
    unsigned long before = entries;
    pw_stream_t *s;

    PW_CHECK_EQ_INT(pw_stream_new(r->p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 7, 1, act), want_rc);
    pw_stream_free(s);
    return entries - before;
}

PW_TEST(same_calls_fewer_entries)
{
    uint32_t rec[32][4], n, sid, root;
    pw_action_t act = 0;
    pw_engine_t *e;
    unsigned long ea, eb;
    run_t a, b;

    e = engine();
    start(&a, e, &counting_vt, "seq.wasm", 0);
    start(&b, e, &plain_vt, "seq.wasm", 0);
    PW_CHECK(batched(a.vm, PW__BATCH_OPEN_HTTP));
    PW_CHECK(batched(a.vm, PW__BATCH_OPEN_TCP));
    PW_CHECK(batched(a.vm, PW__BATCH_CLOSE));
    PW_CHECK(batched_none(b.vm));

    ea = http_stream(&a, PW_OK, &act);
    PW_CHECK_EQ_INT(act, 107);
    eb = http_stream(&b, PW_OK, &act);
    PW_CHECK_EQ_INT(act, 107);
    /* two entries instead of five */
    PW_CHECK_EQ_INT(ea, 2);
    PW_CHECK_EQ_INT(eb, 5);
    same_records(&a, &b);

    /* exactly the calls, with the arguments, in the order of the ABI */
    n = records(&a, rec, 32);
    PW_CHECK_EQ_INT(n, 6);
    root = rec[0][1];
    sid = rec[1][1];
    PW_CHECK_EQ_INT(rec[0][0], 1);                  /* the root's create */
    PW_CHECK(sid != root);
    PW_CHECK(rec[1][0] == 1 && rec[1][2] == root);
    PW_CHECK(rec[2][0] == 2 && rec[2][1] == sid && rec[2][2] == 7
             && rec[2][3] == 1);
    PW_CHECK(rec[3][0] == 3 && rec[3][1] == sid);
    PW_CHECK(rec[4][0] == 4 && rec[4][1] == sid);
    PW_CHECK(rec[5][0] == 5 && rec[5][1] == sid);

    stop(&a);
    stop(&b);
    base->destroy(e);
}

/* A trap anywhere in a sequence: same failure, same calls made. */
PW_TEST(trap_at_each_step_alike)
{
    static const char *const names[] = {
        NULL, "proxy_on_context_create", "proxy_on_request_headers",
        "proxy_on_done", "proxy_on_log", "proxy_on_delete"
    };
    char want[128];
    pw_action_t act;
    pw_engine_t *e;
    run_t a, b;
    int t, rc;

    e = engine();
    for (t = 1; t <= 5; t++) {
        start(&a, e, &counting_vt, "seq.wasm", 0);
        start(&b, e, &plain_vt, "seq.wasm", 0);
        set_trap(&a, t);
        set_trap(&b, t);
        rc = t <= 2 ? PW_EFAILED : PW_OK;
        http_stream(&a, rc, &act);
        http_stream(&b, rc, &act);
        PW_CHECK(pw_vm_failed(a.vm) && pw_vm_failed(b.vm));
        PW_CHECK_EQ_STR(pw_vm_fail_reason(a.vm), pw_vm_fail_reason(b.vm));
        snprintf(want, sizeof(want), "trap in %s: ", names[t]);
        if (strstr(pw_vm_fail_reason(a.vm), want) == NULL) {
            fprintf(stderr, "  trap %d: \"%s\"\n", t,
                    pw_vm_fail_reason(a.vm));
            PW_CHECK(0);
        }
        same_records(&a, &b);
        stop(&a);
        stop(&b);
    }
    base->destroy(e);
}

/* ABI 0.1.0: on_request_headers takes (ctx, n), no eos. */
PW_TEST(abi_0_1_0_request_headers)
{
    uint32_t rec[32][4], n;
    pw_action_t act = 0;
    pw_engine_t *e;
    run_t a, b;

    e = engine();
    start(&a, e, &counting_vt, "seq010.wasm", 0);
    start(&b, e, &plain_vt, "seq010.wasm", 0);
    PW_CHECK(batched(a.vm, PW__BATCH_OPEN_HTTP));
    PW_CHECK_EQ_INT(http_stream(&a, PW_OK, &act), 2);
    PW_CHECK_EQ_INT(act, 107);
    http_stream(&b, PW_OK, &act);
    same_records(&a, &b);
    n = records(&a, rec, 32);
    PW_CHECK(n == 6 && rec[2][0] == 2 && rec[2][2] == 7
             && rec[2][3] == 0xffffffff);
    stop(&a);
    stop(&b);
    base->destroy(e);
}

PW_TEST(tcp_new_connection)
{
    pw_action_t act = 0;
    pw_engine_t *e;
    pw_stream_t *s;
    unsigned long before;
    run_t a, b;

    e = engine();
    start(&a, e, &counting_vt, "seq.wasm", 0);
    start(&b, e, &plain_vt, "seq.wasm", 0);
    before = entries;
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_TCP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_tcp_new_connection(s, &act), PW_OK);
    PW_CHECK_EQ_INT(act, 1);
    PW_CHECK_EQ_INT(entries - before, 1);
    pw_stream_free(s);
    PW_CHECK_EQ_INT(pw_stream_new(b.p, PW_STREAM_TCP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_tcp_new_connection(s, &act), PW_OK);
    pw_stream_free(s);
    same_records(&a, &b);
    stop(&a);
    stop(&b);
    base->destroy(e);
}

/* What on_response_headers returns (seq.wat). */
static void
set_rh(run_t *r, int32_t n)
{
    guest_set(r, "set_rh", n);
}

/* the host's answer to "go on to the body?", and how often it was asked */
typedef struct {
    int answer;
    int asked;
} go_t;

static int
go_fn(void *data)
{
    go_t *g = data;

    g->asked++;
    return g->answer;
}

typedef struct {
    int rc;
    pw_action_t ha, ba;
    int body_ran;
    unsigned long entries;
} resp_t;

/*
 * A stream through request headers, then the response's headers and
 * first body data (n=5, size=100, eos): in one call where the VM has the
 * batch, else one by one as a host does (the body when the headers
 * continue and the host would go on); then the end.
 */
static resp_t
resp_stream(run_t *r, go_t *g)
{
    pw_action_t act;
    pw_stream_t *s;
    resp_t o = { 0 };
    unsigned long before;

    PW_CHECK_EQ_INT(pw_stream_new(r->p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 7, 0, &act), PW_OK);
    before = entries;
    o.rc = pw_http_response_headers_body(s, 5, 0, 100, 1, go_fn, g, &o.ha,
                                         &o.ba, &o.body_ran);
    if (o.rc == PW_ENOTFOUND) {
        o.rc = pw_http_response_headers(s, 5, 0, &o.ha);
        if (o.rc == PW_OK && o.ha == PW_ACTION_CONTINUE && go_fn(g)) {
            o.body_ran = 1;
            o.rc = pw_http_response_body(s, 100, 1, &o.ba);
        }
    }
    o.entries = entries - before;
    pw_stream_free(s);
    return o;
}

/* Response headers and body in one entry: same calls as one by one. */
PW_TEST(response_headers_body_one_entry)
{
    static const char *const wasm[] = { "seq.wasm", "seq010.wasm" };
    uint32_t rec[32][4], n, sid;
    go_t ga = { 1, 0 }, gb = { 1, 0 };
    pw_engine_t *e;
    resp_t oa, ob;
    run_t a, b;
    int w;

    e = engine();
    for (w = 0; w < 2; w++) {
        start(&a, e, &counting_vt, wasm[w], 0);
        start(&b, e, &plain_vt, wasm[w], 0);
        PW_CHECK(batched(a.vm, PW__BATCH_RESP_HTTP));
        oa = resp_stream(&a, &ga);
        ob = resp_stream(&b, &gb);
        PW_CHECK_EQ_INT(oa.rc, PW_OK);
        PW_CHECK_EQ_INT(ob.rc, PW_OK);
        PW_CHECK(oa.body_ran && ob.body_ran);
        PW_CHECK_EQ_INT(oa.ha, 0);
        PW_CHECK_EQ_INT(oa.ba, 300);
        PW_CHECK_EQ_INT(ob.ba, 300);
        PW_CHECK_EQ_INT(oa.entries, 1);
        PW_CHECK_EQ_INT(ob.entries, 2);
        PW_CHECK_EQ_INT(ga.asked, 1);
        same_records(&a, &b);
        n = records(&a, rec, 32);
        PW_CHECK_EQ_INT(n, 8);
        sid = rec[1][1];
        PW_CHECK(rec[3][0] == 7 && rec[3][1] == sid && rec[3][2] == 5
                 && rec[3][3] == (w == 0 ? 0 : 0xffffffff));
        PW_CHECK(rec[4][0] == 8 && rec[4][1] == sid && rec[4][2] == 100
                 && rec[4][3] == 1);
        PW_CHECK(rec[5][0] == 3);
        stop(&a);
        stop(&b);
        ga.asked = gb.asked = 0;
    }
    base->destroy(e);
}

/* The body callback waits for the headers' CONTINUE and the host's go. */
PW_TEST(response_body_only_when_let)
{
    go_t ga = { 0, 0 }, gb = { 0, 0 };
    uint32_t rec[32][4];
    pw_engine_t *e;
    resp_t oa, ob;
    run_t a, b;

    e = engine();
    /* the host says no (a local response, a close...) */
    start(&a, e, &counting_vt, "seq.wasm", 0);
    start(&b, e, &plain_vt, "seq.wasm", 0);
    oa = resp_stream(&a, &ga);
    ob = resp_stream(&b, &gb);
    PW_CHECK(oa.rc == PW_OK && !oa.body_ran && !ob.body_ran);
    PW_CHECK_EQ_INT(oa.ha, 0);
    PW_CHECK_EQ_INT(ga.asked, 1);
    same_records(&a, &b);
    PW_CHECK_EQ_INT(records(&a, rec, 32), 7);
    stop(&a);
    stop(&b);

    /* the headers callback stops the stream: the host is not asked */
    ga.answer = gb.answer = 1;
    ga.asked = gb.asked = 0;
    start(&a, e, &counting_vt, "seq.wasm", 0);
    start(&b, e, &plain_vt, "seq.wasm", 0);
    set_rh(&a, 1);
    set_rh(&b, 1);
    oa = resp_stream(&a, &ga);
    ob = resp_stream(&b, &gb);
    PW_CHECK(oa.rc == PW_OK && !oa.body_ran && !ob.body_ran);
    PW_CHECK_EQ_INT(oa.ha, 1);
    PW_CHECK_EQ_INT(ga.asked, 0);
    same_records(&a, &b);
    stop(&a);
    stop(&b);
    base->destroy(e);
}

/* A trap in either callback of the pair names it, as one by one. */
PW_TEST(response_trap_names_the_callback)
{
    static const char *const names[] = {
        "proxy_on_response_headers", "proxy_on_response_body"
    };
    go_t ga = { 1, 0 }, gb = { 1, 0 };
    char want[128];
    pw_engine_t *e;
    resp_t oa, ob;
    run_t a, b;
    int t;

    e = engine();
    for (t = 7; t <= 8; t++) {
        start(&a, e, &counting_vt, "seq.wasm", 0);
        start(&b, e, &plain_vt, "seq.wasm", 0);
        set_trap(&a, t);
        set_trap(&b, t);
        oa = resp_stream(&a, &ga);
        ob = resp_stream(&b, &gb);
        PW_CHECK_EQ_INT(oa.rc, PW_EFAILED);
        PW_CHECK_EQ_INT(ob.rc, PW_EFAILED);
        PW_CHECK_EQ_STR(pw_vm_fail_reason(a.vm), pw_vm_fail_reason(b.vm));
        snprintf(want, sizeof(want), "trap in %s: ", names[t - 7]);
        PW_CHECK(strstr(pw_vm_fail_reason(a.vm), want) != NULL);
        same_records(&a, &b);
        stop(&a);
        stop(&b);
    }
    base->destroy(e);
}

/* max_call_time stops a batched call that runs away, naming the callback */
PW_TEST(interrupt_in_batch)
{
    pw_action_t act;
    pw_engine_t *e;
    run_t a;

    e = engine();
    start(&a, e, &counting_vt, "seq.wasm", 100);
    PW_CHECK(batched(a.vm, PW__BATCH_OPEN_HTTP));
    set_trap(&a, 99);
    http_stream(&a, PW_EFAILED, &act);
    PW_CHECK(strstr(pw_vm_fail_reason(a.vm), "interrupted") != NULL);
    PW_CHECK(strstr(pw_vm_fail_reason(a.vm), "proxy_on_request_headers")
             != NULL);
    stop(&a);
    base->destroy(e);
}

/*
 * Callbacks the plugin says do nothing (px_noop_callbacks, as the C SDK
 * exports it) are not called: noops.wasm traps in each of them. Its
 * stream costs two entries (create, delete). With PW_NO_NOOPS set the
 * host calls them, and the first one traps.
 */
PW_TEST(noop_callbacks_skipped)
{
    uint32_t rec[32][4], n;
    pw_action_t act = 7, ha = 7, ba = 7;
    go_t g = { 1, 0 };
    pw_engine_t *e;
    pw_stream_t *s;
    unsigned long before;
    int ran = 0;
    run_t a, b;

    e = engine();
    start(&a, e, &counting_vt, "noops.wasm", 0);
    PW_CHECK(!batched(a.vm, PW__BATCH_RESP_HTTP));
    before = entries;
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 7, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(pw_http_response_headers_body(s, 5, 0, 100, 1, go_fn, &g,
                                                  &ha, &ba, &ran),
                    PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_http_response_headers(s, 5, 0, &ha), PW_OK);
    PW_CHECK_EQ_INT(pw_http_response_body(s, 100, 1, &ba), PW_OK);
    PW_CHECK_EQ_INT(ha, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(ba, PW_ACTION_CONTINUE);
    pw_stream_free(s);
    PW_CHECK(!pw_vm_failed(a.vm));
    PW_CHECK_EQ_INT(entries - before, 2);
    /* the root's create, the stream's create, its delete */
    n = records(&a, rec, 32);
    PW_CHECK_EQ_INT(n, 3);
    PW_CHECK(rec[0][0] == 1 && rec[1][0] == 1 && rec[2][0] == 5);
    PW_CHECK_EQ_INT(rec[2][1], rec[1][1]);
    stop(&a);

    PW_CHECK_EQ_INT(setenv("PW_NO_NOOPS", "1", 1), 0);
    start(&b, e, &counting_vt, "noops.wasm", 0);
    PW_CHECK_EQ_INT(pw_stream_new(b.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 7, 1, &act), PW_EFAILED);
    PW_CHECK(pw_vm_failed(b.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(b.vm), "proxy_on_request_headers")
             != NULL);
    pw_stream_free(s);
    stop(&b);
    unsetenv("PW_NO_NOOPS");
    base->destroy(e);
}

/* A noop on_response_body ends the pair: the headers callback runs alone,
 * in one entry, and the body's never. */
PW_TEST(noop_response_body_alone)
{
    uint32_t rec[32][4], n;
    go_t g = { 1, 0 };
    pw_engine_t *e;
    pw_stream_t *s;
    resp_t o;
    run_t a;

    e = engine();
    start(&a, e, &counting_vt, "noops_resp.wasm", 0);
    PW_CHECK(!batched(a.vm, PW__BATCH_RESP_HTTP));
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_stream_hooks(s),
                    PW_HOOK_REQUEST_HEADERS | PW_HOOK_RESPONSE_HEADERS);
    pw_stream_free(s);
    o = resp_stream(&a, &g);
    PW_CHECK_EQ_INT(o.rc, PW_OK);
    PW_CHECK(o.body_ran);
    PW_CHECK_EQ_INT(o.ba, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(o.entries, 1);
    PW_CHECK(!pw_vm_failed(a.vm));
    /* roots' create; create, request and response headers, done, log,
     * delete */
    n = records(&a, rec, 32);
    PW_CHECK_EQ_INT(n, 7);
    PW_CHECK(rec[3][0] == 7 && rec[4][0] == 3);
    stop(&a);
    base->destroy(e);
}

/*
 * PX_LAZY_CONTEXT_CREATE (lazy.wasm): the stream's create waits for its
 * first callback that is there (response headers, in one entry with it),
 * so a request whose request-headers callback is a no-op costs two
 * entries (open with the response, close); a stream no callback reached
 * is still created for its on_log. seq.wasm, without the hint, is never
 * planned so.
 */
PW_TEST(lazy_context_create)
{
    uint32_t rec[32][4], n, root, sid;
    pw_action_t act = 7, ha = 7;
    pw_engine_t *e;
    pw_stream_t *s;
    unsigned long before;
    run_t a, b;

    e = engine();
    start(&b, e, &counting_vt, "seq.wasm", 0);
    PW_CHECK(!batched(b.vm, PW__BATCH_OPEN_RESP));
    /* a hook there, or a create to run: not to skip */
    PW_CHECK_EQ_INT(pw_stream_new(b.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK(!pw_stream_skips(s, PW_HOOK_REQUEST_HEADERS));
    PW_CHECK(!pw_stream_skips(s, PW_HOOK_REQUEST_BODY));
    pw_stream_free(s);
    stop(&b);

    start(&a, e, &counting_vt, "lazy.wasm", 0);
    PW_CHECK(batched(a.vm, PW__BATCH_OPEN_RESP));
    before = entries;
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK(pw_stream_skips(s, PW_HOOK_REQUEST_HEADERS));
    PW_CHECK(!pw_stream_skips(s, PW_HOOK_RESPONSE_HEADERS));
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 7, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(entries - before, 0);
    PW_CHECK_EQ_INT(records(&a, rec, 32), 1);       /* the root's create */
    PW_CHECK_EQ_INT(pw_http_response_headers(s, 5, 0, &ha), PW_OK);
    PW_CHECK_EQ_INT(ha, 0);
    PW_CHECK_EQ_INT(entries - before, 1);
    pw_stream_free(s);
    PW_CHECK_EQ_INT(entries - before, 2);
    PW_CHECK(!pw_vm_failed(a.vm));
    /* the root's create; create, response headers, log, delete */
    n = records(&a, rec, 32);
    PW_CHECK_EQ_INT(n, 5);
    root = rec[0][1];
    sid = rec[1][1];
    PW_CHECK(rec[1][0] == 1 && rec[1][2] == root && sid != root);
    PW_CHECK(rec[2][0] == 7 && rec[2][1] == sid && rec[2][2] == 5);
    PW_CHECK(rec[3][0] == 4 && rec[3][1] == sid);
    PW_CHECK(rec[4][0] == 5 && rec[4][1] == sid);

    /* reached by no callback: created at its end, for on_log */
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 7, 1, &act), PW_OK);
    pw_stream_free(s);
    n = records(&a, rec, 32);
    PW_CHECK_EQ_INT(n, 8);
    sid = rec[5][1];
    PW_CHECK(rec[5][0] == 1 && rec[5][2] == root && sid != rec[1][1]);
    PW_CHECK(rec[6][0] == 4 && rec[6][1] == sid);
    PW_CHECK(rec[7][0] == 5 && rec[7][1] == sid);
    PW_CHECK(!pw_vm_failed(a.vm));
    stop(&a);
    base->destroy(e);
}

/* One quiet stream: created, its response headers, freed (on_log runs). */
static uint32_t
quiet_stream(run_t *r)
{
    pw_action_t ha = 7;
    pw_stream_t *s;
    uint32_t id;

    PW_CHECK_EQ_INT(pw_stream_new(r->p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(pw_http_response_headers(s, 5, 0, &ha), PW_OK);
    PW_CHECK_EQ_INT(ha, PW_ACTION_CONTINUE);
    id = s->ctx.id;
    pw_stream_free(s);
    return id;
}

/* How many records of callback cb there are from rec[from] on. */
static uint32_t
count_cb(uint32_t rec[][4], uint32_t from, uint32_t n, uint32_t cb)
{
    uint32_t i, k = 0;

    for (i = from; i < n; i++) {
        k += rec[i][0] == cb;
    }
    return k;
}

/*
 * PX_QUIET_DELETE: a stream's on_delete waits for PW__BATCH_LEN of them,
 * which then run in order in one entry; on_log still runs at the end of
 * each. Their ids are not given out again meanwhile, even once the ids
 * wrap around. Without the hint (PW_NO_NOOPS) each runs at once.
 */
PW_TEST(quiet_delete_deferred)
{
    uint32_t rec[64][4], ids[PW__BATCH_LEN], n, n0, i, id;
    pw_engine_t *e;
    pw_stream_t *s;
    unsigned long before;
    run_t a, b;

    e = engine();
    start(&a, e, &counting_vt, "quiet.wasm", 0);
    PW_CHECK(batched(a.vm, PW__BATCH_DELETES));
    n0 = records(&a, rec, 64);                  /* the root's create */
    for (i = 0; i < PW__BATCH_LEN - 1; i++) {
        ids[i] = quiet_stream(&a);
    }
    n = records(&a, rec, 64);
    PW_CHECK_EQ_INT(count_cb(rec, n0, n, 4), PW__BATCH_LEN - 1);
    PW_CHECK_EQ_INT(count_cb(rec, n0, n, 5), 0);
    PW_CHECK_EQ_INT(a.vm->ndeferred, PW__BATCH_LEN - 1);

    /* the ids waiting are skipped once next_id wraps around */
    a.vm->next_id = UINT32_MAX;
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(s->ctx.id, UINT32_MAX);
    pw_stream_free(s);                          /* never created: no call */
    PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    for (i = 0; i < PW__BATCH_LEN - 1; i++) {
        PW_CHECK(s->ctx.id != ids[i]);
    }
    PW_CHECK(s->ctx.id != a.p->ctx.id && s->ctx.id != 0);
    pw_stream_free(s);

    before = entries;
    ids[PW__BATCH_LEN - 1] = quiet_stream(&a);
    /* its create, response headers and log one by one; the deletes in one */
    PW_CHECK_EQ_INT(entries - before, 4);
    PW_CHECK_EQ_INT(a.vm->ndeferred, 0);
    n = records(&a, rec, 64);
    PW_CHECK_EQ_INT(count_cb(rec, n0, n, 5), PW__BATCH_LEN);
    for (i = 0; i < PW__BATCH_LEN; i++) {
        PW_CHECK(rec[n - PW__BATCH_LEN + i][0] == 5
                 && rec[n - PW__BATCH_LEN + i][1] == ids[i]);
    }
    PW_CHECK(!pw_vm_failed(a.vm));

    /* a trap in one of them fails the VM, naming on_delete */
    set_trap(&a, 5);
    for (i = 0; i < PW__BATCH_LEN - 1; i++) {
        (void) quiet_stream(&a);
    }
    PW_CHECK(!pw_vm_failed(a.vm));
    (void) quiet_stream(&a);
    PW_CHECK(pw_vm_failed(a.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(a.vm), "proxy_on_delete") != NULL);
    stop(&a);

    /* stopped with deletes waiting: dropped with the instance */
    start(&a, e, &counting_vt, "quiet.wasm", 0);
    (void) quiet_stream(&a);
    PW_CHECK_EQ_INT(a.vm->ndeferred, 1);
    stop(&a);

    PW_CHECK_EQ_INT(setenv("PW_NO_NOOPS", "1", 1), 0);
    start(&b, e, &counting_vt, "quiet.wasm", 0);
    PW_CHECK(!batched(b.vm, PW__BATCH_DELETES));
    n0 = records(&b, rec, 64);
    id = quiet_stream(&b);
    n = records(&b, rec, 64);
    PW_CHECK_EQ_INT(count_cb(rec, n0, n, 5), 1);
    PW_CHECK(rec[n - 1][0] == 5 && rec[n - 1][1] == id);
    stop(&b);
    unsetenv("PW_NO_NOOPS");
    base->destroy(e);
}

/* A stream opened by its first callback (request or response headers). */
static pw_stream_t *
open_stream(run_t *r, int request)
{
    pw_action_t ha = 7;
    pw_stream_t *s;

    PW_CHECK_EQ_INT(pw_stream_new(r->p, PW_STREAM_HTTP, NULL, &s), PW_OK);
    PW_CHECK_EQ_INT(request ? pw_http_request_headers(s, 5, 1, &ha)
                            : pw_http_response_headers(s, 5, 0, &ha), PW_OK);
    PW_CHECK_EQ_INT(ha, PW_ACTION_CONTINUE);
    return s;
}

/*
 * A deferred quiet on_delete rides on the next stream's opening: one entry
 * per stream (delete of the one before, create, first hook, in that order)
 * and no entry of the deletes' own; with two waiting, the older goes
 * first. A trap in it fails the VM, naming on_delete, and the opening
 * with it.
 */
PW_TEST(quiet_delete_rides_on_next_open)
{
    static const struct {
        const char *wasm;
        int request;
        pw__batch_kind_t kind;
        uint32_t hook;                  /* its record */
    } cases[] = {
        { "quiet_lazy.wasm", 0, PW__BATCH_OPEN_RESP_D, 7 },
        { "quiet_http.wasm", 1, PW__BATCH_OPEN_HTTP_D, 2 },
    };
    uint32_t rec[64][4], ids[8], n, n0, i, c;
    unsigned long before;
    pw_engine_t *e;
    pw_stream_t *s, *t;
    run_t a;

    e = engine();
    for (c = 0; c < 2; c++) {
        start(&a, e, &counting_vt, cases[c].wasm, 0);
        PW_CHECK(batched(a.vm, cases[c].kind));
        n0 = records(&a, rec, 64);
        before = entries;
        for (i = 0; i < 8; i++) {
            s = open_stream(&a, cases[c].request);
            ids[i] = s->ctx.id;
            pw_stream_free(s);
            PW_CHECK_EQ_INT(a.vm->ndeferred, 1);
        }
        PW_CHECK_EQ_INT(entries - before, 8);
        n = records(&a, rec, 64);
        /* create, hook; then (delete of the one before, create, hook) x 7 */
        PW_CHECK_EQ_INT(n - n0, 2 + 7 * 3);
        for (i = 1; i < 8; i++) {
            uint32_t k = n0 + 2 + (i - 1) * 3;

            PW_CHECK(rec[k][0] == 5 && rec[k][1] == ids[i - 1]);
            PW_CHECK(rec[k + 1][0] == 1 && rec[k + 1][1] == ids[i]);
            PW_CHECK(rec[k + 2][0] == cases[c].hook
                     && rec[k + 2][1] == ids[i]);
        }

        /* two waiting: the older rides first, the other on the next */
        s = open_stream(&a, cases[c].request);
        t = open_stream(&a, cases[c].request);
        ids[0] = s->ctx.id;
        ids[1] = t->ctx.id;
        pw_stream_free(s);
        pw_stream_free(t);
        PW_CHECK_EQ_INT(a.vm->ndeferred, 2);
        n0 = records(&a, rec, 64);
        pw_stream_free(open_stream(&a, cases[c].request));
        n = records(&a, rec, 64);
        PW_CHECK(rec[n0][0] == 5 && rec[n0][1] == ids[0]);
        PW_CHECK_EQ_INT(a.vm->ndeferred, 2);
        PW_CHECK_EQ_INT(a.vm->deferred[0], ids[1]);
        PW_CHECK(!pw_vm_failed(a.vm));

        /* a trap in the delete that rides along */
        set_trap(&a, 5);
        PW_CHECK_EQ_INT(pw_stream_new(a.p, PW_STREAM_HTTP, NULL, &s), PW_OK);
        PW_CHECK(cases[c].request
                 ? pw_http_request_headers(s, 5, 1, NULL) != PW_OK
                 : pw_http_response_headers(s, 5, 0, NULL) != PW_OK);
        PW_CHECK(pw_vm_failed(a.vm));
        PW_CHECK(strstr(pw_vm_fail_reason(a.vm), "proxy_on_delete") != NULL);
        pw_stream_free(s);
        stop(&a);
    }
    base->destroy(e);
}

int
main(int argc, char **argv)
{
    const char *name = getenv("PW_TEST_ENGINE");

    base = &pw_engine_v8;
    if (name != NULL && *name != '\0') {
        base = pw_engine_find(name);
        if (base == NULL) {
            fprintf(stderr, "no engine %s\n", name);
            return 2;
        }
    }
    return pw_test_main(argc, argv, (pw_test_t[]){
        PW_TEST_ENTRY(same_calls_fewer_entries),
        PW_TEST_ENTRY(trap_at_each_step_alike),
        PW_TEST_ENTRY(abi_0_1_0_request_headers),
        PW_TEST_ENTRY(tcp_new_connection),
        PW_TEST_ENTRY(interrupt_in_batch),
        PW_TEST_ENTRY(response_headers_body_one_entry),
        PW_TEST_ENTRY(response_body_only_when_let),
        PW_TEST_ENTRY(response_trap_names_the_callback),
        PW_TEST_ENTRY(noop_callbacks_skipped),
        PW_TEST_ENTRY(noop_response_body_alone),
        PW_TEST_ENTRY(lazy_context_create),
        PW_TEST_ENTRY(quiet_delete_deferred),
        PW_TEST_ENTRY(quiet_delete_rides_on_next_open),
        { 0 } });
}

