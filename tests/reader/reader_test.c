/*
 * Tests of the wasm binary reader (src/core/wasm.c) and the pairs map
 * (src/core/map.c).
 *
 * Fixtures are WAT files compiled next to this binary. Hand-built modules
 * check the exact error of each malformation. The allocator is wrapped
 * (-Wl,--wrap=malloc,...) to fail chosen allocations, to see the largest
 * request, and to count blocks still allocated, so leaks on error paths are
 * caught even without LeakSanitizer.
 */
#include <limits.h>
#include <stdarg.h>

#include "../pwtest.h"

#include <pw/pw_map.h>
#include <pw/pw_wasm.h>

/* ---- allocator wrappers ----------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static long alloc_fail_in = -1;     /* allocations left before one fails */
static long alloc_live;             /* blocks allocated and not freed */
static size_t alloc_max;            /* largest request */

static int
alloc_should_fail(size_t n)
{
    if (n > alloc_max) {
        alloc_max = n;
    }
    if (alloc_fail_in < 0) {
        return 0;
    }
    if (alloc_fail_in == 0) {
        alloc_fail_in = -1;
        return 1;
    }
    alloc_fail_in--;
    return 0;
}

void *
__wrap_malloc(size_t n)
{
    void *p;

    if (alloc_should_fail(n)) {
        return NULL;
    }
    p = __real_malloc(n);
    if (p != NULL) {
        alloc_live++;
    }
    return p;
}

void *
__wrap_calloc(size_t n, size_t size)
{
    void *p;

    if (alloc_should_fail(n * size)) {
        return NULL;
    }
    p = __real_calloc(n, size);
    if (p != NULL) {
        alloc_live++;
    }
    return p;
}

void *
__wrap_realloc(void *old, size_t n)
{
    void *p;

    if (alloc_should_fail(n)) {
        return NULL;
    }
    p = __real_realloc(old, n);
    if (p != NULL && old == NULL) {
        alloc_live++;
    }
    return p;
}

void
__wrap_free(void *p)
{
    if (p != NULL) {
        alloc_live--;
    }
    __real_free(p);
}

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
    uint8_t *b;
    size_t n;
    size_t cap;
} buf_t;

static void
put(buf_t *m, const void *p, size_t n)
{
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2 + 64;
        m->b = realloc(m->b, m->cap);
        PW_CHECK(m->b != NULL);
    }
    if (n > 0) {
        memcpy(m->b + m->n, p, n);
    }
    m->n += n;
}

static void
put_u8(buf_t *m, uint8_t v)
{
    put(m, &v, 1);
}

static void
put_bytes(buf_t *m, size_t n, ...)
{
    va_list ap;
    size_t i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        put_u8(m, (uint8_t) va_arg(ap, int));
    }
    va_end(ap);
}

static void
put_leb(buf_t *m, uint64_t v)
{
    do {
        uint8_t b = v & 0x7f;

        v >>= 7;
        put_u8(m, b | (v ? 0x80 : 0));
    } while (v);
}

static void
put_str(buf_t *m, const char *s)
{
    put_leb(m, strlen(s));
    put(m, s, strlen(s));
}

static void
put_header(buf_t *m)
{
    put(m, "\0asm\1\0\0\0", 8);
}

static void
put_section(buf_t *m, uint8_t id, buf_t *body)
{
    put_u8(m, id);
    put_leb(m, body->n);
    put(m, body->b, body->n);
    free(body->b);
    memset(body, 0, sizeof(*body));
}

/* A type section: type 0 (i32 i32) -> i32, type 1 () -> (). */
static void
put_types(buf_t *m)
{
    buf_t s = { 0 };

    put_bytes(&s, 10, 2, 0x60, 2, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0);
    put_section(m, 1, &s);
}

/* Parse a copy of exactly n bytes, so ASan sees any overread. */
static int
parse(const uint8_t *b, size_t n, pw_wasm_info_t **info, char *err,
    size_t errlen)
{
    uint8_t *copy;
    int rc;

    copy = malloc(n ? n : 1);
    PW_CHECK(copy != NULL);
    if (n > 0) {
        memcpy(copy, b, n);
    }
    rc = pw_wasm_parse(n ? copy : NULL, n, info, err, errlen);
    free(copy);
    return rc;
}

static void
expect_error(buf_t *m, const char *msg)
{
    pw_wasm_info_t *info = (pw_wasm_info_t *) 1;
    char err[256];
    long live;
    int rc;

    live = alloc_live;
    rc = parse(m->b, m->n, &info, err, sizeof(err));
    if (rc != PW_EMALFORMED) {
        fprintf(stderr, "  parse: rc %d, expected malformed (\"%s\")\n", rc,
                msg);
    }
    PW_CHECK_EQ_INT(rc, PW_EMALFORMED);
    PW_CHECK(info == NULL);
    PW_CHECK_EQ_STR(err, msg);
    PW_CHECK_EQ_INT(alloc_live, live);
    free(m->b);
    memset(m, 0, sizeof(*m));
}

