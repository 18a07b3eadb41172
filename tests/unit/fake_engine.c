/*
 * The fake engine (see fake_engine.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_engine.h"

#define FAKE_DEFAULT_MEM (1024 * 1024)
#define FAKE_STATIC_BASE 1024           /* below: left zero, like a stack */
#define FAKE_HEAP_BASE (64 * 1024)
#define FAKE_SECTION "pw.fake.module"

fake_stats_t fake_stats;

struct pw_engine_s {
    int unused;
};

struct pw_emodule_s {
    const fake_module_t *desc;
};

struct pw_efunc_s {
    const fake_export_t *exp;
};

struct pw_einstance_s {
    const fake_module_t *desc;
    pw_import_t *imports;
    size_t nimports;
    struct pw_efunc_s *funcs;

    uint8_t *mem;
    size_t mem_size;
    uint32_t static_top;
    uint32_t heap_top;
    fake_alloc_ctl_t alloc;

    jmp_buf *jb;                /* innermost running call */
    int jmp_rc;
    char trap_msg[PW_TRAP_MSG_MAX];
    int depth;

    _Atomic uint64_t generation;
    _Atomic int interrupted;

    void *user;
};

/* ---- the wasm encoder ---- */

typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    int oom;
} fake_buf_t;

static void
fb_bytes(fake_buf_t *b, const void *data, size_t len)
{
    uint8_t *np;
    size_t cap;

    if (b->oom) {
        return;
    }
    if (b->len + len > b->cap) {
        cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + len) {
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void
fb_byte(fake_buf_t *b, uint8_t v)
{
    fb_bytes(b, &v, 1);
}

static void
fb_u32(fake_buf_t *b, uint32_t v)
{
    do {
        uint8_t byte = v & 0x7f;

        v >>= 7;
        fb_byte(b, (uint8_t) (byte | (v ? 0x80 : 0)));
    } while (v);
}

static void
fb_name(fake_buf_t *b, const char *s)
{
    fb_u32(b, (uint32_t) strlen(s));
    fb_bytes(b, s, strlen(s));
}

static void
fb_section(fake_buf_t *b, uint8_t id, fake_buf_t *content)
{
    fb_byte(b, id);
    fb_u32(b, (uint32_t) content->len);
    fb_bytes(b, content->p, content->len);
    if (content->oom) {
        b->oom = 1;
    }
    free(content->p);
    memset(content, 0, sizeof(*content));
}

static uint8_t
fake_valtype(char c)
{
    switch (c) {
    case 'I': return 0x7e;
    case 'f': return 0x7d;
    case 'F': return 0x7c;
    default: return 0x7f;
    }
}

static void
fb_functype(fake_buf_t *b, const char *sig)
{
    const char *colon = strchr(sig, ':');
    size_t i, np = colon ? (size_t) (colon - sig) : strlen(sig);
    size_t nr = colon ? strlen(colon + 1) : 0;

    fb_byte(b, 0x60);
    fb_u32(b, (uint32_t) np);
    for (i = 0; i < np; i++) {
        fb_byte(b, fake_valtype(sig[i]));
    }
    fb_u32(b, (uint32_t) nr);
    for (i = 0; i < nr; i++) {
        fb_byte(b, fake_valtype(colon[1 + i]));
    }
}

int
fake_wasm_encode(const fake_module_t *m, uint8_t **out, size_t *len)
{
    static const uint8_t head[8] = { 0, 'a', 's', 'm', 1, 0, 0, 0 };
    static const uint8_t body[4] = { 3, 0, 0x00, 0x0b }; /* unreachable */
    fake_buf_t b = { 0 }, s = { 0 };
    size_t i, nfuncs = 0, ntypes;
    uint32_t fidx;

    for (i = 0; i < m->nexports; i++) {
        nfuncs++;
    }
    nfuncs += m->start ? 1 : 0;
    ntypes = m->nimports + nfuncs;

    fb_bytes(&b, head, sizeof(head));

    /* types: one per import, then one per defined function */
    fb_u32(&s, (uint32_t) ntypes);
    for (i = 0; i < m->nimports; i++) {
        fb_functype(&s, m->imports[i].sig);
    }
    for (i = 0; i < m->nexports; i++) {
        fb_functype(&s, m->exports[i].sig);
    }
    if (m->start) {
        fb_functype(&s, ":");
    }
    fb_section(&b, 1, &s);

    if (m->nimports) {
        fb_u32(&s, (uint32_t) m->nimports);
        for (i = 0; i < m->nimports; i++) {
            fb_name(&s, m->imports[i].module);
            fb_name(&s, m->imports[i].name);
            fb_byte(&s, 0x00);
            fb_u32(&s, (uint32_t) i);
        }
        fb_section(&b, 2, &s);
    }

    fb_u32(&s, (uint32_t) nfuncs);
    for (i = 0; i < nfuncs; i++) {
        fb_u32(&s, (uint32_t) (m->nimports + i));
    }
    fb_section(&b, 3, &s);

    /* a memory always exists; no_memory only leaves it unexported */
    fb_u32(&s, 1);
    fb_byte(&s, 0x00);
    fb_u32(&s, 16);
    fb_section(&b, 5, &s);

    fb_u32(&s, (uint32_t) (m->nexports + (m->no_memory ? 0 : 1)));
    for (i = 0; i < m->nexports; i++) {
        fb_name(&s, m->exports[i].name);
        fb_byte(&s, 0x00);
        fb_u32(&s, (uint32_t) (m->nimports + i));
    }
    if (!m->no_memory) {
        fb_name(&s, "memory");
        fb_byte(&s, 0x02);
        fb_u32(&s, 0);
    }
    fb_section(&b, 7, &s);

    if (m->start) {
        fidx = (uint32_t) (m->nimports + m->nexports);
        fb_u32(&s, fidx);
        fb_section(&b, 8, &s);
    }

    fb_u32(&s, (uint32_t) nfuncs);
    for (i = 0; i < nfuncs; i++) {
        fb_bytes(&s, body, sizeof(body));
    }
    fb_section(&b, 10, &s);

    /* where the engine finds the description again */
    fb_name(&s, FAKE_SECTION);
    fb_bytes(&s, &m, sizeof(m));
    fb_section(&b, 0, &s);

    if (b.oom) {
        free(b.p);
        return PW_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return PW_OK;
}

/* Find the custom section naming the description. */
static const fake_module_t *
fake_find_desc(const uint8_t *p, size_t len)
{
    const fake_module_t *m;
    size_t off = 8, nl = strlen(FAKE_SECTION);

    while (off < len) {
        uint8_t id = p[off++];
        uint32_t size = 0, shift = 0;
        size_t start;

        while (off < len) {
            uint8_t byte = p[off++];

            size |= (uint32_t) (byte & 0x7f) << shift;
            shift += 7;
            if (!(byte & 0x80)) {
                break;
            }
        }
        start = off;
        if (id == 0 && size == 1 + nl + sizeof(m)
            && start + size <= len && p[start] == nl
            && memcmp(p + start + 1, FAKE_SECTION, nl) == 0)
        {
            memcpy(&m, p + start + 1 + nl, sizeof(m));
            return m;
        }
        off = start + size;
    }
    return NULL;
}

/* ---- the engine ---- */

static int
fake_init(const pw_engine_conf_t *conf, pw_engine_t **out, char *err,
    size_t errlen)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    return PW_OK;
}

static void
fake_destroy(pw_engine_t *engine)
{
    free(engine);
}

static int
fake_compile(pw_engine_t *engine, const uint8_t *bytes, size_t len,
    pw_emodule_t **out, char *err, size_t errlen)
{
    const fake_module_t *desc;

    desc = fake_find_desc(bytes, len);
    if (desc == NULL) {
        snprintf(err, errlen, "fake engine: no module description");
        return PW_EMALFORMED;
    }
    *out = calloc(1, sizeof(**out));
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    (*out)->desc = desc;
    fake_stats.compiles++;
    return PW_OK;
}

static void
fake_module_free(pw_emodule_t *mod)
{
    free(mod);
}

static void fake_instance_free(pw_einstance_t *inst);
static int fake_run(fake_inst_t *fi, fake_fn_t fn, const char *name,
    const pw_val_t *args, size_t nargs, pw_val_t *res, pw_trap_t *trap);

static int
fake_instantiate(pw_emodule_t *mod, const pw_import_t *imports,
    size_t nimports, pw_einstance_t **out, char *err, size_t errlen)
{
    const fake_module_t *d = mod->desc;
    fake_inst_t *fi;
    pw_trap_t trap;
    size_t i, j;
    int rc;

    /* exactly the declared imports, with the declared signatures */
    if (nimports != d->nimports) {
        snprintf(err, errlen, "fake engine: %zu imports given, %zu declared",
                 nimports, d->nimports);
        return PW_ELINK;
    }
    for (i = 0; i < d->nimports; i++) {
        for (j = 0; j < nimports; j++) {
            if (strcmp(imports[j].module, d->imports[i].module) == 0
                && strcmp(imports[j].name, d->imports[i].name) == 0)
            {
                break;
            }
        }
        if (j == nimports || imports[j].fn == NULL
            || strcmp(imports[j].sig, d->imports[i].sig) != 0)
        {
            snprintf(err, errlen, "fake engine: import %s.%s not linked",
                     d->imports[i].module, d->imports[i].name);
            return PW_ELINK;
        }
    }

    fi = calloc(1, sizeof(*fi));
    if (fi == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    fi->desc = d;
    fi->nimports = nimports;
    fi->imports = calloc(nimports ? nimports : 1, sizeof(pw_import_t));
    fi->funcs = calloc(d->nexports ? d->nexports : 1, sizeof(*fi->funcs));
    fi->mem_size = d->mem_size ? d->mem_size : FAKE_DEFAULT_MEM;
    fi->mem = calloc(1, fi->mem_size);
    if (fi->imports == NULL || fi->funcs == NULL || fi->mem == NULL) {
        fake_instance_free(fi);
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    if (nimports) {
        memcpy(fi->imports, imports, nimports * sizeof(pw_import_t));
    }
    for (i = 0; i < d->nexports; i++) {
        fi->funcs[i].exp = &d->exports[i];
    }
    fi->static_top = FAKE_STATIC_BASE;
    fi->heap_top = FAKE_HEAP_BASE;
    fake_stats.instances++;

    if (d->start) {
        rc = fake_run(fi, d->start, "(start)", NULL, 0, NULL, &trap);
        if (rc != PW_OK) {
            snprintf(err, errlen, "%s", trap.message);
            fake_instance_free(fi);
            return rc;
        }
    }
    *out = fi;
    return PW_OK;
}

static void
fake_instance_free(pw_einstance_t *fi)
{
    if (fi->mem) {
        fake_stats.instances--;
    }
    free(fi->imports);
    free(fi->funcs);
    free(fi->mem);
    free(fi);
}

static int
fake_lookup(pw_einstance_t *fi, const char *name, pw_efunc_t **fn, char *sig)
{
    size_t i;

    for (i = 0; i < fi->desc->nexports; i++) {
        if (strcmp(fi->desc->exports[i].name, name) == 0) {
            *fn = &fi->funcs[i];
            snprintf(sig, PW_SIG_MAX, "%s", fi->desc->exports[i].sig);
            return PW_OK;
        }
    }
    return PW_ENOTFOUND;
}

static int
fake_run(fake_inst_t *fi, fake_fn_t fn, const char *name,
    const pw_val_t *args, size_t nargs, pw_val_t *res, pw_trap_t *trap)
{
    jmp_buf jb;
    jmp_buf *volatile saved = fi->jb;
    volatile int rc;

    if (fi->depth++ == 0) {
        atomic_store(&fi->interrupted, 0);
    }
    fake_stats.calls++;
    fi->jb = &jb;
    if (setjmp(jb) == 0) {
        if (fn == NULL) {
            fake_trap(fi, "RuntimeError: unreachable");
        }
        rc = fn(fi, name, args, nargs, res);
    } else {
        rc = fi->jmp_rc;
        if (trap) {
            snprintf(trap->message, sizeof(trap->message), "%s",
                     fi->trap_msg);
            snprintf(trap->backtrace, sizeof(trap->backtrace),
                     "    at %s (fake)", name);
        }
    }
    fi->jb = saved;
    if (--fi->depth == 0) {
        atomic_fetch_add(&fi->generation, 1);
    }
    return rc;
}

static size_t
fake_sig_params(const char *sig)
{
    const char *colon = strchr(sig, ':');

    return colon ? (size_t) (colon - sig) : strlen(sig);
}

static int
fake_call(pw_einstance_t *fi, pw_efunc_t *fn, const pw_val_t *args,
    size_t nargs, pw_val_t *results, size_t nresults, pw_trap_t *trap)
{
    const char *sig = fn->exp->sig, *colon = strchr(sig, ':');
    size_t i, np = fake_sig_params(sig), nr = colon ? strlen(colon + 1) : 0;

    /* a real engine would refuse or coerce; the core must be exact */
    if (nargs != np || nresults != nr) {
        fprintf(stderr, "  fake engine: %s%s called with %zu args, %zu "
                "results\n", fn->exp->name, sig, nargs, nresults);
        return PW_EENGINE;
    }
    for (i = 0; i < np; i++) {
        if ((char) args[i].kind != sig[i]) {
            fprintf(stderr, "  fake engine: %s arg %zu of kind %c\n",
                    fn->exp->name, i, args[i].kind);
            return PW_EENGINE;
        }
    }
    for (i = 0; i < nr; i++) {
        if ((char) results[i].kind != colon[1 + i]) {
            fprintf(stderr, "  fake engine: %s result of kind %c\n",
                    fn->exp->name, results[i].kind);
            return PW_EENGINE;
        }
    }
    return fake_run(fi, fn->exp->fn, fn->exp->name, args, nargs, results,
                    trap);
}

static int
fake_memory(pw_einstance_t *fi, uint8_t **base, size_t *size)
{
    if (fi->desc->no_memory) {
        return PW_ENOTFOUND;
    }
    *base = fi->mem;
    *size = fi->mem_size;
    return PW_OK;
}

static uint64_t
fake_call_generation(pw_einstance_t *fi)
{
    return atomic_load(&fi->generation);
}

static void
fake_interrupt(pw_einstance_t *fi, uint64_t generation)
{
    /* the flag is cleared when the next outermost call starts */
    if (atomic_load(&fi->generation) == generation) {
        atomic_store(&fi->interrupted, 1);
        atomic_fetch_add(&fake_stats.interrupts, 1);
    }
}

const pw_engine_vt_t fake_engine_vt = {
    "fake",
    fake_init,
    fake_destroy,
    fake_compile,
    fake_module_free,
    fake_instantiate,
    fake_instance_free,
    fake_lookup,
    fake_call,
    fake_memory,
    fake_call_generation,
    fake_interrupt,
    NULL,
    NULL,
    NULL,
};

/* ---- guest side ---- */

static __attribute__((noreturn)) void
fake_unwind(fake_inst_t *fi, int rc, const char *msg)
{
    if (fi->jb == NULL) {
        fprintf(stderr, "  fake engine: trap outside a call: %s\n", msg);
        abort();
    }
    fi->jmp_rc = rc;
    snprintf(fi->trap_msg, sizeof(fi->trap_msg), "%s", msg);
    longjmp(*fi->jb, 1);
}

void
fake_trap(fake_inst_t *fi, const char *msg)
{
    fake_unwind(fi, PW_ETRAP, msg);
}

void
fake_spin(fake_inst_t *fi)
{
    struct timespec ts = { 0, 200000 };

    while (!atomic_load(&fi->interrupted)) {
        nanosleep(&ts, NULL);
    }
    fake_unwind(fi, PW_EINTERRUPTED, "terminated");
}

static const pw_import_t *
fake_import(fake_inst_t *fi, const char *name)
{
    size_t i;

    for (i = 0; i < fi->nimports; i++) {
        if (strcmp(fi->imports[i].name, name) == 0) {
            return &fi->imports[i];
        }
    }
    return NULL;
}

int
fake_has_import(fake_inst_t *fi, const char *name)
{
    return fake_import(fi, name) != NULL;
}

static int32_t
fake_hc_call(fake_inst_t *fi, const pw_import_t *imp, pw_val_t *args)
{
    const char *msg = NULL, *colon;
    pw_val_t res[1];
    int rc;

    colon = strchr(imp->sig, ':');
    res[0].kind = PW_I32;
    res[0].of.i32 = -12345;
    fake_stats.hostcalls++;
    rc = imp->fn(imp->fn_data, fi, args, res, &msg);
    if (rc == PW_ETRAP) {
        fake_unwind(fi, PW_ETRAP, msg ? msg : "host trap");
    }
    if (rc != PW_OK) {
        fake_unwind(fi, PW_ETRAP, "host function failed");
    }
    if (atomic_load(&fi->interrupted)) {
        fake_unwind(fi, PW_EINTERRUPTED, "terminated");
    }
    return colon && colon[1] ? res[0].of.i32 : 0;
}

static const pw_import_t *
fake_import_must(fake_inst_t *fi, const char *name)
{
    const pw_import_t *imp = fake_import(fi, name);

    if (imp == NULL) {
        fprintf(stderr, "  fake engine: the module does not import %s\n",
                name);
        abort();
    }
    return imp;
}

int32_t
fake_hc(fake_inst_t *fi, const char *name, ...)
{
    const pw_import_t *imp = fake_import_must(fi, name);
    pw_val_t args[16];
    size_t i, np;
    va_list ap;

    np = fake_sig_params(imp->sig);
    va_start(ap, name);
    for (i = 0; i < np && i < 16; i++) {
        args[i].kind = (pw_valkind_t) imp->sig[i];
        if (imp->sig[i] == 'I') {
            args[i].of.i64 = va_arg(ap, int64_t);
        } else {
            args[i].of.i32 = (int32_t) va_arg(ap, uint32_t);
        }
    }
    va_end(ap);
    return fake_hc_call(fi, imp, args);
}

int32_t
fake_hc_arr(fake_inst_t *fi, const char *name, const uint64_t *a, size_t n)
{
    const pw_import_t *imp = fake_import_must(fi, name);
    pw_val_t args[16];
    size_t i, np;

    np = fake_sig_params(imp->sig);
    for (i = 0; i < np && i < 16; i++) {
        args[i].kind = (pw_valkind_t) imp->sig[i];
        if (imp->sig[i] == 'I') {
            args[i].of.i64 = (int64_t) (i < n ? a[i] : 0);
        } else {
            args[i].of.i32 = (int32_t) (uint32_t) (i < n ? a[i] : 0);
        }
    }
    return fake_hc_call(fi, imp, args);
}

uint8_t *
fake_mem(fake_inst_t *fi)
{
    return fi->mem;
}

size_t
fake_mem_size(fake_inst_t *fi)
{
    return fi->mem_size;
}

int
fake_mem_grow(fake_inst_t *fi, size_t new_size)
{
    uint8_t *m;

    if (new_size < fi->mem_size) {
        new_size = fi->mem_size;
    }
    m = calloc(1, new_size);
    if (m == NULL) {
        return PW_ENOMEM;
    }
    memcpy(m, fi->mem, fi->mem_size);
    free(fi->mem);
    fi->mem = m;
    fi->mem_size = new_size;
    return PW_OK;
}

uint32_t
fake_scratch(fake_inst_t *fi, size_t len)
{
    uint32_t p;

    p = (fi->static_top + 7) & ~7u;
    if (p + len > FAKE_HEAP_BASE) {
        fprintf(stderr, "  fake engine: static area full\n");
        abort();
    }
    memset(fi->mem + p, 0, len);
    fi->static_top = p + (uint32_t) len;
    return p;
}

uint32_t
fake_put(fake_inst_t *fi, const void *data, size_t len)
{
    uint32_t p = fake_scratch(fi, len);

    if (len) {
        memcpy(fi->mem + p, data, len);
    }
    return p;
}

uint32_t
fake_put_str(fake_inst_t *fi, const char *s)
{
    return fake_put(fi, s, strlen(s));
}

uint32_t
fake_rd32(fake_inst_t *fi, uint32_t ptr)
{
    uint32_t v;

    if ((uint64_t) ptr + 4 > fi->mem_size) {
        fprintf(stderr, "  fake engine: read out of bounds\n");
        abort();
    }
    memcpy(&v, fi->mem + ptr, 4);
    return v;
}

uint64_t
fake_rd64(fake_inst_t *fi, uint32_t ptr)
{
    uint64_t v;

    if ((uint64_t) ptr + 8 > fi->mem_size) {
        fprintf(stderr, "  fake engine: read out of bounds\n");
        abort();
    }
    memcpy(&v, fi->mem + ptr, 8);
    return v;
}

void
fake_wr32(fake_inst_t *fi, uint32_t ptr, uint32_t v)
{
    if ((uint64_t) ptr + 4 > fi->mem_size) {
        fprintf(stderr, "  fake engine: write out of bounds\n");
        abort();
    }
    memcpy(fi->mem + ptr, &v, 4);
}

int
fake_guest_alloc(fake_inst_t *fi, const char *name, const pw_val_t *args,
    size_t nargs, pw_val_t *res)
{
    uint32_t size = (uint32_t) args[0].of.i32, p;
    size_t need;

    fi->alloc.count++;
    fi->alloc.last_size = size;
    if (fi->alloc.trap) {
        fake_trap(fi, "RuntimeError: trap in the allocator");
    }
    if (fi->alloc.fail) {
        res[0].of.i32 = 0;
        return PW_OK;
    }
    p = (fi->heap_top + 7) & ~7u;
    need = (size_t) p + size;
    if (need > UINT32_MAX) {
        res[0].of.i32 = 0;
        return PW_OK;
    }
    if (need > fi->mem_size || fi->alloc.moves) {
        if (fake_mem_grow(fi, need > fi->mem_size ? need + 65536
                                                  : fi->mem_size) != PW_OK)
        {
            res[0].of.i32 = 0;
            return PW_OK;
        }
    }
    /* fresh memory is poisoned so a missing write shows */
    memset(fi->mem + p, 0xEE, size);
    fi->heap_top = (uint32_t) need;
    res[0].of.i32 = (int32_t) p;
    return PW_OK;
}

fake_alloc_ctl_t *
fake_alloc_ctl(fake_inst_t *fi)
{
    return &fi->alloc;
}

void
fake_set_user(fake_inst_t *fi, void *user)
{
    fi->user = user;
}

void *
fake_user(fake_inst_t *fi)
{
    return fi->user;
}
