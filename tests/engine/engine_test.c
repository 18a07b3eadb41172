/*
 * Engine tests on real wasm: a backend through pw_engine_vt_t, V8 or the
 * one $PW_TEST_ENGINE names ("w2c"). Tests of what only V8 offers (trap
 * backtraces, fast imports, wasm-to-wasm links, refusing a forked start)
 * say so and pass on the others; w2c must refuse links with PW_ELINK.
 * The .wasm files (from tests/engine/wat/) sit next to this binary.
 */

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/single_threaded.h>
#include <time.h>

#include "../pwtest.h"

#include <pw/pw_engine.h>

#include "core/core.h"       /* pw__wbuf_t: a test writes its module */

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static const pw_engine_vt_t *vt = &pw_engine_v8;

/* true, after saying so, when the backend under test is not V8 */
static int
not_v8(const char *what)
{
    if (vt == &pw_engine_v8) {
        return 0;
    }
    fprintf(stderr, "  (%s: V8 only, not run on %s)\n", what, vt->name);
    return 1;
}

typedef struct {
    int nops;
    int fails;
    pw_einstance_t *inst;       /* for reenter */
    int reenter_mode;           /* what reenter calls: */
#define REENTER_ID 0            /* id_i32(arg + 1) */
#define REENTER_TRAP 1          /* do_unreachable */
#define REENTER_SPIN 2          /* spin, forever */
    int reenter_rc;
} host_state_t;

static host_state_t hs;

/*
 * The harness ends each forked test with _exit, which skips LeakSanitizer;
 * check here instead, after everything was freed.
 */
static void
leak_check(void)
{
#ifdef __SANITIZE_ADDRESS__
    PW_CHECK(__lsan_do_recoverable_leak_check() == 0);
#endif
}

/* ---- helpers ------------------------------------------------------------ */

