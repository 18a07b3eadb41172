/*
 * Unit tests of the core (src/core: module checks, VMs, contexts, every
 * hostcall, WASI, the watchdog) with a fake engine and a recording fake
 * host: no V8. Each test builds a module description whose C functions
 * play the plugin; the core sees real wasm bytes rendered from it.
 *
 * Hooks: a test sets what an export does with on("on_tick", fn); every
 * export call is appended to `trace` as "on_tick(1);" (the "proxy_" prefix
 * dropped, allocator calls left out).
 */
#include <limits.h>
#include <libgen.h>
#include <stdarg.h>
#include <time.h>

#include "../pwtest.h"

#include "core/core.h"
#include "fake_engine.h"
#include "fake_host.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* WASI errnos */
#define E_SUCCESS 0
#define E_BADF 8
#define E_FAULT 21
#define E_INVAL 28
#define E_NOTSUP 58

#define ST_OK PW_STATUS_OK
#define ST_NOT_FOUND PW_STATUS_NOT_FOUND
#define ST_BAD PW_STATUS_BAD_ARGUMENT
#define ST_MEM PW_STATUS_INVALID_MEMORY_ACCESS

/* ---- the fixture ---------------------------------------------------- */

typedef uint32_t (*hook_t)(fake_inst_t *fi, const uint32_t *a, size_t n);

typedef struct {
    pw_abi_t abi;               /* marker; 0: 0.2.1 */
    const char *marker;         /* explicit marker export ("" none) */
    const char *omit;           /* " "-separated std exports left out */
    const fake_export_t *extra; /* more exports (replace std ones) */
    size_t nextra;
    const fake_import_t *imports; /* more imports */
    size_t nimports;
    int only_extra_imports;     /* import nothing of the table */
    int no_memory;
    size_t mem_size;
    fake_fn_t start;
} modopt_t;

#define MAX_HOOKS 32

static struct {
    fake_host_t host;
    fake_import_t imports[256];
    fake_export_t exports[64];
    fake_module_t desc;
    uint8_t *wasm;
    size_t wasm_len;
    pw_engine_t *engine;
    pw_module_t *mod;
    pw_vm_conf_t conf;
    pw_vm_t *vm;
    pw_plugin_conf_t pconf;
    pw_plugin_t *plugin;
    pw_stream_t *stream;
    pw_store_t *store;
    char err[512];
    struct {
        const char *name;
        hook_t fn;
    } hooks[MAX_HOOKS];
    char trace[16384];
} F;

static int std_export(fake_inst_t *fi, const char *name, const pw_val_t *a,
    size_t n, pw_val_t *res);

static const struct {
    const char *name;
    const char *sig;
} std_exports[] = {
    { "proxy_on_memory_allocate", "i:i" },
    { "proxy_on_context_create", "ii:" },
    { "proxy_on_vm_start", "ii:i" },
    { "proxy_on_configure", "ii:i" },
    { "proxy_on_tick", "i:" },
    { "proxy_on_done", "i:i" },
    { "proxy_on_log", "i:" },
    { "proxy_on_delete", "i:" },
    { "proxy_on_request_headers", "iii:i" },
    { "proxy_on_request_body", "iii:i" },
    { "proxy_on_request_trailers", "ii:i" },
    { "proxy_on_response_headers", "iii:i" },
    { "proxy_on_response_body", "iii:i" },
    { "proxy_on_response_trailers", "ii:i" },
    { "proxy_on_new_connection", "i:i" },
    { "proxy_on_downstream_data", "iii:i" },
    { "proxy_on_upstream_data", "iii:i" },
    { "proxy_on_downstream_connection_close", "ii:" },
    { "proxy_on_upstream_connection_close", "ii:" },
    { "proxy_on_http_call_response", "iiiii:" },
    { "proxy_on_grpc_receive_initial_metadata", "iii:" },
    { "proxy_on_grpc_receive", "iii:" },
    { "proxy_on_grpc_receive_trailing_metadata", "iii:" },
    { "proxy_on_grpc_close", "iii:" },
    { "proxy_on_queue_ready", "ii:" },
    { "proxy_on_foreign_function", "iii:" },
    { "_initialize", ":" },
};

static const char *
abi_marker(pw_abi_t abi)
{
    switch (abi) {
    case PW_ABI_0_1_0: return "proxy_abi_version_0_1_0";
    case PW_ABI_0_2_0: return "proxy_abi_version_0_2_0";
    default: return "proxy_abi_version_0_2_1";
    }
}

static int
omitted(const char *omit, const char *name)
{
    size_t len = strlen(name);
    const char *p = omit;

    while (p && (p = strstr(p, name)) != NULL) {
        if ((p == omit || p[-1] == ' ') && (p[len] == ' ' || !p[len])) {
            return 1;
        }
        p += len;
    }
    return 0;
}

static void
add_export(const char *name, const char *sig, fake_fn_t fn)
{
    size_t i;

    for (i = 0; i < F.desc.nexports; i++) {
        if (strcmp(F.exports[i].name, name) == 0) {
            F.exports[i].sig = sig;
            F.exports[i].fn = fn;
            return;
        }
    }
    PW_CHECK(F.desc.nexports < sizeof(F.exports) / sizeof(F.exports[0]));
    F.exports[F.desc.nexports].name = name;
    F.exports[F.desc.nexports].sig = sig;
    F.exports[F.desc.nexports].fn = fn;
    F.desc.nexports++;
}

/* Fill F.desc; the module imports every hostcall of its ABI. */
static void
build_desc(const modopt_t *o)
{
    const pw_hostcall_info_t *h;
    pw_abi_t abi = o->abi ? o->abi : PW_ABI_0_2_1;
    size_t i, n;

    memset(&F.desc, 0, sizeof(F.desc));
    F.desc.imports = F.imports;
    F.desc.exports = F.exports;
    F.desc.no_memory = o->no_memory;
    F.desc.mem_size = o->mem_size;
    F.desc.start = o->start;

    if (!o->only_extra_imports) {
        h = pw_hostcalls(&n);
        for (i = 0; i < n; i++) {
            if (!(h[i].abi & abi)) {
                continue;
            }
            F.imports[F.desc.nimports].module =
                strcmp(h[i].module, "env") == 0 ? "env"
                                                : "wasi_snapshot_preview1";
            F.imports[F.desc.nimports].name = h[i].name;
            F.imports[F.desc.nimports].sig = h[i].sig;
            F.desc.nimports++;
        }
    }
    for (i = 0; i < o->nimports; i++) {
        F.imports[F.desc.nimports++] = o->imports[i];
    }

    if (o->marker == NULL) {
        add_export(abi_marker(abi), ":", NULL);
    } else if (o->marker[0]) {
        add_export(o->marker, ":", NULL);
    }
    for (i = 0; i < sizeof(std_exports) / sizeof(std_exports[0]); i++) {
        if (omitted(o->omit, std_exports[i].name)) {
            continue;
        }
        add_export(std_exports[i].name, std_exports[i].sig,
                   strcmp(std_exports[i].name, "proxy_on_memory_allocate")
                   == 0 ? fake_guest_alloc : std_export);
    }
    for (i = 0; i < o->nextra; i++) {
        add_export(o->extra[i].name, o->extra[i].sig, o->extra[i].fn);
    }
}

static void
fx_init(void)
{
    fh_init(&F.host);
    F.conf.host = &F.host.host;
    F.conf.host_data = &F.host;
    F.conf.vm_id = PW_STR("vm1");
    F.conf.vm_config = PW_STR("vmconf");
    F.pconf.name = PW_STR("plug");
    F.pconf.root_id = PW_STR("root_a");
    F.pconf.config = PW_STR("hello config");
    F.pconf.host_data = (void *) 0x1234;
    F.host.unknown_upstream = "nowhere";
    PW_CHECK(fake_engine_vt.init(NULL, &F.engine, F.err, sizeof(F.err))
             == PW_OK);
}

/* Build and load a module; returns pw_module_load's code (err in F.err). */
static int
fx_load(const modopt_t *o)
{
    int rc;

    if (F.engine == NULL) {
        fx_init();
    }
    build_desc(o);
    PW_CHECK(fake_wasm_encode(&F.desc, &F.wasm, &F.wasm_len) == PW_OK);
    F.err[0] = '\0';
    rc = pw_module_load(&fake_engine_vt, F.engine, F.wasm, F.wasm_len,
                        &F.mod, F.err, sizeof(F.err));
    if (rc != PW_OK) {
        F.mod = NULL;
    }
    return rc;
}

static void
fx_module(const modopt_t *o)
{
    int rc = fx_load(o);

    if (rc != PW_OK) {
        fprintf(stderr, "  pw_module_load: %s: %s\n", pw_strerror(rc), F.err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
}

static int
fx_vm_try(void)
{
    F.err[0] = '\0';
    return pw_vm_new(F.mod, &F.conf, &F.vm, F.err, sizeof(F.err));
}

static void
fx_vm(void)
{
    int rc = fx_vm_try();

    if (rc != PW_OK) {
        fprintf(stderr, "  pw_vm_new: %s: %s\n", pw_strerror(rc), F.err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
}

static int
fx_plugin_try(pw_plugin_t **out)
{
    F.err[0] = '\0';
    return pw_plugin_new(F.vm, &F.pconf, out, F.err, sizeof(F.err));
}

static void
fx_plugin(void)
{
    int rc = fx_plugin_try(&F.plugin);

    if (rc != PW_OK) {
        fprintf(stderr, "  pw_plugin_new: %s: %s\n", pw_strerror(rc), F.err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
}

/* Module (options o, may be NULL), VM and one plugin. */
static void
fx_up(const modopt_t *o)
{
    static const modopt_t def;

    fx_module(o ? o : &def);
    fx_vm();
    fx_plugin();
}

static pw_stream_t *
fx_stream(void)
{
    if (F.stream == NULL) {
        PW_CHECK(pw_stream_new(F.plugin, PW_STREAM_HTTP, (void *) 0x5678,
                               &F.stream) == PW_OK);
    }
    return F.stream;
}

/* Free everything, then check nothing leaked. */
static void
fx_down(void)
{
    if (F.stream) {
        pw_stream_free(F.stream);
        F.stream = NULL;
    }
    if (F.plugin) {
        pw_plugin_free(F.plugin);
        F.plugin = NULL;
    }
    if (F.vm) {
        pw_vm_free(F.vm);
        F.vm = NULL;
    }
    pw_module_free(F.mod);
    F.mod = NULL;
    if (F.store) {
        pw_store_free(F.store);
        F.store = NULL;
    }
    if (F.engine) {
        fake_engine_vt.destroy(F.engine);
        F.engine = NULL;
    }
    free(F.wasm);
    F.wasm = NULL;
    fh_free(&F.host);
    PW_CHECK_EQ_INT(fake_stats.instances, 0);
#ifdef __SANITIZE_ADDRESS__
    PW_CHECK(__lsan_do_recoverable_leak_check() == 0);
#endif
}

static void
on(const char *name, hook_t fn)
{
    int i;

    for (i = 0; i < MAX_HOOKS; i++) {
        if (F.hooks[i].name == NULL || strcmp(F.hooks[i].name, name) == 0) {
            F.hooks[i].name = name;
            F.hooks[i].fn = fn;
            return;
        }
    }
    PW_CHECK(!"too many hooks");
}

static void
trace_reset(void)
{
    F.trace[0] = '\0';
}

static int
export_has_result(const char *name)
{
    size_t i;

    for (i = 0; i < F.desc.nexports; i++) {
        if (strcmp(F.exports[i].name, name) == 0) {
            return strchr(F.exports[i].sig, ':')[1] != '\0';
        }
    }
    return 0;
}

static int
std_export(fake_inst_t *fi, const char *name, const pw_val_t *a, size_t n,
    pw_val_t *res)
{
    const char *s = strncmp(name, "proxy_", 6) == 0 ? name + 6 : name;
    size_t i, len = strlen(F.trace);
    uint32_t args[8], r;

    for (i = 0; i < n && i < 8; i++) {
        args[i] = (uint32_t) a[i].of.i32;
    }
    len += (size_t) snprintf(F.trace + len, sizeof(F.trace) - len, "%s(", s);
    for (i = 0; i < n && len < sizeof(F.trace); i++) {
        len += (size_t) snprintf(F.trace + len, sizeof(F.trace) - len,
                                 "%s%u", i ? "," : "", args[i]);
    }
    if (len < sizeof(F.trace)) {
        snprintf(F.trace + len, sizeof(F.trace) - len, ");");
    }

    r = strcmp(s, "on_vm_start") == 0 || strcmp(s, "on_configure") == 0
        || strcmp(s, "on_done") == 0;
    for (i = 0; i < MAX_HOOKS && F.hooks[i].name; i++) {
        if (strcmp(F.hooks[i].name, s) == 0) {
            if (F.hooks[i].fn) {
                r = F.hooks[i].fn(fi, args, n);
            }
            break;
        }
    }
    if (export_has_result(name)) {
        res[0].of.i32 = (int32_t) r;
    }
    return PW_OK;
}

/* Run fn as the root context's on_tick. */
static void
in_root(hook_t fn)
{
    on("on_tick", fn);
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_OK);
    on("on_tick", NULL);
}

static uint32_t
hook_none(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    return 0;
}

/* Run fn as the stream's on_request_headers. */
static void
in_stream(hook_t fn)
{
    pw_action_t act;

    on("on_request_headers", fn);
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 1, 0, &act), PW_OK);
    on("on_request_headers", hook_none);
}

/* ---- guest helpers -------------------------------------------------- */

#define HC(name, ...) ((uint32_t) fake_hc(fi, name, ##__VA_ARGS__))
#define S(s) fake_put_str(fi, s)
#define SL(s) fake_put_str(fi, s), (uint32_t) strlen(s)
#define MEM ((uint32_t) fake_mem_size(fi))

/* The (ptr, size) pair at o as a host string. */
static int
ret_is(fake_inst_t *fi, uint32_t o, const void *exp, size_t len)
{
    uint32_t p = fake_rd32(fi, o), size = fake_rd32(fi, o + 4);

    if (size != len) {
        fprintf(stderr, "  returned size %u, expected %zu\n", size, len);
        return 0;
    }
    if (len == 0) {
        return 1;
    }
    if ((uint64_t) p + size > fake_mem_size(fi)) {
        return 0;
    }
    if (memcmp(fake_mem(fi) + p, exp, len) != 0) {
        fprintf(stderr, "  returned \"%.*s\"\n", (int) size,
                (char *) fake_mem(fi) + p);
        return 0;
    }
    return 1;
}

#define RET_IS(o, lit) ret_is(fi, o, lit, sizeof(lit) - 1)

/* Serialize pairs into guest memory; *len gets the size. */
static uint32_t
put_pairs(fake_inst_t *fi, const pw_pair_t *pairs, size_t n, uint32_t *len)
{
    pw_pairs_t p = { pairs, n };
    uint8_t *buf;
    size_t size;
    uint32_t g;

    PW_CHECK(pw_pairs_size(&p, &size) == PW_OK);
    buf = malloc(size);
    PW_CHECK(buf != NULL);
    pw_pairs_serialize(&p, buf);
    g = fake_put(fi, buf, size);
    free(buf);
    *len = (uint32_t) size;
    return g;
}

#define P(k, v) { PW_STR(k), PW_STR(v) }

static const pw_pair_t call_hdrs[] = {
    P(":method", "GET"), P(":path", "/x"), P(":authority", "up"),
};

/* The serialized map at (ptr, size) in o, as "k: v\n" lines. */
static char *
ret_pairs(fake_inst_t *fi, uint32_t o)
{
    uint32_t p = fake_rd32(fi, o), size = fake_rd32(fi, o + 4);
    pw_pairs_t pairs;
    char *s;

    PW_CHECK((uint64_t) p + size <= fake_mem_size(fi));
    PW_CHECK(pw_pairs_deserialize(fake_mem(fi) + p, size, &pairs) == PW_OK);
    s = fh_pairs_str(&pairs);
    free((void *) pairs.pairs);
    return s;
}

static void
check_pairs(fake_inst_t *fi, uint32_t o, const char *exp)
{
    char *s = ret_pairs(fi, o);

    if (strcmp(s, exp) != 0) {
        fprintf(stderr, "  pairs:\n%s  expected:\n%s", s, exp);
    }
    PW_CHECK(strcmp(s, exp) == 0);
    free(s);
}

static void
set_header(pw_map_type_t t, const char *k, const char *v)
{
    PW_CHECK(pw_map_add(F.host.maps[t], (pw_str_t){ k, strlen(k) },
                        (pw_str_t){ v, strlen(v) }) == PW_OK);
}

/* ---- modules -------------------------------------------------------- */

PW_TEST(module_abi_markers)
{
    static const struct {
        const char *marker;
        pw_abi_t abi;
    } m[] = {
        { "proxy_abi_version_0_1_0", PW_ABI_0_1_0 },
        { "proxy_abi_version_0_2_0", PW_ABI_0_2_0 },
        { "proxy_abi_version_0_2_1", PW_ABI_0_2_1 },
        { "proxy_abi_version_0_x_x", PW_ABI_0_2_1 },
    };
    modopt_t o = { 0 };
    size_t i;

    for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        o.abi = m[i].abi;
        o.marker = m[i].marker;
        fx_module(&o);
        PW_CHECK_EQ_INT(pw_module_abi(F.mod), m[i].abi);
        PW_CHECK(pw_module_info(F.mod) != NULL);
        pw_module_free(F.mod);
        F.mod = NULL;
        free(F.wasm);
        F.wasm = NULL;
    }
    fx_down();
}

PW_TEST(module_no_marker)
{
    modopt_t o = { .marker = "" };
    pw_abi_t abi = PW_ABI_ALL;

    PW_CHECK_EQ_INT(fx_load(&o), PW_EMALFORMED);
    PW_CHECK(strstr(F.err, "no proxy_abi_version marker") != NULL);
    PW_CHECK_EQ_INT(fake_stats.compiles, 0);
    /* the same answer without an engine */
    PW_CHECK_EQ_INT(pw_module_check(F.wasm, F.wasm_len, &abi, F.err,
                                    sizeof(F.err)), PW_EMALFORMED);
    PW_CHECK_EQ_INT(abi, PW_ABI_ALL);
    fx_down();
}

PW_TEST(module_missing_import)
{
    static const fake_import_t im[] = {
        { "env", "proxy_frobnicate", "i:i" },
    };
    static const fake_import_t im2[] = {
        { "acme", "proxy_log", "iii:i" },
    };
    modopt_t o = { .imports = im, .nimports = 1 };

    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK_EQ_STR(F.err, "missing import env.proxy_frobnicate");
    free(F.wasm);
    o.imports = im2;
    o.only_extra_imports = 1;
    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK_EQ_STR(F.err, "missing import acme.proxy_log");
    PW_CHECK_EQ_INT(fake_stats.compiles, 0);
    fx_down();
}

PW_TEST(module_import_outside_abi)
{
    static const fake_import_t lvl[] = {
        { "env", "proxy_get_log_level", "i:i" },
    };
    static const fake_import_t cont[] = {
        { "env", "proxy_continue_stream", "i:i" },
    };
    static const fake_import_t conf[] = {
        { "env", "proxy_get_configuration", "ii:i" },
    };
    modopt_t o = { .abi = PW_ABI_0_2_0, .imports = lvl, .nimports = 1,
                   .only_extra_imports = 1 };

    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "proxy_get_log_level is not part of ABI 0.2.0"));
    free(F.wasm);
    o.abi = PW_ABI_0_1_0;
    o.imports = cont;
    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "proxy_continue_stream is not part of ABI "
                           "0.1.0"));
    free(F.wasm);
    o.abi = PW_ABI_0_2_1;
    o.imports = conf;
    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "proxy_get_configuration is not part of ABI "
                           "0.2.1"));
    free(F.wasm);
    /* and each is fine in its own ABI */
    o.abi = PW_ABI_0_2_1;
    o.imports = lvl;
    fx_module(&o);
    pw_module_free(F.mod);
    F.mod = NULL;
    free(F.wasm);
    o.abi = PW_ABI_0_1_0;
    o.imports = conf;
    fx_module(&o);
    fx_down();
}

