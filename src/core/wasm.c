/*
 * proxy-wasm-c: a reader of the WebAssembly binary format (pw_wasm.h).
 *
 * Only the sections the host needs are decoded; the others are skipped by
 * their size. The input is untrusted: every read is bounded by the end of
 * its section, counts are checked against the bytes that could hold them
 * before anything is allocated, and index spaces are capped like V8 does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pw/pw_wasm.h>

#define PW__WASM_MAX_TYPES      1000000
#define PW__WASM_MAX_IMPORTS    100000
#define PW__WASM_MAX_EXPORTS    100000
#define PW__WASM_MAX_FUNCS      1000000

#define PW__WASM_SECT_CUSTOM    0
#define PW__WASM_SECT_TYPE      1
#define PW__WASM_SECT_IMPORT    2
#define PW__WASM_SECT_FUNCTION  3
#define PW__WASM_SECT_TABLE     4
#define PW__WASM_SECT_MEMORY    5
#define PW__WASM_SECT_GLOBAL    6
#define PW__WASM_SECT_EXPORT    7
#define PW__WASM_SECT_START     8
#define PW__WASM_SECT_ELEMENT   9
#define PW__WASM_SECT_CODE      10
#define PW__WASM_SECT_DATA      11
#define PW__WASM_SECT_DATACOUNT 12
#define PW__WASM_SECT_TAG       13
#define PW__WASM_SECT_KNOWN     14

/* The longest side of an overlong signature: 15 + ':' + 15 + NUL. */
#define PW__WASM_SIG_SIDE       ((PW_SIG_MAX - 2) / 2)

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} pw__wasm_rd_t;

typedef struct {
    char *err;
    size_t errlen;
    int quiet;                  /* errors in the name section are ignored */
    const char *sect;           /* prefix of messages, "import section" */
    const uint8_t *module_end;
    pw_wasm_info_t *info;

    const uint8_t **types;      /* each function type, after its 0x60 */
    uint32_t ntypes;
    uint32_t *func_types;       /* type index of each function */
    uint32_t nfunc_types;
    uint32_t nimported_funcs;
    uint64_t ntables;
    uint64_t nmems;
    uint64_t nglobals;

    const uint8_t *names;       /* content of the "name" custom section */
    size_t names_len;
} pw__wasm_ctx_t;

static const char *pw__wasm_sect_names[PW__WASM_SECT_KNOWN] = {
    "custom", "type", "import", "function", "table", "memory", "global",
    "export", "start", "element", "code", "data", "data count", "tag"
};

/* Position of each known section in the order the spec requires. */
static const int pw__wasm_sect_rank[PW__WASM_SECT_KNOWN] = {
    0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
pw__wasm_fail(pw__wasm_ctx_t *cx, const char *fmt, ...)
{
    va_list ap;

    if (!cx->quiet && cx->err != NULL && cx->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(cx->err, cx->errlen, fmt, ap);
        va_end(ap);
    }
    return PW_EMALFORMED;
}

static int
pw__wasm_oom(pw__wasm_ctx_t *cx)
{
    if (cx->err != NULL && cx->errlen > 0) {
        snprintf(cx->err, cx->errlen, "out of memory");
    }
    return PW_ENOMEM;
}

static size_t
pw__wasm_left(const pw__wasm_rd_t *rd)
{
    return (size_t) (rd->end - rd->p);
}

static int
pw__wasm_byte(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, uint8_t *b)
{
    if (rd->p >= rd->end) {
        return pw__wasm_fail(cx, "%s: truncated", cx->sect);
    }
    *b = *rd->p++;
    return PW_OK;
}

/*
 * Unsigned LEB128 of at most nbits bits: at most ceil(nbits / 7) bytes, and
 * the unused high bits of the last byte must be zero.
 */
static int
pw__wasm_uleb(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, unsigned nbits,
    uint64_t *v)
{
    unsigned shift, maxbytes, i;
    uint64_t r;
    uint8_t b;

    maxbytes = (nbits + 6) / 7;
    r = 0;
    shift = 0;
    for (i = 0; i < maxbytes; i++) {
        if (rd->p >= rd->end) {
            return pw__wasm_fail(cx, "%s: truncated", cx->sect);
        }
        b = *rd->p++;
        if (i == maxbytes - 1) {
            if (b & 0x80) {
                return pw__wasm_fail(cx, "%s: bad LEB128 (too long)",
                                     cx->sect);
            }
            if (b >> (nbits - shift)) {
                return pw__wasm_fail(cx, "%s: bad LEB128 (overflow)",
                                     cx->sect);
            }
        }
        r |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return PW_OK;
        }
        shift += 7;
    }
    /* not reached: the last byte either ends the number or fails */
    return pw__wasm_fail(cx, "%s: bad LEB128 (too long)", cx->sect);
}