static pw_wasm_info_t *
expect_ok(buf_t *m)
{
    pw_wasm_info_t *info = NULL;
    char err[256];
    int rc;

    rc = parse(m->b, m->n, &info, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "  parse: %s\n", err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
    PW_CHECK(info != NULL);
    /* success leaves no message, even after an ignored name section */
    PW_CHECK_EQ_STR(err, "");
    free(m->b);
    memset(m, 0, sizeof(*m));
    return info;
}

/* tests/reader/module.mk builds NAME.wasm beside the binary */
static uint8_t *
load_fixture(const char *name, size_t *len)
{
    char file[256];

    snprintf(file, sizeof(file), "%s.wasm", name);
    return pw_test_read_beside(file, len);
}

static pw_wasm_info_t *
parse_fixture(const char *name)
{
    pw_wasm_info_t *info = NULL;
    uint8_t *data;
    char err[256];
    size_t len;
    int rc;

    data = load_fixture(name, &len);
    rc = parse(data, len, &info, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "  %s: %s\n", name, err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
    free(data);
    return info;
}

static const pw_wasm_export_t *
export_named(const pw_wasm_info_t *info, const char *name)
{
    size_t i;

    for (i = 0; i < info->nexports; i++) {
        if (strcmp(info->exports[i].name, name) == 0) {
            return &info->exports[i];
        }
    }
    return NULL;
}

static const char *fixtures[] = {
    "kinds", "multivalue", "limits", "bulk", "tags", "empty", NULL
};

/* What any successfully parsed module must look like. */
static void
check_invariants(const pw_wasm_info_t *info)
{
    size_t i, funcs;

    funcs = 0;
    for (i = 0; i < info->nimports; i++) {
        PW_CHECK(info->imports[i].module != NULL);
        PW_CHECK(info->imports[i].name != NULL);
        PW_CHECK(info->imports[i].kind <= PW_EXTERN_GLOBAL);
        if (info->imports[i].kind == PW_EXTERN_FUNC) {
            funcs++;
            PW_CHECK(strchr(info->imports[i].sig, ':') != NULL);
        } else {
            PW_CHECK(info->imports[i].sig[0] == '\0');
        }
    }
    PW_CHECK(funcs <= info->nfuncs);
    for (i = 0; i < info->nexports; i++) {
        PW_CHECK(info->exports[i].name != NULL);
        PW_CHECK(info->exports[i].kind <= PW_EXTERN_GLOBAL);
        if (info->exports[i].kind == PW_EXTERN_FUNC) {
            PW_CHECK(info->exports[i].index < info->nfuncs);
            PW_CHECK(strlen(info->exports[i].sig) < PW_SIG_MAX);
            PW_CHECK(strchr(info->exports[i].sig, ':') != NULL);
        }
    }
    if (info->func_names != NULL) {
        for (i = 0; i < info->nfuncs; i++) {
            if (info->func_names[i] != NULL) {
                PW_CHECK(strlen(info->func_names[i]) < 1u << 20);
            }
        }
    }
}

/* ---- wasm: fixtures ------------------------------------------------------ */

PW_TEST(wasm_imports_every_kind)
{
    pw_wasm_info_t *info = parse_fixture("kinds");
    pw_wasm_import_t *im = info->imports;

    PW_CHECK_EQ_INT(info->nimports, 6);
    PW_CHECK_EQ_STR(im[0].module, "env");
    PW_CHECK_EQ_STR(im[0].name, "proxy_log");
    PW_CHECK_EQ_INT(im[0].kind, PW_EXTERN_FUNC);
    PW_CHECK_EQ_STR(im[0].sig, "iii:i");
    PW_CHECK_EQ_STR(im[1].name, "tbl");
    PW_CHECK_EQ_INT(im[1].kind, PW_EXTERN_TABLE);
    PW_CHECK_EQ_STR(im[1].sig, "");
    PW_CHECK_EQ_STR(im[2].name, "mem");
    PW_CHECK_EQ_INT(im[2].kind, PW_EXTERN_MEMORY);
    PW_CHECK_EQ_STR(im[3].name, "g_const");
    PW_CHECK_EQ_INT(im[3].kind, PW_EXTERN_GLOBAL);
    PW_CHECK_EQ_STR(im[4].module, "wasi_snapshot_preview1");
    PW_CHECK_EQ_STR(im[4].name, "proc_exit");
    PW_CHECK_EQ_INT(im[4].kind, PW_EXTERN_FUNC);
    PW_CHECK_EQ_STR(im[4].sig, "i:");
    PW_CHECK_EQ_STR(im[5].name, "g_mut");
    PW_CHECK_EQ_INT(im[5].kind, PW_EXTERN_GLOBAL);
    /* 2 imported + 4 defined */
    PW_CHECK_EQ_INT(info->nfuncs, 6);
    check_invariants(info);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_exports_every_kind)
{
    pw_wasm_info_t *info = parse_fixture("kinds");
    const pw_wasm_export_t *ex;

    PW_CHECK_EQ_INT(info->nexports, 9);
    ex = export_named(info, "proxy_on_tick");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_INT(ex->kind, PW_EXTERN_FUNC);
    PW_CHECK_EQ_INT(ex->index, 3);
    PW_CHECK_EQ_STR(ex->sig, "i:");
    ex = export_named(info, "memory");
    PW_CHECK(ex != NULL && ex->kind == PW_EXTERN_MEMORY && ex->index == 0);
    ex = export_named(info, "table");
    PW_CHECK(ex != NULL && ex->kind == PW_EXTERN_TABLE && ex->index == 0);
    ex = export_named(info, "own_table");
    PW_CHECK(ex != NULL && ex->kind == PW_EXTERN_TABLE && ex->index == 1);
    ex = export_named(info, "g_const");
    PW_CHECK(ex != NULL && ex->kind == PW_EXTERN_GLOBAL && ex->index == 0);
    ex = export_named(info, "g_own");
    PW_CHECK(ex != NULL && ex->kind == PW_EXTERN_GLOBAL && ex->index == 2);
    ex = export_named(info, "sqrt_like");
    PW_CHECK(ex != NULL && ex->kind == PW_EXTERN_FUNC && ex->index == 4);
    PW_CHECK_EQ_STR(ex->sig, "F:F");
    /* re-exporting an import: the signature comes from the import */
    ex = export_named(info, "log_again");
    PW_CHECK(ex != NULL && ex->index == 0);
    PW_CHECK_EQ_STR(ex->sig, "iii:i");
    ex = export_named(info, "i64_func");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, ":I");
    pw_wasm_info_free(info);
}

PW_TEST(wasm_find_export_only_functions)
{
    pw_wasm_info_t *info = parse_fixture("kinds");
    const pw_wasm_export_t *ex;

    ex = pw_wasm_find_export(info, "proxy_on_tick");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->name, "proxy_on_tick");
    PW_CHECK(pw_wasm_find_export(info, "memory") == NULL);
    PW_CHECK(pw_wasm_find_export(info, "table") == NULL);
    PW_CHECK(pw_wasm_find_export(info, "g_own") == NULL);
    PW_CHECK(pw_wasm_find_export(info, "proxy_on_tic") == NULL);
    PW_CHECK(pw_wasm_find_export(info, "") == NULL);
    PW_CHECK(pw_wasm_find_export(info, NULL) == NULL);
    PW_CHECK(pw_wasm_find_export(NULL, "x") == NULL);
    pw_wasm_info_free(info);
    pw_wasm_info_free(NULL);
}

PW_TEST(wasm_start_section)
{
    pw_wasm_info_t *info;

    info = parse_fixture("kinds");
    PW_CHECK_EQ_INT(info->has_start, 1);
    pw_wasm_info_free(info);
    info = parse_fixture("bulk");
    PW_CHECK_EQ_INT(info->has_start, 0);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_name_section)
{
    pw_wasm_info_t *info = parse_fixture("kinds");

    PW_CHECK(info->func_names != NULL);
    PW_CHECK_EQ_STR(info->func_names[0], "proxy_log");
    PW_CHECK_EQ_STR(info->func_names[1], "proc_exit");
    PW_CHECK_EQ_STR(info->func_names[2], "init");
    PW_CHECK_EQ_STR(info->func_names[3], "on_tick");
    PW_CHECK(info->func_names[4] == NULL);
    PW_CHECK_EQ_STR(info->func_names[5], "unnamed_export");
    pw_wasm_info_free(info);
}

PW_TEST(wasm_multi_value_and_unknown_types)
{
    pw_wasm_info_t *info = parse_fixture("multivalue");
    const pw_wasm_export_t *ex;

    ex = pw_wasm_find_export(info, "swap");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, "IfF:FfI");
    ex = pw_wasm_find_export(info, "none");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, ":");
    ex = pw_wasm_find_export(info, "simd");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, "?i:?");
    ex = pw_wasm_find_export(info, "refs");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, "??:i");
    /* 29 + 1 letters fit PW_SIG_MAX - 2 exactly */
    ex = pw_wasm_find_export(info, "fits");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, "iiiiiiiiiiiiiiiiiiiiiiiiiiiii:i");
    /* 40 params: cut, and marked so it cannot match a real signature */
    ex = pw_wasm_find_export(info, "long");
    PW_CHECK(ex != NULL);
    PW_CHECK_EQ_STR(ex->sig, "iiiiiiiiiiIIII?:i");
    check_invariants(info);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_limits_of_every_flavour)
{
    pw_wasm_info_t *info = parse_fixture("limits");
    static const char *sigs[] = { "i:i", "I:", ":F", ":" };
    size_t i, f;

    PW_CHECK_EQ_INT(info->nimports, 8);
    for (i = 0, f = 0; i < info->nimports; i++) {
        if (i % 2 == 1) {
            PW_CHECK_EQ_INT(info->imports[i].kind, PW_EXTERN_FUNC);
            PW_CHECK_EQ_STR(info->imports[i].sig, sigs[f]);
            f++;
        }
    }
    PW_CHECK_EQ_INT(info->imports[0].kind, PW_EXTERN_MEMORY);
    PW_CHECK_EQ_STR(info->imports[2].name, "shared");
    PW_CHECK_EQ_INT(info->imports[6].kind, PW_EXTERN_TABLE);
    PW_CHECK_EQ_INT(info->nfuncs, 4);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_bulk_memory_and_data_count)
{
    pw_wasm_info_t *info = parse_fixture("bulk");

    PW_CHECK_EQ_INT(info->nexports, 3);
    PW_CHECK(pw_wasm_find_export(info, "f") != NULL);
    PW_CHECK_EQ_STR(pw_wasm_find_export(info, "f")->sig, "i:i");
    PW_CHECK_EQ_STR(pw_wasm_find_export(info, "copy")->sig, "iii:");
    PW_CHECK_EQ_INT(info->nfuncs, 2);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_tag_exports_are_skipped)
{
    pw_wasm_info_t *info = parse_fixture("tags");

    PW_CHECK_EQ_INT(info->nexports, 1);
    PW_CHECK_EQ_STR(info->exports[0].name, "thrower");
    PW_CHECK_EQ_STR(info->exports[0].sig, "i:");
    pw_wasm_info_free(info);
}

PW_TEST(wasm_empty_module)
{
    pw_wasm_info_t *info = parse_fixture("empty");

    PW_CHECK_EQ_INT(info->nimports, 0);
    PW_CHECK_EQ_INT(info->nexports, 0);
    PW_CHECK_EQ_INT(info->nfuncs, 0);
    PW_CHECK(info->func_names == NULL);
    PW_CHECK(info->imports == NULL && info->exports == NULL);
    PW_CHECK_EQ_INT(info->has_start, 0);
    pw_wasm_info_free(info);
}

/* ---- wasm: robustness over the fixtures ------------------------------- */