PW_TEST(module_bad_import_signature)
{
    static const fake_import_t im[] = {
        { "env", "proxy_log", "ii:i" },
    };
    modopt_t o = { .imports = im, .nimports = 1, .only_extra_imports = 1 };

    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "bad signature for import env.proxy_log") != NULL);
    fx_down();
}

PW_TEST(module_bad_export_signature)
{
    static const fake_export_t ex[] = {
        { "proxy_on_configure", "iiii:i", std_export },
    };
    static const fake_export_t ex2[] = {
        { "proxy_on_request_headers", "iiii:i", std_export },
    };
    modopt_t o = { .extra = ex, .nextra = 1 };

    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "bad signature for proxy_on_configure") != NULL);
    free(F.wasm);
    o.extra = ex2;
    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "bad signature for proxy_on_request_headers"));
    fx_down();
}

PW_TEST(module_no_memory)
{
    modopt_t o = { .no_memory = 1 };

    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK_EQ_STR(F.err, "no memory export");
    fx_down();
}

PW_TEST(module_allocator)
{
    static const fake_export_t ex[] = {
        { "malloc", "i:i", fake_guest_alloc },
    };
    modopt_t o = { .omit = "proxy_on_memory_allocate" };

    PW_CHECK_EQ_INT(fx_load(&o), PW_ELINK);
    PW_CHECK(strstr(F.err, "no proxy_on_memory_allocate or malloc") != NULL);
    free(F.wasm);
    /* malloc alone is enough */
    o.extra = ex;
    o.nextra = 1;
    fx_module(&o);
    fx_down();
}

PW_TEST(module_wasi_unstable)
{
    static const fake_import_t im[] = {
        { "wasi_unstable", "proc_exit", "i:" },
        { "wasi_unstable", "fd_write", "iiii:i" },
        { "env", "emscripten_notify_memory_growth", "i:" },
    };
    modopt_t o = { .imports = im, .nimports = 3, .only_extra_imports = 1 };

    fx_up(&o);
    fx_down();
}

PW_TEST(module_every_table_entry_links)
{
    static const pw_abi_t abis[] = { PW_ABI_0_1_0, PW_ABI_0_2_0,
                                     PW_ABI_0_2_1 };
    const pw_hostcall_info_t *h;
    size_t i, j, n, nabi;
    modopt_t o = { 0 };

    h = pw_hostcalls(&n);
    PW_CHECK(n > 90);
    for (i = 0; i < 3; i++) {
        o.abi = abis[i];
        fx_up(&o);
        for (j = 0, nabi = 0; j < n; j++) {
            PW_CHECK(h[j].implemented);
            PW_CHECK(h[j].module && h[j].name && h[j].sig && h[j].note);
            nabi += (h[j].abi & abis[i]) != 0;
        }
        PW_CHECK_EQ_INT(F.desc.nimports, nabi);
        pw_plugin_free(F.plugin);
        F.plugin = NULL;
        pw_vm_free(F.vm);
        F.vm = NULL;
        pw_module_free(F.mod);
        F.mod = NULL;
        free(F.wasm);
        F.wasm = NULL;
    }
    fx_down();
}

/* ---- lifecycle ------------------------------------------------------ */

PW_TEST(plugin_start_sequence)
{
    fx_up(NULL);
    PW_CHECK_EQ_STR(F.trace, "_initialize();on_context_create(1,0);"
                    "on_vm_start(1,6);on_configure(1,12);");
    PW_CHECK_EQ_INT(pw_plugin_id(F.plugin), 1);
    PW_CHECK(pw_plugin_vm(F.plugin) == F.vm);
    PW_CHECK(!pw_vm_failed(F.vm));
    PW_CHECK(pw_vm_fail_reason(F.vm) == NULL);
    PW_CHECK(pw_vm_last_trap(F.vm) == NULL);
    trace_reset();
    pw_plugin_free(F.plugin);
    F.plugin = NULL;
    PW_CHECK_EQ_STR(F.trace, "on_done(1);on_delete(1);");
    fx_down();
}

static uint32_t
ret_false(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    return 0;
}

static uint32_t
hook_trap(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    fake_trap(fi, "RuntimeError: unreachable");
}

PW_TEST(plugin_vm_start_false)
{
    pw_plugin_t *p = NULL;

    fx_module(&(modopt_t){ 0 });
    fx_vm();
    on("on_vm_start", ret_false);
    trace_reset();
    PW_CHECK_EQ_INT(fx_plugin_try(&p), PW_EFAILED);
    PW_CHECK(p == NULL);
    PW_CHECK_EQ_STR(F.err, "proxy_on_vm_start returned false");
    /* on_configure never ran; the created context was torn down */
    PW_CHECK_EQ_STR(F.trace, "on_context_create(1,0);on_vm_start(1,6);"
                    "on_done(1);on_delete(1);");
    PW_CHECK(!pw_vm_failed(F.vm));
    PW_CHECK(fh_log_find(&F.host, "proxy_on_vm_start returned false"));
    fx_down();
}

PW_TEST(plugin_configure_false)
{
    pw_plugin_t *p = NULL;

    fx_module(&(modopt_t){ 0 });
    fx_vm();
    on("on_configure", ret_false);
    PW_CHECK_EQ_INT(fx_plugin_try(&p), PW_EFAILED);
    PW_CHECK_EQ_STR(F.err, "proxy_on_configure returned false");
    PW_CHECK(!pw_vm_failed(F.vm));
    /* the VM is still usable for another plugin */
    on("on_configure", NULL);
    fx_plugin();
    PW_CHECK_EQ_INT(pw_plugin_id(F.plugin), 2);
    fx_down();
}

PW_TEST(plugin_configure_trap)
{
    pw_plugin_t *p = NULL;
    uint64_t events;

    fx_module(&(modopt_t){ 0 });
    fx_vm();
    on("on_configure", hook_trap);
    trace_reset();
    events = *pw_vm_events(F.vm);
    PW_CHECK_EQ_INT(fx_plugin_try(&p), PW_EFAILED);
    PW_CHECK(strstr(F.err, "proxy_on_configure") != NULL);
    PW_CHECK(strstr(F.err, "RuntimeError: unreachable") != NULL);
    PW_CHECK(pw_vm_failed(F.vm));
    /* the failure moves the events counter a host watches */
    PW_CHECK(*pw_vm_events(F.vm) != events);
    /* a failed VM is not entered again, not even to tear down */
    PW_CHECK_EQ_STR(F.trace, "on_context_create(1,0);on_vm_start(1,6);"
                    "on_configure(1,12);");
    PW_CHECK_EQ_INT(fx_plugin_try(&p), PW_EFAILED);
    fx_down();
}

PW_TEST(stream_lazy_create_and_end)
{
    pw_action_t act = PW_ACTION_PAUSE;
    pw_stream_t *s, *never;

    fx_up(NULL);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &never),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_stream_id(s), 2);
    PW_CHECK_EQ_INT(pw_stream_id(never), 3);
    trace_reset();
    PW_CHECK_EQ_INT(pw_http_request_headers(s, 5, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(pw_http_request_body(s, 10, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_response_headers(s, 3, 0, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_response_body(s, 7, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_trailers(s, 2, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_response_trailers(s, 4, &act), PW_OK);
    PW_CHECK_EQ_STR(F.trace, "on_context_create(2,1);"
                    "on_request_headers(2,5,1);on_request_body(2,10,1);"
                    "on_response_headers(2,3,0);on_response_body(2,7,1);"
                    "on_request_trailers(2,2);on_response_trailers(2,4);");
    trace_reset();
    pw_stream_free(never);
    PW_CHECK_EQ_STR(F.trace, "");
    pw_stream_free(s);
    PW_CHECK_EQ_STR(F.trace, "on_done(2);on_log(2);on_delete(2);");
    fx_down();
}

static uint32_t
ret_pause(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    return PW_ACTION_PAUSE;
}

PW_TEST(stream_tcp_hooks)
{
    pw_action_t act = PW_ACTION_CONTINUE;
    pw_stream_t *s;

    fx_up(NULL);
    on("on_downstream_data", ret_pause);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_TCP, NULL, &s), PW_OK);
    trace_reset();
    PW_CHECK_EQ_INT(pw_tcp_new_connection(s, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(pw_tcp_downstream_data(s, 100, 0, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_PAUSE);
    PW_CHECK_EQ_INT(pw_tcp_upstream_data(s, 50, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_CONTINUE);
    PW_CHECK_EQ_INT(pw_tcp_downstream_close(s, PW_PEER_REMOTE), PW_OK);
    PW_CHECK_EQ_INT(pw_tcp_upstream_close(s, PW_PEER_LOCAL), PW_OK);
    pw_stream_free(s);
    PW_CHECK_EQ_STR(F.trace, "on_context_create(2,1);on_new_connection(2);"
                    "on_downstream_data(2,100,0);on_upstream_data(2,50,1);"
                    "on_downstream_connection_close(2,2);"
                    "on_upstream_connection_close(2,1);"
                    "on_done(2);on_log(2);on_delete(2);");
    fx_down();
}

PW_TEST(stream_missing_export_continues)
{
    pw_action_t act = PW_ACTION_PAUSE;
    modopt_t o = { .omit = "proxy_on_request_body proxy_on_context_create "
                           "proxy_on_log" };

    fx_up(&o);
    trace_reset();
    PW_CHECK_EQ_INT(pw_http_request_body(fx_stream(), 3, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(act, PW_ACTION_CONTINUE);
    pw_stream_free(F.stream);
    F.stream = NULL;
    PW_CHECK_EQ_STR(F.trace, "on_done(2);on_delete(2);");
    fx_down();
}

PW_TEST(headers_arity)
{
    static const fake_export_t two[] = {
        { "proxy_on_request_headers", "ii:i", std_export },
        { "proxy_on_response_headers", "ii:i", std_export },
    };
    modopt_t o = { .abi = PW_ABI_0_1_0, .extra = two, .nextra = 2 };
    pw_action_t act;

    /* 0.1.0 with the 2-param form */
    fx_up(&o);
    trace_reset();
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 4, 1, &act), PW_OK);
    PW_CHECK_EQ_INT(pw_http_response_headers(F.stream, 6, 1, &act), PW_OK);
    PW_CHECK_EQ_STR(F.trace, "on_context_create(2,1);on_request_headers(2,4);"
                    "on_response_headers(2,6);");
    fx_down();

    /* 0.1.0 declaring the 3-param form (some plugins do) */
    memset(&F, 0, sizeof(F));
    o.extra = NULL;
    o.nextra = 0;
    fx_up(&o);
    trace_reset();
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 4, 1, &act), PW_OK);
    PW_CHECK_EQ_STR(F.trace, "on_context_create(2,1);"
                    "on_request_headers(2,4,1);");
    fx_down();

    /* 0.2.0 */
    memset(&F, 0, sizeof(F));
    o.abi = PW_ABI_0_2_0;
    fx_up(&o);
    trace_reset();
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 9, 0, &act), PW_OK);
    PW_CHECK_EQ_STR(F.trace, "on_context_create(2,1);"
                    "on_request_headers(2,9,0);");
    fx_down();
}

PW_TEST(trap_fails_vm)
{
    pw_action_t act;
    pw_stream_t *s2;
    pw_plugin_t *p2;
    const pw_trap_t *trap;
    int calls;

    fx_up(NULL);
    on("on_request_headers", hook_trap);
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 1, 0, &act),
                    PW_EFAILED);
    PW_CHECK(pw_vm_failed(F.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(F.vm), "trap in "
                    "proxy_on_request_headers: RuntimeError: unreachable"));
    trap = pw_vm_last_trap(F.vm);
    PW_CHECK(trap != NULL);
    PW_CHECK_EQ_STR(trap->message, "RuntimeError: unreachable");
    PW_CHECK(strstr(trap->backtrace, "proxy_on_request_headers") != NULL);
    /* the host heard why, with the backtrace */
    PW_CHECK(fh_log_find(&F.host, "plugin failed: trap in") != NULL);
    PW_CHECK_EQ_INT(fh_log_find(&F.host, "plugin failed")->t, PW_LOG_ERROR);

    /* nothing enters the guest any more */
    calls = fake_stats.calls;
    on("on_request_headers", NULL);
    PW_CHECK_EQ_INT(pw_http_request_headers(F.stream, 1, 0, &act),
                    PW_EFAILED);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s2),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_http_request_headers(s2, 1, 0, &act), PW_EFAILED);
    PW_CHECK_EQ_INT(pw_tcp_downstream_close(s2, 0), PW_EFAILED);
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_EFAILED);
    PW_CHECK_EQ_INT(pw_plugin_queue_ready(F.plugin, 1), PW_EFAILED);
    PW_CHECK_EQ_INT(fx_plugin_try(&p2), PW_EFAILED);
    PW_CHECK(strstr(F.err, "trap in") != NULL);
    pw_stream_free(s2);
    pw_stream_free(F.stream);
    F.stream = NULL;
    pw_plugin_free(F.plugin);
    F.plugin = NULL;
    PW_CHECK_EQ_INT(fake_stats.calls, calls);
    fx_down();
}

static uint32_t
hook_log_tick(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    PW_CHECK_EQ_INT(HC("proxy_log", PW_LOG_INFO, SL("tick")), ST_OK);
    return 0;
}

PW_TEST(several_roots)
{
    pw_plugin_t *p2;
    const fh_rec_t *r;

    fx_up(NULL);
    F.pconf.name = PW_STR("second");
    F.pconf.root_id = PW_STR("root_b");
    F.pconf.config = PW_STR("xy");
    F.pconf.host_data = (void *) 0x2222;
    trace_reset();
    PW_CHECK_EQ_INT(fx_plugin_try(&p2), PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_id(p2), 2);
    PW_CHECK_EQ_STR(F.trace, "on_context_create(2,0);on_vm_start(2,6);"
                    "on_configure(2,2);");
    on("on_tick", hook_log_tick);
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_tick(p2), PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_OK);
    PW_CHECK_EQ_STR(F.trace, "on_tick(2);on_tick(1);");
    r = fh_find(&F.host, "log", 0);
    PW_CHECK(r->plugin == p2 && r->plugin_data == (void *) 0x2222);
    PW_CHECK(r->stream == NULL);
    r = fh_find(&F.host, "log", 1);
    PW_CHECK(r->plugin == F.plugin && r->plugin_data == (void *) 0x1234);
    trace_reset();
    pw_plugin_free(p2);
    PW_CHECK_EQ_STR(F.trace, "on_done(2);on_delete(2);");
    fx_down();
}