static int
pw__wasm_u32(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, uint32_t *v)
{
    uint64_t r;
    int rc;

    rc = pw__wasm_uleb(cx, rd, 32, &r);
    if (rc == PW_OK) {
        *v = (uint32_t) r;
    }
    return rc;
}

/* A signed 33-bit LEB128 (heap types); only its encoding is checked. */
static int
pw__wasm_s33(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    unsigned i;
    uint8_t b;

    for (i = 0; i < 5; i++) {
        if (rd->p >= rd->end) {
            return pw__wasm_fail(cx, "%s: truncated", cx->sect);
        }
        b = *rd->p++;
        if (!(b & 0x80)) {
            /* 4 x 7 bits read: bits 33 and up must extend the sign */
            if (i == 4 && (b & 0x70) != 0 && (b & 0x70) != 0x70) {
                return pw__wasm_fail(cx, "%s: bad LEB128 (overflow)",
                                     cx->sect);
            }
            return PW_OK;
        }
    }
    return pw__wasm_fail(cx, "%s: bad LEB128 (too long)", cx->sect);
}

/* A count of entries of at least minsize bytes each, and at most max. */
static int
pw__wasm_count(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, size_t minsize,
    uint32_t max, uint32_t *n)
{
    int rc;

    rc = pw__wasm_u32(cx, rd, n);
    if (rc != PW_OK) {
        return rc;
    }
    if (*n > pw__wasm_left(rd) / minsize) {
        return pw__wasm_fail(cx, "%s: count %u does not fit in %zu bytes",
                             cx->sect, *n, pw__wasm_left(rd));
    }
    if (*n > max) {
        return pw__wasm_fail(cx, "%s: too many entries (%u, at most %u)",
                             cx->sect, *n, max);
    }
    return PW_OK;
}

static int
pw__wasm_name(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, const uint8_t **s,
    uint32_t *len)
{
    int rc;

    rc = pw__wasm_u32(cx, rd, len);
    if (rc != PW_OK) {
        return rc;
    }
    if (*len > pw__wasm_left(rd)) {
        return pw__wasm_fail(cx, "%s: truncated", cx->sect);
    }
    *s = rd->p;
    rd->p += *len;
    return PW_OK;
}