static pw_engine_t *
engine_new_conf(const pw_engine_conf_t *conf)
{
    pw_engine_t *e = NULL;
    char err[256] = "";
    int rc;

    rc = vt->init(conf, &e, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "  init: %s\n", err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
    PW_CHECK(e != NULL);
    return e;
}

static pw_engine_t *
engine_new(void)
{
    pw_engine_conf_t conf = { 0 };

    return engine_new_conf(&conf);
}

static pw_emodule_t *
compile_file(pw_engine_t *e, const char *name)
{
    pw_emodule_t *m = NULL;
    char err[256] = "";
    uint8_t *bytes;
    size_t len;
    int rc;

    bytes = pw_test_read_beside(name, &len);
    rc = vt->compile(e, bytes, len, &m, err, sizeof(err));
    free(bytes);
    if (rc != PW_OK) {
        fprintf(stderr, "  compile %s: %s\n", name, err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
    return m;
}

/* ---- host functions ------------------------------------------------------ */

static int
h_add_i32(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(a[0].kind == PW_I32 && r[0].kind == PW_I32);
    /* wraps as wasm's i32.add does */
    r[0].of.i32 = (int32_t) ((uint32_t) a[0].of.i32 + (uint32_t) a[1].of.i32);
    return PW_OK;
}

static int
h_add_i64(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(a[1].kind == PW_I64 && r[0].kind == PW_I64);
    r[0].of.i64 = (int64_t) ((uint64_t) a[0].of.i64
                             + (uint64_t) a[1].of.i64);
    return PW_OK;
}

static int
h_mul_f32(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(a[0].kind == PW_F32 && r[0].kind == PW_F32);
    r[0].of.f32 = a[0].of.f32 * a[1].of.f32;
    return PW_OK;
}

static int
h_mul_f64(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(a[0].kind == PW_F64 && r[0].kind == PW_F64);
    r[0].of.f64 = a[0].of.f64 * a[1].of.f64;
    return PW_OK;
}

/* (i32, i64, f32, f64) -> f64: a weighted sum so order errors show */
static int
h_mixed(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(a[0].kind == PW_I32 && a[1].kind == PW_I64);
    PW_CHECK(a[2].kind == PW_F32 && a[3].kind == PW_F64);
    PW_CHECK(r[0].kind == PW_F64);
    r[0].of.f64 = a[0].of.i32 * 1000.0 + (double) a[1].of.i64 * 100.0
                  + a[2].of.f32 * 10.0 + a[3].of.f64;
    return PW_OK;
}

static int
h_fail(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    if (a[0].of.i32 == 7) {
        hs.fails++;
        *trap = "host says no";
        return PW_ETRAP;
    }
    r[0].of.i32 = a[0].of.i32 * 2;
    return PW_OK;
}

static int
h_nop(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    hs.nops++;
    return PW_OK;
}

/* Calls back into the guest, as a host does with the plugin's malloc. */
static int
h_reenter(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    pw_efunc_t *fn;
    pw_val_t arg, res;
    pw_trap_t t;
    char sig[PW_SIG_MAX];

    PW_CHECK(inst == hs.inst);
    if (hs.reenter_mode != REENTER_ID) {
        PW_CHECK_EQ_INT(vt->lookup(inst, hs.reenter_mode == REENTER_TRAP
                                         ? "do_unreachable" : "spin",
                                   &fn, sig), PW_OK);
        hs.reenter_rc = vt->call(inst, fn, NULL, 0, NULL, 0, &t);
        r[0].of.i32 = -1;
        return PW_OK;
    }
    PW_CHECK_EQ_INT(vt->lookup(inst, "id_i32", &fn, sig), PW_OK);
    arg.kind = PW_I32;
    arg.of.i32 = a[0].of.i32 + 1;
    res.kind = PW_I32;
    hs.reenter_rc = vt->call(inst, fn, &arg, 1, &res, 1, &t);
    r[0].of.i32 = res.of.i32 * 10;
    return PW_OK;
}

static int
h_mem_pages(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    uint8_t *base;
    size_t size;

    PW_CHECK_EQ_INT(vt->memory(inst, &base, &size), PW_OK);
    r[0].of.i32 = (int32_t) (size / 65536);
    return PW_OK;
}

static int
h_twice(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    r[0].of.i32 = a[0].of.i32 * 2;
    return PW_OK;
}

static const pw_import_t basic_imports[] = {
    { "env", "add_i32", "ii:i", h_add_i32, NULL, 0 },
    { "env", "add_i64", "II:I", h_add_i64, NULL, 0 },
    { "env", "mul_f32", "ff:f", h_mul_f32, NULL, 0 },
    { "env", "mul_f64", "FF:F", h_mul_f64, NULL, 0 },
    { "env", "mixed", "iIfF:F", h_mixed, NULL, 0 },
    { "env", "fail", "i:i", h_fail, NULL, 0 },
    { "env", "nop", ":", h_nop, NULL, 0 },
    { "other", "reenter", "i:i", h_reenter, NULL, 0 },
    { "env", "mem_pages", ":i", h_mem_pages, NULL, 0 },
};

#define NBASIC (sizeof(basic_imports) / sizeof(basic_imports[0]))

static pw_einstance_t *
instantiate_basic(pw_emodule_t *m)
{
    pw_einstance_t *inst = NULL;
    char err[256] = "";
    int rc;

    rc = vt->instantiate(m, basic_imports, NBASIC, &inst, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "  instantiate: %s\n", err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
    hs.inst = inst;
    return inst;
}

typedef struct {
    pw_engine_t *e;
    pw_emodule_t *m;
    pw_einstance_t *inst;
} fixture_t;

static fixture_t
setup_conf(const pw_engine_conf_t *conf)
{
    fixture_t f;

    memset(&hs, 0, sizeof(hs));
    f.e = engine_new_conf(conf);
    f.m = compile_file(f.e, "basic.wasm");
    f.inst = instantiate_basic(f.m);
    return f;
}

static fixture_t
setup(void)
{
    pw_engine_conf_t conf = { 0 };

    return setup_conf(&conf);
}

static void
teardown(fixture_t *f)
{
    vt->instance_free(f->inst);
    vt->module_free(f->m);
    vt->destroy(f->e);
    leak_check();
}

static pw_efunc_t *
lookup(pw_einstance_t *inst, const char *name, const char *want_sig)
{
    pw_efunc_t *fn = NULL;
    char sig[PW_SIG_MAX] = "";

    PW_CHECK_EQ_INT(vt->lookup(inst, name, &fn, sig), PW_OK);
    PW_CHECK(fn != NULL);
    PW_CHECK_EQ_STR(sig, want_sig);
    return fn;
}

static pw_val_t
v_i32(int32_t v)
{
    pw_val_t x;

    x.kind = PW_I32;
    x.of.i32 = v;
    return x;
}

static pw_val_t
v_i64(int64_t v)
{
    pw_val_t x;

    x.kind = PW_I64;
    x.of.i64 = v;
    return x;
}

static pw_val_t
v_f32(float v)
{
    pw_val_t x;

    x.kind = PW_F32;
    x.of.f32 = v;
    return x;
}

static pw_val_t
v_f64(double v)
{
    pw_val_t x;

    x.kind = PW_F64;
    x.of.f64 = v;
    return x;
}

static int32_t
call_i32(pw_einstance_t *inst, const char *name, const pw_val_t *args,
    size_t nargs)
{
    pw_efunc_t *fn;
    pw_val_t r;
    pw_trap_t t;
    char sig[PW_SIG_MAX];
    int rc;

    PW_CHECK_EQ_INT(vt->lookup(inst, name, &fn, sig), PW_OK);
    r.kind = PW_I32;
    rc = vt->call(inst, fn, args, nargs, &r, 1, &t);
    if (rc != PW_OK) {
        fprintf(stderr, "  %s: rc %d: %s\n", name, rc, t.message);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
    return r.of.i32;
}

static int
call_trap(pw_einstance_t *inst, const char *name, const pw_val_t *args,
    size_t nargs, size_t nresults, pw_trap_t *t)
{
    pw_efunc_t *fn;
    pw_val_t r[2];
    char sig[PW_SIG_MAX];

    PW_CHECK_EQ_INT(vt->lookup(inst, name, &fn, sig), PW_OK);
    r[0].kind = PW_I32;
    memset(t, 0, sizeof(*t));
    return vt->call(inst, fn, args, nargs, r, nresults, t);
}

static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- tests --------------------------------------------------------------- */

PW_TEST(compile_once_instantiate_twice)
{
    fixture_t f = setup();
    pw_einstance_t *b;
    uint8_t *base_a, *base_b;
    size_t size_a, size_b;
    pw_val_t args[2];

    b = instantiate_basic(f.m);
    PW_CHECK(b != f.inst);

    args[0] = v_i32(16);
    args[1] = v_i32(42);
    PW_CHECK_EQ_INT(call_trap(f.inst, "store", args, 2, 0,
                              &(pw_trap_t){ 0 }), PW_OK);
    PW_CHECK_EQ_INT(call_i32(f.inst, "load", args, 1), 42);
    PW_CHECK_EQ_INT(call_i32(b, "load", args, 1), 0);

    PW_CHECK_EQ_INT(vt->memory(f.inst, &base_a, &size_a), PW_OK);
    PW_CHECK_EQ_INT(vt->memory(b, &base_b, &size_b), PW_OK);
    PW_CHECK(base_a != base_b);
    PW_CHECK_EQ_INT(size_a, 65536);
    PW_CHECK_EQ_INT(size_b, 65536);
    PW_CHECK_EQ_INT(base_a[16], 42);
    PW_CHECK_EQ_INT(base_b[16], 0);

    /* globals are per instance too */
    PW_CHECK_EQ_INT(call_i32(f.inst, "count", NULL, 0), 1);
    PW_CHECK_EQ_INT(call_i32(f.inst, "count", NULL, 0), 2);
    PW_CHECK_EQ_INT(call_i32(b, "count", NULL, 0), 1);

    /* the module may go before its instances */
    vt->module_free(f.m);
    PW_CHECK_EQ_INT(call_i32(b, "count", NULL, 0), 2);
    vt->instance_free(b);
    vt->instance_free(f.inst);
    vt->destroy(f.e);
    leak_check();
}

PW_TEST(import_i32)
{
    fixture_t f = setup();
    pw_val_t args[2] = { v_i32(-5), v_i32(1000000) };

    PW_CHECK_EQ_INT(call_i32(f.inst, "call_add_i32", args, 2), 999995);
    args[0] = v_i32(INT32_MAX);
    args[1] = v_i32(1);
    PW_CHECK_EQ_INT(call_i32(f.inst, "call_add_i32", args, 2), INT32_MIN);
    teardown(&f);
}

PW_TEST(import_i64)
{
    fixture_t f = setup();
    pw_val_t args[2] = { v_i64(0x100000000LL), v_i64(-3) };
    pw_efunc_t *fn = lookup(f.inst, "call_add_i64", "II:I");
    pw_val_t r = v_i64(0);
    pw_trap_t t;

    PW_CHECK_EQ_INT(vt->call(f.inst, fn, args, 2, &r, 1, &t), PW_OK);
    PW_CHECK(r.of.i64 == 0xfffffffdLL);
    args[0] = v_i64(INT64_MIN);
    args[1] = v_i64(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, args, 2, &r, 1, &t), PW_OK);
    PW_CHECK(r.of.i64 == INT64_MIN);
    teardown(&f);
}

PW_TEST(import_f32_f64)
{
    fixture_t f = setup();
    pw_val_t args[2] = { v_f32(1.5f), v_f32(-4.0f) };
    pw_efunc_t *fn;
    pw_val_t r;
    pw_trap_t t;

    fn = lookup(f.inst, "call_mul_f32", "ff:f");
    r = v_f32(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, args, 2, &r, 1, &t), PW_OK);
    PW_CHECK(r.of.f32 == -6.0f);

    fn = lookup(f.inst, "call_mul_f64", "FF:F");
    args[0] = v_f64(0.1);
    args[1] = v_f64(3.0);
    r = v_f64(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, args, 2, &r, 1, &t), PW_OK);
    PW_CHECK(r.of.f64 == 0.1 * 3.0);
    teardown(&f);
}

PW_TEST(import_mixed)
{
    fixture_t f = setup();
    pw_val_t args[4] = { v_i32(3), v_i64(4), v_f32(5.0f), v_f64(6.25) };
    pw_efunc_t *fn = lookup(f.inst, "call_mixed", "iIfF:F");
    pw_val_t r = v_f64(0);
    pw_trap_t t;

    PW_CHECK_EQ_INT(vt->call(f.inst, fn, args, 4, &r, 1, &t), PW_OK);
    PW_CHECK(r.of.f64 == 3456.25);
    teardown(&f);
}

PW_TEST(missing_import_is_link_error)
{
    fixture_t f = setup();
    pw_import_t imports[NBASIC];
    pw_einstance_t *inst = NULL;
    char err[256] = "";
    size_t i, n = 0;

    for (i = 0; i < NBASIC; i++) {
        if (strcmp(basic_imports[i].name, "reenter") != 0) {
            imports[n++] = basic_imports[i];
        }
    }
    PW_CHECK_EQ_INT(vt->instantiate(f.m, imports, n, &inst, err,
                                    sizeof(err)), PW_ELINK);
    PW_CHECK(inst == NULL);
    PW_CHECK(strstr(err, "other.reenter") != NULL);

    /* same name in another module does not count */
    imports[n] = basic_imports[7];
    imports[n].module = "env";
    PW_CHECK_EQ_INT(vt->instantiate(f.m, imports, n + 1, &inst, err,
                                    sizeof(err)), PW_ELINK);
    PW_CHECK(strstr(err, "other.reenter") != NULL);
    teardown(&f);
}

PW_TEST(import_signature_mismatch_is_link_error)
{
    fixture_t f = setup();
    pw_import_t imports[NBASIC];
    pw_einstance_t *inst = NULL;
    char err[256] = "";

    memcpy(imports, basic_imports, sizeof(imports));
    imports[1].sig = "ii:i";    /* add_i64 is II:I */
    PW_CHECK_EQ_INT(vt->instantiate(f.m, imports, NBASIC, &inst, err,
                                    sizeof(err)), PW_ELINK);
    PW_CHECK(strstr(err, "env.add_i64") != NULL);
    teardown(&f);
}

PW_TEST(lookup_signatures_and_missing)
{
    fixture_t f = setup();
    pw_efunc_t *fn = NULL, *again = NULL;
    char sig[PW_SIG_MAX];

    lookup(f.inst, "noop", ":");
    lookup(f.inst, "id_i32", "i:i");
    lookup(f.inst, "neg_i64", "I:I");
    lookup(f.inst, "half_f32", "f:f");
    lookup(f.inst, "sqrt_f64", "F:F");
    lookup(f.inst, "mixed_sum", "iIfF:F");
    lookup(f.inst, "store", "ii:");
    lookup(f.inst, "two", ":iI");

    PW_CHECK_EQ_INT(vt->lookup(f.inst, "nope", &fn, sig), PW_ENOTFOUND);
    /* an export that is not a function */
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "memory", &fn, sig), PW_ENOTFOUND);
    /* an internal function with a name-section name is not an export */
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "inner_trap", &fn, sig),
                    PW_ENOTFOUND);

    fn = lookup(f.inst, "id_i32", "i:i");
    again = lookup(f.inst, "id_i32", "i:i");
    PW_CHECK(fn == again);
    teardown(&f);
}