PW_TEST(context_ids_not_reused)
{
    pw_stream_t *s[3];
    uint32_t id;

    fx_up(NULL);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s[0]),
                    PW_OK);
    id = pw_stream_id(s[0]);
    /* the counter comes back to live ids (after a wrap-around, when
     * ids are no longer new): they are skipped */
    F.vm->next_id = id;
    F.vm->ids_wrapped = 1;
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s[1]),
                    PW_OK);
    PW_CHECK(pw_stream_id(s[1]) != id);
    PW_CHECK_EQ_INT(pw_stream_id(s[1]), id + 1);
    /* wrapping skips 0 and the root's id 1 */
    F.vm->next_id = UINT32_MAX;
    pw_stream_free(s[1]);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s[1]),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_stream_id(s[1]), UINT32_MAX);
    PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s[2]),
                    PW_OK);
    PW_CHECK(pw_stream_id(s[2]) != 0 && pw_stream_id(s[2]) != 1
             && pw_stream_id(s[2]) != id);
    PW_CHECK_EQ_INT(pw_stream_id(s[2]), 3);
    pw_stream_free(s[0]);
    pw_stream_free(s[1]);
    pw_stream_free(s[2]);
    fx_down();
}

PW_TEST(many_streams)
{
    pw_stream_t *s[300];
    pw_action_t act;
    int i;

    fx_up(NULL);
    for (i = 0; i < 300; i++) {
        PW_CHECK_EQ_INT(pw_stream_new(F.plugin, PW_STREAM_HTTP, NULL, &s[i]),
                        PW_OK);
        PW_CHECK_EQ_INT(pw_stream_id(s[i]), i + 2);
    }
    for (i = 0; i < 300; i++) {
        PW_CHECK(pw__ctx_find(F.vm, (uint32_t) i + 2) == &s[i]->ctx);
    }
    PW_CHECK_EQ_INT(pw_http_request_headers(s[299], 1, 0, &act), PW_OK);
    /* freeing the plugin ends its streams first */
    trace_reset();
    pw_plugin_free(F.plugin);
    F.plugin = NULL;
    PW_CHECK_EQ_STR(F.trace, "on_done(301);on_log(301);on_delete(301);"
                    "on_done(1);on_delete(1);");
    PW_CHECK(pw__ctx_find(F.vm, 301) == NULL);
    fx_down();
}
/* ---- entry points --------------------------------------------------- */

static uint32_t
hook_exit0(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    HC("proc_exit", 0);
    PW_CHECK(!"proc_exit returned");
    return 0;
}

static uint32_t
hook_exit3(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    HC("proc_exit", 3);
    PW_CHECK(!"proc_exit returned");
    return 0;
}

static const fake_export_t ex_main[] = {
    { "main", "ii:i", std_export },
};
static const fake_export_t ex_main_void[] = {
    { "main", ":i", std_export },
    { "__main_void", ":i", std_export },
};
static const fake_export_t ex_start[] = {
    { "_start", ":", std_export },
};

PW_TEST(entry_initialize_then_main)
{
    modopt_t o = { .extra = ex_main, .nextra = 1 };

    fx_module(&o);
    fx_vm();
    PW_CHECK_EQ_STR(F.trace, "_initialize();main(0,0);");
    fx_down();

    /* __main_void wins over main */
    memset(&F, 0, sizeof(F));
    o.extra = ex_main_void;
    o.nextra = 2;
    fx_module(&o);
    fx_vm();
    PW_CHECK_EQ_STR(F.trace, "_initialize();__main_void();");
    fx_down();

    /* main without _initialize is not called */
    memset(&F, 0, sizeof(F));
    o.extra = ex_main;
    o.nextra = 1;
    o.omit = "_initialize";
    fx_module(&o);
    fx_vm();
    PW_CHECK_EQ_STR(F.trace, "");
    fx_down();
}

PW_TEST(entry_start_only_without_initialize)
{
    modopt_t o = { .extra = ex_start, .nextra = 1 };

    fx_module(&o);
    fx_vm();
    PW_CHECK_EQ_STR(F.trace, "_initialize();");
    fx_down();

    memset(&F, 0, sizeof(F));
    o.omit = "_initialize";
    fx_module(&o);
    fx_vm();
    PW_CHECK_EQ_STR(F.trace, "_start();");
    fx_down();
}

PW_TEST(entry_start_proc_exit)
{
    modopt_t o = { .extra = ex_start, .nextra = 1, .omit = "_initialize" };

    /* _start ending with proc_exit(0) is a normal exit */
    fx_module(&o);
    on("_start", hook_exit0);
    fx_vm();
    PW_CHECK(!pw_vm_failed(F.vm));
    fx_plugin();
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_OK);
    fx_down();

    memset(&F, 0, sizeof(F));
    fx_module(&o);
    on("_start", hook_exit3);
    PW_CHECK_EQ_INT(fx_vm_try(), PW_ETRAP);
    PW_CHECK(F.vm == NULL);
    PW_CHECK(strstr(F.err, "_start") != NULL);
    PW_CHECK(strstr(F.err, "proc_exit") != NULL);
    fx_down();
}

PW_TEST(entry_initialize_trap)
{
    fx_module(&(modopt_t){ 0 });
    on("_initialize", hook_trap);
    PW_CHECK_EQ_INT(fx_vm_try(), PW_ETRAP);
    PW_CHECK(strstr(F.err, "trap in _initialize: RuntimeError: unreachable"));
    /* the failed VM was freed (fake_stats.instances checked) */
    fx_down();
}

static int
start_trap(fake_inst_t *fi, const char *name, const pw_val_t *a, size_t n,
    pw_val_t *res)
{
    fake_trap(fi, "RuntimeError: start section");
}

PW_TEST(entry_start_section_trap)
{
    modopt_t o = { .start = start_trap };

    fx_module(&o);
    PW_CHECK(pw_module_info(F.mod)->has_start);
    PW_CHECK_EQ_INT(fx_vm_try(), PW_ETRAP);
    PW_CHECK(strstr(F.err, "RuntimeError: start section") != NULL);
    fx_down();
}

PW_TEST(proc_exit_in_hook_fails_vm)
{
    fx_up(NULL);
    on("on_tick", hook_exit0);
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_EFAILED);
    PW_CHECK(pw_vm_failed(F.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(F.vm), "proc_exit") != NULL);
    fx_down();
}

/* ---- the watchdog ----------------------------------------------------- */

static uint32_t
hook_spin(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    fake_spin(fi);
}

static uint32_t
hook_spin_hostcalls(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8);

    for (;;) {
        HC("proxy_get_current_time_nanoseconds", o);
    }
    return 0;
}

static uint32_t
hook_sleep2(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    struct timespec ts = { 0, 2 * 1000000 };

    nanosleep(&ts, NULL);
    return 0;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

PW_TEST(watchdog_interrupts_runaway_call)
{
    double t0, dt;
    int i;

    fx_init();
    F.conf.max_call_ms = 50;
    fx_up(NULL);

    /* calls below the limit are never interrupted, nor the ones after */
    on("on_tick", hook_sleep2);
    for (i = 0; i < 40; i++) {
        PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_OK);
    }
    PW_CHECK_EQ_INT(fake_stats.interrupts, 0);

    on("on_tick", hook_spin);
    t0 = now_ms();
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_EFAILED);
    dt = now_ms() - t0;
    PW_CHECK(dt >= 45 && dt < 2000);
    PW_CHECK(fake_stats.interrupts >= 1);
    PW_CHECK(pw_vm_failed(F.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(F.vm), "time limit") != NULL);
    PW_CHECK(strstr(pw_vm_fail_reason(F.vm), "proxy_on_tick") != NULL);
    fx_down();
}

PW_TEST(watchdog_interrupts_hostcall_loop)
{
    pw_action_t act;

    fx_init();
    F.conf.max_call_ms = 30;
    fx_up(NULL);
    on("on_request_headers", hook_spin_hostcalls);
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 1, 0, &act),
                    PW_EFAILED);
    PW_CHECK(strstr(pw_vm_fail_reason(F.vm), "time limit") != NULL);
    fx_down();
}

/* ---- contexts: effective context, proxy_done -------------------------- */

static uint32_t g_id;
static uint32_t g_st[8];

static uint32_t
hook_switch_to_stream(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    g_st[0] = HC("proxy_set_effective_context", 999);
    g_st[1] = HC("proxy_log", PW_LOG_INFO, SL("as root"));
    g_st[2] = HC("proxy_set_effective_context", g_id);
    g_st[3] = HC("proxy_log", PW_LOG_INFO, SL("as stream"));
    g_st[4] = HC("proxy_add_header_map_value", PW_MAP_HTTP_REQUEST_HEADERS,
                 SL("x-k"), SL("v"));
    PW_CHECK(F.vm->effective == &F.stream->ctx);
    return 0;
}

PW_TEST(set_effective_context)
{
    const fh_rec_t *r;
    pw_action_t act;

    fx_up(NULL);
    PW_CHECK_EQ_INT(pw_http_request_headers(fx_stream(), 0, 0, &act), PW_OK);
    g_id = pw_stream_id(F.stream);
    in_root(hook_switch_to_stream);
    PW_CHECK_EQ_INT(g_st[0], ST_BAD);
    PW_CHECK_EQ_INT(g_st[2], ST_OK);
    PW_CHECK_EQ_INT(g_st[4], ST_OK);
    r = fh_find(&F.host, "log", 0);
    PW_CHECK(r && strcmp(r->s1, "as root") == 0);
    PW_CHECK(r->stream == NULL && r->plugin == F.plugin);
    r = fh_find(&F.host, "log", 1);
    PW_CHECK(r && strcmp(r->s1, "as stream") == 0);
    PW_CHECK(r->stream == F.stream && r->stream_data == (void *) 0x5678);
    PW_CHECK(r->plugin == F.plugin);
    r = fh_last(&F.host, "map_add");
    PW_CHECK(r && r->stream == F.stream);
    /* restored when the callback returned */
    PW_CHECK(F.vm->effective == NULL);
    fh_reset_log(&F.host);
    in_root(hook_log_tick);
    r = fh_find(&F.host, "log", 0);
    PW_CHECK(r && r->stream == NULL);
    fx_down();
}

static uint32_t
hook_switch_to_root(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8);

    g_st[0] = HC("proxy_set_effective_context", 1);
    /* a nested call into the guest (the allocator) keeps it */
    g_st[1] = HC("proxy_get_buffer_bytes", PW_BUFFER_PLUGIN_CONFIGURATION,
                 0, 100, o, o + 4);
    PW_CHECK(RET_IS(o, "hello config"));
    PW_CHECK(F.vm->effective == &F.plugin->ctx);
    g_st[2] = HC("proxy_add_header_map_value", PW_MAP_HTTP_REQUEST_HEADERS,
                 SL("x-k"), SL("v"));
    return 0;
}

PW_TEST(set_effective_context_nested)
{
    fx_up(NULL);
    in_stream(hook_switch_to_root);
    PW_CHECK_EQ_INT(g_st[0], ST_OK);
    PW_CHECK_EQ_INT(g_st[1], ST_OK);
    /* a root context has no request headers */
    PW_CHECK_EQ_INT(g_st[2], ST_NOT_FOUND);
    PW_CHECK_EQ_INT(fh_count(&F.host, "map_add"), 0);
    PW_CHECK(F.vm->effective == NULL);
    fx_down();
}

static uint32_t
hook_done(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    g_st[g_id++] = HC("proxy_done");
    return 0;
}

static uint32_t
hook_done_in_delete(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    if (a[0] == 1) {
        g_st[g_id++] = HC("proxy_done");
        g_st[g_id++] = HC("proxy_done");
    }
    return 0;
}

PW_TEST(proxy_done)
{
    fx_up(NULL);
    g_id = 0;
    /* not pending: NOT_FOUND, from a root and from a stream */
    in_root(hook_done);
    in_stream(hook_done);
    PW_CHECK_EQ_INT(g_st[0], ST_NOT_FOUND);
    PW_CHECK_EQ_INT(g_st[1], ST_NOT_FOUND);
    PW_CHECK(!pw_plugin_done_pending(F.plugin));
    pw_stream_free(F.stream);
    F.stream = NULL;

    /* on_done returning false makes it pending until proxy_done */
    on("on_done", ret_false);
    on("on_delete", hook_done_in_delete);
    trace_reset();
    pw_plugin_free(F.plugin);
    F.plugin = NULL;
    PW_CHECK_EQ_STR(F.trace, "on_done(1);on_delete(1);");
    PW_CHECK_EQ_INT(g_st[2], ST_OK);
    PW_CHECK_EQ_INT(g_st[3], ST_NOT_FOUND);
    fx_down();
}

static uint32_t
hook_add_twice(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    g_st[0] = HC("proxy_add_header_map_value", 0, SL("k"), SL("v"));
    g_st[1] = HC("proxy_add_header_map_value", 0, SL("k"), SL("v"));
    g_st[2] = HC("proxy_send_local_response", 403, SL(""), SL(""), 0, 0,
                 (uint32_t) -1);
    g_st[3] = HC("proxy_http_call", SL("up"), 0, 0, 0, 0, 0, 0, 100,
                 fake_scratch(fi, 4));
    return 0;
}

PW_TEST(unimplemented_logged_once)
{
    const fh_rec_t *r;
    size_t i, n = 0;

    fx_init();
    F.host.host.map_add = NULL;
    F.host.host.send_local_response = NULL;
    fx_up(NULL);
    in_stream(hook_add_twice);
    PW_CHECK_EQ_INT(g_st[0], PW_STATUS_UNIMPLEMENTED);
    PW_CHECK_EQ_INT(g_st[1], PW_STATUS_UNIMPLEMENTED);
    PW_CHECK_EQ_INT(g_st[2], PW_STATUS_UNIMPLEMENTED);
    for (i = 0; i < F.host.nrecs; i++) {
        r = &F.host.recs[i];
        if (strcmp(r->kind, "log") == 0 && strstr(r->s1, "not implemented")) {
            n++;
        }
    }
    PW_CHECK_EQ_INT(n, 2);
    r = fh_log_find(&F.host, "not implemented");
    PW_CHECK_EQ_INT(r->t, PW_LOG_WARN);
    PW_CHECK_EQ_STR(r->s1, "proxy_add_header_map_value is not implemented "
                    "by this host");
    PW_CHECK(fh_log_find(&F.host, "proxy_send_local_response is not "
                         "implemented") != NULL);
    fx_down();
}

static uint32_t
hook_log_unimplemented(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8);

    PW_CHECK_EQ_INT(HC("proxy_log", PW_LOG_INFO, SL("x")),
                    PW_STATUS_UNIMPLEMENTED);
    /* what has a documented default still works */
    PW_CHECK_EQ_INT(HC("proxy_get_log_level", o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), PW_LOG_INFO);
    PW_CHECK_EQ_INT(HC("proxy_get_current_time_nanoseconds", o), ST_OK);
    PW_CHECK(fake_rd64(fi, o) > 1500000000ull * 1000000000ull);
    PW_CHECK_EQ_INT(HC("random_get", o, 8), E_SUCCESS);
    return 0;
}

PW_TEST(no_host_at_all)
{
    fx_init();
    F.conf.host = NULL;
    F.conf.host_data = NULL;
    fx_up(NULL);
    in_stream(hook_add_twice);
    PW_CHECK_EQ_INT(g_st[0], PW_STATUS_UNIMPLEMENTED);
    PW_CHECK_EQ_INT(g_st[2], PW_STATUS_UNIMPLEMENTED);
    /* a missing :method is checked before the host */
    PW_CHECK_EQ_INT(g_st[3], ST_BAD);
    in_root(hook_log_unimplemented);
    fx_down();
}


/* ---- guest memory: every pointer of every hostcall ---------------------- */

/* Placeholders resolved in the guest. */
#define X_S 0xFFFF0001u         /* "abc" (3 bytes) */
#define X_MAP 0xFFFF0002u       /* a serialized map with :method etc. */
#define X_MAPLEN 0xFFFF0003u
#define X_EMPTY 0xFFFF0004u     /* an empty serialized map (4 bytes) */
#define X_OUT 0xFFFF0005u       /* 32 bytes of out parameters */
#define X_OUT2 0xFFFF0006u
#define X_OUT3 0xFFFF0007u
#define X_TOK 0xFFFF0008u       /* a gRPC stream token */
#define X_QID 0xFFFF0009u
#define X_MID 0xFFFF000Au
#define X_VMID 0xFFFF000Bu      /* "vm1" */
#define X_BUF 0xFFFF000Cu       /* 256 bytes */
#define X_IOV 0xFFFF000Du       /* one iovec for "abc" */

typedef struct {
    const char *name;
    uint64_t args[12];
    int8_t ins[5][2];           /* 1-based (ptr, len) arguments */
    int8_t outs[4];             /* 1-based out pointers */
    const char *kind;           /* host record a bad input must not make */
} memcase_t;