/* A NUL-terminated copy of an import or export name. */
static int
pw__wasm_name_dup(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, char **out)
{
    const uint8_t *s = NULL;
    uint32_t len;
    char *copy;
    int rc;

    rc = pw__wasm_name(cx, rd, &s, &len);
    if (rc != PW_OK) {
        return rc;
    }
    /* a name cut short by a NUL could link to something else */
    if (memchr(s, 0, len) != NULL) {
        return pw__wasm_fail(cx, "%s: name contains a NUL byte", cx->sect);
    }
    copy = malloc((size_t) len + 1);
    if (copy == NULL) {
        return pw__wasm_oom(cx);
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    *out = copy;
    return PW_OK;
}

/* A name fit for a one-line message: printable ASCII, at most 64 bytes. */
static const char *
pw__wasm_printable(const char *name, char *buf, size_t size)
{
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < size; i++) {
        buf[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    }
    buf[i] = '\0';
    if (name[i] != '\0' && i >= 3) {
        memcpy(buf + i - 3, "...", 3);
    }
    return buf;
}

/* One value type; letter receives its signature letter. */
static int
pw__wasm_valtype(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, char *letter)
{
    uint8_t b = 0;
    int rc;

    rc = pw__wasm_byte(cx, rd, &b);
    if (rc != PW_OK) {
        return rc;
    }
    switch (b) {
    case 0x7f:
        *letter = 'i';
        return PW_OK;
    case 0x7e:
        *letter = 'I';
        return PW_OK;
    case 0x7d:
        *letter = 'f';
        return PW_OK;
    case 0x7c:
        *letter = 'F';
        return PW_OK;
    case 0x63:                  /* (ref null ht) */
    case 0x64:                  /* (ref ht) */
        *letter = '?';
        return pw__wasm_s33(cx, rd);
    default:
        /* v128 (0x7b) and the shorthand reference types (0x69-0x74) */
        if (b == 0x7b || (b >= 0x69 && b <= 0x74)) {
            *letter = '?';
            return PW_OK;
        }
        rd->p--;
        return pw__wasm_fail(cx, "%s: bad value type 0x%02x", cx->sect, b);
    }
}

/* A result type vector: its length, and its first PW_SIG_MAX-2 letters. */
static int
pw__wasm_valtypes(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, char *buf,
    uint32_t *n)
{
    uint32_t i;
    char letter;
    int rc;

    rc = pw__wasm_u32(cx, rd, n);
    if (rc != PW_OK) {
        return rc;
    }
    /* bounded: each type takes at least a byte, so a huge n fails soon */
    for (i = 0; i < *n; i++) {
        rc = pw__wasm_valtype(cx, rd, &letter);
        if (rc != PW_OK) {
            return rc;
        }
        if (i < PW_SIG_MAX - 2) {
            buf[i] = letter;
        }
    }
    return PW_OK;
}

/*
 * A function type, after its 0x60 form byte, into sig. A signature too long
 * for PW_SIG_MAX keeps at most PW__WASM_SIG_SIDE letters of each side and
 * ends a cut side with '?', so it never equals a real signature.
 */
static int
pw__wasm_functype(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd, char *sig)
{
    char params[PW_SIG_MAX - 2], results[PW_SIG_MAX - 2];
    uint32_t np, nr;
    size_t kp, kr;
    char *p;
    int rc;

    rc = pw__wasm_valtypes(cx, rd, params, &np);
    if (rc != PW_OK) {
        return rc;
    }
    rc = pw__wasm_valtypes(cx, rd, results, &nr);
    if (rc != PW_OK) {
        return rc;
    }

    kp = np;
    kr = nr;
    if ((uint64_t) np + nr > PW_SIG_MAX - 2) {
        if (kp > PW__WASM_SIG_SIDE) {
            kp = PW__WASM_SIG_SIDE;
            params[kp - 1] = '?';
        }
        if (kr > PW__WASM_SIG_SIDE) {
            kr = PW__WASM_SIG_SIDE;
            results[kr - 1] = '?';
        }
    }
    p = sig;
    memcpy(p, params, kp);
    p += kp;
    *p++ = ':';
    memcpy(p, results, kr);
    p += kr;
    *p = '\0';
    return PW_OK;
}

/* The signature of type index idx, which the type section validated. */
static void
pw__wasm_type_sig(pw__wasm_ctx_t *cx, uint32_t idx, char *sig)
{
    pw__wasm_rd_t rd = { cx->types[idx], cx->module_end };

    if (pw__wasm_functype(cx, &rd, sig) != PW_OK) {
        /* cannot happen: the same bytes parsed before */
        strcpy(sig, "?:?");
    }
}

/* Table and memory limits, incl. memory64/table64, shared, page sizes. */
static int
pw__wasm_limits(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    uint32_t flags, log2;
    uint64_t v;
    unsigned bits;
    int rc;

    rc = pw__wasm_u32(cx, rd, &flags);
    if (rc != PW_OK) {
        return rc;
    }
    /* 1 has max, 2 shared, 4 64-bit, 8 custom page size */
    if (flags & ~0xfu) {
        return pw__wasm_fail(cx, "%s: bad limits flags 0x%x", cx->sect,
                             flags);
    }
    bits = (flags & 4) ? 64 : 32;
    rc = pw__wasm_uleb(cx, rd, bits, &v);
    if (rc == PW_OK && (flags & 1)) {
        rc = pw__wasm_uleb(cx, rd, bits, &v);
    }
    if (rc == PW_OK && (flags & 8)) {
        rc = pw__wasm_u32(cx, rd, &log2);
    }
    return rc;
}

static int
pw__wasm_type_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    char sig[PW_SIG_MAX];
    uint32_t n, i;
    uint8_t form = 0;
    int rc;

    rc = pw__wasm_count(cx, rd, 3, PW__WASM_MAX_TYPES, &n);
    if (rc != PW_OK) {
        return rc;
    }
    if (n == 0) {
        return PW_OK;
    }
    cx->types = malloc(n * sizeof(cx->types[0]));
    if (cx->types == NULL) {
        return pw__wasm_oom(cx);
    }
    for (i = 0; i < n; i++) {
        rc = pw__wasm_byte(cx, rd, &form);
        if (rc != PW_OK) {
            return rc;
        }
        if (form == 0x4e || form == 0x4f || form == 0x50) {
            return pw__wasm_fail(cx, "%s: GC types are not supported "
                                 "(form 0x%02x)", cx->sect, form);
        }
        if (form != 0x60) {
            return pw__wasm_fail(cx, "%s: bad type form 0x%02x", cx->sect,
                                 form);
        }
        cx->types[i] = rd->p;
        rc = pw__wasm_functype(cx, rd, sig);
        if (rc != PW_OK) {
            return rc;
        }
        cx->ntypes = i + 1;
    }
    return PW_OK;
}