PW_TEST(wasm_truncated_at_every_length)
{
    pw_wasm_info_t *info;
    const char **name;
    uint8_t *data;
    size_t len, cut, ok;
    char err[256];
    long live;
    int rc;

    for (name = fixtures; *name; name++) {
        data = load_fixture(*name, &len);
        ok = 0;
        live = alloc_live;
        for (cut = 0; cut <= len; cut++) {
            info = NULL;
            rc = parse(data, cut, &info, err, sizeof(err));
            if (rc == PW_OK) {
                ok++;
                check_invariants(info);
                pw_wasm_info_free(info);
                PW_CHECK_EQ_INT(alloc_live, live);
                continue;
            }
            PW_CHECK_EQ_INT(rc, PW_EMALFORMED);
            PW_CHECK(info == NULL);
            PW_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
            PW_CHECK_EQ_INT(alloc_live, live);
            if (cut < 4) {
                PW_CHECK_EQ_STR(err, "not a wasm module (bad magic)");
            } else if (cut < 8) {
                PW_CHECK_EQ_STR(err, "wasm header truncated");
            } else if (strncmp(err, "section ", 8) != 0) {
                /* a cut inside a section always shows as that section's */
                fprintf(stderr, "  %s cut at %zu: %s\n", *name, cut, err);
                PW_CHECK(0);
            }
        }
        /* only cuts between sections parse: the full one at least */
        PW_CHECK(ok >= 1 && ok < len / 4);
        free(data);
    }
}

static uint32_t
rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

PW_TEST(wasm_random_mutations)
{
    pw_wasm_info_t *info;
    const char **name;
    uint8_t *data, *mut;
    uint32_t seed = 2463534242u;
    size_t len, i, k, nok, nbad;
    char err[256];
    long live;
    int rc;

    nok = nbad = 0;
    live = alloc_live;
    for (name = fixtures; *name; name++) {
        data = load_fixture(*name, &len);
        mut = malloc(len);
        PW_CHECK(mut != NULL);
        for (i = 0; i < 4000; i++) {
            memcpy(mut, data, len);
            for (k = 0; k < 1 + rnd(&seed) % 3; k++) {
                size_t at = 8 + rnd(&seed) % (len > 8 ? len - 8 : 1);

                if (at < len) {
                    /* LEB-ish bytes and boundary values are the useful ones */
                    static const uint8_t v[] = { 0, 1, 0x7f, 0x80, 0xff,
                                                 0x60, 0x70, 0x40 };
                    mut[at] = rnd(&seed) % 2 ? v[rnd(&seed) % 8]
                                             : (uint8_t) rnd(&seed);
                }
            }
            info = NULL;
            rc = parse(mut, len - rnd(&seed) % 2, &info, err, sizeof(err));
            if (rc == PW_OK) {
                nok++;
                check_invariants(info);
                pw_wasm_info_free(info);
            } else {
                nbad++;
                PW_CHECK_EQ_INT(rc, PW_EMALFORMED);
                PW_CHECK(info == NULL);
                PW_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
            }
            PW_CHECK_EQ_INT(alloc_live, live + 2);
        }
        free(mut);
        free(data);
    }
    PW_CHECK(nok > 0 && nbad > 0);
}

PW_TEST(wasm_out_of_memory_at_every_allocation)
{
    pw_wasm_info_t *info;
    const char **name;
    uint8_t *data;
    size_t len;
    char err[256];
    long live, k;
    int rc, failed;

    for (name = fixtures; *name; name++) {
        data = load_fixture(*name, &len);
        live = alloc_live;
        for (k = 0;; k++) {
            info = NULL;
            alloc_fail_in = k;
            rc = pw_wasm_parse(data, len, &info, err, sizeof(err));
            failed = alloc_fail_in == -1;
            alloc_fail_in = -1;
            if (!failed) {
                PW_CHECK_EQ_INT(rc, PW_OK);
                pw_wasm_info_free(info);
                break;
            }
            PW_CHECK_EQ_INT(rc, PW_ENOMEM);
            PW_CHECK(info == NULL);
            PW_CHECK_EQ_STR(err, "out of memory");
            PW_CHECK_EQ_INT(alloc_live, live);
        }
        PW_CHECK(k >= 1);
        PW_CHECK_EQ_INT(alloc_live, live);
        free(data);
    }
}

/* ---- wasm: exact errors ------------------------------------------------ */

PW_TEST(wasm_bad_magic_and_version)
{
    buf_t m = { 0 };
    pw_wasm_info_t *info;
    char err[64];

    put(&m, "\0asn\1\0\0\0", 8);
    expect_error(&m, "not a wasm module (bad magic)");
    put(&m, "\0as", 3);
    expect_error(&m, "not a wasm module (bad magic)");
    expect_error(&m, "not a wasm module (bad magic)");   /* 0 bytes */
    put(&m, "MZ\x90\0\3\0\0\0\4\0", 10);
    expect_error(&m, "not a wasm module (bad magic)");
    put(&m, "\0asm\1\0\0", 7);
    expect_error(&m, "wasm header truncated");
    put(&m, "\0asm\2\0\0\0", 8);
    expect_error(&m, "unsupported wasm version 2");
    put(&m, "\0asm\0\0\0\0", 8);
    expect_error(&m, "unsupported wasm version 0");
    put(&m, "\0asm\xff\xff\xff\xff", 8);
    expect_error(&m, "unsupported wasm version 4294967295");
    put(&m, "\0asm\x0d\0\1\0", 8);
    expect_error(&m, "a wasm component, not a core module "
                 "(unsupported wasm version 0x1000d)");

    /* a small err buffer gets a cut, terminated message */
    PW_CHECK_EQ_INT(pw_wasm_parse((const uint8_t *) "\0asn\1\0\0\0", 8,
                                  &info, err, 10), PW_EMALFORMED);
    PW_CHECK_EQ_STR(err, "not a was");
    PW_CHECK_EQ_INT(pw_wasm_parse((const uint8_t *) "\0asn\1\0\0\0", 8,
                                  &info, NULL, 0), PW_EMALFORMED);
    PW_CHECK_EQ_INT(pw_wasm_parse(NULL, 8, &info, err, sizeof(err)),
                    PW_EINVAL);
    PW_CHECK_EQ_INT(pw_wasm_parse((const uint8_t *) "\0asm\1\0\0\0", 8,
                                  NULL, err, sizeof(err)), PW_EINVAL);
}

PW_TEST(wasm_section_envelope_errors)
{
    buf_t m = { 0 };

    put_header(&m);
    put_bytes(&m, 5, 1, 10, 1, 0x60, 0);
    expect_error(&m, "section 1 (type) truncated: size 10, 3 bytes left");

    put_header(&m);
    put_bytes(&m, 2, 2, 0x80);
    expect_error(&m, "section 2 (import) header: truncated");

    put_header(&m);
    put_bytes(&m, 7, 7, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00);
    expect_error(&m, "section 7 (export) header: bad LEB128 (too long)");

    put_header(&m);
    put_bytes(&m, 6, 3, 0xff, 0xff, 0xff, 0xff, 0x1f);
    expect_error(&m, "section 3 (function) header: bad LEB128 (overflow)");

    put_header(&m);
    put_bytes(&m, 6, 0x33, 0xff, 0xff, 0xff, 0xff, 0x0f);
    expect_error(&m, "section 51 (unknown) truncated: size 4294967295, "
                 "0 bytes left");

    /* a padded but in-range LEB is fine: 5 bytes for 0 */
    put_header(&m);
    put_bytes(&m, 6, 12, 0x81, 0x80, 0x80, 0x80, 0x00);
    put_u8(&m, 0);
    pw_wasm_info_free(expect_ok(&m));
}

PW_TEST(wasm_section_order)
{
    buf_t m = { 0 }, s = { 0 };

    put_header(&m);
    put_u8(&s, 0);
    put_section(&m, 3, &s);
    put_types(&m);
    expect_error(&m, "section 1 (type) out of order");

    put_header(&m);
    put_types(&m);
    put_types(&m);
    expect_error(&m, "duplicate section 1 (type)");

    /* data count (12) goes before code (10), tag (13) before global (6) */
    put_header(&m);
    put_u8(&s, 0);
    put_section(&m, 13, &s);
    put_u8(&s, 0);
    put_section(&m, 6, &s);
    put_u8(&s, 0);
    put_section(&m, 12, &s);
    put_u8(&s, 0);
    put_section(&m, 10, &s);
    pw_wasm_info_free(expect_ok(&m));

    put_header(&m);
    put_u8(&s, 0);
    put_section(&m, 10, &s);
    put_u8(&s, 0);
    put_section(&m, 12, &s);
    expect_error(&m, "section 12 (data count) out of order");

    /* custom and unknown sections can go anywhere, any number of times */
    put_header(&m);
    put_str(&s, "x");
    put_section(&m, 0, &s);
    put_types(&m);
    put_str(&s, "y");
    put_bytes(&s, 3, 1, 2, 3);
    put_section(&m, 0, &s);
    put_bytes(&s, 3, 0xde, 0xad, 0x00);
    put_section(&m, 0x42, &s);
    put_bytes(&s, 1, 0xff);
    put_section(&m, 0x42, &s);
    pw_wasm_info_free(expect_ok(&m));
}