static const memcase_t memcases[] = {
    { "proxy_log", { 2, X_S, 3 }, { { 2, 3 } }, { 0 }, "log" },
    { "proxy_get_log_level", { X_OUT }, { { 0 } }, { 1 }, NULL },
    { "proxy_get_current_time_nanoseconds", { X_OUT }, { { 0 } }, { 1 },
      NULL },
    { "proxy_get_buffer_bytes", { 0, 0, 0xFFFFFFFF, X_OUT, X_OUT2 },
      { { 0 } }, { 4, 5 }, NULL },
    { "proxy_set_buffer_bytes", { 0, 0, 0, X_S, 3 }, { { 4, 5 } }, { 0 },
      "buffer_set" },
    { "proxy_get_buffer_status", { 0, X_OUT, X_OUT2 }, { { 0 } }, { 2, 3 },
      NULL },
    { "proxy_get_header_map_size", { 0, X_OUT }, { { 0 } }, { 2 }, NULL },
    { "proxy_get_header_map_pairs", { 0, X_OUT, X_OUT2 }, { { 0 } },
      { 2, 3 }, NULL },
    { "proxy_set_header_map_pairs", { 1, X_MAP, X_MAPLEN }, { { 2, 3 } },
      { 0 }, "map_set_pairs" },
    { "proxy_get_header_map_value", { 0, X_S, 3, X_OUT, X_OUT2 },
      { { 2, 3 } }, { 4, 5 }, "map_get" },
    { "proxy_add_header_map_value", { 0, X_S, 3, X_S, 3 },
      { { 2, 3 }, { 4, 5 } }, { 0 }, "map_add" },
    { "proxy_replace_header_map_value", { 0, X_S, 3, X_S, 3 },
      { { 2, 3 }, { 4, 5 } }, { 0 }, "map_replace" },
    { "proxy_remove_header_map_value", { 0, X_S, 3 }, { { 2, 3 } }, { 0 },
      "map_remove" },
    { "proxy_get_status", { X_OUT, X_OUT2, X_OUT3 }, { { 0 } }, { 1, 2, 3 },
      NULL },
    { "proxy_send_local_response",
      { 200, X_S, 3, X_S, 3, X_MAP, X_MAPLEN, 0xFFFFFFFF },
      { { 2, 3 }, { 4, 5 }, { 6, 7 } }, { 0 }, "send_local_response" },
    { "proxy_http_call",
      { X_S, 3, X_MAP, X_MAPLEN, X_S, 3, X_EMPTY, 4, 1000, X_OUT },
      { { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 } }, { 10 }, "http_call" },
    { "proxy_grpc_call",
      { X_S, 3, X_S, 3, X_S, 3, X_EMPTY, 4, X_S, 3, 1000, X_OUT },
      { { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 }, { 9, 10 } }, { 12 },
      "grpc_call" },
    { "proxy_grpc_stream", { X_S, 3, X_S, 3, X_S, 3, X_EMPTY, 4, X_OUT },
      { { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 } }, { 9 }, "grpc_stream" },
    { "proxy_grpc_send", { X_TOK, X_S, 3, 0 }, { { 2, 3 } }, { 0 },
      "grpc_send" },
    { "proxy_get_shared_data", { X_S, 3, X_OUT, X_OUT2, X_OUT3 },
      { { 1, 2 } }, { 3, 4, 5 }, NULL },
    { "proxy_set_shared_data", { X_S, 3, X_S, 3, 0 }, { { 1, 2 }, { 3, 4 } },
      { 0 }, NULL },
    { "proxy_register_shared_queue", { X_S, 3, X_OUT }, { { 1, 2 } }, { 3 },
      NULL },
    { "proxy_resolve_shared_queue", { X_VMID, 3, X_S, 3, X_OUT },
      { { 1, 2 }, { 3, 4 } }, { 5 }, NULL },
    { "proxy_enqueue_shared_queue", { X_QID, X_S, 3 }, { { 2, 3 } }, { 0 },
      NULL },
    { "proxy_dequeue_shared_queue", { X_QID, X_OUT, X_OUT2 }, { { 0 } },
      { 2, 3 }, NULL },
    { "proxy_define_metric", { 0, X_S, 3, X_OUT }, { { 2, 3 } }, { 4 },
      NULL },
    { "proxy_get_metric", { X_MID, X_OUT }, { { 0 } }, { 2 }, NULL },
    { "proxy_get_property", { X_S, 3, X_OUT, X_OUT2 }, { { 1, 2 } },
      { 3, 4 }, "get_property" },
    { "proxy_set_property", { X_S, 3, X_S, 3 }, { { 1, 2 }, { 3, 4 } },
      { 0 }, "set_property" },
    { "proxy_call_foreign_function", { X_S, 3, X_S, 3, X_OUT, X_OUT2 },
      { { 1, 2 }, { 3, 4 } }, { 5, 6 }, "foreign" },
    /* WASI answers FAULT */
    { "args_sizes_get", { X_OUT, X_OUT2 }, { { 0 } }, { 1, 2 }, NULL },
    { "args_get", { X_OUT, X_BUF }, { { 0 } }, { 1, 2 }, NULL },
    { "environ_sizes_get", { X_OUT, X_OUT2 }, { { 0 } }, { 1, 2 }, NULL },
    { "environ_get", { X_OUT, X_BUF }, { { 0 } }, { 1, 2 }, NULL },
    { "clock_time_get", { 0, 1, X_OUT }, { { 0 } }, { 3 }, NULL },
    { "clock_res_get", { 1, X_OUT }, { { 0 } }, { 2 }, NULL },
    { "random_get", { X_BUF, 16 }, { { 1, 2 } }, { 0 }, "random" },
    { "fd_write", { 1, X_IOV, 1, X_OUT }, { { 2, 3 } }, { 4 }, "log" },
    { "fd_fdstat_get", { 1, X_OUT }, { { 0 } }, { 2 }, NULL },
    { "poll_oneoff", { X_BUF, X_BUF, 1, X_OUT }, { { 0 } }, { 4 }, NULL },
};

static int foreign_calls;

static int
foreign_echo(void *data, const pw_hctx_t *c, pw_str_t args, uint8_t **res,
    size_t *rlen)
{
    size_t i;

    foreign_calls++;
    if (data != NULL) {
        return (int) (intptr_t) data;
    }
    *res = malloc(args.len ? args.len : 1);
    PW_CHECK(*res != NULL);
    for (i = 0; i < args.len; i++) {
        (*res)[i] = (uint8_t) args.data[args.len - 1 - i];
    }
    *rlen = args.len;
    return PW_OK;
}

static size_t
mem_kind_count(const char *kind)
{
    if (kind == NULL) {
        return 0;
    }
    if (strcmp(kind, "foreign") == 0) {
        return (size_t) foreign_calls;
    }
    return fh_count(&F.host, kind);
}

static uint64_t
resolve(fake_inst_t *fi, uint64_t v, const uint32_t *x)
{
    return v >= X_S && v <= X_IOV ? x[v - X_S] : v;
}

static int
mem_call(fake_inst_t *fi, const memcase_t *c, const uint64_t *args)
{
    return fake_hc_arr(fi, c->name, args, 12);
}

static uint32_t
hook_memcases(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t x[X_IOV - X_S + 1], len, bad_out[4], iov[2];
    uint64_t args[12], bad_in[5][2];
    size_t i, j, k, before;
    int st, want, allocs;
    const memcase_t *c;

    x[X_S - X_S] = S("abc");
    x[X_MAP - X_S] = put_pairs(fi, call_hdrs, 3, &len);
    x[X_MAPLEN - X_S] = len;
    x[X_EMPTY - X_S] = fake_scratch(fi, 4);
    x[X_OUT - X_S] = fake_scratch(fi, 32);
    x[X_OUT2 - X_S] = x[X_OUT - X_S] + 8;
    x[X_OUT3 - X_S] = x[X_OUT - X_S] + 16;
    PW_CHECK_EQ_INT(HC("proxy_grpc_stream", SL("up"), SL("s"), SL("m"), 0, 0,
                       x[X_OUT - X_S]), ST_OK);
    x[X_TOK - X_S] = fake_rd32(fi, x[X_OUT - X_S]);
    PW_CHECK_EQ_INT(HC("proxy_register_shared_queue", SL("abc"),
                       x[X_OUT - X_S]), ST_OK);
    x[X_QID - X_S] = fake_rd32(fi, x[X_OUT - X_S]);
    for (i = 0; i < 64; i++) {
        PW_CHECK_EQ_INT(HC("proxy_enqueue_shared_queue", x[X_QID - X_S],
                           SL("item")), ST_OK);
    }
    PW_CHECK_EQ_INT(HC("proxy_define_metric", 1, SL("g"), x[X_OUT - X_S]),
                    ST_OK);
    x[X_MID - X_S] = fake_rd32(fi, x[X_OUT - X_S]);
    x[X_VMID - X_S] = S("vm1");
    x[X_BUF - X_S] = fake_scratch(fi, 256);
    iov[0] = x[X_S - X_S];
    iov[1] = 3;
    x[X_IOV - X_S] = fake_put(fi, iov, 8);

    bad_in[0][0] = MEM - 2;
    bad_in[0][1] = 4;
    bad_in[1][0] = 0xFFFFFFF0;
    bad_in[1][1] = 0x20;
    bad_in[2][0] = 16;
    bad_in[2][1] = 0xFFFFFFF8;
    bad_in[3][0] = 0xFFFFFFFF;
    bad_in[3][1] = 1;
    bad_in[4][0] = MEM;
    bad_in[4][1] = 1;
    bad_out[0] = MEM - 2;
    bad_out[1] = MEM - 1;
    bad_out[2] = 0xFFFFFFFE;
    bad_out[3] = MEM;

    for (c = memcases; c < memcases + sizeof(memcases) / sizeof(memcases[0]);
         c++)
    {
        want = strncmp(c->name, "proxy_", 6) == 0 ? ST_MEM : E_FAULT;
        for (i = 0; i < 12; i++) {
            args[i] = resolve(fi, c->args[i], x);
        }
        st = mem_call(fi, c, args);
        if (st != 0) {
            fprintf(stderr, "  %s: baseline answered %d\n", c->name, st);
        }
        PW_CHECK_EQ_INT(st, 0);

        for (j = 0; j < 5 && c->ins[j][0]; j++) {
            for (k = 0; k < 5; k++) {
                uint64_t m[12];

                memcpy(m, args, sizeof(m));
                m[c->ins[j][0] - 1] = bad_in[k][0];
                m[c->ins[j][1] - 1] = bad_in[k][1];
                before = mem_kind_count(c->kind);
                st = mem_call(fi, c, m);
                /* a length over its cap is refused before the pointer */
                if (strcmp(c->name, "random_get") == 0
                    && bad_in[k][1] > PW_MAX_RANDOM_BYTES)
                {
                    PW_CHECK_EQ_INT(st, E_INVAL);
                    continue;
                }
                if (st != want || mem_kind_count(c->kind) != before) {
                    fprintf(stderr, "  %s: bad (ptr, len) in args %d,%d = "
                            "0x%llx, 0x%llx answered %d%s\n", c->name,
                            c->ins[j][0], c->ins[j][1],
                            (unsigned long long) bad_in[k][0],
                            (unsigned long long) bad_in[k][1], st,
                            mem_kind_count(c->kind) != before
                            ? " and reached the host" : "");
                }
                PW_CHECK_EQ_INT(st, want);
                PW_CHECK_EQ_INT(mem_kind_count(c->kind), before);
            }
        }
        for (j = 0; j < 4 && c->outs[j]; j++) {
            for (k = 0; k < 4; k++) {
                uint64_t m[12];

                memcpy(m, args, sizeof(m));
                m[c->outs[j] - 1] = bad_out[k];
                allocs = fake_alloc_ctl(fi)->count;
                st = mem_call(fi, c, m);
                if (st != want || fake_alloc_ctl(fi)->count != allocs) {
                    fprintf(stderr, "  %s: bad out pointer in arg %d = "
                            "0x%x answered %d (%d allocations)\n", c->name,
                            c->outs[j], bad_out[k], st,
                            fake_alloc_ctl(fi)->count - allocs);
                }
                PW_CHECK_EQ_INT(st, want);
                PW_CHECK_EQ_INT(fake_alloc_ctl(fi)->count, allocs);
            }
        }
    }
    return 0;
}

PW_TEST(memory_bounds_every_pointer)
{
    static const pw_str_t env[] = { PW_STR("A=1") };
    static const pw_str_t args[] = { PW_STR("prog") };

    fx_init();
    F.conf.env = env;
    F.conf.nenv = 1;
    F.conf.args = args;
    F.conf.nargs = 1;
    fx_up(NULL);
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, "abc", "1");
    fh_set_body(&F.host, PW_BUFFER_HTTP_REQUEST_BODY, "hello world");
    fh_set_prop(&F.host, "abc", "pv", 2);
    PW_CHECK_EQ_INT(pw_kv_set(F.vm->store, "abc", 3, "v", 1, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_vm_register_foreign(F.vm, PW_STR("abc"), foreign_echo,
                                           NULL), PW_OK);
    in_stream(hook_memcases);
    fx_down();
}

/* Every hostcall survives garbage arguments (a crude fuzz of the table). */
static uint32_t
hook_garbage(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const uint64_t fills[] = { 0, 1, 0xFFFFFFFF, 0xFFFFFFF0,
                                      0x7FFFFFFF, 0x10000 - 3 };
    const pw_hostcall_info_t *h;
    uint64_t args[12];
    size_t i, j, k, nh;
    int st;

    h = pw_hostcalls(&nh);
    for (i = 0; i < nh; i++) {
        if (!(h[i].abi & PW_ABI_0_2_1) || strcmp(h[i].name, "proc_exit") == 0
            || !fake_has_import(fi, h[i].name))
        {
            continue;
        }
        for (k = 0; k < sizeof(fills) / sizeof(fills[0]); k++) {
            for (j = 0; j < 12; j++) {
                args[j] = fills[(k + j) % 6];
            }
            st = fake_hc_arr(fi, h[i].name, args, 12);
            if (strchr(h[i].sig, ':')[1] == 'i') {
                PW_CHECK(st >= 0 && st <= 76);
            }
        }
    }
    return 0;
}

PW_TEST(every_hostcall_garbage_args)
{
    fx_up(NULL);
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, "abc", "1");
    fh_set_body(&F.host, PW_BUFFER_HTTP_REQUEST_BODY, "hello world");
    in_stream(hook_garbage);
    in_root(hook_garbage);
    PW_CHECK(!pw_vm_failed(F.vm));
    fx_down();
}


/* ---- header maps ---------------------------------------------------- */

static uint32_t
hook_map_types(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const uint32_t bad[] = { 8, 9, 0x80000000u, 0xFFFFFFFF };
    uint32_t o = fake_scratch(fi, 16), m, mlen, k = S("abc");
    size_t i;

    m = put_pairs(fi, call_hdrs, 3, &mlen);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", bad[i], o, o + 4),
                        ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_get_header_map_size", bad[i], o), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", bad[i], k, 3, o,
                           o + 4), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", bad[i], m, mlen),
                        ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_add_header_map_value", bad[i], k, 3, k, 3),
                        ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_replace_header_map_value", bad[i], k, 3, k,
                           3), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_remove_header_map_value", bad[i], k, 3),
                        ST_BAD);
    }
    /* callout answers are read-only */
    for (i = 4; i <= 7; i++) {
        PW_CHECK_EQ_INT(HC("proxy_add_header_map_value", i, k, 3, k, 3),
                        ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", i, m, mlen),
                        ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_remove_header_map_value", i, k, 3),
                        ST_BAD);
    }
    return 0;
}

PW_TEST(map_bad_types)
{
    fx_up(NULL);
    in_stream(hook_map_types);
    PW_CHECK_EQ_INT(fh_count(&F.host, "map_pairs") + fh_count(&F.host,
                    "map_get") + fh_count(&F.host, "map_set_pairs")
                    + fh_count(&F.host, "map_add")
                    + fh_count(&F.host, "map_replace")
                    + fh_count(&F.host, "map_remove"), 0);
    fx_down();
}

static uint32_t
hook_map_ops(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const pw_pair_t np[] = { P("x-new", "1"), P("x-two", "22") };
    uint32_t o = fake_scratch(fi, 16), m, mlen;

    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 0, o, o + 4), ST_OK);
    check_pairs(fi, o, ":path: /a\nhost: h\nx-k: v1\n");
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_size", 0, o), ST_OK);
    /* 4 + 3 * 8 + (5+1+2+1) + (4+1+1+1) + (3+1+2+1) */
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 4 + 24 + 9 + 7 + 7);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 0, SL("X-K"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "v1"));
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 0, SL("nope"), o,
                       o + 4), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_add_header_map_value", 0, SL("x-k"), SL("v2")),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_replace_header_map_value", 0, SL("host"),
                       SL("h2")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_remove_header_map_value", 0, SL(":path")),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_remove_header_map_value", 0, SL("absent")),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 0, o, o + 4), ST_OK);
    check_pairs(fi, o, "host: h2\nx-k: v1\nx-k: v2\n");
    /* an empty value is a value */
    PW_CHECK_EQ_INT(HC("proxy_add_header_map_value", 2, SL("x-e"), 0, 0),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 2, SL("x-e"), o, o + 4),
                    ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 4), 0);
    /* whole map */
    m = put_pairs(fi, np, 2, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 1, m, mlen), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 1, o, o + 4), ST_OK);
    check_pairs(fi, o, "x-new: 1\nx-two: 22\n");
    /* the empty forms of a map: 0 bytes and one NUL byte */
    PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 1, 0, 0), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 1, o, o + 4), ST_OK);
    check_pairs(fi, o, "");
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_size", 1, o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 4);
    return 0;
}

PW_TEST(map_operations)
{
    const fh_rec_t *r;

    fx_up(NULL);
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, ":path", "/a");
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, "host", "h");
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-k", "v1");
    in_stream(hook_map_ops);
    r = fh_find(&F.host, "map_add", 0);
    PW_CHECK(r && r->t == 0 && strcmp(r->s1, "x-k") == 0
             && strcmp(r->s2, "v2") == 0 && r->stream == F.stream);
    r = fh_find(&F.host, "map_set_pairs", 0);
    PW_CHECK(r && r->t == 1 && strcmp(r->pairs, "x-new: 1\nx-two: 22\n") == 0);
    PW_CHECK_EQ_INT(pw_map_count(F.host.maps[PW_MAP_HTTP_REQUEST_TRAILERS]),
                    0);
    fx_down();
}