static int
pw__wasm_import_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    pw_wasm_info_t *info = cx->info;
    pw_wasm_import_t *im;
    uint32_t n, i, idx;
    uint8_t kind = 0, mut = 0;
    char letter, pm[65], pn[65];
    int rc;

    /* module name, name, kind, one byte of descriptor at least */
    rc = pw__wasm_count(cx, rd, 4, PW__WASM_MAX_IMPORTS, &n);
    if (rc != PW_OK) {
        return rc;
    }
    if (n == 0) {
        return PW_OK;
    }
    info->imports = calloc(n, sizeof(info->imports[0]));
    cx->func_types = malloc(n * sizeof(cx->func_types[0]));
    if (info->imports == NULL || cx->func_types == NULL) {
        return pw__wasm_oom(cx);
    }
    for (i = 0; i < n; i++) {
        im = &info->imports[i];
        info->nimports = i + 1;
        rc = pw__wasm_name_dup(cx, rd, &im->module);
        if (rc == PW_OK) {
            rc = pw__wasm_name_dup(cx, rd, &im->name);
        }
        if (rc == PW_OK) {
            rc = pw__wasm_byte(cx, rd, &kind);
        }
        if (rc != PW_OK) {
            return rc;
        }
        switch (kind) {
        case 0x00:
            im->kind = PW_EXTERN_FUNC;
            rc = pw__wasm_u32(cx, rd, &idx);
            if (rc != PW_OK) {
                return rc;
            }
            if (idx >= cx->ntypes) {
                return pw__wasm_fail(cx, "%s: bad type index %u", cx->sect,
                                     idx);
            }
            pw__wasm_type_sig(cx, idx, im->sig);
            cx->func_types[cx->nfunc_types++] = idx;
            cx->nimported_funcs++;
            break;
        case 0x01:
            im->kind = PW_EXTERN_TABLE;
            rc = pw__wasm_valtype(cx, rd, &letter);
            if (rc == PW_OK) {
                rc = pw__wasm_limits(cx, rd);
            }
            cx->ntables++;
            break;
        case 0x02:
            im->kind = PW_EXTERN_MEMORY;
            rc = pw__wasm_limits(cx, rd);
            cx->nmems++;
            break;
        case 0x03:
            im->kind = PW_EXTERN_GLOBAL;
            rc = pw__wasm_valtype(cx, rd, &letter);
            if (rc == PW_OK) {
                rc = pw__wasm_byte(cx, rd, &mut);
            }
            if (rc == PW_OK && mut > 1) {
                rc = pw__wasm_fail(cx, "%s: bad global mutability 0x%02x",
                                   cx->sect, mut);
            }
            cx->nglobals++;
            break;
        case 0x04:
            return pw__wasm_fail(cx, "%s: tag imports are not supported "
                                 "(%s.%s)", cx->sect,
                                 pw__wasm_printable(im->module, pm,
                                                    sizeof(pm)),
                                 pw__wasm_printable(im->name, pn,
                                                    sizeof(pn)));
        default:
            return pw__wasm_fail(cx, "%s: bad import kind 0x%02x", cx->sect,
                                 kind);
        }
        if (rc != PW_OK) {
            return rc;
        }
    }
    return PW_OK;
}