PW_TEST(wasm_type_section_errors)
{
    buf_t m = { 0 }, s = { 0 };
    pw_wasm_info_t *info;

    put_header(&m);
    put_bytes(&s, 4, 1, 0x60, 0, 0);
    put_u8(&s, 0);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: size mismatch (1 trailing bytes)");

    put_header(&m);
    put_bytes(&s, 5, 1, 0x60, 1, 0x40, 0);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: bad value type 0x40");

    put_header(&m);
    put_bytes(&s, 4, 1, 0x4e, 0, 0);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: GC types are not supported (form 0x4e)");

    put_header(&m);
    put_bytes(&s, 4, 1, 0x61, 0, 0);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: bad type form 0x61");

    put_header(&m);
    put_bytes(&s, 3, 1, 0x60, 5);
    put_bytes(&s, 3, 0x7f, 0x7f, 0x7f);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: truncated");

    /* typed references: (ref null 0) and (ref func), with s33 heap types */
    put_header(&m);
    put_bytes(&s, 9, 1, 0x60, 2, 0x63, 0x00, 0x64, 0x70, 1, 0x7e);
    put_section(&m, 1, &s);
    put_bytes(&s, 2, 1, 0);
    put_section(&m, 3, &s);
    put_leb(&s, 1);
    put_str(&s, "f");
    put_bytes(&s, 2, 0, 0);
    put_section(&m, 7, &s);
    info = expect_ok(&m);
    PW_CHECK_EQ_STR(info->exports[0].sig, "??:I");
    pw_wasm_info_free(info);

    put_header(&m);
    put_bytes(&s, 10, 1, 0x60, 1, 0x63, 0x80, 0x80, 0x80, 0x80, 0x80, 0);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: bad LEB128 (too long)");

    put_header(&m);
    put_bytes(&s, 10, 1, 0x60, 1, 0x63, 0x80, 0x80, 0x80, 0x80, 0x20, 0);
    put_section(&m, 1, &s);
    expect_error(&m, "type section: bad LEB128 (overflow)");
}

/* An import section holding the entries that build() writes. */
static void
import_module(buf_t *m, void (*build)(buf_t *s), uint32_t count)
{
    buf_t s = { 0 };

    put_header(m);
    put_types(m);
    put_leb(&s, count);
    build(&s);
    put_section(m, 2, &s);
}

static void
imp_bad_type(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "f");
    put_bytes(s, 2, 0x00, 7);
}

static void
imp_leb_overflow(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "f");
    put_bytes(s, 6, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10);
}

static void
imp_leb_long(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "f");
    put_bytes(s, 7, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00);
}

static void
imp_bad_kind(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "x");
    put_bytes(s, 2, 0x05, 0);
}

static void
imp_tag(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "oops");
    put_bytes(s, 3, 0x04, 0, 0);
}

static void
imp_tag_odd_names(buf_t *s)
{
    char longname[200];

    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    put_str(s, longname);
    put_str(s, "a\nb\x7f\xc3\xa9");
    put_bytes(s, 3, 0x04, 0, 0);
}

static void
imp_bad_limits(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "mem");
    put_bytes(s, 3, 0x02, 0x10, 1);
}

static void
imp_bad_mut(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "g");
    put_bytes(s, 3, 0x03, 0x7f, 2);
}

static void
imp_nul_name(buf_t *s)
{
    put_str(s, "env");
    put_bytes(s, 4, 3, 'a', 0, 'b');
    put_bytes(s, 2, 0x00, 0);
}

static void
imp_name_past_end(buf_t *s)
{
    put_str(s, "env");
    put_bytes(s, 3, 50, 'a', 'b');
}

static void
imp_mem32_overflow(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "mem");
    /* 2^32 as a 32-bit minimum */
    put_bytes(s, 7, 0x02, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10);
}

static void
imp_mem64_overflow(buf_t *s)
{
    put_str(s, "env");
    put_str(s, "mem");
    put_bytes(s, 12, 0x02, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
              0x80, 0x80, 0x02);
}