static uint32_t
hook_map_in_root(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    /* a root context has no stream maps: they read as empty */
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 0, o, o + 4), ST_OK);
    check_pairs(fi, o, "");
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_size", 0, o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 4);
    g_st[0] = HC("proxy_get_header_map_value", 0, SL("k"), o, o + 4);
    g_st[1] = fake_rd32(fi, o + 4);
    PW_CHECK_EQ_INT(HC("proxy_add_header_map_value", 0, SL("k"), SL("v")),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_remove_header_map_value", 0, SL("k")),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 0, 0, 0), ST_NOT_FOUND);
    /* callout maps outside a delivery */
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 6, SL("k"), o, o + 4),
                    g_st[0]);
    return 0;
}

static uint32_t
hook_missing_key(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    fake_wr32(fi, o, 0xAAAAAAAA);
    fake_wr32(fi, o + 4, 0xAAAAAAAA);
    g_st[0] = HC("proxy_get_header_map_value", 0, SL("absent"), o, o + 4);
    g_st[1] = fake_rd32(fi, o + 4);
    g_st[2] = fake_rd32(fi, o);
    return 0;
}

PW_TEST(map_missing_key_by_abi)
{
    modopt_t o = { .abi = PW_ABI_0_1_0 };

    /* 0.1.0: OK with an empty value */
    fx_up(&o);
    in_stream(hook_missing_key);
    PW_CHECK_EQ_INT(g_st[0], ST_OK);
    PW_CHECK_EQ_INT(g_st[1], 0);
    PW_CHECK_EQ_INT(g_st[2], 0);
    in_root(hook_map_in_root);
    PW_CHECK_EQ_INT(g_st[0], ST_OK);
    PW_CHECK_EQ_INT(g_st[1], 0);
    fx_down();

    /* 0.2.0 and 0.2.1: NOT_FOUND, out parameters untouched */
    memset(&F, 0, sizeof(F));
    o.abi = PW_ABI_0_2_0;
    fx_up(&o);
    in_stream(hook_missing_key);
    PW_CHECK_EQ_INT(g_st[0], ST_NOT_FOUND);
    PW_CHECK_EQ_INT(g_st[1], 0xAAAAAAAA);
    in_root(hook_map_in_root);
    PW_CHECK_EQ_INT(g_st[0], ST_NOT_FOUND);
    fx_down();

    memset(&F, 0, sizeof(F));
    o.abi = PW_ABI_0_2_1;
    fx_up(&o);
    in_stream(hook_missing_key);
    PW_CHECK_EQ_INT(g_st[0], ST_NOT_FOUND);
    fx_down();
}

/* A serialized map written by hand: n pairs claimed, sizes given. */
static uint32_t
raw_map(fake_inst_t *fi, uint32_t n, const uint32_t *sizes, size_t nsizes,
    const char *tail, size_t tail_len, uint32_t *len)
{
    uint8_t buf[512];
    size_t off = 0, i;

    memcpy(buf, &n, 4);
    off = 4;
    for (i = 0; i < nsizes; i++) {
        memcpy(buf + off, &sizes[i], 4);
        off += 4;
    }
    memcpy(buf + off, tail, tail_len);
    off += tail_len;
    *len = (uint32_t) off;
    return fake_put(fi, buf, off);
}

static uint32_t
hook_bad_maps(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const uint32_t one[] = { 1, 1 };
    static const uint32_t liar[] = { 1, 200 };
    uint32_t m[8], len[8], big, biglen, i, out = fake_scratch(fi, 8);
    uint8_t *p;

    /* a good one to compare with */
    m[0] = raw_map(fi, 1, one, 2, "a\0b\0", 4, &len[0]);
    PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 0, m[0], len[0]), ST_OK);
    /* truncated by a byte */
    m[1] = raw_map(fi, 1, one, 2, "a\0b", 3, &len[1]);
    /* a value size past the end */
    m[2] = raw_map(fi, 1, liar, 2, "a\0b\0", 4, &len[2]);
    /* 2000 pairs claimed in a short buffer */
    m[3] = raw_map(fi, 2000, one, 2, "a\0b\0", 4, &len[3]);
    /* a missing NUL */
    m[4] = raw_map(fi, 1, one, 2, "a\0bX", 4, &len[4]);
    /* fewer than 4 bytes */
    m[5] = fake_put(fi, "\1\0", 2);
    len[5] = 2;
    /* trailing bytes */
    m[6] = raw_map(fi, 1, one, 2, "a\0b\0zz", 6, &len[6]);
    for (i = 1; i <= 6; i++) {
        PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 0, m[i], len[i]),
                        ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_send_local_response", 500, 0, 0, 0, 0,
                           m[i], len[i], 0xFFFFFFFF), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m[i], len[i], 0, 0,
                           0, 0, 100, out), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m[0], len[0], 0, 0,
                           m[i], len[i], 100, out), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_grpc_call", SL("up"), SL("s"), SL("m"),
                           m[i], len[i], 0, 0, 100, out), ST_BAD);
        PW_CHECK_EQ_INT(HC("proxy_grpc_stream", SL("up"), SL("s"), SL("m"),
                           m[i], len[i], out), ST_BAD);
    }

    /* 2000 real pairs (over PW_MAX_MAP_PAIRS) */
    big = (uint32_t) fake_mem_size(fi) / 2;
    p = fake_mem(fi) + big;
    biglen = 4 + 2000 * 10;
    memcpy(p, &(uint32_t){ 2000 }, 4);
    for (i = 0; i < 2000; i++) {
        memcpy(p + 4 + i * 8, one, 8);
        memcpy(p + 4 + 2000 * 8 + i * 4, "a\0b\0", 4);
    }
    PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 0, big, biglen), ST_BAD);
    /* over PW_MAX_MAP_BYTES: one pair with a 1 MiB value */
    biglen = PW_MAX_MAP_BYTES + 16;
    PW_CHECK((uint64_t) big + biglen <= fake_mem_size(fi));
    memset(p, 'v', biglen);
    memcpy(p, &(uint32_t){ 1 }, 4);
    memcpy(p + 4, &(uint32_t){ 1 }, 4);
    memcpy(p + 8, &(uint32_t){ biglen - 14 }, 4);
    memcpy(p + 12, "a\0", 2);
    p[biglen - 1] = 0;
    PW_CHECK_EQ_INT(HC("proxy_set_header_map_pairs", 0, big, biglen), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_send_local_response", 500, 0, 0, 0, 0, big,
                       biglen, 0xFFFFFFFF), ST_BAD);
    return 0;
}

PW_TEST(map_malformed_and_oversized)
{
    modopt_t o = { .mem_size = 4 * 1024 * 1024 };

    fx_up(&o);
    in_stream(hook_bad_maps);
    PW_CHECK_EQ_INT(fh_count(&F.host, "map_set_pairs"), 1);
    PW_CHECK_EQ_INT(fh_count(&F.host, "send_local_response"), 0);
    PW_CHECK_EQ_INT(fh_count(&F.host, "http_call"), 0);
    PW_CHECK_EQ_INT(fh_count(&F.host, "grpc_call"), 0);
    PW_CHECK_EQ_INT(fh_count(&F.host, "grpc_stream"), 0);
    fx_down();
}

/* ---- buffers -------------------------------------------------------- */

static uint32_t
hook_get_buffer(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 0, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "hello world"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 6, 3, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "wor"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 6, 100, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "world"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 0, 0, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, ""));
    /* start at the end: nothing; beyond the end: BAD_ARGUMENT */
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 11, 5, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, ""));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 12, 1, o, o + 4), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 0xFFFFFFFF, 0xFFFFFFFF,
                       o, o + 4), ST_BAD);
    /* types without a buffer now */
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 1, 0, 10, o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 4, 0, 10, o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 5, 0, 10, o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 8, 0, 10, o, o + 4),
                    ST_NOT_FOUND);
    /* configurations */
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 6, 0, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "vmconf"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 7, 6, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "config"));
    /* unknown types */
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 9, 0, 1, o, o + 4), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0xFFFFFFFF, 0, 1, o, o + 4),
                    ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_status", 9, o, o + 4), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 9, 0, 0, SL("x")), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0xFFFFFFFF, 0, 0, SL("x")),
                    ST_BAD);
    /* status: size and flags 0 */
    fake_wr32(fi, o + 4, 77);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_status", 0, o, o + 4), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 11);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 4), 0);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_status", 7, o, o + 4), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 12);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_status", 1, o, o + 4),
                    ST_NOT_FOUND);
    return 0;
}

PW_TEST(buffer_get)
{
    fx_up(NULL);
    fh_set_body(&F.host, PW_BUFFER_HTTP_REQUEST_BODY, "hello world");
    in_stream(hook_get_buffer);
    fx_down();
}

static uint32_t
hook_set_buffer(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    /* prepend, append (start past the end, the Rust SDK's 0xFFFFFFFF),
     * replace clamped to the end, replace inside */
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0, 0, 0, SL("<")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0, 0xFFFFFFFF, 0, SL(">")),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0, 100, 5, SL("!")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0, 1, 5, SL("HELLO")),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0, 7, 0xFFFFFFFF, SL("")),
                    ST_OK);
    /* read-only and absent buffers */
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 6, 0, 0, SL("x")), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 4, 0, 0, SL("x")), ST_BAD);
    /* TCP data: no buffer yet, so an insert at 0 */
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 2, 5, 5, SL("tcp")), ST_OK);
    return 0;
}

static uint32_t
hook_set_buffer_root(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8);

    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 0, 0, 0, SL("x")),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 0, 1, o, o + 4),
                    ST_NOT_FOUND);
    return 0;
}

PW_TEST(buffer_set_normalised)
{
    const fh_rec_t *r;

    fx_up(NULL);
    fh_set_body(&F.host, PW_BUFFER_HTTP_REQUEST_BODY, "hello");
    in_stream(hook_set_buffer);
    PW_CHECK_EQ_INT(fh_count(&F.host, "buffer_set"), 6);
    r = fh_find(&F.host, "buffer_set", 0);
    PW_CHECK(r->t == 0 && r->a == 0 && r->b == 0 && !strcmp(r->s1, "<"));
    r = fh_find(&F.host, "buffer_set", 1);        /* "<hello" */
    PW_CHECK(r->a == 6 && r->b == 0 && !strcmp(r->s1, ">"));
    r = fh_find(&F.host, "buffer_set", 2);        /* "<hello>" */
    PW_CHECK(r->a == 7 && r->b == 0);
    r = fh_find(&F.host, "buffer_set", 3);        /* "<hello>!" */
    PW_CHECK(r->a == 1 && r->b == 5);
    r = fh_find(&F.host, "buffer_set", 4);        /* "<HELLO>!" */
    PW_CHECK(r->a == 7 && r->b == 1 && r->s1len == 0);
    PW_CHECK_EQ_STR(F.host.bufs[0], "<HELLO>");
    r = fh_find(&F.host, "buffer_set", 5);
    PW_CHECK(r->t == 2 && r->a == 0 && r->b == 0);
    PW_CHECK_EQ_STR(F.host.bufs[2], "tcp");
    in_root(hook_set_buffer_root);
    fx_down();
}


/* ---- logging, time, ticks, configuration, stream control --------------- */

static uint32_t
hook_log(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8), big;

    PW_CHECK_EQ_INT(HC("proxy_log", PW_LOG_WARN, SL("careful")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_log", PW_LOG_CRITICAL, SL("")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_log", 6, SL("bad level")), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_log", 0xFFFFFFFF, SL("bad level")), ST_BAD);
    /* a long message is cut at PW_MAX_LOG_BYTES */
    big = (uint32_t) fake_mem_size(fi) / 2;
    memset(fake_mem(fi) + big, 'x', PW_MAX_LOG_BYTES + 100);
    PW_CHECK_EQ_INT(HC("proxy_log", PW_LOG_INFO, big, PW_MAX_LOG_BYTES + 100),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_log_level", o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), PW_LOG_WARN);
    PW_CHECK_EQ_INT(HC("proxy_get_current_time_nanoseconds", o), ST_OK);
    PW_CHECK(fake_rd64(fi, o) == 1700000000123456789ull);
    PW_CHECK_EQ_INT(HC("proxy_set_tick_period_milliseconds", 250), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_set_tick_period_milliseconds", 0), ST_OK);
    return 0;
}

PW_TEST(log_time_tick)
{
    const fh_rec_t *r;

    fx_init();
    F.host.level = PW_LOG_WARN;
    fx_up(NULL);
    in_root(hook_log);
    PW_CHECK_EQ_INT(fh_count(&F.host, "log"), 3);
    r = fh_find(&F.host, "log", 0);
    PW_CHECK(r->t == PW_LOG_WARN && strcmp(r->s1, "careful") == 0);
    PW_CHECK(r->plugin == F.plugin && r->stream == NULL);
    r = fh_find(&F.host, "log", 1);
    PW_CHECK(r->t == PW_LOG_CRITICAL && r->s1len == 0);
    r = fh_find(&F.host, "log", 2);
    PW_CHECK_EQ_INT(r->s1len, PW_MAX_LOG_BYTES);
    PW_CHECK_EQ_INT(fh_find(&F.host, "set_tick_period", 0)->t, 250);
    PW_CHECK_EQ_INT(fh_find(&F.host, "set_tick_period", 1)->t, 0);
    PW_CHECK(fh_find(&F.host, "set_tick_period", 0)->plugin == F.plugin);
    fx_down();
}

static uint32_t
hook_get_configuration(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8);

    PW_CHECK_EQ_INT(HC("proxy_get_configuration", o, o + 4), ST_OK);
    PW_CHECK(ret_is(fi, o, g_id ? "vmconf" : "hello config", g_id ? 6 : 12));
    g_st[g_id]++;
    return 1;
}

static uint32_t
hook_vm_start_conf(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    g_id = 1;
    hook_get_configuration(fi, a, n);
    g_id = 0;
    return 1;
}

PW_TEST(get_configuration_010)
{
    modopt_t o = { .abi = PW_ABI_0_1_0 };

    fx_module(&o);
    fx_vm();
    on("on_vm_start", hook_vm_start_conf);
    on("on_configure", hook_get_configuration);
    fx_plugin();
    PW_CHECK_EQ_INT(g_st[0], 1);
    PW_CHECK_EQ_INT(g_st[1], 1);
    fx_down();
}

static uint32_t
hook_stream_ctl(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t i;

    for (i = 0; i < 4; i++) {
        PW_CHECK_EQ_INT(HC("proxy_continue_stream", i), ST_OK);
        PW_CHECK_EQ_INT(HC("proxy_close_stream", i), ST_OK);
    }
    PW_CHECK_EQ_INT(HC("proxy_continue_stream", 4), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_close_stream", 0xFFFFFFFF), ST_BAD);
    return 0;
}

static uint32_t
hook_stream_ctl_root(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    PW_CHECK_EQ_INT(HC("proxy_continue_stream", 0), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_close_stream", 0), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_send_local_response", 403, 0, 0, 0, 0, 0, 0,
                       0xFFFFFFFF), ST_NOT_FOUND);
    return 0;
}

PW_TEST(stream_control)
{
    const fh_rec_t *r;
    int i;

    fx_up(NULL);
    in_stream(hook_stream_ctl);
    PW_CHECK_EQ_INT(fh_count(&F.host, "continue_stream"), 4);
    PW_CHECK_EQ_INT(fh_count(&F.host, "close_stream"), 4);
    for (i = 0; i < 4; i++) {
        r = fh_find(&F.host, "continue_stream", (size_t) i);
        PW_CHECK(r->t == (uint32_t) i && r->stream == F.stream);
    }
    fh_reset_log(&F.host);
    in_root(hook_stream_ctl_root);
    PW_CHECK_EQ_INT(fh_count(&F.host, NULL), 0);
    fx_down();
}

static uint32_t
hook_stream_ctl_010(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    PW_CHECK_EQ_INT(HC("proxy_continue_request"), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_continue_response"), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_clear_route_cache"), ST_OK);
    return 0;
}

static uint32_t
hook_stream_ctl_010_root(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    PW_CHECK_EQ_INT(HC("proxy_continue_request"), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_clear_route_cache"), ST_NOT_FOUND);
    return 0;
}

PW_TEST(stream_control_010)
{
    modopt_t o = { .abi = PW_ABI_0_1_0 };

    fx_up(&o);
    in_stream(hook_stream_ctl_010);
    PW_CHECK_EQ_INT(fh_find(&F.host, "continue_stream", 0)->t,
                    PW_STREAM_HTTP_REQUEST);
    PW_CHECK_EQ_INT(fh_find(&F.host, "continue_stream", 1)->t,
                    PW_STREAM_HTTP_RESPONSE);
    PW_CHECK_EQ_INT(fh_count(&F.host, "clear_route_cache"), 1);
    fh_reset_log(&F.host);
    in_root(hook_stream_ctl_010_root);
    PW_CHECK_EQ_INT(fh_count(&F.host, NULL), 0);
    fx_down();
}

static uint32_t
hook_local_response(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const pw_pair_t h[] = { P("x-why", "denied"), P("retry", "no") };
    uint32_t m, mlen;

    m = put_pairs(fi, h, 2, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_send_local_response", 403, SL("acl"),
                       SL("go away"), m, mlen, 0xFFFFFFFF), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_send_local_response", 200, 0, 0, 0, 0, 0, 0, 7),
                    ST_OK);
    return PW_ACTION_PAUSE;
}