static int
pw__wasm_function_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    uint32_t n, i, idx, *ft;
    int rc;

    rc = pw__wasm_count(cx, rd, 1, PW__WASM_MAX_FUNCS, &n);
    if (rc != PW_OK) {
        return rc;
    }
    if (n == 0) {
        return PW_OK;
    }
    /* no overflow: at most PW__WASM_MAX_IMPORTS + PW__WASM_MAX_FUNCS */
    ft = realloc(cx->func_types,
                 ((size_t) cx->nfunc_types + n) * sizeof(ft[0]));
    if (ft == NULL) {
        return pw__wasm_oom(cx);
    }
    cx->func_types = ft;
    for (i = 0; i < n; i++) {
        rc = pw__wasm_u32(cx, rd, &idx);
        if (rc != PW_OK) {
            return rc;
        }
        if (idx >= cx->ntypes) {
            return pw__wasm_fail(cx, "%s: bad type index %u", cx->sect, idx);
        }
        ft[cx->nfunc_types++] = idx;
    }
    return PW_OK;
}

/* Table, memory, global sections: only their counts, for export checks. */
static int
pw__wasm_counted_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd,
    uint64_t *total)
{
    uint32_t n;
    int rc;

    rc = pw__wasm_u32(cx, rd, &n);
    if (rc == PW_OK) {
        *total += n;
    }
    return rc;
}