PW_TEST(call_each_kind)
{
    fixture_t f = setup();
    pw_efunc_t *fn;
    pw_val_t a[4], r[2];
    pw_trap_t t;

    a[0] = v_i32(-123456);
    PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", a, 1), -123456);

    fn = lookup(f.inst, "neg_i64", "I:I");
    a[0] = v_i64(0x123456789abLL);
    r[0] = v_i64(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, a, 1, r, 1, &t), PW_OK);
    PW_CHECK(r[0].of.i64 == -0x123456789abLL);

    fn = lookup(f.inst, "half_f32", "f:f");
    a[0] = v_f32(3.0f);
    r[0] = v_f32(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, a, 1, r, 1, &t), PW_OK);
    PW_CHECK(r[0].of.f32 == 1.5f);

    fn = lookup(f.inst, "sqrt_f64", "F:F");
    a[0] = v_f64(2.0);
    r[0] = v_f64(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, a, 1, r, 1, &t), PW_OK);
    PW_CHECK(r[0].of.f64 == sqrt(2.0));

    fn = lookup(f.inst, "mixed_sum", "iIfF:F");
    a[0] = v_i32(1);
    a[1] = v_i64(1LL << 40);
    a[2] = v_f32(0.5f);
    a[3] = v_f64(0.25);
    r[0] = v_f64(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, a, 4, r, 1, &t), PW_OK);
    PW_CHECK(r[0].of.f64 == 1.0 + (double) (1LL << 40) + 0.75);

    /* multiple results */
    fn = lookup(f.inst, "two", ":iI");
    r[0] = v_i32(0);
    r[1] = v_i64(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, NULL, 0, r, 2, &t), PW_OK);
    PW_CHECK_EQ_INT(r[0].of.i32, 7);
    PW_CHECK(r[1].of.i64 == -9);

    /* wrong arity or kinds are refused, not guessed */
    fn = lookup(f.inst, "id_i32", "i:i");
    a[0] = v_i64(1);
    r[0] = v_i32(0);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, a, 1, r, 1, &t), PW_EINVAL);
    PW_CHECK_EQ_INT(vt->call(f.inst, fn, a, 0, r, 1, &t), PW_EINVAL);
    teardown(&f);
}

/* i32 arguments go to V8 as Smis without handles: every bit must survive */
PW_TEST(call_i32_args_full_range)
{
    static const int32_t v[] = {
        0, 1, -1, 2, -2, 0x3fffffff, -0x40000000, 0x40000000,
        -0x40000001, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1,
        0x12345678, -0x12345678, 0x7fff0000
    };
    fixture_t f = setup();
    pw_val_t a[2];
    size_t i;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        a[0] = v_i32(v[i]);
        PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", a, 1), v[i]);
        /* and in the second position, order kept */
        a[0] = v_i32(v[i]);
        a[1] = v_i32(1);
        PW_CHECK_EQ_INT(call_i32(f.inst, "div_s", a, 2), v[i]);
        a[0] = v_i32(0);
        a[1] = v_i32(v[i]);
        PW_CHECK_EQ_INT(call_i32(f.inst, "call_add_i32", a, 2), v[i]);
    }
    a[0] = v_i32(-7);
    a[1] = v_i32(2);
    PW_CHECK_EQ_INT(call_i32(f.inst, "div_s", a, 2), -3);
    teardown(&f);
}

/*
 * call_i32, the entry of every callback and batch: all-i32 functions with
 * no result or one, no arguments or some over the whole 32-bit range; any
 * other signature, or a result asked of a function without one (or the
 * reverse), is PW_EINVAL with nothing called. Traps come back as from call.
 */
PW_TEST(call_i32_entry)
{
    fixture_t f = setup();
    pw_efunc_t *add, *store, *load, *div, *fn;
    pw_trap_t t;
    uint32_t a[2], r;
    char sig[PW_SIG_MAX];
    size_t i;
    static const char *const refused[] = {
        "call_add_i64", "call_mul_f32", "call_mixed", "two"
    };

    PW_CHECK(vt->call_i32 != NULL);
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "call_add_i32", &add, sig), PW_OK);
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "store", &store, sig), PW_OK);
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "load", &load, sig), PW_OK);
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "div_s", &div, sig), PW_OK);

    a[0] = (uint32_t) -5;
    a[1] = 1000000;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, add, a, 2, &r, &t), PW_OK);
    PW_CHECK_EQ_INT((int32_t) r, 999995);
    a[0] = INT32_MAX;
    a[1] = 1;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, add, a, 2, &r, &t), PW_OK);
    PW_CHECK_EQ_INT(r, 0x80000000u);
    a[0] = 0xffffffffu;
    a[1] = 0x80000000u;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, add, a, 2, &r, &t), PW_OK);
    PW_CHECK_EQ_INT(r, 0x7fffffffu);

    /* no arguments (args may be NULL then), one result */
    PW_CHECK_EQ_INT(vt->lookup(f.inst, "count", &fn, sig), PW_OK);
    r = 99;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, fn, NULL, 0, &r, &t), PW_OK);
    PW_CHECK_EQ_INT(r, 1);
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, fn, NULL, 0, &r, &t), PW_OK);
    PW_CHECK_EQ_INT(r, 2);

    /* no result: the store lands, as the load then shows */
    a[0] = 32;
    a[1] = 0xdeadbeefu;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, store, a, 2, NULL, &t), PW_OK);
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, load, a, 1, &r, &t), PW_OK);
    PW_CHECK_EQ_INT(r, 0xdeadbeefu);

    /* refused, and nothing ran: the stored word is unchanged */
    a[1] = 7;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, store, a, 2, &r, &t), PW_EINVAL);
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, store, a, 1, NULL, &t), PW_EINVAL);
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, add, a, 2, NULL, &t), PW_EINVAL);
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, add, a, 3, &r, &t), PW_EINVAL);
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, load, a, 1, &r, &t), PW_OK);
    PW_CHECK_EQ_INT(r, 0xdeadbeefu);
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        PW_CHECK_EQ_INT(vt->lookup(f.inst, refused[i], &fn, sig), PW_OK);
        PW_CHECK_EQ_INT(vt->call_i32(f.inst, fn, a, 2, &r, &t), PW_EINVAL);
    }

    a[0] = 1;
    a[1] = 0;
    memset(&t, 0, sizeof(t));
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, div, a, 2, &r, &t), PW_ETRAP);
    PW_CHECK(strstr(t.message, "divide by zero") != NULL);
    a[0] = (uint32_t) -9;
    a[1] = 3;
    PW_CHECK_EQ_INT(vt->call_i32(f.inst, div, a, 2, &r, &t), PW_OK);
    PW_CHECK_EQ_INT((int32_t) r, -3);
    teardown(&f);
}

PW_TEST(trap_unreachable_with_backtrace)
{
    fixture_t f = setup();
    pw_trap_t t;
    const char *inner, *outer;

    PW_CHECK_EQ_INT(call_trap(f.inst, "do_unreachable", NULL, 0, 0, &t),
                    PW_ETRAP);
    PW_CHECK(strstr(t.message, "unreachable") != NULL);
    PW_CHECK(strstr(t.message, "RuntimeError") != NULL);
    if (not_v8("backtraces")) {
        teardown(&f);
        return;
    }
    inner = strstr(t.backtrace, "inner_trap");
    outer = strstr(t.backtrace, "outer_trap");
    if (inner == NULL || outer == NULL) {
        fprintf(stderr, "  backtrace:\n%s", t.backtrace);
    }
    PW_CHECK(inner != NULL && outer != NULL);
    /* innermost frame first, one per line */
    PW_CHECK(inner < outer);
    PW_CHECK(memchr(inner, '\n', outer - inner) != NULL);
    teardown(&f);
}

PW_TEST(trap_out_of_bounds)
{
    fixture_t f = setup();
    pw_val_t a[2] = { v_i32(65535), v_i32(0) };
    pw_trap_t t;

    /* a 4-byte load straddling the end of the only page */
    PW_CHECK_EQ_INT(call_trap(f.inst, "load", a, 1, 1, &t), PW_ETRAP);
    PW_CHECK(strstr(t.message, "memory access out of bounds") != NULL);
    a[0] = v_i32(-8);
    PW_CHECK_EQ_INT(call_trap(f.inst, "store", a, 2, 0, &t), PW_ETRAP);
    PW_CHECK(strstr(t.message, "memory access out of bounds") != NULL);
    a[0] = v_i32(65532);
    PW_CHECK_EQ_INT(call_i32(f.inst, "load", a, 1), 0);
    teardown(&f);
}

PW_TEST(trap_divide_by_zero)
{
    fixture_t f = setup();
    pw_val_t a[2] = { v_i32(1), v_i32(0) };
    pw_trap_t t;

    PW_CHECK_EQ_INT(call_trap(f.inst, "div_s", a, 2, 1, &t), PW_ETRAP);
    PW_CHECK(strstr(t.message, "divide by zero") != NULL);
    a[0] = v_i32(9);
    a[1] = v_i32(-3);
    PW_CHECK_EQ_INT(call_i32(f.inst, "div_s", a, 2), -3);
    teardown(&f);
}

/*
 * Unbounded recursion ends in a trap (V8: RangeError, "Maximum call stack
 * size exceeded"; w2c: its depth limit), not an interrupt, and the
 * instance goes on.
 */
PW_TEST(trap_call_stack_exhausted)
{
    fixture_t f = setup();
    pw_val_t a[2] = { v_i32(1), v_i32(0) };
    pw_trap_t t;

    PW_CHECK_EQ_INT(call_trap(f.inst, "recurse", a, 1, 1, &t), PW_ETRAP);
    if (strstr(t.message, "stack") == NULL) {
        fprintf(stderr, "  message: %s\n", t.message);
    }
    PW_CHECK(strstr(t.message, "stack") != NULL);
    a[0] = v_i32(-7);
    a[1] = v_i32(2);
    PW_CHECK_EQ_INT(call_i32(f.inst, "div_s", a, 2), -3);
    teardown(&f);
}