PW_TEST(send_local_response)
{
    const fh_rec_t *r;

    fx_up(NULL);
    in_stream(hook_local_response);
    r = fh_find(&F.host, "send_local_response", 0);
    PW_CHECK(r && r->t == 403 && r->i == -1);
    PW_CHECK_EQ_STR(r->s1, "acl");
    PW_CHECK_EQ_STR(r->s2, "go away");
    PW_CHECK_EQ_STR(r->pairs, "x-why: denied\nretry: no\n");
    PW_CHECK(r->stream == F.stream);
    r = fh_find(&F.host, "send_local_response", 1);
    PW_CHECK(r && r->t == 200 && r->i == 7 && r->s1len == 0 && r->s2len == 0);
    PW_CHECK_EQ_STR(r->pairs, "");
    fx_down();
}

/* ---- HTTP callouts ---------------------------------------------------- */

static uint32_t g_token;

static uint32_t
hook_http_call(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const pw_pair_t noauth[] = { P(":method", "GET"),
                                        P(":path", "/x") };
    static const pw_pair_t emptyauth[] = { P(":method", "GET"),
                                           P(":path", "/x"),
                                           P(":authority", "") };
    static const pw_pair_t nopath[] = { P(":method", "GET"),
                                        P(":authority", "a") };
    static const pw_pair_t tr[] = { P("t", "1") };
    uint32_t o = fake_scratch(fi, 8), m, mlen, t, tlen;

    fake_wr32(fi, o, 0xDEADBEEF);
    m = put_pairs(fi, noauth, 2, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m, mlen, 0, 0, 0, 0,
                       1000, o), ST_BAD);
    m = put_pairs(fi, emptyauth, 3, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m, mlen, 0, 0, 0, 0,
                       1000, o), ST_BAD);
    m = put_pairs(fi, nopath, 2, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m, mlen, 0, 0, 0, 0,
                       1000, o), ST_BAD);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 0xDEADBEEF);
    /* the host does not know the upstream */
    m = put_pairs(fi, call_hdrs, 3, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_http_call", SL("nowhere"), m, mlen, 0, 0, 0, 0,
                       1000, o), ST_BAD);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 0xDEADBEEF);
    t = put_pairs(fi, tr, 1, &tlen);
    PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m, mlen, SL("body!"), t,
                       tlen, 1500, o), ST_OK);
    g_token = fake_rd32(fi, o);
    PW_CHECK(g_token != 0 && g_token != 0xDEADBEEF);
    return 0;
}

static uint32_t
hook_http_response(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(a[0], 1);             /* the root context */
    PW_CHECK_EQ_INT(a[1], g_token);
    PW_CHECK(F.vm->effective == &F.plugin->ctx);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 6, o, o + 4), ST_OK);
    check_pairs(fi, o, ":status: 201\nx-r: 1\n");
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 6, SL("X-R"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "1"));
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_size", 7, o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 4 + 8 + 3 + 2);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 7, SL("tr"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "x"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 4, 0, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "response body"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_status", 4, o, o + 4), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 13);
    PW_CHECK_EQ_INT(HC("proxy_get_status", o, o + 4, o + 8), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 201);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 8), 0);
    /* answers are read-only */
    PW_CHECK_EQ_INT(HC("proxy_add_header_map_value", 6, SL("a"), SL("b")),
                    ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_set_buffer_bytes", 4, 0, 0, SL("b")), ST_BAD);
    /* the SDKs switch to the stream that made the call */
    PW_CHECK_EQ_INT(HC("proxy_set_effective_context", 2), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_continue_stream", 0), ST_OK);
    g_st[0]++;
    return 0;
}

static uint32_t
hook_after_delivery(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 4, 0, 10, o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 6, SL(":status"), o,
                       o + 4), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 6, o, o + 4), ST_OK);
    check_pairs(fi, o, "");
    return 0;
}

PW_TEST(http_call_and_response)
{
    static const pw_pair_t rh[] = { P(":status", "201"), P("x-r", "1") };
    static const pw_pair_t rt[] = { P("tr", "x") };
    pw_pairs_t hdrs = { rh, 2 }, trs = { rt, 1 };
    const fh_rec_t *r;
    char want[64];

    fx_up(NULL);
    in_stream(hook_http_call);
    /* only the known upstream was dispatched for real */
    PW_CHECK_EQ_INT(fh_count(&F.host, "http_call"), 2);
    r = fh_find(&F.host, "http_call", 0);
    PW_CHECK(r->rc == PW_ENOTFOUND && strcmp(r->s1, "nowhere") == 0);
    r = fh_find(&F.host, "http_call", 1);
    PW_CHECK(r->rc == PW_OK && r->t == g_token && r->a == 1500);
    PW_CHECK_EQ_STR(r->s1, "up");
    PW_CHECK_EQ_STR(r->s2, "body!");
    PW_CHECK_EQ_STR(r->pairs, ":method: GET\n:path: /x\n:authority: up\n");
    PW_CHECK_EQ_STR(r->pairs2, "t: 1\n");
    PW_CHECK(r->stream == F.stream && r->plugin == F.plugin);
    /* the failed call left no token behind */
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, r->t - 1, NULL,
                                            PW_STR(""), NULL), PW_ENOTFOUND);

    on("on_http_call_response", hook_http_response);
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, &hdrs,
                                            PW_STR("response body"), &trs),
                    PW_OK);
    snprintf(want, sizeof(want), "on_http_call_response(1,%u,2,13,1);",
             g_token);
    PW_CHECK_EQ_STR(F.trace, want);
    PW_CHECK_EQ_INT(g_st[0], 1);
    PW_CHECK(fh_last(&F.host, "continue_stream")->stream == F.stream);
    /* delivered once */
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, &hdrs,
                                            PW_STR("x"), &trs), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(g_st[0], 1);
    in_root(hook_after_delivery);
    fx_down();
}

static uint32_t
hook_failed_response(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 6, o, o + 4), ST_OK);
    check_pairs(fi, o, "");
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 4, 0, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, ""));
    PW_CHECK_EQ_INT(HC("proxy_get_status", o, o + 4, o + 8), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 0);
    return 0;
}

PW_TEST(http_call_failure_delivery)
{
    pw_pairs_t none = { NULL, 0 };
    char want[64];

    fx_up(NULL);
    in_root(hook_http_call);
    on("on_http_call_response", hook_failed_response);
    trace_reset();
    /* no headers: failure, whatever the body says */
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, &none,
                                            PW_STR("ignored"), NULL), PW_OK);
    snprintf(want, sizeof(want), "on_http_call_response(1,%u,0,0,0);",
             g_token);
    PW_CHECK_EQ_STR(F.trace, want);
    in_root(hook_http_call);
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, NULL,
                                            PW_STR(""), NULL), PW_OK);
    snprintf(want, sizeof(want), "on_http_call_response(1,%u,0,0,0);",
             g_token);
    PW_CHECK_EQ_STR(F.trace, want);
    fx_down();
}

PW_TEST(http_call_dropped_with_stream)
{
    static const pw_pair_t rh[] = { P(":status", "200") };
    pw_pairs_t hdrs = { rh, 1 };
    pw_plugin_t *p2;

    fx_up(NULL);
    in_stream(hook_http_call);
    /* another root context cannot take the answer */
    PW_CHECK_EQ_INT(fx_plugin_try(&p2), PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_http_response(p2, g_token, &hdrs, PW_STR(""),
                                            NULL), PW_ENOTFOUND);
    pw_plugin_free(p2);
    pw_stream_free(F.stream);
    F.stream = NULL;
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, &hdrs,
                                            PW_STR(""), NULL), PW_ENOTFOUND);
    PW_CHECK_EQ_STR(F.trace, "");
    /* a root's call lives on */
    in_root(hook_http_call);
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, &hdrs,
                                            PW_STR(""), NULL), PW_OK);
    fx_down();
}

/* ---- gRPC ------------------------------------------------------------- */

static uint32_t g_tok2;

static uint32_t
hook_grpc_start(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    static const pw_pair_t md[] = { P("k", "v") };
    uint32_t o = fake_scratch(fi, 8), m, mlen;

    m = put_pairs(fi, md, 1, &mlen);
    fake_wr32(fi, o, 0xDEADBEEF);
    PW_CHECK_EQ_INT(HC("proxy_grpc_call", SL("nowhere"), SL("svc"), SL("M"),
                       m, mlen, SL("msg"), 100, o), PW_STATUS_PARSE_FAILURE);
    PW_CHECK_EQ_INT(HC("proxy_grpc_stream", SL("nowhere"), SL("svc"), SL("M"),
                       0, 0, o), PW_STATUS_PARSE_FAILURE);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 0xDEADBEEF);
    PW_CHECK_EQ_INT(HC("proxy_grpc_call", SL("up"), SL("svc"), SL("M"), m,
                       mlen, SL("msg"), 100, o), ST_OK);
    g_token = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_grpc_stream", SL("up"), SL("svc"), SL("S"), 0,
                       0, o), ST_OK);
    g_tok2 = fake_rd32(fi, o);
    PW_CHECK(g_token != g_tok2 && g_token && g_tok2);
    PW_CHECK_EQ_INT(HC("proxy_grpc_send", g_tok2, SL("m1"), 0), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_grpc_send", g_tok2, SL("m2"), 1), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_grpc_send", 9999, SL("m"), 0), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_grpc_close", g_tok2), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_grpc_close", 9999), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_grpc_cancel", 9999), ST_NOT_FOUND);
    return 0;
}

static uint32_t
hook_grpc_md(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 4, o, o + 4), ST_OK);
    check_pairs(fi, o, "im: 1\n");
    g_st[1]++;
    return 0;
}

static uint32_t
hook_grpc_msg(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 5, 0, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "payload"));
    g_st[2]++;
    return 0;
}

static uint32_t
hook_grpc_tmd(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 5, SL("grpc-status"), o,
                       o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "0"));
    g_st[3]++;
    return 0;
}

static uint32_t
hook_grpc_close(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_status", o, o + 4, o + 8), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 14);
    PW_CHECK(ret_is(fi, o + 4, "unavailable", 11));
    g_st[4]++;
    return 0;
}

PW_TEST(grpc_calls_and_deliveries)
{
    static const pw_pair_t im[] = { P("im", "1") };
    static const pw_pair_t tm[] = { P("grpc-status", "0") };
    pw_pairs_t imd = { im, 1 }, tmd = { tm, 1 };
    const fh_rec_t *r;
    char want[256];

    fx_up(NULL);
    in_stream(hook_grpc_start);
    r = fh_find(&F.host, "grpc_call", 1);
    PW_CHECK(r && r->t == g_token && r->a == 100 && r->rc == PW_OK);
    PW_CHECK_EQ_STR(r->s1, "up");
    PW_CHECK_EQ_STR(r->s2, "svc");
    PW_CHECK_EQ_STR(r->s3, "M");
    PW_CHECK_EQ_STR(r->pairs, "k: v\n");
    PW_CHECK_EQ_STR(r->pairs2, "msg");
    r = fh_find(&F.host, "grpc_stream", 1);
    PW_CHECK(r && r->t == g_tok2 && strcmp(r->s3, "S") == 0);
    PW_CHECK_EQ_INT(fh_count(&F.host, "grpc_send"), 2);
    r = fh_find(&F.host, "grpc_send", 1);
    PW_CHECK(r->t == g_tok2 && r->b == 1 && strcmp(r->s1, "m2") == 0);
    PW_CHECK_EQ_INT(fh_count(&F.host, "grpc_close"), 1);
    PW_CHECK_EQ_INT(fh_find(&F.host, "grpc_close", 0)->t, g_tok2);

    on("on_grpc_receive_initial_metadata", hook_grpc_md);
    on("on_grpc_receive", hook_grpc_msg);
    on("on_grpc_receive_trailing_metadata", hook_grpc_tmd);
    on("on_grpc_close", hook_grpc_close);
    trace_reset();
    /* the unary call: metadata, then its answer, which ends it (as in
     * Envoy, no close follows a unary answer) */
    PW_CHECK_EQ_INT(pw_plugin_grpc_initial_metadata(F.plugin, g_token, &imd),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_grpc_message(F.plugin, g_token,
                                           PW_STR("payload")), PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_grpc_trailing_metadata(F.plugin, g_token,
                                                     &tmd), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_plugin_grpc_close(F.plugin, g_token, 0, PW_STR("")),
                    PW_ENOTFOUND);
    /* the stream: trailing metadata, then its close with a status */
    PW_CHECK_EQ_INT(pw_plugin_grpc_trailing_metadata(F.plugin, g_tok2,
                                                     &tmd), PW_OK);
    PW_CHECK_EQ_INT(pw_plugin_grpc_close(F.plugin, g_tok2, 14,
                                         PW_STR("unavailable")), PW_OK);
    snprintf(want, sizeof(want), "on_grpc_receive_initial_metadata(1,%u,1);"
             "on_grpc_receive(1,%u,7);"
             "on_grpc_receive_trailing_metadata(1,%u,1);"
             "on_grpc_close(1,%u,14);", g_token, g_token, g_tok2, g_tok2);
    PW_CHECK_EQ_STR(F.trace, want);
    PW_CHECK(g_st[1] == 1 && g_st[2] == 1 && g_st[3] == 1 && g_st[4] == 1);
    /* closed: nothing more is delivered */
    PW_CHECK_EQ_INT(pw_plugin_grpc_message(F.plugin, g_tok2, PW_STR("x")),
                    PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_plugin_grpc_close(F.plugin, g_tok2, 0, PW_STR("")),
                    PW_ENOTFOUND);
    /* an HTTP answer for a gRPC token is refused */
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_token, NULL,
                                            PW_STR(""), NULL), PW_ENOTFOUND);
    fx_down();
}

static uint32_t
hook_grpc_cancel(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8), m, mlen;

    PW_CHECK_EQ_INT(HC("proxy_grpc_stream", SL("up"), SL("svc"), SL("S"), 0,
                       0, o), ST_OK);
    g_tok2 = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_grpc_cancel", g_tok2), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_grpc_cancel", g_tok2), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_grpc_send", g_tok2, SL("late"), 0), ST_BAD);
    /* an HTTP token is not a gRPC one */
    m = put_pairs(fi, call_hdrs, 3, &mlen);
    PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m, mlen, 0, 0, 0, 0, 10,
                       o), ST_OK);
    g_token = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_grpc_send", g_token, SL("x"), 0), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_grpc_cancel", g_token), ST_NOT_FOUND);
    return 0;
}

PW_TEST(grpc_cancel_and_stream_end)
{
    fx_up(NULL);
    in_stream(hook_grpc_cancel);
    PW_CHECK_EQ_INT(fh_count(&F.host, "grpc_cancel"), 1);
    PW_CHECK_EQ_INT(fh_find(&F.host, "grpc_cancel", 0)->t, g_tok2);
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_grpc_message(F.plugin, g_tok2, PW_STR("x")),
                    PW_ENOTFOUND);
    /* a stream's gRPC calls are dropped with it */
    in_stream(hook_grpc_start);
    pw_stream_free(F.stream);
    F.stream = NULL;
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_grpc_message(F.plugin, g_token, PW_STR("x")),
                    PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_plugin_grpc_close(F.plugin, g_tok2, 0, PW_STR("")),
                    PW_ENOTFOUND);
    PW_CHECK_EQ_STR(F.trace, "");
    fx_down();
}


/* ---- shared data, queues, metrics ---------------------------------------- */

static uint32_t
hook_shared_data(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), cas1, cas2;

    PW_CHECK_EQ_INT(HC("proxy_get_shared_data", SL("k"), o, o + 4, o + 8),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_set_shared_data", SL("k"), SL("v1"), 0),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_shared_data", SL("k"), o, o + 4, o + 8),
                    ST_OK);
    PW_CHECK(RET_IS(o, "v1"));
    cas1 = fake_rd32(fi, o + 8);
    PW_CHECK(cas1 != 0);
    PW_CHECK_EQ_INT(HC("proxy_set_shared_data", SL("k"), SL("v2"), cas1),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_shared_data", SL("k"), o, o + 4, o + 8),
                    ST_OK);
    PW_CHECK(RET_IS(o, "v2"));
    cas2 = fake_rd32(fi, o + 8);
    PW_CHECK(cas2 != 0 && cas2 != cas1);
    /* a stale token */
    PW_CHECK_EQ_INT(HC("proxy_set_shared_data", SL("k"), SL("v3"), cas1),
                    PW_STATUS_CAS_MISMATCH);
    PW_CHECK_EQ_INT(HC("proxy_get_shared_data", SL("k"), o, o + 4, o + 8),
                    ST_OK);
    PW_CHECK(RET_IS(o, "v2"));
    /* the Rust SDK's remove: an empty value (ptr 0, size 0) */
    PW_CHECK_EQ_INT(HC("proxy_set_shared_data", SL("k"), 0, 0, 0), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_shared_data", SL("k"), o, o + 4, o + 8),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_set_shared_data", 0, 0, SL("v"), 0), ST_BAD);
    return 0;
}

PW_TEST(shared_data)
{
    uint8_t *v;
    size_t vlen;
    uint32_t cas;

    fx_up(NULL);
    in_root(hook_shared_data);
    in_stream(hook_shared_data);
    /* it lives in the VM's store */
    PW_CHECK_EQ_INT(pw_kv_get(F.vm->store, "k", 1, &v, &vlen, &cas),
                    PW_ENOTFOUND);
    fx_down();
}