static int
pw__wasm_export_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    pw_wasm_info_t *info = cx->info;
    pw_wasm_export_t *ex;
    uint32_t n, i, idx;
    uint64_t limit;
    uint8_t kind = 0;
    char *name;
    int rc;

    rc = pw__wasm_count(cx, rd, 3, PW__WASM_MAX_EXPORTS, &n);
    if (rc != PW_OK) {
        return rc;
    }
    if (n == 0) {
        return PW_OK;
    }
    info->exports = calloc(n, sizeof(info->exports[0]));
    if (info->exports == NULL) {
        return pw__wasm_oom(cx);
    }
    for (i = 0; i < n; i++) {
        name = NULL;
        rc = pw__wasm_name_dup(cx, rd, &name);
        if (rc == PW_OK) {
            rc = pw__wasm_byte(cx, rd, &kind);
        }
        if (rc == PW_OK) {
            rc = pw__wasm_u32(cx, rd, &idx);
        }
        if (rc != PW_OK) {
            free(name);
            return rc;
        }
        switch (kind) {
        case 0x00:
            limit = cx->nfunc_types;
            break;
        case 0x01:
            limit = cx->ntables;
            break;
        case 0x02:
            limit = cx->nmems;
            break;
        case 0x03:
            limit = cx->nglobals;
            break;
        case 0x04:
            /* a tag: valid, but none of the kinds the host deals with */
            free(name);
            continue;
        default:
            free(name);
            return pw__wasm_fail(cx, "%s: bad export kind 0x%02x", cx->sect,
                                 kind);
        }
        if (idx >= limit) {
            free(name);
            return pw__wasm_fail(cx, "%s: bad %s index %u", cx->sect,
                                 kind == 0 ? "function"
                                 : kind == 1 ? "table"
                                 : kind == 2 ? "memory" : "global", idx);
        }
        ex = &info->exports[info->nexports++];
        ex->name = name;
        ex->kind = (pw_extern_kind_t) kind;
        ex->index = idx;
        if (kind == 0x00) {
            pw__wasm_type_sig(cx, cx->func_types[idx], ex->sig);
        }
    }
    return PW_OK;
}

static int
pw__wasm_start_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    uint32_t idx;
    int rc;

    rc = pw__wasm_u32(cx, rd, &idx);
    if (rc != PW_OK) {
        return rc;
    }
    if (idx >= cx->nfunc_types) {
        return pw__wasm_fail(cx, "%s: bad function index %u", cx->sect, idx);
    }
    cx->info->has_start = 1;
    return PW_OK;
}

static int
pw__wasm_custom_section(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    const uint8_t *name = NULL;
    uint32_t len;
    int rc;

    rc = pw__wasm_name(cx, rd, &name, &len);
    if (rc != PW_OK) {
        return rc;
    }
    /* decoded at the end, once the function index space is known */
    if (len == 4 && memcmp(name, "name", 4) == 0 && cx->names == NULL) {
        cx->names = rd->p;
        cx->names_len = pw__wasm_left(rd);
    }
    rd->p = rd->end;
    return PW_OK;
}

/* Subsection 1 of the name section: the function name map. */
static int
pw__wasm_func_names(pw__wasm_ctx_t *cx, pw__wasm_rd_t *rd)
{
    pw_wasm_info_t *info = cx->info;
    const uint8_t *s = NULL;
    uint32_t n, i, idx, len;
    char *copy;
    int rc;

    rc = pw__wasm_count(cx, rd, 2, UINT32_MAX, &n);
    for (i = 0; rc == PW_OK && i < n; i++) {
        rc = pw__wasm_u32(cx, rd, &idx);
        if (rc == PW_OK) {
            rc = pw__wasm_name(cx, rd, &s, &len);
        }
        if (rc != PW_OK || idx >= info->nfuncs) {
            continue;
        }
        copy = malloc((size_t) len + 1);
        if (copy == NULL) {
            return pw__wasm_oom(cx);
        }
        memcpy(copy, s, len);
        copy[len] = '\0';
        free(info->func_names[idx]);
        info->func_names[idx] = copy;
    }
    if (rc == PW_OK && rd->p != rd->end) {
        rc = pw__wasm_fail(cx, "%s: size mismatch", cx->sect);
    }
    return rc;
}

/*
 * A malformed name section does not make the module malformed (custom
 * sections never do); its names are dropped instead.
 */
