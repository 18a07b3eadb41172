/*
 * A minimal reader of a wasm module's type, import, function and export
 * sections, for the signatures the V8 backend needs (V8's public API does
 * not expose them). Fills a pw_wasm_info_t so that it can be replaced by
 * pw_wasm_parse (src/core/wasm.c) without touching the engine.
 *
 * V8 has validated the bytes before this runs; the reader still checks
 * every length against the end of its section.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/v8/v8_internal.h"

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    int bad;
} pw__rd_t;

static uint64_t
pw__rd_leb(pw__rd_t *r)
{
    uint64_t v;
    unsigned shift;
    uint8_t b;

    v = 0;
    for (shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            break;
        }
        b = *r->p++;
        v |= (uint64_t) (b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

static uint8_t
pw__rd_byte(pw__rd_t *r)
{
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static char *
pw__rd_name(pw__rd_t *r)
{
    uint64_t n;
    char *s;

    n = pw__rd_leb(r);
    if (r->bad || n > (uint64_t) (r->end - r->p)) {
        r->bad = 1;
        return NULL;
    }
    s = (char *) malloc(n + 1);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    return s;
}

static char
pw__valtype_letter(uint8_t t)
{
    switch (t) {
    case 0x7f:
        return 'i';
    case 0x7e:
        return 'I';
    case 0x7d:
        return 'f';
    case 0x7c:
        return 'F';
    default:
        return '?';
    }
}

/* Reads one function type into sig; too long a type becomes "?". */
static void
pw__rd_functype(pw__rd_t *r, char *sig)
{
    uint64_t n, i;
    size_t len;
    int part;

    if (pw__rd_byte(r) != 0x60) {
        r->bad = 1;
        return;
    }
    len = 0;
    for (part = 0; part < 2; part++) {
        n = pw__rd_leb(r);
        if (r->bad || n > (uint64_t) (r->end - r->p)) {
            r->bad = 1;
            return;
        }
        for (i = 0; i < n; i++) {
            char c = pw__valtype_letter(pw__rd_byte(r));
            if (len < PW_SIG_MAX - 1) {
                sig[len++] = c;
            }
        }
        if (part == 0 && len < PW_SIG_MAX - 1) {
            sig[len++] = ':';
        }
    }
    if (len >= PW_SIG_MAX - 1) {
        strcpy(sig, "?");
        return;
    }
    sig[len] = '\0';
}

static void
pw__rd_limits(pw__rd_t *r)
{
    uint8_t flags;

    flags = pw__rd_byte(r);
    (void) pw__rd_leb(r);
    if (flags & 1) {
        (void) pw__rd_leb(r);
    }
}

void
pw__v8_info_free(pw_wasm_info_t *info)
{
    size_t i;

    if (info == NULL) {
        return;
    }
    for (i = 0; i < info->nimports; i++) {
        free(info->imports[i].module);
        free(info->imports[i].name);
    }
    for (i = 0; i < info->nexports; i++) {
        free(info->exports[i].name);
    }
    free(info->imports);
    free(info->exports);
    free(info);
}