PW_TEST(instance_usable_after_traps)
{
    fixture_t f = setup();
    pw_val_t a[2] = { v_i32(100), v_i32(77) };
    pw_trap_t t;
    int i;

    PW_CHECK_EQ_INT(call_trap(f.inst, "store", a, 2, 0, &t), PW_OK);
    for (i = 0; i < 3; i++) {
        PW_CHECK_EQ_INT(call_trap(f.inst, "do_unreachable", NULL, 0, 0, &t),
                        PW_ETRAP);
        a[0] = v_i32(1 << 30);
        PW_CHECK_EQ_INT(call_trap(f.inst, "load", a, 1, 1, &t), PW_ETRAP);
        a[0] = v_i32(100);
        PW_CHECK_EQ_INT(call_i32(f.inst, "load", a, 1), 77);
        PW_CHECK_EQ_INT(call_i32(f.inst, "count", NULL, 0), i + 1);
    }
    a[0] = v_i32(2);
    a[1] = v_i32(3);
    PW_CHECK_EQ_INT(call_i32(f.inst, "call_add_i32", a, 2), 5);
    teardown(&f);
}

PW_TEST(host_trap_aborts_guest_call)
{
    fixture_t f = setup();
    pw_val_t a = v_i32(7);
    pw_trap_t t;

    PW_CHECK_EQ_INT(call_trap(f.inst, "call_fail", &a, 1, 1, &t), PW_ETRAP);
    PW_CHECK_EQ_STR(t.message, "host says no");
    PW_CHECK_EQ_INT(hs.fails, 1);
    PW_CHECK(not_v8("backtraces") || strstr(t.backtrace, "call_fail") != NULL
             || strstr(t.backtrace, "wasm-function") != NULL);

    /* the host result would have been used (+1) had the call gone on */
    a = v_i32(3);
    PW_CHECK_EQ_INT(call_i32(f.inst, "call_fail", &a, 1), 7);
    teardown(&f);
}

PW_TEST(host_reenters_guest)
{
    fixture_t f = setup();
    pw_val_t a = v_i32(4);
    pw_trap_t t;

    PW_CHECK_EQ_INT(call_i32(f.inst, "call_reenter", &a, 1), 50);
    PW_CHECK_EQ_INT(hs.reenter_rc, PW_OK);

    /* a trap in the nested call is the nested call's; the outer goes on */
    hs.reenter_mode = REENTER_TRAP;
    PW_CHECK_EQ_INT(call_trap(f.inst, "call_reenter", &a, 1, 1, &t), PW_OK);
    PW_CHECK_EQ_INT(hs.reenter_rc, PW_ETRAP);
    hs.reenter_mode = REENTER_ID;
    PW_CHECK_EQ_INT(call_i32(f.inst, "call_reenter", &a, 1), 50);
    teardown(&f);
}

PW_TEST(memory_base_size_grow)
{
    fixture_t f = setup();
    uint8_t *base;
    size_t size;
    pw_val_t a[2];

    PW_CHECK_EQ_INT(vt->memory(f.inst, &base, &size), PW_OK);
    PW_CHECK(base != NULL);
    PW_CHECK_EQ_INT(size, 65536);

    memcpy(base + 1000, "\x11\x22\x33\x44", 4);
    a[0] = v_i32(1000);
    PW_CHECK_EQ_INT(call_i32(f.inst, "load", a, 1), 0x44332211);

    a[0] = v_i32(2);
    PW_CHECK_EQ_INT(call_i32(f.inst, "grow", a, 1), 1);
    PW_CHECK_EQ_INT(vt->memory(f.inst, &base, &size), PW_OK);
    PW_CHECK_EQ_INT(size, 3 * 65536);
    PW_CHECK_EQ_INT(base[1000], 0x11);

    /* the new pages are usable from both sides */
    base[2 * 65536 + 8] = 0x5a;
    a[0] = v_i32(2 * 65536 + 8);
    PW_CHECK_EQ_INT(call_i32(f.inst, "load", a, 1), 0x5a);

    /* a host function sees the size the guest just grew to */
    a[0] = v_i32(4);
    PW_CHECK_EQ_INT(call_i32(f.inst, "grow_and_ask", a, 1), 7);
    PW_CHECK_EQ_INT(vt->memory(f.inst, &base, &size), PW_OK);
    PW_CHECK_EQ_INT(size, 7 * 65536);

    /* beyond the declared maximum grow fails without trapping */
    a[0] = v_i32(1000);
    PW_CHECK_EQ_INT(call_i32(f.inst, "grow", a, 1), -1);
    teardown(&f);
}