static int
pw__wasm_name_section(pw__wasm_ctx_t *cx)
{
    pw_wasm_info_t *info = cx->info;
    pw__wasm_rd_t rd, sub;
    uint32_t size;
    uint8_t id = 0;
    size_t i;
    int rc, seen;

    if (cx->names == NULL || info->nfuncs == 0) {
        return PW_OK;
    }
    info->func_names = calloc(info->nfuncs, sizeof(info->func_names[0]));
    if (info->func_names == NULL) {
        return pw__wasm_oom(cx);
    }
    cx->quiet = 1;
    cx->sect = "name section";
    rd.p = cx->names;
    rd.end = cx->names + cx->names_len;
    rc = PW_OK;
    seen = 0;
    while (rc == PW_OK && rd.p < rd.end) {
        rc = pw__wasm_byte(cx, &rd, &id);
        if (rc == PW_OK) {
            rc = pw__wasm_u32(cx, &rd, &size);
        }
        if (rc != PW_OK) {
            break;
        }
        if (size > pw__wasm_left(&rd)) {
            rc = PW_EMALFORMED;
            break;
        }
        sub.p = rd.p;
        sub.end = rd.p + size;
        rd.p = sub.end;
        if (id == 1 && !seen) {
            seen = 1;
            rc = pw__wasm_func_names(cx, &sub);
        }
    }
    cx->quiet = 0;
    if (rc == PW_EMALFORMED) {
        for (i = 0; i < info->nfuncs; i++) {
            free(info->func_names[i]);
            info->func_names[i] = NULL;
        }
        rc = PW_OK;
    }
    return rc;
}

static int
pw__wasm_sections(pw__wasm_ctx_t *cx, pw__wasm_rd_t *mod)
{
    char label[48];
    pw__wasm_rd_t rd;
    uint32_t size;
    uint8_t id;
    int rc, last_rank, seen[PW__WASM_SECT_KNOWN];
    const char *what;

    memset(seen, 0, sizeof(seen));
    last_rank = 0;
    while (mod->p < mod->end) {
        id = *mod->p++;
        what = id < PW__WASM_SECT_KNOWN ? pw__wasm_sect_names[id]
                                        : "unknown";
        snprintf(label, sizeof(label), "section %u (%s) header", id, what);
        cx->sect = label;
        rc = pw__wasm_u32(cx, mod, &size);
        if (rc != PW_OK) {
            return rc;
        }
        if (size > pw__wasm_left(mod)) {
            return pw__wasm_fail(cx, "section %u (%s) truncated: size %u, "
                                 "%zu bytes left", id, what, size,
                                 pw__wasm_left(mod));
        }
        rd.p = mod->p;
        rd.end = mod->p + size;
        mod->p = rd.end;

        if (id != PW__WASM_SECT_CUSTOM && id < PW__WASM_SECT_KNOWN) {
            if (seen[id]) {
                return pw__wasm_fail(cx, "duplicate section %u (%s)", id,
                                     what);
            }
            if (pw__wasm_sect_rank[id] < last_rank) {
                return pw__wasm_fail(cx, "section %u (%s) out of order", id,
                                     what);
            }
            seen[id] = 1;
            last_rank = pw__wasm_sect_rank[id];
        }

        snprintf(label, sizeof(label), "%s section", what);
        switch (id) {
        case PW__WASM_SECT_CUSTOM:
            rc = pw__wasm_custom_section(cx, &rd);
            break;
        case PW__WASM_SECT_TYPE:
            rc = pw__wasm_type_section(cx, &rd);
            break;
        case PW__WASM_SECT_IMPORT:
            rc = pw__wasm_import_section(cx, &rd);
            break;
        case PW__WASM_SECT_FUNCTION:
            rc = pw__wasm_function_section(cx, &rd);
            break;
        case PW__WASM_SECT_TABLE:
            rc = pw__wasm_counted_section(cx, &rd, &cx->ntables);
            rd.p = rd.end;
            break;
        case PW__WASM_SECT_MEMORY:
            rc = pw__wasm_counted_section(cx, &rd, &cx->nmems);
            rd.p = rd.end;
            break;
        case PW__WASM_SECT_GLOBAL:
            rc = pw__wasm_counted_section(cx, &rd, &cx->nglobals);
            rd.p = rd.end;
            break;
        case PW__WASM_SECT_EXPORT:
            rc = pw__wasm_export_section(cx, &rd);
            break;
        case PW__WASM_SECT_START:
            rc = pw__wasm_start_section(cx, &rd);
            break;
        default:
            /* element, code, data, data count, tag, and unknown ids */
            rc = PW_OK;
            rd.p = rd.end;
            break;
        }
        if (rc != PW_OK) {
            return rc;
        }
        if (rd.p != rd.end) {
            return pw__wasm_fail(cx, "%s: size mismatch (%zu trailing bytes)",
                                 cx->sect, pw__wasm_left(&rd));
        }
    }
    return PW_OK;
}