static void
imp_all_limit_flags(buf_t *s)
{
    /* memory64 without max, 2^63 minimum: 10 LEB bytes */
    put_str(s, "env");
    put_str(s, "m64");
    put_bytes(s, 12, 0x02, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
              0x80, 0x80, 0x01);
    put_str(s, "env");
    put_str(s, "f1");
    put_bytes(s, 2, 0x00, 0);
    /* shared memory64 with max and a custom page size (log2 0) */
    put_str(s, "env");
    put_str(s, "m_all");
    put_bytes(s, 5, 0x02, 0x0f, 1, 2, 0);
    put_str(s, "env");
    put_str(s, "f2");
    put_bytes(s, 2, 0x00, 1);
    /* table64 of (ref null func) */
    put_str(s, "env");
    put_str(s, "t64");
    put_bytes(s, 6, 0x01, 0x63, 0x70, 0x05, 0, 0xff);
    put_bytes(s, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
    put_str(s, "env");
    put_str(s, "f3");
    put_bytes(s, 2, 0x00, 0);
    /* mutable v128 global */
    put_str(s, "env");
    put_str(s, "g");
    put_bytes(s, 3, 0x03, 0x7b, 1);
}

PW_TEST(wasm_import_section_errors)
{
    static const char xs[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    buf_t m = { 0 };
    pw_wasm_info_t *info;
    char msg[256];
    size_t i;

    import_module(&m, imp_bad_type, 1);
    expect_error(&m, "import section: bad type index 7");
    import_module(&m, imp_leb_overflow, 1);
    expect_error(&m, "import section: bad LEB128 (overflow)");
    import_module(&m, imp_leb_long, 1);
    expect_error(&m, "import section: bad LEB128 (too long)");
    import_module(&m, imp_bad_kind, 1);
    expect_error(&m, "import section: bad import kind 0x05");
    import_module(&m, imp_tag, 1);
    expect_error(&m, "import section: tag imports are not supported "
                 "(env.oops)");
    /* names in a message stay printable and short: one line */
    import_module(&m, imp_tag_odd_names, 1);
    snprintf(msg, sizeof(msg), "import section: tag imports are not "
             "supported (%.61s....a?b\?\?\?)", xs);
    expect_error(&m, msg);
    import_module(&m, imp_bad_limits, 1);
    expect_error(&m, "import section: bad limits flags 0x10");
    import_module(&m, imp_bad_mut, 1);
    expect_error(&m, "import section: bad global mutability 0x02");
    import_module(&m, imp_nul_name, 1);
    expect_error(&m, "import section: name contains a NUL byte");
    import_module(&m, imp_name_past_end, 1);
    expect_error(&m, "import section: truncated");
    import_module(&m, imp_mem32_overflow, 1);
    expect_error(&m, "import section: bad LEB128 (overflow)");
    import_module(&m, imp_mem64_overflow, 1);
    expect_error(&m, "import section: bad LEB128 (overflow)");
    /* one entry more than the section holds */
    import_module(&m, imp_bad_type, 3);
    expect_error(&m, "import section: count 3 does not fit in 8 bytes");

    import_module(&m, imp_all_limit_flags, 7);
    info = expect_ok(&m);
    PW_CHECK_EQ_INT(info->nimports, 7);
    PW_CHECK_EQ_STR(info->imports[1].sig, "ii:i");
    PW_CHECK_EQ_STR(info->imports[3].sig, ":");
    PW_CHECK_EQ_STR(info->imports[5].sig, "ii:i");
    PW_CHECK_EQ_INT(info->imports[4].kind, PW_EXTERN_TABLE);
    PW_CHECK_EQ_INT(info->imports[6].kind, PW_EXTERN_GLOBAL);
    for (i = 0; i < info->nimports; i++) {
        PW_CHECK_EQ_STR(info->imports[i].module, "env");
    }
    PW_CHECK_EQ_INT(info->nfuncs, 3);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_huge_counts_allocate_nothing_big)
{
    static const uint8_t ids[] = { 1, 2, 3, 7 };
    buf_t m = { 0 }, s = { 0 };
    pw_wasm_info_t *info;
    char msg[128];
    size_t i;

    for (i = 0; i < sizeof(ids); i++) {
        put_header(&m);
        if (ids[i] != 1) {
            put_types(&m);
        }
        put_bytes(&s, 5, 0xff, 0xff, 0xff, 0xff, 0x0f);
        put_bytes(&s, 4, 0, 0, 0, 0);
        put_section(&m, ids[i], &s);
        alloc_max = 0;
        snprintf(msg, sizeof(msg), "%s section: count 4294967295 does not "
                 "fit in 4 bytes", ids[i] == 1 ? "type"
                 : ids[i] == 2 ? "import"
                 : ids[i] == 3 ? "function" : "export");
        expect_error(&m, msg);
        PW_CHECK(alloc_max < 4096);
    }

    /* a huge name count in the name section: ignored, module fine */
    put_header(&m);
    put_types(&m);
    put_bytes(&s, 2, 1, 1);
    put_section(&m, 3, &s);
    put_str(&s, "name");
    put_bytes(&s, 2, 1, 9);
    put_bytes(&s, 5, 0xff, 0xff, 0xff, 0xff, 0x0f);
    put_bytes(&s, 4, 0, 1, 'a', 0);
    put_section(&m, 0, &s);
    alloc_max = 0;
    info = expect_ok(&m);
    PW_CHECK(alloc_max < 4096);
    PW_CHECK_EQ_INT(info->nfuncs, 1);
    PW_CHECK(info->func_names[0] == NULL);
    pw_wasm_info_free(info);
}

PW_TEST(wasm_too_many_entries)
{
    buf_t m = { 0 }, s = { 0 };
    uint32_t i;

    put_header(&m);
    put_types(&m);
    put_leb(&s, 100001);
    for (i = 0; i < 100001; i++) {
        put_bytes(&s, 4, 0, 0, 0, 0);
    }
    put_section(&m, 2, &s);
    expect_error(&m, "import section: too many entries "
                 "(100001, at most 100000)");
}

PW_TEST(wasm_function_export_start_errors)
{
    buf_t m = { 0 }, s = { 0 };

    put_header(&m);
    put_types(&m);
    put_bytes(&s, 3, 2, 1, 3);
    put_section(&m, 3, &s);
    expect_error(&m, "function section: bad type index 3");

    /* export of function 1 with a single function */
    put_header(&m);
    put_types(&m);
    put_bytes(&s, 2, 1, 1);
    put_section(&m, 3, &s);
    put_leb(&s, 1);
    put_str(&s, "f");
    put_bytes(&s, 2, 0, 1);
    put_section(&m, 7, &s);
    expect_error(&m, "export section: bad function index 1");

    put_header(&m);
    put_leb(&s, 1);
    put_str(&s, "memory");
    put_bytes(&s, 2, 2, 0);
    put_section(&m, 7, &s);
    expect_error(&m, "export section: bad memory index 0");

    put_header(&m);
    put_bytes(&s, 3, 1, 0x70, 0);   /* table section, count 1 */
    put_u8(&s, 0);
    put_section(&m, 4, &s);
    put_leb(&s, 2);
    put_str(&s, "t0");
    put_bytes(&s, 2, 1, 0);
    put_str(&s, "t1");
    put_bytes(&s, 2, 1, 1);
    put_section(&m, 7, &s);
    expect_error(&m, "export section: bad table index 1");

    put_header(&m);
    put_leb(&s, 1);
    put_str(&s, "g");
    put_bytes(&s, 2, 3, 0);
    put_section(&m, 7, &s);
    expect_error(&m, "export section: bad global index 0");

    put_header(&m);
    put_leb(&s, 1);
    put_str(&s, "x");
    put_bytes(&s, 2, 5, 0);
    put_section(&m, 7, &s);
    expect_error(&m, "export section: bad export kind 0x05");

    put_header(&m);
    put_leb(&s, 1);
    put_bytes(&s, 3, 2, 'a', 0);
    put_bytes(&s, 2, 0, 0);
    put_section(&m, 7, &s);
    expect_error(&m, "export section: name contains a NUL byte");

    put_header(&m);
    put_types(&m);
    put_bytes(&s, 2, 1, 1);
    put_section(&m, 3, &s);
    put_u8(&s, 1);
    put_section(&m, 8, &s);
    expect_error(&m, "start section: bad function index 1");

    put_header(&m);
    put_types(&m);
    put_bytes(&s, 2, 1, 1);
    put_section(&m, 3, &s);
    put_bytes(&s, 2, 0, 0);
    put_section(&m, 8, &s);
    expect_error(&m, "start section: size mismatch (1 trailing bytes)");

    put_header(&m);
    put_bytes(&s, 1, 5);
    put_section(&m, 0, &s);
    expect_error(&m, "custom section: truncated");
}

/* A module of 3 functions with a name section built by names(). */
static pw_wasm_info_t *
names_module(void (*names)(buf_t *s), int before)
{
    buf_t m = { 0 }, s = { 0 };

    put_header(&m);
    if (before) {
        put_str(&s, "name");
        names(&s);
        put_section(&m, 0, &s);
    }
    put_types(&m);
    put_bytes(&s, 4, 3, 1, 1, 0);
    put_section(&m, 3, &s);
    if (!before) {
        put_str(&s, "name");
        names(&s);
        put_section(&m, 0, &s);
    }
    return expect_ok(&m);
}

static void
names_good(buf_t *s)
{
    buf_t sub = { 0 };

    /* module name, then function names, then a local names subsection */
    put_u8(s, 0);
    put_leb(s, 4);
    put_str(s, "mod");
    put_leb(&sub, 3);
    put_leb(&sub, 0);
    put_str(&sub, "first");
    put_leb(&sub, 2);
    put_str(&sub, "third");
    put_leb(&sub, 99);              /* no such function: ignored */
    put_str(&sub, "ghost");
    put_u8(s, 1);
    put_leb(s, sub.n);
    put(s, sub.b, sub.n);
    free(sub.b);
    put_bytes(s, 4, 2, 2, 0, 0);
}

static void
names_bad_subsection_size(buf_t *s)
{
    put_bytes(s, 2, 1, 40);
    put_leb(s, 1);
    put_leb(s, 0);
    put_str(s, "first");
}

static void
names_trailing(buf_t *s)
{
    put_bytes(s, 2, 1, 10);
    put_leb(s, 1);
    put_leb(s, 0);
    put_str(s, "first");
    put_bytes(s, 2, 0, 0);
}

static void
names_bad_leb(buf_t *s)
{
    put_bytes(s, 9, 1, 7, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0);
}

PW_TEST(wasm_name_section_edge_cases)
{
    pw_wasm_info_t *info;

    info = names_module(names_good, 0);
    PW_CHECK_EQ_INT(info->nfuncs, 3);
    PW_CHECK_EQ_STR(info->func_names[0], "first");
    PW_CHECK(info->func_names[1] == NULL);
    PW_CHECK_EQ_STR(info->func_names[2], "third");
    pw_wasm_info_free(info);

    /* before the function section: decoded once the functions are known */
    info = names_module(names_good, 1);
    PW_CHECK_EQ_STR(info->func_names[0], "first");
    PW_CHECK_EQ_STR(info->func_names[2], "third");
    pw_wasm_info_free(info);

    /* a malformed name section loses its names, not the module */
    info = names_module(names_bad_subsection_size, 0);
    PW_CHECK(info->func_names[0] == NULL);
    pw_wasm_info_free(info);
    info = names_module(names_trailing, 0);
    PW_CHECK(info->func_names[0] == NULL);
    pw_wasm_info_free(info);
    info = names_module(names_bad_leb, 0);
    PW_CHECK(info->func_names[0] == NULL);
    pw_wasm_info_free(info);
}

/* ---- map: serialization ------------------------------------------------- */

static const uint8_t spec_example[] = {
    2, 0, 0, 0,
    1, 0, 0, 0, 1, 0, 0, 0,
    1, 0, 0, 0, 2, 0, 0, 0,
    'a', 0, '1', 0, 'b', 0, '2', '2', 0
};

PW_TEST(map_spec_example)
{
    pw_pair_t pairs[2] = {
        { PW_STR("a"), PW_STR("1") },
        { PW_STR("b"), PW_STR("22") }
    };
    pw_pairs_t p = { pairs, 2 }, back;
    uint8_t out[sizeof(spec_example)];
    size_t size;

    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_OK);
    PW_CHECK_EQ_INT(size, sizeof(spec_example));
    memset(out, 0xaa, sizeof(out));
    pw_pairs_serialize(&p, out);
    PW_CHECK(memcmp(out, spec_example, sizeof(out)) == 0);

    PW_CHECK_EQ_INT(pw_pairs_deserialize(spec_example, sizeof(spec_example),
                                         &back), PW_OK);
    PW_CHECK_EQ_INT(back.n, 2);
    PW_CHECK_MEM(back.pairs[0].key.data, back.pairs[0].key.len, "a");
    PW_CHECK_MEM(back.pairs[0].value.data, back.pairs[0].value.len, "1");
    PW_CHECK_MEM(back.pairs[1].key.data, back.pairs[1].key.len, "b");
    PW_CHECK_MEM(back.pairs[1].value.data, back.pairs[1].value.len, "22");
    /* views into the buffer, NUL-terminated there */
    PW_CHECK((const uint8_t *) back.pairs[1].value.data
             == spec_example + 26);
    PW_CHECK(back.pairs[1].value.data[2] == '\0');
    free((void *) back.pairs);
}

PW_TEST(map_round_trip)
{
    pw_pair_t pairs[40];
    char store[40][2][64];
    uint32_t seed = 88172645u;
    pw_pairs_t p, back;
    uint8_t *buf;
    size_t n, i, j, size;

    for (n = 0; n < 40; n++) {
        for (i = 0; i < n; i++) {
            for (j = 0; j < 2; j++) {
                size_t len = rnd(&seed) % 64, k;

                for (k = 0; k < len; k++) {
                    store[i][j][k] = (char) rnd(&seed);  /* NULs included */
                }
                if (j == 0) {
                    pairs[i].key.data = store[i][0];
                    pairs[i].key.len = len;
                } else {
                    pairs[i].value.data = store[i][1];
                    pairs[i].value.len = len;
                }
            }
        }
        p.pairs = pairs;
        p.n = n;
        PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_OK);
        buf = malloc(size);
        PW_CHECK(buf != NULL);
        pw_pairs_serialize(&p, buf);
        PW_CHECK_EQ_INT(pw_pairs_deserialize(buf, size, &back), PW_OK);
        PW_CHECK_EQ_INT(back.n, n);
        for (i = 0; i < n; i++) {
            PW_CHECK_EQ_INT(back.pairs[i].key.len, pairs[i].key.len);
            PW_CHECK_EQ_INT(back.pairs[i].value.len, pairs[i].value.len);
            PW_CHECK(memcmp(back.pairs[i].key.data, pairs[i].key.data,
                            pairs[i].key.len) == 0);
            PW_CHECK(memcmp(back.pairs[i].value.data, pairs[i].value.data,
                            pairs[i].value.len) == 0);
        }
        free((void *) back.pairs);
        free(buf);
    }
}