PW_TEST(no_memory_export)
{
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = compile_file(e, "no_memory.wasm");
    pw_import_t imp = { "env", "twice", "i:i", h_twice, NULL, 0 };
    pw_einstance_t *inst = NULL;
    char err[256];
    uint8_t *base;
    size_t size;
    pw_val_t a = v_i32(21);

    PW_CHECK_EQ_INT(vt->instantiate(m, &imp, 1, &inst, err, sizeof(err)),
                    PW_OK);
    PW_CHECK_EQ_INT(vt->memory(inst, &base, &size), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(call_i32(inst, "answer", NULL, 0), 42);
    /* a re-exported import: the sig comes from the import's type */
    lookup(inst, "twice_again", "i:i");
    PW_CHECK_EQ_INT(call_i32(inst, "twice_again", &a, 1), 42);
    vt->instance_free(inst);
    vt->module_free(m);
    vt->destroy(e);
    leak_check();
}

PW_TEST(start_trap_fails_instantiate)
{
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = compile_file(e, "start_trap.wasm");
    pw_einstance_t *inst = NULL;
    char err[256] = "";

    PW_CHECK_EQ_INT(vt->instantiate(m, NULL, 0, &inst, err, sizeof(err)),
                    PW_ETRAP);
    PW_CHECK(inst == NULL);
    PW_CHECK(strstr(err, "unreachable") != NULL);
    vt->module_free(m);
    vt->destroy(e);
    leak_check();
}

PW_TEST(compile_rejects_garbage)
{
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = NULL;
    static const uint8_t junk[] = "\0asm\x01\0\0\0\x01\xff\xff";
    char err[256] = "";

    PW_CHECK_EQ_INT(vt->compile(e, junk, sizeof(junk) - 1, &m, err,
                                sizeof(err)), PW_EMALFORMED);
    PW_CHECK(m == NULL);
    PW_CHECK(err[0] != '\0');
    PW_CHECK_EQ_INT(vt->compile(e, (const uint8_t *) "hello", 5, &m, err,
                                sizeof(err)), PW_EMALFORMED);
    vt->destroy(e);
    leak_check();
}

PW_TEST(engine_restarts_in_process)
{
    fixture_t f = setup();
    pw_val_t a = v_i32(9);

    PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", &a, 1), 9);
    teardown(&f);
    f = setup();
    PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", &a, 1), 9);
    teardown(&f);
}

/* V8 started before fork is unusable in the child: init says so. */
PW_TEST(init_refused_after_fork)
{
    pw_engine_t *e = engine_new(), *e2 = NULL;
    char err[256] = "";
    int status, rc;
    pid_t pid;

    pid = fork();
    PW_CHECK(pid >= 0);
    if (pid == 0) {
        rc = vt->init(NULL, &e2, err, sizeof(err));
        _exit(rc == PW_EENGINE && strstr(err, "fork") != NULL ? 0 : 1);
    }
    PW_CHECK(waitpid(pid, &status, 0) == pid);
    PW_CHECK(WIFEXITED(status));
    PW_CHECK_EQ_INT(WEXITSTATUS(status), 0);
    vt->destroy(e);
    leak_check();
}

typedef struct {
    pw_einstance_t *inst;
    uint64_t gen;
    atomic_int stop;
    int sent;
} watchdog_t;

static void *
watchdog(void *arg)
{
    watchdog_t *w = arg;
    struct timespec ts = { 0, 20 * 1000 * 1000 };

    while (!atomic_load(&w->stop)) {
        nanosleep(&ts, NULL);
        vt->interrupt(w->inst, w->gen);
        w->sent++;
    }
    return NULL;
}

static void
interrupt_loop(const char *name)
{
    fixture_t f = setup();
    watchdog_t w;
    pthread_t tid;
    pw_trap_t t;
    pw_val_t a = v_i32(5);
    uint64_t gen;
    int rc;

    gen = vt->call_generation(f.inst);
    w.inst = f.inst;
    w.gen = gen;
    w.sent = 0;
    atomic_init(&w.stop, 0);
    PW_CHECK(pthread_create(&tid, NULL, watchdog, &w) == 0);

    rc = call_trap(f.inst, name, NULL, 0, 0, &t);
    atomic_store(&w.stop, 1);
    pthread_join(tid, NULL);

    PW_CHECK_EQ_INT(rc, PW_EINTERRUPTED);
    PW_CHECK(w.sent >= 1);
    PW_CHECK(vt->call_generation(f.inst) > gen);

    /* the next calls run normally */
    PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", &a, 1), 5);
    hs.nops = 0;
    a = v_i32(1000);
    PW_CHECK_EQ_INT(call_trap(f.inst, "loop_host", &a, 1, 0, &t), PW_OK);
    PW_CHECK_EQ_INT(hs.nops, 1000);
    teardown(&f);
}

PW_TEST(interrupt_infinite_loop)
{
    interrupt_loop("spin");
}

PW_TEST(interrupt_loop_calling_host)
{
    interrupt_loop("spin_host");
}

/* The host re-entered the guest, which loops: both calls stop. */
PW_TEST(interrupt_nested_call)
{
    fixture_t f = setup();
    watchdog_t w;
    pthread_t tid;
    pw_trap_t t;
    pw_val_t a = v_i32(1);
    int rc;

    w.inst = f.inst;
    w.gen = vt->call_generation(f.inst);
    w.sent = 0;
    atomic_init(&w.stop, 0);
    hs.reenter_mode = REENTER_SPIN;
    hs.reenter_rc = PW_OK;
    PW_CHECK(pthread_create(&tid, NULL, watchdog, &w) == 0);
    rc = call_trap(f.inst, "call_reenter", &a, 1, 1, &t);
    atomic_store(&w.stop, 1);
    pthread_join(tid, NULL);

    PW_CHECK_EQ_INT(hs.reenter_rc, PW_EINTERRUPTED);
    PW_CHECK_EQ_INT(rc, PW_EINTERRUPTED);
    hs.reenter_mode = REENTER_ID;
    a = v_i32(4);
    PW_CHECK_EQ_INT(call_i32(f.inst, "call_reenter", &a, 1), 50);
    PW_CHECK_EQ_INT(hs.reenter_rc, PW_OK);
    teardown(&f);
}

PW_TEST(stale_interrupt_does_not_kill_next_call)
{
    fixture_t f = setup();
    watchdog_t w;
    pthread_t tid;
    pw_trap_t t;
    pw_val_t a = v_i32(3);
    uint64_t gen;

    gen = vt->call_generation(f.inst);
    PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", &a, 1), 3);
    PW_CHECK(vt->call_generation(f.inst) == gen + 1);

    /* right after the call, and then during a long later call */
    vt->interrupt(f.inst, gen);
    PW_CHECK_EQ_INT(call_i32(f.inst, "id_i32", &a, 1), 3);

    w.inst = f.inst;
    w.gen = gen;
    w.sent = 0;
    atomic_init(&w.stop, 0);
    PW_CHECK(pthread_create(&tid, NULL, watchdog, &w) == 0);
    hs.nops = 0;
    a = v_i32(20 * 1000 * 1000);
    PW_CHECK_EQ_INT(call_trap(f.inst, "loop_host", &a, 1, 0, &t), PW_OK);
    atomic_store(&w.stop, 1);
    pthread_join(tid, NULL);
    PW_CHECK_EQ_INT(hs.nops, 20 * 1000 * 1000);
    PW_CHECK(w.sent >= 1);
    teardown(&f);
}

static void *
hammer(void *arg)
{
    watchdog_t *w = arg;

    while (!atomic_load(&w->stop)) {
        vt->interrupt(w->inst, vt->call_generation(w->inst));
        w->sent++;
    }
    return NULL;
}

/*
 * Interrupts aimed at whatever call is current, as fast as possible, while
 * short calls run: each call ends OK or interrupted, never hangs or dies,
 * and once the interrupts stop no terminate is left over.
 */
PW_TEST(interrupt_race)
{
    fixture_t f = setup();
    watchdog_t w;
    pthread_t tid;
    pw_efunc_t *fn;
    pw_val_t a, r;
    pw_trap_t t;
    int i, rc, ok = 0, stopped = 0;

    fn = lookup(f.inst, "id_i32", "i:i");
    w.inst = f.inst;
    w.sent = 0;
    atomic_init(&w.stop, 0);
    PW_CHECK(pthread_create(&tid, NULL, hammer, &w) == 0);
    for (i = 0; i < 50000; i++) {
        a = v_i32(i);
        r = v_i32(-1);
        rc = vt->call(f.inst, fn, &a, 1, &r, 1, &t);
        if (rc == PW_OK) {
            PW_CHECK_EQ_INT(r.of.i32, i);
            ok++;
        } else {
            PW_CHECK_EQ_INT(rc, PW_EINTERRUPTED);
            stopped++;
        }
    }
    atomic_store(&w.stop, 1);
    pthread_join(tid, NULL);
    printf("  %d ok, %d interrupted, %d interrupts sent\n", ok, stopped,
           w.sent);

    for (i = 0; i < 1000; i++) {
        a = v_i32(i);
        PW_CHECK_EQ_INT(vt->call(f.inst, fn, &a, 1, &r, 1, &t), PW_OK);
        PW_CHECK_EQ_INT(r.of.i32, i);
    }
    teardown(&f);
}

/* Asserts the call counts; prints the per-call cost (informational). */
PW_TEST(call_costs)
{
    fixture_t f = setup();
    pw_efunc_t *fn;
    pw_val_t a = v_i32(0), r = v_i32(0);
    pw_trap_t t;
    double t0, t1, t2;
    int i, n = 2 * 1000 * 1000;

    a = v_i32(n);
    PW_CHECK_EQ_INT(call_trap(f.inst, "loop_host", &a, 1, 0, &t), PW_OK);
    hs.nops = 0;
    t0 = now_ns();
    PW_CHECK_EQ_INT(call_trap(f.inst, "loop_host", &a, 1, 0, &t), PW_OK);
    t1 = now_ns();
    PW_CHECK_EQ_INT(hs.nops, n);

    fn = lookup(f.inst, "id_i32", "i:i");
    for (i = 0; i < 100000; i++) {
        PW_CHECK(vt->call(f.inst, fn, &a, 1, &r, 1, &t) == PW_OK);
    }
    t2 = now_ns();
    for (i = 0; i < n; i++) {
        a.of.i32 = i;
        if (vt->call(f.inst, fn, &a, 1, &r, 1, &t) != PW_OK
            || r.of.i32 != i)
        {
            PW_CHECK(0);
        }
    }
    printf("  wasm->host %.1f ns/call, host->wasm %.1f ns/call\n",
           (t1 - t0) / n, (now_ns() - t2) / n);
    teardown(&f);
}

/* ---- V8's handles ---------------------------------------------------- */

/* handles of the engine's isolate (V8 backend, tests only) */
extern int pw__v8_handles(pw_engine_t *engine);

/*
 * A call from the host opens no HandleScope on V8; what its handles take
 * is given back every 1024 such calls. 5000 calls of an i64 function (a
 * BigInt handle for the argument and one for the result) leave fewer than
 * two intervals' worth; without the renewal they would leave 10000.
 */
PW_TEST(outer_calls_free_their_handles)
{
    fixture_t f;
    pw_efunc_t *fn;
    pw_val_t a, r;
    pw_trap_t t;
    int i, h0;

    if (not_v8("V8's handles")) {
        return;
    }
    f = setup();
    fn = lookup(f.inst, "neg_i64", "I:I");
    h0 = pw__v8_handles(f.e);
    for (i = 0; i < 5000; i++) {
        a = v_i64((int64_t) i << 33);
        r = v_i64(0);
        if (vt->call(f.inst, fn, &a, 1, &r, 1, &t) != PW_OK
            || r.of.i64 != -((int64_t) i << 33))
        {
            PW_CHECK(0);
        }
    }
    PW_CHECK(pw__v8_handles(f.e) - h0 < 2 * 2 * 1024);
    teardown(&f);
}

/* ---- V8's background work: threads, or none (pw_engine_conf_t) ------- */

/* worker tasks the V8 backend ran on the calling thread (tests only) */
extern unsigned long pw__v8_inline_tasks;

/*
 * Makes loop_host hot enough for V8 to compile it again with TurboFan (a
 * low tiering budget: V8's default asks for more), then calls on past the
 * backend's pump interval, so that background work has had its turn.
 * Results stay right across the change of code.
 */
static void
run_hot(fixture_t *f)
{
    pw_efunc_t *fn;
    pw_val_t a, r = v_i32(0);
    pw_trap_t t;
    int i;

    a = v_i32(50000);
    for (i = 0; i < 10; i++) {
        hs.nops = 0;
        PW_CHECK_EQ_INT(call_trap(f->inst, "loop_host", &a, 1, 0, &t), PW_OK);
        PW_CHECK_EQ_INT(hs.nops, 50000);
    }
    fn = lookup(f->inst, "id_i32", "i:i");
    for (i = 0; i < 3000; i++) {
        a = v_i32(i);
        if (vt->call(f->inst, fn, &a, 1, &r, 1, &t) != PW_OK
            || r.of.i32 != i)
        {
            PW_CHECK(0);
        }
    }
    hs.nops = 0;
    a = v_i32(7);
    PW_CHECK_EQ_INT(call_trap(f->inst, "loop_host", &a, 1, 0, &t), PW_OK);
    PW_CHECK_EQ_INT(hs.nops, 7);
}

/*
 * V8 set up with `threads` helper threads runs hot code: with none, libc
 * stays single-threaded (its fast paths) and the tier-up work V8 would
 * give a helper runs on ours, between calls; with some, V8's pool does it
 * and nothing runs inline.
 */
static void
platform_run(int threads)
{
    pw_engine_conf_t conf = { 0 };
    fixture_t f;

    if (not_v8("V8's platform")) {
        return;
    }
    conf.threads = threads;
    conf.flags = "--wasm-tiering-budget=20000";
    PW_CHECK(__libc_single_threaded);
    f = setup_conf(&conf);
    run_hot(&f);
    PW_CHECK_EQ_INT(__libc_single_threaded != 0, threads == 0);
    PW_CHECK_EQ_INT(pw__v8_inline_tasks > 0, threads == 0);
    teardown(&f);
}

PW_TEST(no_threads_background_work_inline)
{
    platform_run(0);
}

PW_TEST(threads_make_a_pool)
{
    platform_run(1);
}

/*
 * A module of SLICE_FNS functions that all get hot at once: f_i(x) = x + i,
 * then SLICE_OPS rounds of multiply and xor; "run" chains them all.
 */
#define SLICE_FNS 400
#define SLICE_OPS 40

static uint32_t
slice_expect(uint32_t x)
{
    uint32_t i, k;

    for (i = 0; i < SLICE_FNS; i++) {
        x += i;
        for (k = 0; k < SLICE_OPS; k++) {
            x = (x * (0x9E3779B1u + k)) ^ (k * 7919u);
        }
    }
    return x;
}

static void
wb_i32_const(pw__wbuf_t *w, uint32_t u)
{
    int32_t v = (int32_t) u;
    uint8_t b;

    pw__wb_byte(w, 0x41);
    for (;;) {                  /* signed LEB128 */
        b = (uint8_t) (v & 0x7f);
        v >>= 7;
        if ((v == 0 && !(b & 0x40)) || (v == -1 && (b & 0x40))) {
            pw__wb_byte(w, b);
            return;
        }
        pw__wb_byte(w, b | 0x80);
    }
}

static uint8_t *
slice_module(size_t *len)
{
    pw__wbuf_t w = { 0 }, sec = { 0 }, body = { 0 };
    uint8_t *out = NULL;
    uint32_t np, i, k;

    pw__wb_bytes(&w, pw__wasm_head, sizeof(pw__wasm_head));
    pw__wb_u32(&sec, 1);
    PW_CHECK_EQ_INT(pw__wb_functype(&sec, "i:i", &np), PW_OK);
    pw__wb_section(&w, 1, &sec);
    pw__wb_u32(&sec, SLICE_FNS + 1);
    for (i = 0; i <= SLICE_FNS; i++) {
        pw__wb_u32(&sec, 0);
    }
    pw__wb_section(&w, 3, &sec);
    pw__wb_u32(&sec, 1);
    pw__wb_name(&sec, "run");
    pw__wb_byte(&sec, 0x00);
    pw__wb_u32(&sec, SLICE_FNS);
    pw__wb_section(&w, 7, &sec);
    pw__wb_u32(&sec, SLICE_FNS + 1);
    for (i = 0; i <= SLICE_FNS; i++) {
        body.len = 0;
        pw__wb_u32(&body, 0);                       /* no locals */
        pw__wb_op(&body, 0x20, 0);                  /* local.get 0 */
        if (i < SLICE_FNS) {
            wb_i32_const(&body, i);
            pw__wb_byte(&body, 0x6a);               /* i32.add */
            for (k = 0; k < SLICE_OPS; k++) {
                wb_i32_const(&body, 0x9E3779B1u + k);
                pw__wb_byte(&body, 0x6c);           /* i32.mul */
                wb_i32_const(&body, k * 7919u);
                pw__wb_byte(&body, 0x73);           /* i32.xor */
            }
        } else {
            for (k = 0; k < SLICE_FNS; k++) {
                pw__wb_op(&body, 0x10, k);          /* call f_k */
            }
        }
        pw__wb_byte(&body, 0x0b);                   /* end */
        pw__wb_u32(&sec, (uint32_t) body.len);
        pw__wb_bytes(&sec, body.p, body.len);
    }
    pw__wb_section(&w, 10, &sec);
    free(body.p);
    PW_CHECK_EQ_INT(pw__wb_done(&w, &sec, &out, len), PW_OK);
    return out;
}

/* worker tasks waiting on the inline platform (V8 backend, tests only) */
extern int pw__v8_inline_idle(void);
extern unsigned long pw__v8_inline_slices;

/* an engine without threads, on the slice module */
typedef struct {
    pw_engine_t *e;
    pw_emodule_t *m;
    pw_einstance_t *inst;
    pw_efunc_t *run;
} slice_fixture_t;

static void
slice_setup(slice_fixture_t *f, const uint8_t *bytes, size_t len)
{
    pw_engine_conf_t conf = { 0 };
    char err[256] = "";

    memset(f, 0, sizeof(*f));
    conf.threads = 0;
    conf.flags = "--wasm-tiering-budget=2000";
    f->e = engine_new_conf(&conf);
    PW_CHECK_EQ_INT(vt->compile(f->e, bytes, len, &f->m, err, sizeof(err)),
                    PW_OK);
    PW_CHECK_EQ_INT(vt->instantiate(f->m, NULL, 0, &f->inst, err,
                                    sizeof(err)), PW_OK);
    f->run = lookup(f->inst, "run", "i:i");
}

/* run(x), checked against the C reckoning */
static void
slice_call(slice_fixture_t *f, uint32_t x)
{
    pw_val_t a = v_i32((int32_t) x), r = v_i32(0);
    pw_trap_t t;

    if (vt->call(f->inst, f->run, &a, 1, &r, 1, &t) != PW_OK
        || (uint32_t) r.of.i32 != slice_expect(x))
    {
        PW_CHECK(0);
    }
}

static void
slice_teardown(slice_fixture_t *f)
{
    vt->instance_free(f->inst);
    vt->module_free(f->m);
    vt->destroy(f->e);
}

/*
 * Without threads, a large tier-up job (hundreds of functions hot at once)
 * is not run in one go between two calls: the pump gives it a few
 * milliseconds, the job yields and goes on at the next pumps until done.
 * Results stay right throughout.
 */
PW_TEST(no_threads_job_in_slices)
{
    slice_fixture_t f;
    uint8_t *bytes;
    size_t len;
    uint32_t i;

    if (not_v8("V8's platform")) {
        return;
    }
    bytes = slice_module(&len);
    slice_setup(&f, bytes, len);
    free(bytes);
    for (i = 0; i < 400000; i++) {
        slice_call(&f, i);
        if (i > 2048 && pw__v8_inline_idle()) {
            break;
        }
    }
    printf("  tier-up done after %u calls: %lu worker tasks, %lu cut short\n",
           i, pw__v8_inline_tasks, pw__v8_inline_slices);
    PW_CHECK(pw__v8_inline_idle());
    PW_CHECK(pw__v8_inline_slices > 0);
    PW_CHECK(pw__v8_inline_tasks > pw__v8_inline_slices);
    slice_teardown(&f);
    leak_check();
}

/*
 * An engine that ends with tier-up work still queued: V8 cancels the job,
 * its slices find it canceled, and a later engine's pumps run and drop
 * them (the same process; nothing leaks, nothing runs on a dead isolate).
 */
PW_TEST(no_threads_end_with_work_queued)
{
    slice_fixture_t f;
    uint8_t *bytes;
    size_t len;
    uint32_t round, i;

    if (not_v8("V8's platform")) {
        return;
    }
    bytes = slice_module(&len);
    for (round = 0; round < 2; round++) {
        slice_setup(&f, bytes, len);
        for (i = 0; i < 1100; i++) {
            slice_call(&f, i);
        }
        PW_CHECK(!pw__v8_inline_idle());
        slice_teardown(&f);
    }
    free(bytes);
    leak_check();
}

/* ---- imports linked to another instance (pw_import_link_t) ------------- */

typedef struct {
    pw_engine_t *e;
    pw_emodule_t *sm, *dm;
    pw_einstance_t *src, *dst;
    pw_import_link_t links[6];
    pw_import_t imports[6];
} link_fixture_t;

static const char *link_names[6] = {
    "add1", "boom", "twice", "memory", "g", "table"
};

static void
link_setup(link_fixture_t *f)
{
    pw_import_t twice = { "env", "twice", "i:i", h_twice, NULL, 0 };
    char err[256] = "";
    size_t i;
    int rc;

    memset(f, 0, sizeof(*f));
    memset(&hs, 0, sizeof(hs));
    f->e = engine_new();
    f->sm = compile_file(f->e, "link_src.wasm");
    f->dm = compile_file(f->e, "link_dst.wasm");
    PW_CHECK_EQ_INT(vt->instantiate(f->sm, &twice, 1, &f->src, err,
                                    sizeof(err)), PW_OK);
    for (i = 0; i < 6; i++) {
        f->links[i].from = f->src;
        f->links[i].name = link_names[i];
        f->imports[i].module = "src";
        f->imports[i].name = link_names[i];
        f->imports[i].sig = i < 3 ? "i:i" : NULL;
        f->imports[i].fn = NULL;
        f->imports[i].fn_data = &f->links[i];
    }
    rc = vt->instantiate(f->dm, f->imports, 6, &f->dst, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "  instantiate: %s\n", err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
}

static void
link_teardown(link_fixture_t *f)
{
    vt->instance_free(f->dst);
    vt->instance_free(f->src);
    vt->module_free(f->dm);
    vt->module_free(f->sm);
    vt->destroy(f->e);
    leak_check();
}

/* ---- PW_IMPORT_FAST --------------------------------------------------- */

/* counted by the V8 backend (tests only) */
extern unsigned long pw__v8_fast_calls;

static pw_einstance_t *fast_seen_inst;

static int
h_fast_add(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(d == (void *) &fast_seen_inst);
    PW_CHECK(a[0].kind == PW_I32 && a[1].kind == PW_I32);
    PW_CHECK(r[0].kind == PW_I32);
    fast_seen_inst = inst;
    r[0].of.i32 = (int32_t) ((uint32_t) a[0].of.i32 + (uint32_t) a[1].of.i32);
    return PW_OK;
}

static int
h_fast_fail(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    *trap = "fast host function failed";
    return PW_ETRAP;
}

static int
h_fast_wide(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    int i;

    /* 1 2 3 4 5 6 -7 8, in order: a weighted sum tells them apart */
    r[0].of.i32 = 0;
    for (i = 0; i < 8; i++) {
        r[0].of.i32 += (i + 1) * a[i].of.i32;
    }
    return PW_OK;
}

static int
h_fast_wide64(void *d, pw_einstance_t *inst, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    PW_CHECK(a[0].kind == PW_I64);
    r[0].of.i32 = (int32_t) (a[0].of.i64 >> 32);
    return PW_OK;
}

static void
fast_imports(pw_import_t *im, unsigned flags)
{
    im[0] = (pw_import_t){ "env", "add", "ii:i", h_fast_add,
                           &fast_seen_inst, flags };
    im[1] = (pw_import_t){ "env", "fail", "i:i", h_fast_fail, NULL, flags };
    im[2] = (pw_import_t){ "env", "wide", "iiiiiiii:i", h_fast_wide, NULL,
                           flags };
    im[3] = (pw_import_t){ "env", "wide64", "I:i", h_fast_wide64, NULL,
                           flags };
}

PW_TEST(fast_import_taken_and_right)
{
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = compile_file(e, "fast.wasm");
    pw_einstance_t *fast = NULL, *plain = NULL;
    pw_import_t im[4];
    unsigned long before;
    char err[256];
    pw_val_t a[2];
    int i;

    fast_imports(im, PW_IMPORT_FAST);
    PW_CHECK_EQ_INT(vt->instantiate(m, im, 4, &fast, err, sizeof(err)),
                    PW_OK);
    fast_imports(im, 0);
    PW_CHECK_EQ_INT(vt->instantiate(m, im, 4, &plain, err, sizeof(err)),
                    PW_OK);

    before = pw__v8_fast_calls;
    for (i = 0; i < 1000; i++) {
        a[0] = v_i32(i);
        a[1] = v_i32(-2 * i);
        fast_seen_inst = NULL;
        PW_CHECK_EQ_INT(call_i32(fast, "call_add", a, 2), -i);
        PW_CHECK(fast_seen_inst == fast);
    }
    /* every call went through the fast C function */
    PW_CHECK_EQ_INT(pw__v8_fast_calls - before, 1000);
    a[0] = v_i32(INT32_MAX);
    a[1] = v_i32(1);
    PW_CHECK_EQ_INT(call_i32(fast, "call_add", a, 2), INT32_MIN);
    PW_CHECK_EQ_INT(call_i32(fast, "call_wide", NULL, 0),
                    1 + 4 + 9 + 16 + 25 + 36 - 49 + 64);

    /* the same without the flag, and none of it fast */
    before = pw__v8_fast_calls;
    a[0] = v_i32(40);
    a[1] = v_i32(2);
    PW_CHECK_EQ_INT(call_i32(plain, "call_add", a, 2), 42);
    PW_CHECK(fast_seen_inst == plain);
    PW_CHECK_EQ_INT(call_i32(plain, "call_wide", NULL, 0),
                    1 + 4 + 9 + 16 + 25 + 36 - 49 + 64);
    /* an i64 parameter: flagged but not eligible, plain and right */
    a[0].kind = PW_I64;
    a[0].of.i64 = (int64_t) 77 << 32;
    PW_CHECK_EQ_INT(call_i32(fast, "call_wide64", a, 1), 77);
    PW_CHECK_EQ_INT(pw__v8_fast_calls - before, 0);

    vt->instance_free(fast);
    vt->instance_free(plain);
    vt->module_free(m);
    vt->destroy(e);
    leak_check();
}

PW_TEST(fast_import_failure_traps)
{
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = compile_file(e, "fast.wasm");
    pw_einstance_t *inst = NULL;
    pw_import_t im[4];
    pw_efunc_t *fn;
    pw_trap_t trap;
    pw_val_t a[2], r;
    char err[256], sig[PW_SIG_MAX];
    unsigned long before;
    int k;

    fast_imports(im, PW_IMPORT_FAST);
    PW_CHECK_EQ_INT(vt->instantiate(m, im, 4, &inst, err, sizeof(err)),
                    PW_OK);
    PW_CHECK_EQ_INT(vt->lookup(inst, "call_fail", &fn, sig), PW_OK);
    for (k = 0; k < 3; k++) {
        before = pw__v8_fast_calls;
        r.kind = PW_I32;
        memset(&trap, 0, sizeof(trap));
        PW_CHECK_EQ_INT(vt->call(inst, fn, NULL, 0, &r, 1, &trap),
                        PW_ETRAP);
        PW_CHECK_EQ_STR(trap.message, "fast host function failed");
        PW_CHECK_EQ_INT(pw__v8_fast_calls - before, 1);
        /* stopped at the loop's check, long before the loop ends */
        PW_CHECK(call_i32(inst, "spins", NULL, 0) < 100000000);
        /* and the next calls run: nothing left terminating */
        a[0] = v_i32(k);
        a[1] = v_i32(1);
        PW_CHECK_EQ_INT(call_i32(inst, "call_add", a, 2), k + 1);
    }
    vt->instance_free(inst);
    vt->module_free(m);
    vt->destroy(e);
    leak_check();
}

/* More fast imports than slots: the rest are plain; freed slots return. */
PW_TEST(fast_slots_run_out_and_return)
{
    enum { NI = 70 };
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = compile_file(e, "fast.wasm");
    pw_einstance_t *insts[NI];
    pw_import_t im[4];
    unsigned long before;
    char err[256];
    pw_val_t a[2];
    int i, fast;

    fast_imports(im, PW_IMPORT_FAST);
    a[0] = v_i32(20);
    a[1] = v_i32(22);
    fast = 0;
    for (i = 0; i < NI; i++) {
        PW_CHECK_EQ_INT(vt->instantiate(m, im, 4, &insts[i], err,
                                        sizeof(err)), PW_OK);
        before = pw__v8_fast_calls;
        PW_CHECK_EQ_INT(call_i32(insts[i], "call_add", a, 2), 42);
        PW_CHECK(fast_seen_inst == insts[i]);
        fast += pw__v8_fast_calls - before == 1;
    }
    PW_CHECK(fast >= 32 && fast < NI);
    /* the last one is plain: its slot would be past the pool */
    before = pw__v8_fast_calls;
    PW_CHECK_EQ_INT(call_i32(insts[NI - 1], "call_add", a, 2), 42);
    PW_CHECK_EQ_INT(pw__v8_fast_calls - before, 0);
    for (i = 0; i < NI; i++) {
        vt->instance_free(insts[i]);
    }
    PW_CHECK_EQ_INT(vt->instantiate(m, im, 4, &insts[0], err, sizeof(err)),
                    PW_OK);
    before = pw__v8_fast_calls;
    PW_CHECK_EQ_INT(call_i32(insts[0], "call_add", a, 2), 42);
    PW_CHECK_EQ_INT(pw__v8_fast_calls - before, 1);
    vt->instance_free(insts[0]);
    vt->module_free(m);
    vt->destroy(e);
    leak_check();
}

PW_TEST(link_function_global_table)
{
    link_fixture_t f;
    pw_val_t a = v_i32(41), b = v_i32(14);

    link_setup(&f);
    /* a wasm function of the other instance, and a host function it
       re-exports */
    PW_CHECK_EQ_INT(call_i32(f.dst, "run", &a, 1), 42);
    PW_CHECK_EQ_INT(call_i32(f.dst, "run_twice", &a, 1), 82);
    PW_CHECK_EQ_INT(call_i32(f.dst, "get_g", NULL, 0), 7);
    /* dst's element segment filled src's table: src calls dst's code */
    PW_CHECK_EQ_INT(call_i32(f.src, "call_slot", &b, 1), 42);
    link_teardown(&f);
}

PW_TEST(link_memory_shared_and_grown)
{
    link_fixture_t f;
    uint8_t *base;
    size_t size;
    pw_val_t a = v_i32(64);

    link_setup(&f);
    PW_CHECK_EQ_INT(vt->memory(f.src, &base, &size), PW_OK);
    PW_CHECK_EQ_INT(size, 65536);
    memcpy(base + 64, "\x2a\0\0\0", 4);
    PW_CHECK_EQ_INT(call_i32(f.dst, "load", &a, 1), 42);
    /* grown by the other instance's code: src's view must follow */
    PW_CHECK_EQ_INT(call_i32(f.dst, "grow", NULL, 0), 1);
    PW_CHECK_EQ_INT(vt->memory(f.src, &base, &size), PW_OK);
    PW_CHECK_EQ_INT(size, 2 * 65536);
    PW_CHECK_EQ_INT(memcmp(base + 64, "\x2a\0\0\0", 4), 0);
    link_teardown(&f);
}

PW_TEST(link_trap_crosses_instances)
{
    link_fixture_t f;
    pw_val_t a = v_i32(1);
    pw_trap_t t;

    link_setup(&f);
    PW_CHECK_EQ_INT(call_trap(f.dst, "run_boom", &a, 1, 1, &t), PW_ETRAP);
    PW_CHECK(strstr(t.message, "unreachable") != NULL);
    /* both instances stay usable */
    PW_CHECK_EQ_INT(call_i32(f.dst, "run", &a, 1), 2);
    PW_CHECK_EQ_INT(call_i32(f.src, "add1", &a, 1), 2);
    link_teardown(&f);
}

PW_TEST(link_errors)
{
    link_fixture_t f;
    pw_import_t imports[6];
    pw_import_link_t bad;
    pw_einstance_t *inst = NULL;
    char err[256];

    link_setup(&f);
    memcpy(imports, f.imports, sizeof(imports));

    /* no such export */
    bad = (pw_import_link_t){ f.src, "nope" };
    imports[0].fn_data = &bad;
    PW_CHECK_EQ_INT(vt->instantiate(f.dm, imports, 6, &inst, err,
                                    sizeof(err)), PW_ELINK);
    PW_CHECK(strstr(err, "nope") != NULL);
    /* an export of another kind */
    bad = (pw_import_link_t){ f.src, "g" };
    PW_CHECK_EQ_INT(vt->instantiate(f.dm, imports, 6, &inst, err,
                                    sizeof(err)), PW_ELINK);
    /* no instance */
    bad = (pw_import_link_t){ NULL, "add1" };
    PW_CHECK_EQ_INT(vt->instantiate(f.dm, imports, 6, &inst, err,
                                    sizeof(err)), PW_ELINK);
    /* a table import given a host function */
    memcpy(imports, f.imports, sizeof(imports));
    imports[5].fn = h_twice;
    PW_CHECK_EQ_INT(vt->instantiate(f.dm, imports, 6, &inst, err,
                                    sizeof(err)), PW_ELINK);
    PW_CHECK(inst == NULL);
    link_teardown(&f);
}

PW_TEST(link_signature_mismatch)
{
    link_fixture_t f;
    pw_emodule_t *m;
    pw_einstance_t *inst = NULL;
    pw_import_link_t l;
    pw_import_t imp = { "env", "nop", ":", NULL, &l, 0 };
    char err[256];

    link_setup(&f);
    /* basic.wasm imports env.nop as () -> (); add1 is (i32) -> i32 */
    m = compile_file(f.e, "basic.wasm");
    l = (pw_import_link_t){ f.src, "add1" };
    {
        pw_import_t imports[NBASIC];
        size_t i;

        memcpy(imports, basic_imports, sizeof(imports));
        for (i = 0; i < NBASIC; i++) {
            if (strcmp(imports[i].name, "nop") == 0) {
                imports[i] = imp;
            }
        }
        PW_CHECK_EQ_INT(vt->instantiate(m, imports, NBASIC, &inst, err,
                                        sizeof(err)), PW_ELINK);
        PW_CHECK(strstr(err, "signature") != NULL);
    }
    vt->module_free(m);
    link_teardown(&f);
}

/* Without links, a linked import is refused, as is a module needing one. */
PW_TEST(link_refused)
{
    pw_engine_t *e = engine_new();
    pw_emodule_t *m = compile_file(e, "basic.wasm"), *dm = NULL;
    pw_import_t imports[NBASIC];
    pw_import_link_t l = { NULL, "add1" };
    pw_einstance_t *inst = NULL;
    char err[256] = "";
    uint8_t *bytes;
    size_t i, len;

    memcpy(imports, basic_imports, sizeof(imports));
    for (i = 0; i < NBASIC; i++) {
        if (strcmp(imports[i].name, "nop") == 0) {
            imports[i].fn = NULL;
            imports[i].fn_data = &l;
        }
    }
    PW_CHECK_EQ_INT(vt->instantiate(m, imports, NBASIC, &inst, err,
                                    sizeof(err)), PW_ELINK);
    PW_CHECK(strstr(err, "nop") != NULL);
    PW_CHECK(inst == NULL);

    /* link_dst imports a memory, a table and a global */
    bytes = pw_test_read_beside("link_dst.wasm", &len);
    PW_CHECK_EQ_INT(vt->compile(e, bytes, len, &dm, err, sizeof(err)),
                    PW_ELINK);
    PW_CHECK(strstr(err, "import") != NULL);
    PW_CHECK(dm == NULL);
    free(bytes);
    vt->module_free(m);
    vt->destroy(e);
    leak_check();
}

static pw_test_t all_tests[] = {
    PW_TEST_ENTRY(compile_once_instantiate_twice),
    PW_TEST_ENTRY(import_i32),
    PW_TEST_ENTRY(import_i64),
    PW_TEST_ENTRY(import_f32_f64),
    PW_TEST_ENTRY(import_mixed),
    PW_TEST_ENTRY(missing_import_is_link_error),
    PW_TEST_ENTRY(import_signature_mismatch_is_link_error),
    PW_TEST_ENTRY(lookup_signatures_and_missing),
    PW_TEST_ENTRY(call_each_kind),
    PW_TEST_ENTRY(call_i32_args_full_range),
    PW_TEST_ENTRY(call_i32_entry),
    PW_TEST_ENTRY(trap_unreachable_with_backtrace),
    PW_TEST_ENTRY(trap_out_of_bounds),
    PW_TEST_ENTRY(trap_divide_by_zero),
    PW_TEST_ENTRY(trap_call_stack_exhausted),
    PW_TEST_ENTRY(instance_usable_after_traps),
    PW_TEST_ENTRY(host_trap_aborts_guest_call),
    PW_TEST_ENTRY(host_reenters_guest),
    PW_TEST_ENTRY(memory_base_size_grow),
    PW_TEST_ENTRY(no_memory_export),
    PW_TEST_ENTRY(start_trap_fails_instantiate),
    PW_TEST_ENTRY(compile_rejects_garbage),
    PW_TEST_ENTRY(engine_restarts_in_process),
    PW_TEST_ENTRY(interrupt_infinite_loop),
    PW_TEST_ENTRY(interrupt_loop_calling_host),
    PW_TEST_ENTRY(interrupt_nested_call),
    PW_TEST_ENTRY(stale_interrupt_does_not_kill_next_call),
    PW_TEST_ENTRY(interrupt_race),
    PW_TEST_ENTRY(call_costs),
    /* from here, V8 only */
    PW_TEST_ENTRY(init_refused_after_fork),
    PW_TEST_ENTRY(fast_import_taken_and_right),
    PW_TEST_ENTRY(fast_import_failure_traps),
    PW_TEST_ENTRY(fast_slots_run_out_and_return),
    PW_TEST_ENTRY(link_function_global_table),
    PW_TEST_ENTRY(link_memory_shared_and_grown),
    PW_TEST_ENTRY(link_trap_crosses_instances),
    PW_TEST_ENTRY(link_errors),
    PW_TEST_ENTRY(link_signature_mismatch),
    PW_TEST_ENTRY(outer_calls_free_their_handles),
    PW_TEST_ENTRY(no_threads_background_work_inline),
    PW_TEST_ENTRY(no_threads_job_in_slices),
    PW_TEST_ENTRY(no_threads_end_with_work_queued),
    PW_TEST_ENTRY(threads_make_a_pool),
    { 0 } };
static pw_test_t other_tests[] = {
    PW_TEST_ENTRY(link_refused),
    { 0 } };
int
main(int argc, char **argv)
{
    const char *name = getenv("PW_TEST_ENGINE");
    size_t i;

    if (name != NULL && *name != '\0') {
        vt = pw_engine_find(name);
        if (vt == NULL) {
            fprintf(stderr, "no engine %s\n", name);
            return 2;
        }
    }
    if (vt != &pw_engine_v8) {
        /* the common tests, then what the others must do instead */
        for (i = 0; all_tests[i].name != NULL; i++) {
            if (strcmp(all_tests[i].name, "init_refused_after_fork") == 0) {
                break;
            }
        }
        all_tests[i] = other_tests[0];
        all_tests[i + 1] = other_tests[1];
    }
    return pw_test_main(argc, argv, all_tests);
}