int
pw_wasm_parse(const uint8_t *bytes, size_t len, pw_wasm_info_t **out,
    char *err, size_t errlen)
{
    static const uint8_t magic[4] = { 0x00, 0x61, 0x73, 0x6d };
    pw__wasm_ctx_t cx;
    pw__wasm_rd_t mod;
    uint32_t version;
    int rc;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    memset(&cx, 0, sizeof(cx));
    cx.err = err;
    cx.errlen = errlen;
    if (out == NULL || (bytes == NULL && len > 0)) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "invalid argument");
        }
        return PW_EINVAL;
    }
    *out = NULL;

    if (len < 4 || memcmp(bytes, magic, 4) != 0) {
        return pw__wasm_fail(&cx, "not a wasm module (bad magic)");
    }
    if (len < 8) {
        return pw__wasm_fail(&cx, "wasm header truncated");
    }
    version = (uint32_t) bytes[4] | (uint32_t) bytes[5] << 8
              | (uint32_t) bytes[6] << 16 | (uint32_t) bytes[7] << 24;
    if (version != 1) {
        /* the component model: version 0x0d, layer 1 */
        if ((version & 0xffff0000u) == 0x00010000u) {
            return pw__wasm_fail(&cx, "a wasm component, not a core module "
                                 "(unsupported wasm version 0x%x)", version);
        }
        return pw__wasm_fail(&cx, "unsupported wasm version %u", version);
    }

    cx.info = calloc(1, sizeof(*cx.info));
    if (cx.info == NULL) {
        return pw__wasm_oom(&cx);
    }
    cx.module_end = bytes + len;
    mod.p = bytes + 8;
    mod.end = bytes + len;

    rc = pw__wasm_sections(&cx, &mod);
    if (rc == PW_OK) {
        cx.info->nfuncs = cx.nfunc_types;
        rc = pw__wasm_name_section(&cx);
    }

    free(cx.types);
    free(cx.func_types);
    if (rc != PW_OK) {
        pw_wasm_info_free(cx.info);
        return rc;
    }
    *out = cx.info;
    return PW_OK;
}

void
pw_wasm_info_free(pw_wasm_info_t *info)
{
    size_t i;

    if (info == NULL) {
        return;
    }
    for (i = 0; i < info->nimports; i++) {
        free(info->imports[i].module);
        free(info->imports[i].name);
    }
    free(info->imports);
    for (i = 0; i < info->nexports; i++) {
        free(info->exports[i].name);
    }
    free(info->exports);
    if (info->func_names != NULL) {
        for (i = 0; i < info->nfuncs; i++) {
            free(info->func_names[i]);
        }
        free(info->func_names);
    }
    free(info);
}

const pw_wasm_export_t *
pw_wasm_find_export(const pw_wasm_info_t *info, const char *name)
{
    size_t i;

    if (info == NULL || name == NULL) {
        return NULL;
    }
    for (i = 0; i < info->nexports; i++) {
        if (info->exports[i].kind == PW_EXTERN_FUNC
            && strcmp(info->exports[i].name, name) == 0)
        {
            return &info->exports[i];
        }
    }
    return NULL;
}