PW_TEST(map_empty_forms)
{
    static const uint8_t zero4[4] = { 0 }, zero5[5] = { 0 };
    pw_pairs_t p = { NULL, 0 }, back;
    uint8_t out[4] = { 1, 1, 1, 1 };
    size_t size;

    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_OK);
    PW_CHECK_EQ_INT(size, 4);
    pw_pairs_serialize(&p, out);
    PW_CHECK(memcmp(out, zero4, 4) == 0);

    back.n = 9;
    PW_CHECK_EQ_INT(pw_pairs_deserialize(NULL, 0, &back), PW_OK);
    PW_CHECK(back.n == 0 && back.pairs == NULL);
    back.n = 9;
    PW_CHECK_EQ_INT(pw_pairs_deserialize(zero4, 1, &back), PW_OK);
    PW_CHECK(back.n == 0 && back.pairs == NULL);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(zero4, 4, &back), PW_OK);
    PW_CHECK(back.n == 0);
    PW_CHECK_EQ_INT(pw_pairs_deserialize((const uint8_t *) "\1", 1, &back),
                    PW_EMALFORMED);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(zero4, 2, &back), PW_EMALFORMED);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(zero4, 3, &back), PW_EMALFORMED);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(zero5, 5, &back), PW_EMALFORMED);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(NULL, 4, &back), PW_EINVAL);
}

static int
deserialize_copy(const uint8_t *b, size_t n, pw_pairs_t *out)
{
    uint8_t *copy;
    int rc;

    copy = malloc(n ? n : 1);
    PW_CHECK(copy != NULL);
    memcpy(copy, b, n);
    rc = pw_pairs_deserialize(copy, n, out);
    free((void *) out->pairs);
    free(copy);
    return rc;
}

PW_TEST(map_truncated_and_inconsistent)
{
    uint8_t b[sizeof(spec_example) + 1];
    pw_pairs_t out;
    size_t cut;
    long live;

    live = alloc_live;
    /* every prefix but the empty one is malformed */
    for (cut = 1; cut < sizeof(spec_example); cut++) {
        PW_CHECK_EQ_INT(deserialize_copy(spec_example, cut, &out),
                        PW_EMALFORMED);
        PW_CHECK(out.pairs == NULL && out.n == 0);
    }
    PW_CHECK_EQ_INT(alloc_live, live);

#define MUTATE(at, v, rc)                                                   \
    do {                                                                    \
        memcpy(b, spec_example, sizeof(spec_example));                      \
        b[at] = (v);                                                        \
        PW_CHECK_EQ_INT(deserialize_copy(b, sizeof(spec_example), &out),    \
                        rc);                                                \
    } while (0)

    MUTATE(0, 1, PW_EMALFORMED);    /* N = 1: lengths table misread */
    MUTATE(0, 3, PW_EMALFORMED);    /* N = 3: not enough bytes */
    MUTATE(4, 2, PW_EMALFORMED);    /* key "a\0" is 1 byte */
    MUTATE(4, 0, PW_EMALFORMED);
    MUTATE(16, 1, PW_EMALFORMED);   /* value "22" is 2 bytes */
    MUTATE(16, 3, PW_EMALFORMED);   /* runs past the end */
    MUTATE(21, 'x', PW_EMALFORMED); /* key without its NUL */
    MUTATE(28, 'x', PW_EMALFORMED); /* last value without its NUL */
    MUTATE(7, 0xff, PW_EMALFORMED); /* key length 0xff000001 */
    MUTATE(3, 0x80, PW_ELIMIT);     /* N = 2^31 + 2 */
    MUTATE(1, 0x04, PW_ELIMIT);     /* N = 1026 */
    /* key length 0xffffffff, then value length too */
    memcpy(b, spec_example, sizeof(spec_example));
    memset(b + 4, 0xff, 4);
    PW_CHECK_EQ_INT(deserialize_copy(b, sizeof(spec_example), &out),
                    PW_EMALFORMED);
    memset(b + 8, 0xff, 4);
    PW_CHECK_EQ_INT(deserialize_copy(b, sizeof(spec_example), &out),
                    PW_EMALFORMED);

    /* trailing garbage */
    memcpy(b, spec_example, sizeof(spec_example));
    b[sizeof(spec_example)] = 0;
    PW_CHECK_EQ_INT(deserialize_copy(b, sizeof(b), &out), PW_EMALFORMED);
    PW_CHECK_EQ_INT(alloc_live, live);
#undef MUTATE
}

PW_TEST(map_caps)
{
    static pw_pair_t pairs[PW_MAX_MAP_PAIRS + 1];
    static char big[PW_MAX_MAP_BYTES];
    pw_pairs_t p;
    uint8_t *buf;
    size_t size, i;
    pw_pairs_t out;

    for (i = 0; i <= PW_MAX_MAP_PAIRS; i++) {
        pairs[i].key = PW_STR("k");
        pairs[i].value = PW_STR("");
    }
    p.pairs = pairs;
    p.n = PW_MAX_MAP_PAIRS;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_OK);
    PW_CHECK_EQ_INT(size, 4 + PW_MAX_MAP_PAIRS * 11);
    p.n = PW_MAX_MAP_PAIRS + 1;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_ELIMIT);

    /* a single pair exactly at the byte cap, then one byte over */
    pairs[0].key = PW_STR("k");
    pairs[0].value.data = big;
    pairs[0].value.len = PW_MAX_MAP_BYTES - 15;
    p.n = 1;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_OK);
    PW_CHECK_EQ_INT(size, PW_MAX_MAP_BYTES);
    buf = malloc(size);
    PW_CHECK(buf != NULL);
    pw_pairs_serialize(&p, buf);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(buf, size, &out), PW_OK);
    PW_CHECK_EQ_INT(out.n, 1);
    PW_CHECK_EQ_INT(out.pairs[0].value.len, PW_MAX_MAP_BYTES - 15);
    free((void *) out.pairs);
    free(buf);
    pairs[0].value.len++;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_ELIMIT);

    /* lengths that would overflow a naive sum; data is never read */
    pairs[0].value.len = SIZE_MAX;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_ELIMIT);
    pairs[0].key.len = SIZE_MAX - 8;
    pairs[0].value.len = 20;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_ELIMIT);
    pairs[0] = (pw_pair_t) { PW_STR("k"), { big, SIZE_MAX / 2 } };
    pairs[1] = (pw_pair_t) { PW_STR("k"), { big, SIZE_MAX / 2 } };
    p.n = 2;
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_ELIMIT);

    /* input over the byte cap is refused before it is read */
    buf = calloc(1, (size_t) PW_MAX_MAP_BYTES + 1);
    PW_CHECK(buf != NULL);
    PW_CHECK_EQ_INT(pw_pairs_deserialize(buf, (size_t) PW_MAX_MAP_BYTES + 1,
                                         &out), PW_ELIMIT);
    free(buf);
}