int
pw__v8_info_parse(const uint8_t *bytes, size_t len, pw_wasm_info_t **out,
    char *err, size_t errlen)
{
    pw__rd_t r, s;
    pw_wasm_info_t *info;
    char (*types)[PW_SIG_MAX];
    uint32_t *ftypes;
    uint64_t ntypes, nftypes, nimpfuncs, n, i, idx;
    uint8_t id;
    int rc;

    types = NULL;
    ftypes = NULL;
    ntypes = 0;
    nftypes = 0;
    nimpfuncs = 0;
    rc = PW_ENOMEM;

    info = (pw_wasm_info_t *) calloc(1, sizeof(*info));
    if (info == NULL) {
        goto failed;
    }
    if (len < 8 || memcmp(bytes, "\0asm", 4) != 0) {
        rc = PW_EMALFORMED;
        snprintf(err, errlen, "not a wasm module (bad magic)");
        goto failed;
    }

    r.p = bytes + 8;
    r.end = bytes + len;
    r.bad = 0;

    while (r.p < r.end && !r.bad) {
        id = pw__rd_byte(&r);
        n = pw__rd_leb(&r);
        if (r.bad || n > (uint64_t) (r.end - r.p)) {
            r.bad = 1;
            break;
        }
        s.p = r.p;
        s.end = r.p + n;
        s.bad = 0;
        r.p += n;

        switch (id) {
        case 1: /* type */
            ntypes = pw__rd_leb(&s);
            if (s.bad || ntypes > n) {
                s.bad = 1;
                break;
            }
            types = (char (*)[PW_SIG_MAX]) calloc(ntypes + 1, PW_SIG_MAX);
            if (types == NULL) {
                goto failed;
            }
            for (i = 0; i < ntypes && !s.bad; i++) {
                pw__rd_functype(&s, types[i]);
            }
            break;

        case 2: /* import */
            n = pw__rd_leb(&s);
            if (s.bad || n > (uint64_t) (s.end - s.p)) {
                s.bad = 1;
                break;
            }
            info->imports = (pw_wasm_import_t *) calloc(n + 1,
                sizeof(pw_wasm_import_t));
            if (info->imports == NULL) {
                goto failed;
            }
            for (i = 0; i < n && !s.bad; i++) {
                pw_wasm_import_t *imp = &info->imports[i];

                info->nimports = i + 1;
                imp->module = pw__rd_name(&s);
                imp->name = s.bad ? NULL : pw__rd_name(&s);
                if (!s.bad && (imp->module == NULL || imp->name == NULL)) {
                    goto failed;
                }
                imp->kind = (pw_extern_kind_t) pw__rd_byte(&s);
                switch ((int) imp->kind) {
                case PW_EXTERN_FUNC:
                    idx = pw__rd_leb(&s);
                    if (idx >= ntypes) {
                        s.bad = 1;
                        break;
                    }
                    memcpy(imp->sig, types[idx], PW_SIG_MAX);
                    nimpfuncs++;
                    break;
                case PW_EXTERN_TABLE:
                    (void) pw__rd_byte(&s);
                    pw__rd_limits(&s);
                    break;
                case PW_EXTERN_MEMORY:
                    pw__rd_limits(&s);
                    break;
                case PW_EXTERN_GLOBAL:
                    (void) pw__rd_byte(&s);
                    (void) pw__rd_byte(&s);
                    break;
                case 4: /* exception tag */
                    (void) pw__rd_byte(&s);
                    (void) pw__rd_leb(&s);
                    break;
                default:
                    s.bad = 1;
                }
            }
            break;

        case 3: /* function */
            nftypes = pw__rd_leb(&s);
            if (s.bad || nftypes > n) {
                s.bad = 1;
                break;
            }
            ftypes = (uint32_t *) calloc(nftypes + 1, sizeof(uint32_t));
            if (ftypes == NULL) {
                goto failed;
            }
            for (i = 0; i < nftypes && !s.bad; i++) {
                idx = pw__rd_leb(&s);
                if (idx >= ntypes) {
                    s.bad = 1;
                }
                ftypes[i] = (uint32_t) idx;
            }
            break;

        case 7: /* export */
            n = pw__rd_leb(&s);
            if (s.bad || n > (uint64_t) (s.end - s.p)) {
                s.bad = 1;
                break;
            }
            info->exports = (pw_wasm_export_t *) calloc(n + 1,
                sizeof(pw_wasm_export_t));
            if (info->exports == NULL) {
                goto failed;
            }
            for (i = 0; i < n && !s.bad; i++) {
                pw_wasm_export_t *exp = &info->exports[i];

                info->nexports = i + 1;
                exp->name = pw__rd_name(&s);
                if (!s.bad && exp->name == NULL) {
                    goto failed;
                }
                exp->kind = (pw_extern_kind_t) pw__rd_byte(&s);
                idx = pw__rd_leb(&s);
                exp->index = (uint32_t) idx;
                if (exp->kind != PW_EXTERN_FUNC || s.bad) {
                    continue;
                }
                if (idx < nimpfuncs) {
                    /* the idx-th function import */
                    uint64_t k, f = 0;

                    for (k = 0; k < info->nimports; k++) {
                        if (info->imports[k].kind == PW_EXTERN_FUNC
                            && f++ == idx)
                        {
                            memcpy(exp->sig, info->imports[k].sig,
                                   PW_SIG_MAX);
                            break;
                        }
                    }
                } else if (idx - nimpfuncs < nftypes) {
                    memcpy(exp->sig, types[ftypes[idx - nimpfuncs]],
                           PW_SIG_MAX);
                } else {
                    s.bad = 1;
                }
            }
            break;

        case 8:
            info->has_start = 1;
            break;

        default:
            break;
        }

        if (s.bad) {
            r.bad = 1;
        }
    }

    if (r.bad) {
        rc = PW_EMALFORMED;
        snprintf(err, errlen, "malformed wasm module");
        goto failed;
    }

    info->nfuncs = nimpfuncs + nftypes;
    free(types);
    free(ftypes);
    *out = info;
    return PW_OK;

failed:
    if (rc == PW_ENOMEM) {
        snprintf(err, errlen, "out of memory");
    }
    free(types);
    free(ftypes);
    pw__v8_info_free(info);
    return rc;
}