static struct {
    int n;
    uint32_t qid;
    uint64_t owner;
} g_ready;

static void
queue_ready_cb(void *data, uint32_t qid, uint64_t owner)
{
    PW_CHECK(data == &g_ready);
    g_ready.n++;
    g_ready.qid = qid;
    g_ready.owner = owner;
}

static uint32_t
hook_queues(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), qid;

    PW_CHECK_EQ_INT(HC("proxy_resolve_shared_queue", SL("vm1"), SL("q"), o),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_register_shared_queue", SL("q"), o), ST_OK);
    qid = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_register_shared_queue", SL("q"), o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), qid);
    PW_CHECK_EQ_INT(HC("proxy_resolve_shared_queue", SL("vm1"), SL("q"), o),
                    ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), qid);
    PW_CHECK_EQ_INT(HC("proxy_resolve_shared_queue", SL("vm2"), SL("q"), o),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", qid, o, o + 4),
                    PW_STATUS_EMPTY);
    PW_CHECK_EQ_INT(HC("proxy_enqueue_shared_queue", qid, SL("m1")), ST_OK);
    PW_CHECK_EQ_INT(g_ready.n, 1);
    PW_CHECK_EQ_INT(g_ready.qid, qid);
    PW_CHECK(g_ready.owner == (uint64_t) (uintptr_t) F.plugin);
    PW_CHECK_EQ_INT(HC("proxy_enqueue_shared_queue", qid, SL("m2")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", qid, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "m1"));
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", qid, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "m2"));
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", qid, o, o + 4),
                    PW_STATUS_EMPTY);
    PW_CHECK_EQ_INT(HC("proxy_enqueue_shared_queue", 9999, SL("m")),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", 9999, o, o + 4),
                    ST_NOT_FOUND);
    g_id = qid;
    return 0;
}

static uint32_t
hook_register_q2(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 8);

    PW_CHECK_EQ_INT(HC("proxy_register_shared_queue", SL("q2"), o), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_enqueue_shared_queue", fake_rd32(fi, o),
                       SL("x")), ST_OK);
    return 0;
}

PW_TEST(shared_queues)
{
    pw_store_conf_t sc = { 0 };
    pw_plugin_t *p2;
    char want[64];

    fx_init();
    sc.queue_ready = queue_ready_cb;
    sc.queue_ready_data = &g_ready;
    PW_CHECK_EQ_INT(pw_store_new(1024 * 1024, &sc, &F.store), PW_OK);
    F.conf.store = F.store;
    fx_up(NULL);
    in_root(hook_queues);
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_queue_ready(F.plugin, g_id), PW_OK);
    snprintf(want, sizeof(want), "on_queue_ready(1,%u);", g_id);
    PW_CHECK_EQ_STR(F.trace, want);

    /* the owner is the root context that registered, even from a stream */
    PW_CHECK_EQ_INT(fx_plugin_try(&p2), PW_OK);
    on("on_tick", hook_register_q2);
    PW_CHECK_EQ_INT(pw_plugin_tick(p2), PW_OK);
    PW_CHECK(g_ready.owner == (uint64_t) (uintptr_t) p2);
    in_stream(hook_register_q2);
    PW_CHECK(g_ready.owner == (uint64_t) (uintptr_t) F.plugin);
    pw_plugin_free(p2);
    fx_down();
}

static uint32_t
hook_dequeue_bad_out(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), qid;

    PW_CHECK_EQ_INT(HC("proxy_register_shared_queue", SL("q"), o), ST_OK);
    qid = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_enqueue_shared_queue", qid, SL("only")),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", qid, MEM - 2, o),
                    ST_MEM);
    /* a refused call takes nothing */
    PW_CHECK_EQ_INT(HC("proxy_dequeue_shared_queue", qid, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "only"));
    return 0;
}

PW_TEST(dequeue_bad_out_keeps_item)
{
    fx_up(NULL);
    in_root(hook_dequeue_bad_out);
    fx_down();
}

static uint32_t
hook_metrics(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), c, g, h;

    PW_CHECK_EQ_INT(HC("proxy_define_metric", PW_METRIC_COUNTER, SL("c"), o),
                    ST_OK);
    c = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_define_metric", PW_METRIC_COUNTER, SL("c"), o),
                    ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), c);
    PW_CHECK_EQ_INT(HC("proxy_define_metric", PW_METRIC_GAUGE, SL("g"), o),
                    ST_OK);
    g = fake_rd32(fi, o);
    PW_CHECK_EQ_INT(HC("proxy_define_metric", PW_METRIC_HISTOGRAM, SL("h"),
                       o), ST_OK);
    h = fake_rd32(fi, o);
    PW_CHECK(c != g && g != h && c != h);
    PW_CHECK_EQ_INT(HC("proxy_define_metric", 3, SL("x"), o), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_define_metric", 0, 0, 0, o), ST_BAD);

    PW_CHECK_EQ_INT(HC("proxy_increment_metric", c, (int64_t) 5), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_increment_metric", c, (int64_t) -1), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_get_metric", c, o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd64(fi, o), 5);
    PW_CHECK_EQ_INT(HC("proxy_record_metric", g, (int64_t) 7), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_increment_metric", g, (int64_t) -9), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_metric", g, o), ST_OK);
    PW_CHECK_EQ_INT((int64_t) fake_rd64(fi, o), -2);
    PW_CHECK_EQ_INT(HC("proxy_record_metric", h, (int64_t) 100), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_record_metric", h, (int64_t) 3), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_metric", h, o), ST_OK);
    PW_CHECK_EQ_INT(fake_rd64(fi, o), 2);
    PW_CHECK_EQ_INT(HC("proxy_increment_metric", h, (int64_t) 1), ST_BAD);
    PW_CHECK_EQ_INT(HC("proxy_get_metric", 9999, o), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_record_metric", 9999, (int64_t) 1),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_increment_metric", 9999, (int64_t) 1),
                    ST_NOT_FOUND);
    return 0;
}

PW_TEST(metrics)
{
    fx_up(NULL);
    in_root(hook_metrics);
    fx_down();
}

/* ---- properties and foreign functions ---------------------------------- */

static uint32_t
hook_properties(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), path;
    char seg[80];
    int i;

    /* answered by the core, with and without the C++ SDK's trailing NUL */
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_name"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "plug"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", S("plugin_name"), 12, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "plug"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_root_id"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "root_a"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", S("plugin_root_id"), 15, o,
                       o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "root_a"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_vm_id"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "vm1"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", S("plugin_vm_id"), 13, o,
                       o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "vm1"));
    /* from the host: path segments split on NUL */
    path = fake_put(fi, "request\0path", 12);
    PW_CHECK_EQ_INT(HC("proxy_get_property", path, 12, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "/index"));
    path = fake_put(fi, "request\0path\0", 13);
    PW_CHECK_EQ_INT(HC("proxy_get_property", path, 13, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "/index"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_name_x"), o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("missing"), o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_property", 0, 0, o, o + 4), ST_NOT_FOUND);
    /* too many segments */
    for (i = 0; i < 40; i++) {
        seg[2 * i] = 'a';
        seg[2 * i + 1] = '\0';
    }
    PW_CHECK_EQ_INT(HC("proxy_get_property", fake_put(fi, seg, 79), 79, o,
                       o + 4), ST_BAD);
    /* a value over PW_MAX_PROPERTY_BYTES */
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("huge"), o, o + 4),
                    PW_STATUS_SERIALIZATION_FAILURE);
    /* set goes to the host */
    path = fake_put(fi, "a\0b", 3);
    PW_CHECK_EQ_INT(HC("proxy_set_property", path, 3, SL("val")), ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_property", path, 3, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "val"));
    PW_CHECK_EQ_INT(HC("proxy_set_property", 0, 0, SL("val")), ST_BAD);
    return 0;
}

PW_TEST(properties)
{
    const fh_rec_t *r;
    char *huge;

    fx_up(NULL);
    fh_set_prop(&F.host, "request.path", "/index", 6);
    huge = calloc(1, PW_MAX_PROPERTY_BYTES + 1);
    PW_CHECK(huge != NULL);
    fh_set_prop(&F.host, "huge", huge, PW_MAX_PROPERTY_BYTES + 1);
    free(huge);
    in_root(hook_properties);
    /* the core's own properties never reach the host */
    r = fh_find(&F.host, "get_property", 0);
    PW_CHECK(r && strcmp(r->s1, "request.path") == 0 && r->t == 2);
    r = fh_last(&F.host, "set_property");
    PW_CHECK(r && strcmp(r->s1, "a.b") == 0 && strcmp(r->s2, "val") == 0);
    in_stream(hook_properties);
    PW_CHECK(fh_last(&F.host, "get_property")->stream == F.stream);
    fx_down();
}

static uint32_t
hook_props_no_host(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("request"), o, o + 4),
                    ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_root_id"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, ""));
    PW_CHECK_EQ_INT(HC("proxy_set_property", SL("x"), SL("y")),
                    PW_STATUS_UNIMPLEMENTED);
    return 0;
}

PW_TEST(properties_without_host)
{
    fx_init();
    F.host.host.get_property = NULL;
    F.host.host.set_property = NULL;
    F.pconf.root_id = PW_STR("");
    fx_up(NULL);
    in_root(hook_props_no_host);
    fx_down();
}

static uint32_t
hook_foreign(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_call_foreign_function", SL("rev"), SL("abcd"),
                       o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "dcba"));
    PW_CHECK_EQ_INT(HC("proxy_call_foreign_function", SL("rev"), 0, 0, o,
                       o + 4), ST_OK);
    PW_CHECK(RET_IS(o, ""));
    PW_CHECK_EQ_INT(HC("proxy_call_foreign_function", SL("nope"), SL("x"), o,
                       o + 4), ST_NOT_FOUND);
    PW_CHECK_EQ_INT(HC("proxy_call_foreign_function", SL("refuse"), SL("x"),
                       o, o + 4), ST_BAD);
    return 0;
}

static uint32_t
hook_on_foreign(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 8, 0, 0xFFFFFFFF, o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "fargs"));
    return 0;
}

static uint32_t
hook_no_foreign_args(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 8, 0, 10, o, o + 4),
                    ST_NOT_FOUND);
    return 0;
}

PW_TEST(foreign_functions)
{
    fx_up(NULL);
    PW_CHECK_EQ_INT(pw_vm_register_foreign(F.vm, PW_STR("rev"), foreign_echo,
                                           NULL), PW_OK);
    PW_CHECK_EQ_INT(pw_vm_register_foreign(F.vm, PW_STR("refuse"),
                                           foreign_echo,
                                           (void *) (intptr_t) PW_EINVAL),
                    PW_OK);
    foreign_calls = 0;
    in_root(hook_foreign);
    PW_CHECK_EQ_INT(foreign_calls, 3);
    on("on_foreign_function", hook_on_foreign);
    trace_reset();
    PW_CHECK_EQ_INT(pw_plugin_foreign_function(F.plugin, 7,
                                               PW_STR("fargs")), PW_OK);
    PW_CHECK_EQ_STR(F.trace, "on_foreign_function(1,7,5);");
    in_root(hook_no_foreign_args);
    fx_down();
}


/* ---- WASI ------------------------------------------------------------- */

static uint32_t
hook_fd_write(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t iov[6], v, o = fake_scratch(fi, 8);

    iov[0] = S("hello ");
    iov[1] = 6;
    iov[2] = S("world\n");
    iov[3] = 6;
    iov[4] = S("");
    iov[5] = 0;
    v = fake_put(fi, iov, sizeof(iov));
    PW_CHECK_EQ_INT(HC("fd_write", 1, v, 3, o), E_SUCCESS);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 12);
    PW_CHECK_EQ_INT(HC("fd_write", 2, v, 2, o), E_SUCCESS);
    PW_CHECK_EQ_INT(HC("fd_write", 1, v + 8, 1, o), E_SUCCESS);
    /* a bare newline logs nothing */
    iov[0] = S("\n");
    iov[1] = 1;
    PW_CHECK_EQ_INT(HC("fd_write", 1, fake_put(fi, iov, 8), 1, o),
                    E_SUCCESS);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 1);
    /* other descriptors */
    PW_CHECK_EQ_INT(HC("fd_write", 0, v, 1, o), E_BADF);
    PW_CHECK_EQ_INT(HC("fd_write", 3, v, 1, o), E_BADF);
    /* bad iovec array, bad buffer inside it, huge count */
    PW_CHECK_EQ_INT(HC("fd_write", 1, MEM - 4, 1, o), E_FAULT);
    PW_CHECK_EQ_INT(HC("fd_write", 1, v, 0x20000000, o), E_FAULT);
    PW_CHECK_EQ_INT(HC("fd_write", 1, v, 0xFFFFFFFF, o), E_FAULT);
    iov[0] = MEM - 2;
    iov[1] = 4;
    PW_CHECK_EQ_INT(HC("fd_write", 1, fake_put(fi, iov, 8), 1, o), E_FAULT);
    iov[0] = 16;
    iov[1] = 0xFFFFFFF8;
    PW_CHECK_EQ_INT(HC("fd_write", 1, fake_put(fi, iov, 8), 1, o), E_FAULT);
    return 0;
}

PW_TEST(wasi_fd_write)
{
    const fh_rec_t *r;

    fx_up(NULL);
    fh_reset_log(&F.host);
    in_root(hook_fd_write);
    PW_CHECK_EQ_INT(fh_count(&F.host, "log"), 3);
    r = fh_find(&F.host, "log", 0);
    PW_CHECK(r->t == PW_LOG_INFO && strcmp(r->s1, "hello world") == 0);
    PW_CHECK(r->plugin == F.plugin);
    r = fh_find(&F.host, "log", 1);
    PW_CHECK(r->t == PW_LOG_ERROR && strcmp(r->s1, "hello world") == 0);
    r = fh_find(&F.host, "log", 2);
    PW_CHECK(r->t == PW_LOG_INFO && strcmp(r->s1, "world") == 0);
    fx_down();
}

static uint32_t
hook_wasi_misc(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 64), buf = MEM / 2;
    uint8_t *p;
    int i;

    PW_CHECK_EQ_INT(HC("clock_time_get", 0, (int64_t) 1, o), E_SUCCESS);
    PW_CHECK(fake_rd64(fi, o) == 1700000000123456789ull);
    PW_CHECK_EQ_INT(HC("clock_time_get", 1, (int64_t) 1, o), E_SUCCESS);
    PW_CHECK(fake_rd64(fi, o) == 42424242ull);
    PW_CHECK_EQ_INT(HC("clock_time_get", 2, (int64_t) 1, o), E_NOTSUP);
    PW_CHECK_EQ_INT(HC("clock_time_get", 3, (int64_t) 1, o), E_NOTSUP);
    PW_CHECK_EQ_INT(HC("clock_res_get", 1, o), E_SUCCESS);
    PW_CHECK_EQ_INT(HC("clock_res_get", 7, o), E_NOTSUP);

    p = fake_mem(fi) + buf;
    PW_CHECK_EQ_INT(HC("random_get", buf, 16), E_SUCCESS);
    for (i = 0; i < 16; i++) {
        PW_CHECK_EQ_INT(p[i], 0xAB);
    }
    PW_CHECK_EQ_INT(p[16], 0);
    PW_CHECK_EQ_INT(HC("random_get", buf, PW_MAX_RANDOM_BYTES), E_SUCCESS);
    PW_CHECK_EQ_INT(HC("random_get", buf, PW_MAX_RANDOM_BYTES + 1), E_INVAL);
    PW_CHECK_EQ_INT(HC("random_get", buf, 0), E_SUCCESS);

    /* poll_oneoff: success with no events */
    fake_wr32(fi, o, 0xFFFFFFFF);
    PW_CHECK_EQ_INT(HC("poll_oneoff", buf, buf + 64, 1, o), E_SUCCESS);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 0);

    /* stdio descriptors */
    memset(fake_mem(fi) + o, 0xFF, 24);
    PW_CHECK_EQ_INT(HC("fd_fdstat_get", 1, o), E_SUCCESS);
    PW_CHECK_EQ_INT(fake_mem(fi)[o], 2);           /* character device */
    PW_CHECK_EQ_INT(fake_rd64(fi, o + 8) & (1 << 6), 1 << 6);
    PW_CHECK_EQ_INT(HC("fd_fdstat_get", 0, o), E_SUCCESS);
    PW_CHECK_EQ_INT(HC("fd_fdstat_get", 5, o), E_BADF);
    PW_CHECK_EQ_INT(HC("fd_close", 1), E_SUCCESS);
    PW_CHECK_EQ_INT(HC("fd_close", 9), E_BADF);
    PW_CHECK_EQ_INT(HC("fd_prestat_get", 3, o), E_BADF);
    PW_CHECK_EQ_INT(HC("fd_read", 0, o, 1, o + 8), 52);
    PW_CHECK_EQ_INT(HC("sched_yield"), E_SUCCESS);
    PW_CHECK_EQ_INT(HC("path_open", 3, 0, SL("f"), 0, (int64_t) 0,
                       (int64_t) 0, 0, o), 44);
    return 0;
}

PW_TEST(wasi_clock_random_poll_fdstat)
{
    fx_up(NULL);
    in_root(hook_wasi_misc);
    PW_CHECK(fh_count(&F.host, "random") >= 2);
    PW_CHECK_EQ_INT(fh_find(&F.host, "random", 0)->t, 16);
    fx_down();
}