PW_TEST(map_deserialize_out_of_memory)
{
    pw_pairs_t out;
    long live = alloc_live;

    alloc_fail_in = 0;
    PW_CHECK_EQ_INT(pw_pairs_deserialize(spec_example, sizeof(spec_example),
                                         &out), PW_ENOMEM);
    alloc_fail_in = -1;
    PW_CHECK(out.pairs == NULL && out.n == 0);
    PW_CHECK_EQ_INT(alloc_live, live);
}

/* ---- map: the owned map -------------------------------------------------- */

static pw_str_t
S(const char *s)
{
    return (pw_str_t) { s, strlen(s) };
}

/* The map as "k=v,k=v" for compact assertions. */
static const char *
dump(const pw_map_t *m)
{
    static char out[4096];
    pw_pairs_t p;
    size_t i, n;

    pw_map_pairs(m, &p);
    PW_CHECK_EQ_INT(p.n, pw_map_count(m));
    n = 0;
    out[0] = '\0';
    for (i = 0; i < p.n; i++) {
        n += (size_t) snprintf(out + n, sizeof(out) - n, "%s%.*s=%.*s",
                               i ? "," : "", (int) p.pairs[i].key.len,
                               p.pairs[i].key.data,
                               (int) p.pairs[i].value.len,
                               p.pairs[i].value.data);
        /* the copies are NUL-terminated */
        PW_CHECK(p.pairs[i].key.data[p.pairs[i].key.len] == '\0');
        PW_CHECK(p.pairs[i].value.data[p.pairs[i].value.len] == '\0');
    }
    return out;
}

static pw_map_t *
map_of(const char *const *kv)
{
    pw_map_t *m;

    PW_CHECK_EQ_INT(pw_map_new(&m), PW_OK);
    for (; kv[0] != NULL; kv += 2) {
        PW_CHECK_EQ_INT(pw_map_add(m, S(kv[0]), S(kv[1])), PW_OK);
    }
    return m;
}

PW_TEST(map_add_get_case_insensitive)
{
    pw_map_t *m;
    pw_str_t v;
    char key[] = "X-Mixed-Case";

    m = map_of((const char *[]) { ":path", "/", "Content-Type", "text/plain",
                                  "x-dup", "1", "X-DUP", "2", NULL });
    PW_CHECK_EQ_STR(dump(m), ":path=/,Content-Type=text/plain,x-dup=1,"
                    "X-DUP=2");
    PW_CHECK_EQ_INT(pw_map_get(m, S("content-type"), &v), PW_OK);
    PW_CHECK_MEM(v.data, v.len, "text/plain");
    PW_CHECK_EQ_INT(pw_map_get(m, S("CONTENT-TYPE"), &v), PW_OK);
    PW_CHECK_EQ_INT(pw_map_get(m, S("x-Dup"), &v), PW_OK);
    PW_CHECK_MEM(v.data, v.len, "1");   /* the first one */
    PW_CHECK_EQ_INT(pw_map_get(m, S("content-typ"), &v), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_map_get(m, S("content-typex"), &v), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_map_get(m, S(""), &v), PW_ENOTFOUND);

    /* ASCII folding only: no locale, no Latin-1 */
    PW_CHECK_EQ_INT(pw_map_add(m, S("\xc4"), S("upper")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_get(m, S("\xe4"), &v), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_map_get(m, S("\xc4"), &v), PW_OK);
    /* '@' and '`' are 0x40 and 0x60: not letters */
    PW_CHECK_EQ_INT(pw_map_add(m, S("a@"), S("at")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_get(m, S("A`"), &v), PW_ENOTFOUND);

    /* add copies: the caller's buffer can change afterwards */
    PW_CHECK_EQ_INT(pw_map_add(m, S(key), S("v")), PW_OK);
    key[0] = 'Y';
    PW_CHECK_EQ_INT(pw_map_get(m, S("x-mixed-case"), &v), PW_OK);
    PW_CHECK_EQ_INT(pw_map_count(m), 7);

    /* empty key and value are fine; NULL data with a length is not */
    PW_CHECK_EQ_INT(pw_map_add(m, (pw_str_t) { NULL, 0 }, S("")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_get(m, S(""), &v), PW_OK);
    PW_CHECK_EQ_INT(v.len, 0);
    PW_CHECK_EQ_INT(pw_map_add(m, (pw_str_t) { NULL, 3 }, S("")), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_map_add(NULL, S("a"), S("")), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_map_count(m), 8);
    pw_map_free(m);
    pw_map_free(NULL);
    PW_CHECK_EQ_INT(pw_map_count(NULL), 0);
}

PW_TEST(map_replace_semantics)
{
    pw_map_t *m;

    m = map_of((const char *[]) { "a", "1", "B", "2", "A", "3", "c", "4",
                                  "a", "5", NULL });
    /* the first keeps its place with the new pair; the others go */
    PW_CHECK_EQ_INT(pw_map_replace(m, S("A"), S("new")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "A=new,B=2,c=4");
    PW_CHECK_EQ_INT(pw_map_replace(m, S("b"), S("")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "A=new,b=,c=4");
    /* absent: appended */
    PW_CHECK_EQ_INT(pw_map_replace(m, S("d"), S("x")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "A=new,b=,c=4,d=x");
    PW_CHECK_EQ_INT(pw_map_replace(m, S("c"), S("44")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "A=new,b=,c=44,d=x");
    pw_map_free(m);
}

PW_TEST(map_remove_and_clear)
{
    pw_map_t *m;

    m = map_of((const char *[]) { "a", "1", "B", "2", "A", "3", "c", "4",
                                  "a", "5", NULL });
    PW_CHECK_EQ_INT(pw_map_remove(m, S("A")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "B=2,c=4");
    PW_CHECK_EQ_INT(pw_map_remove(m, S("zzz")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "B=2,c=4");
    PW_CHECK_EQ_INT(pw_map_remove(m, S("C")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "B=2");
    pw_map_clear(m);
    PW_CHECK_EQ_INT(pw_map_count(m), 0);
    PW_CHECK_EQ_STR(dump(m), "");
    PW_CHECK_EQ_INT(pw_map_add(m, S("after"), S("clear")), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "after=clear");
    pw_map_free(m);
}

PW_TEST(map_arguments_pointing_into_the_map)
{
    pw_map_t *m;
    pw_pairs_t p;
    pw_str_t v;

    m = map_of((const char *[]) { "a", "1", "b", "2", "A", "3", NULL });
    /* remove by a key that lives in a pair being removed */
    pw_map_pairs(m, &p);
    PW_CHECK_EQ_INT(pw_map_remove(m, p.pairs[0].key), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "b=2");

    PW_CHECK_EQ_INT(pw_map_add(m, S("x"), S("long value")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_add(m, S("X"), S("y")), PW_OK);
    /* replace with key and value borrowed from pairs it drops */
    pw_map_pairs(m, &p);
    PW_CHECK_EQ_INT(pw_map_replace(m, p.pairs[2].key, p.pairs[1].value),
                    PW_OK);
    PW_CHECK_EQ_STR(dump(m), "b=2,X=long value");
    PW_CHECK_EQ_INT(pw_map_get(m, S("b"), &v), PW_OK);
    PW_CHECK_EQ_INT(pw_map_replace(m, S("b"), v), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "b=2,X=long value");

    /* set_pairs from its own view */
    pw_map_pairs(m, &p);
    PW_CHECK_EQ_INT(pw_map_set_pairs(m, &p), PW_OK);
    PW_CHECK_EQ_STR(dump(m), "b=2,X=long value");
    pw_map_free(m);
}

PW_TEST(map_set_pairs_and_serialize)
{
    pw_pairs_t p, back;
    pw_map_t *m;
    uint8_t buf[sizeof(spec_example)];
    size_t size;

    PW_CHECK_EQ_INT(pw_pairs_deserialize(spec_example, sizeof(spec_example),
                                         &p), PW_OK);
    m = map_of((const char *[]) { "old", "gone", NULL });
    PW_CHECK_EQ_INT(pw_map_set_pairs(m, &p), PW_OK);
    free((void *) p.pairs);
    PW_CHECK_EQ_STR(dump(m), "a=1,b=22");
    pw_map_pairs(m, &back);
    PW_CHECK_EQ_INT(pw_pairs_size(&back, &size), PW_OK);
    PW_CHECK_EQ_INT(size, sizeof(spec_example));
    pw_pairs_serialize(&back, buf);
    PW_CHECK(memcmp(buf, spec_example, size) == 0);

    p.pairs = NULL;
    p.n = 0;
    PW_CHECK_EQ_INT(pw_map_set_pairs(m, &p), PW_OK);
    PW_CHECK_EQ_INT(pw_map_count(m), 0);
    PW_CHECK_EQ_INT(pw_map_set_pairs(m, NULL), PW_EINVAL);
    p.n = 1;
    PW_CHECK_EQ_INT(pw_map_set_pairs(m, &p), PW_EINVAL);    /* NULL pairs */
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_map_count(m), 0);
    pw_map_free(m);
}

PW_TEST(map_caps_on_the_owned_map)
{
    static char big[PW_MAX_MAP_BYTES];
    pw_map_t *m;
    pw_pairs_t p;
    size_t i, size;
    char key[16];

    PW_CHECK_EQ_INT(pw_map_new(&m), PW_OK);
    for (i = 0; i < PW_MAX_MAP_PAIRS; i++) {
        snprintf(key, sizeof(key), "k%zu", i);
        PW_CHECK_EQ_INT(pw_map_add(m, S(key), S("v")), PW_OK);
    }
    PW_CHECK_EQ_INT(pw_map_add(m, S("one"), S("more")), PW_ELIMIT);
    /* replace of an absent key adds: limited too; of a present one fine */
    PW_CHECK_EQ_INT(pw_map_replace(m, S("one"), S("more")), PW_ELIMIT);
    PW_CHECK_EQ_INT(pw_map_replace(m, S("k0"), S("w")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_count(m), PW_MAX_MAP_PAIRS);
    pw_map_clear(m);

    /* bytes: the map always stays serializable */
    PW_CHECK_EQ_INT(pw_map_add(m, S("k"), (pw_str_t) { big,
                                    PW_MAX_MAP_BYTES - 15 }), PW_OK);
    PW_CHECK_EQ_INT(pw_map_add(m, S(""), S("")), PW_ELIMIT);
    pw_map_pairs(m, &p);
    PW_CHECK_EQ_INT(pw_pairs_size(&p, &size), PW_OK);
    PW_CHECK_EQ_INT(size, PW_MAX_MAP_BYTES);
    /* replacing the big pair frees its room first */
    PW_CHECK_EQ_INT(pw_map_replace(m, S("K"), (pw_str_t) { big,
                                        PW_MAX_MAP_BYTES - 15 }), PW_OK);
    PW_CHECK_EQ_INT(pw_map_replace(m, S("K"), (pw_str_t) { big,
                                        PW_MAX_MAP_BYTES - 14 }), PW_ELIMIT);
    PW_CHECK_EQ_INT(pw_map_remove(m, S("k")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_add(m, S("k"), S("v")), PW_OK);
    PW_CHECK_EQ_INT(pw_map_count(m), 1);
    pw_map_free(m);
}

static void
check_unchanged_on_enomem(int op)
{
    static const char *const kv[] = { "a", "1", "b", "2", "A", "3", "c", "4",
                                      "d", "5", "e", "6", "f", "7", "g", "8",
                                      NULL };
    pw_pair_t pairs[2] = { { PW_STR("p"), PW_STR("q") },
                           { PW_STR("r"), PW_STR("s") } };
    pw_pairs_t set = { pairs, 2 };
    char before[4096];
    pw_map_t *m;
    long live, k;
    int rc, failed;

    for (k = 0;; k++) {
        m = map_of(kv);
        snprintf(before, sizeof(before), "%s", dump(m));
        live = alloc_live;
        alloc_fail_in = k;
        switch (op) {
        case 0:
            rc = pw_map_add(m, S("h"), S("9"));  /* needs room: 9 > 8 */
            break;
        case 1:
            rc = pw_map_replace(m, S("a"), S("x"));
            break;
        case 2:
            rc = pw_map_replace(m, S("new"), S("x"));
            break;
        default:
            rc = pw_map_set_pairs(m, &set);
            break;
        }
        failed = alloc_fail_in == -1;
        alloc_fail_in = -1;
        if (!failed) {
            PW_CHECK_EQ_INT(rc, PW_OK);
            PW_CHECK(strcmp(dump(m), before) != 0);
            pw_map_free(m);
            break;
        }
        PW_CHECK_EQ_INT(rc, PW_ENOMEM);
        PW_CHECK_EQ_STR(dump(m), before);
        PW_CHECK_EQ_INT(alloc_live, live);
        pw_map_free(m);
    }
    PW_CHECK(k >= 1);
}

PW_TEST(map_out_of_memory_leaves_map_unchanged)
{
    pw_map_t *m;
    int op;

    for (op = 0; op < 4; op++) {
        check_unchanged_on_enomem(op);
    }
    alloc_fail_in = 0;
    PW_CHECK_EQ_INT(pw_map_new(&m), PW_ENOMEM);
    alloc_fail_in = -1;
}

int
main(int argc, char **argv)
{
    return pw_test_main(argc, argv, (pw_test_t[]) {
        PW_TEST_ENTRY(wasm_imports_every_kind),
        PW_TEST_ENTRY(wasm_exports_every_kind),
        PW_TEST_ENTRY(wasm_find_export_only_functions),
        PW_TEST_ENTRY(wasm_start_section),
        PW_TEST_ENTRY(wasm_name_section),
        PW_TEST_ENTRY(wasm_multi_value_and_unknown_types),
        PW_TEST_ENTRY(wasm_limits_of_every_flavour),
        PW_TEST_ENTRY(wasm_bulk_memory_and_data_count),
        PW_TEST_ENTRY(wasm_tag_exports_are_skipped),
        PW_TEST_ENTRY(wasm_empty_module),
        PW_TEST_ENTRY(wasm_truncated_at_every_length),
        PW_TEST_ENTRY(wasm_random_mutations),
        PW_TEST_ENTRY(wasm_out_of_memory_at_every_allocation),
        PW_TEST_ENTRY(wasm_bad_magic_and_version),
        PW_TEST_ENTRY(wasm_section_envelope_errors),
        PW_TEST_ENTRY(wasm_section_order),
        PW_TEST_ENTRY(wasm_type_section_errors),
        PW_TEST_ENTRY(wasm_import_section_errors),
        PW_TEST_ENTRY(wasm_huge_counts_allocate_nothing_big),
        PW_TEST_ENTRY(wasm_too_many_entries),
        PW_TEST_ENTRY(wasm_function_export_start_errors),
        PW_TEST_ENTRY(wasm_name_section_edge_cases),
        PW_TEST_ENTRY(map_spec_example),
        PW_TEST_ENTRY(map_round_trip),
        PW_TEST_ENTRY(map_empty_forms),
        PW_TEST_ENTRY(map_truncated_and_inconsistent),
        PW_TEST_ENTRY(map_caps),
        PW_TEST_ENTRY(map_deserialize_out_of_memory),
        PW_TEST_ENTRY(map_add_get_case_insensitive),
        PW_TEST_ENTRY(map_replace_semantics),
        PW_TEST_ENTRY(map_remove_and_clear),
        PW_TEST_ENTRY(map_arguments_pointing_into_the_map),
        PW_TEST_ENTRY(map_set_pairs_and_serialize),
        PW_TEST_ENTRY(map_caps_on_the_owned_map),
        PW_TEST_ENTRY(map_out_of_memory_leaves_map_unchanged),
        { 0 } });
}