static uint32_t
hook_environ(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), ptrs = fake_scratch(fi, 16);
    uint32_t buf = fake_scratch(fi, 64);
    uint8_t *m = fake_mem(fi);

    PW_CHECK_EQ_INT(HC("environ_sizes_get", o, o + 4), E_SUCCESS);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 2);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 4), 4 + 6);
    PW_CHECK_EQ_INT(HC("environ_get", ptrs, buf), E_SUCCESS);
    PW_CHECK_EQ_INT(fake_rd32(fi, ptrs), buf);
    PW_CHECK_EQ_INT(fake_rd32(fi, ptrs + 4), buf + 4);
    PW_CHECK(memcmp(m + buf, "A=1\0BB=22\0", 10) == 0);
    PW_CHECK_EQ_INT(HC("args_sizes_get", o, o + 4), E_SUCCESS);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), g_id);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 4), g_id ? 5 : 0);
    if (g_id) {
        PW_CHECK_EQ_INT(HC("args_get", ptrs, buf), E_SUCCESS);
        PW_CHECK_EQ_INT(fake_rd32(fi, ptrs), buf);
        PW_CHECK(memcmp(m + buf, "prog\0", 5) == 0);
    }
    /* the string area running off the end of memory */
    PW_CHECK_EQ_INT(HC("environ_get", ptrs, MEM - 6), E_FAULT);
    return 0;
}

PW_TEST(wasi_environ_and_args)
{
    static const pw_str_t env[] = { PW_STR("A=1"), PW_STR("BB=22") };
    static const pw_str_t args[] = { PW_STR("prog") };

    fx_init();
    F.conf.env = env;
    F.conf.nenv = 2;
    fx_up(NULL);
    g_id = 0;
    in_root(hook_environ);
    fx_down();

    memset(&F, 0, sizeof(F));
    fx_init();
    F.conf.env = env;
    F.conf.nenv = 2;
    F.conf.args = args;
    F.conf.nargs = 1;
    fx_up(NULL);
    g_id = 1;
    in_root(hook_environ);
    fx_down();
}

/* ---- guest allocation ------------------------------------------------- */

static uint32_t
hook_alloc_fail(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    fake_alloc_ctl(fi)->fail = 1;
    fake_wr32(fi, o, 0x11111111);
    fake_wr32(fi, o + 4, 0x22222222);
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 7, 0, 0xFFFFFFFF, o, o + 4),
                    ST_MEM);
    PW_CHECK_EQ_INT(fake_rd32(fi, o), 0x11111111);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 4), 0x22222222);
    PW_CHECK_EQ_INT(fake_alloc_ctl(fi)->count, 1);
    PW_CHECK_EQ_INT(fake_alloc_ctl(fi)->last_size, 12);
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 0, o, o + 4), ST_MEM);
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_name"), o, o + 4),
                    ST_MEM);
    /* nothing to allocate for an empty answer */
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 7, 0, 0, o, o + 4), ST_OK);
    PW_CHECK_EQ_INT(fake_rd32(fi, o + 4), 0);
    fake_alloc_ctl(fi)->fail = 0;
    return 0;
}

PW_TEST(alloc_failure)
{
    fx_up(NULL);
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, "a", "b");
    in_stream(hook_alloc_fail);
    PW_CHECK(!pw_vm_failed(F.vm));
    fx_down();
}

/* Every allocation moves the guest memory: no stale host pointer. */
static uint32_t
hook_alloc_moves(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);
    uint8_t *before = fake_mem(fi);

    fake_alloc_ctl(fi)->moves = 1;
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 0, SL("a"), o, o + 4),
                    ST_OK);
    PW_CHECK(fake_mem(fi) != before);
    PW_CHECK(RET_IS(o, "b"));
    PW_CHECK_EQ_INT(HC("proxy_get_header_map_pairs", 0, o, o + 4), ST_OK);
    check_pairs(fi, o, "a: b\n");
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("plugin_name"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "plug"));
    PW_CHECK_EQ_INT(HC("proxy_get_property", SL("host_prop"), o, o + 4),
                    ST_OK);
    PW_CHECK(RET_IS(o, "hp"));
    PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 0, 1, 3, o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "ody"));
    PW_CHECK_EQ_INT(HC("proxy_call_foreign_function", SL("rev"), SL("xyz"),
                       o, o + 4), ST_OK);
    PW_CHECK(RET_IS(o, "zyx"));
    PW_CHECK_EQ_INT(HC("proxy_set_shared_data", SL("k"), SL("val"), 0),
                    ST_OK);
    PW_CHECK_EQ_INT(HC("proxy_get_shared_data", SL("k"), o, o + 4, o + 8),
                    ST_OK);
    PW_CHECK(RET_IS(o, "val"));
    PW_CHECK_EQ_INT(HC("proxy_get_status", o + 8, o, o + 4), ST_OK);
    PW_CHECK(fake_alloc_ctl(fi)->count >= 7);
    fake_alloc_ctl(fi)->moves = 0;
    return 0;
}

PW_TEST(alloc_moves_memory)
{
    fx_up(NULL);
    set_header(PW_MAP_HTTP_REQUEST_HEADERS, "a", "b");
    fh_set_body(&F.host, PW_BUFFER_HTTP_REQUEST_BODY, "body");
    fh_set_prop(&F.host, "host_prop", "hp", 2);
    PW_CHECK_EQ_INT(pw_vm_register_foreign(F.vm, PW_STR("rev"), foreign_echo,
                                           NULL), PW_OK);
    in_stream(hook_alloc_moves);
    fx_down();
}

static uint32_t
hook_alloc_trap(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16);

    fake_alloc_ctl(fi)->trap = 1;
    HC("proxy_get_buffer_bytes", 7, 0, 0xFFFFFFFF, o, o + 4);
    PW_CHECK(!"the hostcall returned after the allocator trapped");
    return 0;
}

PW_TEST(alloc_trap_fails_vm)
{
    fx_up(NULL);
    on("on_tick", hook_alloc_trap);
    PW_CHECK_EQ_INT(pw_plugin_tick(F.plugin), PW_EFAILED);
    PW_CHECK(pw_vm_failed(F.vm));
    PW_CHECK(strstr(pw_vm_fail_reason(F.vm), "proxy_on_memory_allocate"));
    PW_CHECK(F.vm->effective == NULL && F.vm->depth == 0);
    fx_down();
}

PW_TEST(malloc_preferred_allocator)
{
    static const fake_export_t ex[] = {
        { "malloc", "i:i", fake_guest_alloc },
    };
    modopt_t o = { .extra = ex, .nextra = 1,
                   .omit = "proxy_on_memory_allocate" };

    fx_up(&o);
    in_root(hook_alloc_fail);
    fx_down();
}


/* ---- the encoder against wat2wasm ----------------------------------- */

PW_TEST(encoder_matches_wat2wasm)
{
    static const fake_import_t im[] = {
        { "env", "proxy_log", "iii:i" },
        { "env", "proxy_record_metric", "iI:i" },
        { "wasi_snapshot_preview1", "clock_time_get", "iIi:i" },
    };
    static const fake_export_t ex[] = {
        { "proxy_abi_version_0_2_1", ":", NULL },
        { "proxy_on_memory_allocate", "i:i", fake_guest_alloc },
        { "proxy_on_context_create", "ii:", std_export },
        { "proxy_on_request_headers", "iii:i", std_export },
        { "proxy_on_vm_start", "ii:i", std_export },
        { "_initialize", ":", std_export },
    };
    fake_module_t d = { im, 3, ex, 6, 0, 0, NULL };
    pw_wasm_info_t *a, *b;
    pw_module_t *mod;
    uint8_t *wat, *enc;
    size_t wlen, elen, i;
    pw_abi_t abi;
    char err[256];

    wat = pw_test_read_beside("plugin.wasm", &wlen);
    PW_CHECK_EQ_INT(pw_module_check(wat, wlen, &abi, err, sizeof(err)),
                    PW_OK);
    PW_CHECK_EQ_INT(abi, PW_ABI_0_2_1);
    PW_CHECK_EQ_INT(fake_wasm_encode(&d, &enc, &elen), PW_OK);
    PW_CHECK_EQ_INT(pw_wasm_parse(wat, wlen, &a, err, sizeof(err)), PW_OK);
    PW_CHECK_EQ_INT(pw_wasm_parse(enc, elen, &b, err, sizeof(err)), PW_OK);
    PW_CHECK_EQ_INT(a->nimports, b->nimports);
    for (i = 0; i < a->nimports; i++) {
        PW_CHECK_EQ_STR(a->imports[i].module, b->imports[i].module);
        PW_CHECK_EQ_STR(a->imports[i].name, b->imports[i].name);
        PW_CHECK_EQ_STR(a->imports[i].sig, b->imports[i].sig);
        PW_CHECK_EQ_INT(a->imports[i].kind, b->imports[i].kind);
    }
    PW_CHECK_EQ_INT(a->nexports, b->nexports);
    for (i = 0; i < a->nexports; i++) {
        const pw_wasm_export_t *e = &a->exports[i];
        const pw_wasm_export_t *f = NULL;
        size_t j;

        for (j = 0; j < b->nexports; j++) {
            if (strcmp(b->exports[j].name, e->name) == 0) {
                f = &b->exports[j];
            }
        }
        PW_CHECK(f != NULL);
        PW_CHECK_EQ_INT(e->kind, f->kind);
        if (e->kind == PW_EXTERN_FUNC) {
            PW_CHECK_EQ_STR(e->sig, f->sig);
        }
    }
    PW_CHECK_EQ_INT(a->nfuncs, b->nfuncs);
    /* wat2wasm's module passes the core's checks up to compilation; the
     * fake engine finds no description in it */
    fx_init();
    PW_CHECK_EQ_INT(pw_module_load(&fake_engine_vt, F.engine, wat, wlen, &mod,
                                   err, sizeof(err)), PW_EMALFORMED);
    PW_CHECK(strstr(err, "fake engine") != NULL);
    pw_wasm_info_free(a);
    pw_wasm_info_free(b);
    free(wat);
    free(enc);
    fx_down();
}


/* ---- a host that answers a callout while the plugin is in another ----- */

static uint32_t g_first, g_second, g_deliver;

/* The host answers synchronously, inside proxy_http_call. */
static int
sync_http_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers,
    uint32_t timeout_ms)
{
    static const pw_pair_t rh[] = { P(":status", "503") };
    pw_pairs_t h = { rh, 1 };
    uint32_t t = g_deliver;

    if (upstream.len == 7 && memcmp(upstream.data, "nowhere", 7) == 0) {
        return PW_ENOTFOUND;
    }
    if (t) {
        g_deliver = 0;
        PW_CHECK_EQ_INT(pw_plugin_http_response(c->plugin, t, &h,
                                                PW_STR("inner"), NULL),
                        PW_OK);
    }
    return PW_OK;
}

static uint32_t
hook_nested_response(fake_inst_t *fi, const uint32_t *a, size_t n)
{
    uint32_t o = fake_scratch(fi, 16), m, mlen;

    if (a[1] == g_first) {
        g_deliver = g_second;
        m = put_pairs(fi, call_hdrs, 3, &mlen);
        PW_CHECK_EQ_INT(HC("proxy_http_call", SL("up"), m, mlen, 0, 0, 0, 0,
                           10, o), ST_OK);
        PW_CHECK_EQ_INT(g_st[1], 1);
        /* back in the outer callback: its answer is still what it reads */
        PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 4, 0, 0xFFFFFFFF, o,
                           o + 4), ST_OK);
        PW_CHECK(RET_IS(o, "outer"));
        PW_CHECK_EQ_INT(HC("proxy_get_header_map_value", 6, SL(":status"), o,
                           o + 4), ST_OK);
        PW_CHECK(RET_IS(o, "200"));
        PW_CHECK_EQ_INT(HC("proxy_get_status", o + 8, o, o + 4), ST_OK);
        PW_CHECK_EQ_INT(fake_rd32(fi, o + 8), 200);
        g_st[0]++;
    } else {
        PW_CHECK_EQ_INT(a[1], g_second);
        PW_CHECK_EQ_INT(HC("proxy_get_buffer_bytes", 4, 0, 0xFFFFFFFF, o,
                           o + 4), ST_OK);
        PW_CHECK(RET_IS(o, "inner"));
        PW_CHECK_EQ_INT(HC("proxy_get_status", o + 8, o, o + 4), ST_OK);
        PW_CHECK_EQ_INT(fake_rd32(fi, o + 8), 503);
        g_st[1]++;
    }
    return 0;
}

PW_TEST(nested_delivery_keeps_outer_answer)
{
    static const pw_pair_t rh[] = { P(":status", "200") };
    pw_pairs_t h = { rh, 1 };

    fx_init();
    F.host.host.http_call = sync_http_call;
    fx_up(NULL);
    in_root(hook_http_call);
    g_first = g_token;
    in_root(hook_http_call);
    g_second = g_token;
    on("on_http_call_response", hook_nested_response);
    PW_CHECK_EQ_INT(pw_plugin_http_response(F.plugin, g_first, &h,
                                            PW_STR("outer"), NULL), PW_OK);
    PW_CHECK_EQ_INT(g_st[1], 1);
    PW_CHECK_EQ_INT(g_st[0], 1);
    fx_down();
}

int
main(int argc, char **argv)
{
    return pw_test_main(argc, argv, (pw_test_t[]){
        PW_TEST_ENTRY(module_abi_markers),
        PW_TEST_ENTRY(module_no_marker),
        PW_TEST_ENTRY(module_missing_import),
        PW_TEST_ENTRY(module_import_outside_abi),
        PW_TEST_ENTRY(module_bad_import_signature),
        PW_TEST_ENTRY(module_bad_export_signature),
        PW_TEST_ENTRY(module_no_memory),
        PW_TEST_ENTRY(module_allocator),
        PW_TEST_ENTRY(module_wasi_unstable),
        PW_TEST_ENTRY(module_every_table_entry_links),
        PW_TEST_ENTRY(plugin_start_sequence),
        PW_TEST_ENTRY(plugin_vm_start_false),
        PW_TEST_ENTRY(plugin_configure_false),
        PW_TEST_ENTRY(plugin_configure_trap),
        PW_TEST_ENTRY(stream_lazy_create_and_end),
        PW_TEST_ENTRY(stream_tcp_hooks),
        PW_TEST_ENTRY(stream_missing_export_continues),
        PW_TEST_ENTRY(headers_arity),
        PW_TEST_ENTRY(trap_fails_vm),
        PW_TEST_ENTRY(several_roots),
        PW_TEST_ENTRY(context_ids_not_reused),
        PW_TEST_ENTRY(many_streams),
        PW_TEST_ENTRY(entry_initialize_then_main),
        PW_TEST_ENTRY(entry_start_only_without_initialize),
        PW_TEST_ENTRY(entry_start_proc_exit),
        PW_TEST_ENTRY(entry_initialize_trap),
        PW_TEST_ENTRY(entry_start_section_trap),
        PW_TEST_ENTRY(proc_exit_in_hook_fails_vm),
        PW_TEST_ENTRY(watchdog_interrupts_runaway_call),
        PW_TEST_ENTRY(watchdog_interrupts_hostcall_loop),
        PW_TEST_ENTRY(set_effective_context),
        PW_TEST_ENTRY(set_effective_context_nested),
        PW_TEST_ENTRY(proxy_done),
        PW_TEST_ENTRY(unimplemented_logged_once),
        PW_TEST_ENTRY(no_host_at_all),
        PW_TEST_ENTRY(memory_bounds_every_pointer),
        PW_TEST_ENTRY(every_hostcall_garbage_args),
        PW_TEST_ENTRY(map_bad_types),
        PW_TEST_ENTRY(map_operations),
        PW_TEST_ENTRY(map_missing_key_by_abi),
        PW_TEST_ENTRY(map_malformed_and_oversized),
        PW_TEST_ENTRY(buffer_get),
        PW_TEST_ENTRY(buffer_set_normalised),
        PW_TEST_ENTRY(log_time_tick),
        PW_TEST_ENTRY(get_configuration_010),
        PW_TEST_ENTRY(stream_control),
        PW_TEST_ENTRY(stream_control_010),
        PW_TEST_ENTRY(send_local_response),
        PW_TEST_ENTRY(http_call_and_response),
        PW_TEST_ENTRY(http_call_failure_delivery),
        PW_TEST_ENTRY(http_call_dropped_with_stream),
        PW_TEST_ENTRY(grpc_calls_and_deliveries),
        PW_TEST_ENTRY(grpc_cancel_and_stream_end),
        PW_TEST_ENTRY(shared_data),
        PW_TEST_ENTRY(shared_queues),
        PW_TEST_ENTRY(dequeue_bad_out_keeps_item),
        PW_TEST_ENTRY(metrics),
        PW_TEST_ENTRY(properties),
        PW_TEST_ENTRY(properties_without_host),
        PW_TEST_ENTRY(foreign_functions),
        PW_TEST_ENTRY(wasi_fd_write),
        PW_TEST_ENTRY(wasi_clock_random_poll_fdstat),
        PW_TEST_ENTRY(wasi_environ_and_args),
        PW_TEST_ENTRY(alloc_failure),
        PW_TEST_ENTRY(alloc_moves_memory),
        PW_TEST_ENTRY(alloc_trap_fails_vm),
        PW_TEST_ENTRY(malloc_preferred_allocator),
        PW_TEST_ENTRY(encoder_matches_wat2wasm),
        PW_TEST_ENTRY(nested_delivery_keeps_outer_answer),
        { 0 } });
}
