/*
 * pwrun: the scenario file, read into pwr_scenario_t (see docs/PWRUN.md).
 *
 * Strings point into the JSON document, which lives as long as the
 * scenario; decoded bytes and arrays live in the scenario's allocations.
 * Unknown keys are errors so a typo never silently changes a test.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pwrun.h"

struct pwr_alloc_s {
    pwr_alloc_t *next;
    max_align_t data[];
};

typedef struct {
    pwr_scenario_t *sc;
    char *err;
    size_t errlen;
    int failed;
} pwr_sp_t;

static void *
pwr_sc_alloc(pwr_sp_t *sp, size_t n, size_t size)
{
    pwr_alloc_t *a;

    if (n != 0 && size > ((size_t) -1 - sizeof(*a)) / n) {
        return NULL;
    }
    a = calloc(1, sizeof(*a) + n * size);
    if (a == NULL) {
        return NULL;
    }
    a->next = sp->sc->allocs;
    sp->sc->allocs = a;
    return a->data;
}

static int
pwr_sp_fail(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (sp->failed) {
        return -1;
    }
    sp->failed = 1;
    if (v && v->line > 0) {
        n = snprintf(sp->err, sp->errlen, "line %d, column %d: %s: ",
                     v->line, v->col, where);
    } else {
        n = snprintf(sp->err, sp->errlen, "%s: ", where);
    }
    if (n >= 0 && (size_t) n < sp->errlen) {
        va_start(ap, fmt);
        vsnprintf(sp->err + n, sp->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int
pwr_sp_oom(pwr_sp_t *sp)
{
    return pwr_sp_fail(sp, NULL, "scenario", "out of memory");
}

static int
pwr_expect(pwr_sp_t *sp, const pwr_json_t *v, pwr_json_type_t t,
    const char *where)
{
    if (v->type != t) {
        return pwr_sp_fail(sp, v, where, "expected %s, got %s",
                           pwr_json_type_name(t),
                           pwr_json_type_name(v->type));
    }
    return 0;
}

static int
pwr_check_keys(pwr_sp_t *sp, const pwr_json_t *obj, const char *where,
    const char *const *allowed)
{
    const char *const *a;
    size_t i;

    for (i = 0; i < obj->n; i++) {
        for (a = allowed; *a; a++) {
            if (strcmp(obj->keys[i], *a) == 0
                && strlen(*a) == obj->key_lens[i])
            {
                break;
            }
        }
        if (*a == NULL) {
            return pwr_sp_fail(sp, obj->items[i], where, "unknown key \"%s\"",
                               obj->keys[i]);
        }
    }
    return 0;
}

static int
pwr_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A byte string: "text", {"bytes_hex": "00ff"} or {"string": "text"}. */
static int
pwr_get_bytes(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pw_str_t *out)
{
    static const char *const keys[] = { "bytes_hex", "string", NULL };
    const pwr_json_t *h;
    uint8_t *p;
    size_t i;
    int hi, lo;

    if (v->type == PWR_JSON_STRING) {
        out->data = v->str;
        out->len = v->len;
        return 0;
    }
    if (v->type != PWR_JSON_OBJECT || v->n != 1) {
        return pwr_sp_fail(sp, v, where, "expected a string or "
                           "{\"bytes_hex\": \"...\"}");
    }
    if (pwr_check_keys(sp, v, where, keys) != 0) {
        return -1;
    }
    h = v->items[0];
    if (pwr_expect(sp, h, PWR_JSON_STRING, where) != 0) {
        return -1;
    }
    if (strcmp(v->keys[0], "string") == 0) {
        out->data = h->str;
        out->len = h->len;
        return 0;
    }
    if (h->len % 2) {
        return pwr_sp_fail(sp, h, where, "odd number of hex digits");
    }
    p = pwr_sc_alloc(sp, h->len / 2 + 1, 1);
    if (p == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < h->len; i += 2) {
        hi = pwr_hexval(h->str[i]);
        lo = pwr_hexval(h->str[i + 1]);
        if (hi < 0 || lo < 0) {
            return pwr_sp_fail(sp, h, where, "bad hex digit");
        }
        p[i / 2] = (uint8_t) (hi << 4 | lo);
    }
    out->data = (const char *) p;
    out->len = h->len / 2;
    return 0;
}

static int
pwr_get_u32(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    uint32_t *out)
{
    if (v->type != PWR_JSON_NUMBER || !v->is_int || v->integer < 0
        || v->integer > UINT32_MAX)
    {
        return pwr_sp_fail(sp, v, where, "expected an integer in "
                           "[0, 4294967295]");
    }
    *out = (uint32_t) v->integer;
    return 0;
}

static int
pwr_get_text(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pw_str_t *out)
{
    if (pwr_expect(sp, v, PWR_JSON_STRING, where) != 0) {
        return -1;
    }
    out->data = v->str;
    out->len = v->len;
    return 0;
}

/* [[name, value], ...] or {"name": "value", ...} (order kept). */
static int
pwr_get_hdrs(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_hdrs_t *out)
{
    const pwr_json_t *pair;
    size_t i;

    out->n = 0;
    if (v->type == PWR_JSON_NULL) {
        return 0;
    }
    if (v->type != PWR_JSON_ARRAY && v->type != PWR_JSON_OBJECT) {
        return pwr_sp_fail(sp, v, where, "expected a list of [name, value] "
                           "pairs");
    }
    if (v->n > PW_MAX_MAP_PAIRS) {
        return pwr_sp_fail(sp, v, where, "more than %d pairs",
                           PW_MAX_MAP_PAIRS);
    }
    out->pairs = pwr_sc_alloc(sp, v->n + 1, sizeof(pw_pair_t));
    if (out->pairs == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < v->n; i++) {
        pw_pair_t *p = &out->pairs[i];

        if (v->type == PWR_JSON_OBJECT) {
            p->key.data = v->keys[i];
            p->key.len = v->key_lens[i];
            if (pwr_get_bytes(sp, v->items[i], where, &p->value) != 0) {
                return -1;
            }
            continue;
        }
        pair = v->items[i];
        if (pair->type != PWR_JSON_ARRAY || pair->n != 2) {
            return pwr_sp_fail(sp, pair, where, "expected [name, value]");
        }
        if (pwr_get_bytes(sp, pair->items[0], where, &p->key) != 0
            || pwr_get_bytes(sp, pair->items[1], where, &p->value) != 0)
        {
            return -1;
        }
    }
    out->n = v->n;
    return 0;
}

/* "body", {"bytes_hex": ...} or a list of those (chunks). */
static int
pwr_get_chunks(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_chunks_t *out)
{
    pw_str_t one;
    size_t i;

    out->n = 0;
    if (v->type == PWR_JSON_NULL) {
        return 0;
    }
    if (v->type != PWR_JSON_ARRAY) {
        if (pwr_get_bytes(sp, v, where, &one) != 0) {
            return -1;
        }
        if (one.len == 0) {
            return 0;
        }
        out->chunks = pwr_sc_alloc(sp, 1, sizeof(pw_str_t));
        if (out->chunks == NULL) {
            return pwr_sp_oom(sp);
        }
        out->chunks[0] = one;
        out->n = 1;
        return 0;
    }
    out->chunks = pwr_sc_alloc(sp, v->n + 1, sizeof(pw_str_t));
    if (out->chunks == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < v->n; i++) {
        if (pwr_get_bytes(sp, v->items[i], where, &out->chunks[i]) != 0) {
            return -1;
        }
    }
    out->n = v->n;
    return 0;
}

/* "a.b.c" (or NUL-separated when the key holds a NUL) or ["a", "b"]. */
static int
pwr_get_path(pwr_sp_t *sp, const pwr_json_t *v, const char *kdata,
    size_t klen, const char *where, pwr_prop_t *out)
{
    char sep;
    size_t i, start, n;

    if (v != NULL) {
        if (v->type == PWR_JSON_STRING) {
            kdata = v->str;
            klen = v->len;
        } else if (v->type == PWR_JSON_ARRAY && v->n > 0) {
            out->segs = pwr_sc_alloc(sp, v->n, sizeof(pw_str_t));
            if (out->segs == NULL) {
                return pwr_sp_oom(sp);
            }
            for (i = 0; i < v->n; i++) {
                if (pwr_get_text(sp, v->items[i], where, &out->segs[i]) != 0) {
                    return -1;
                }
            }
            out->nseg = v->n;
            return 0;
        } else {
            return pwr_sp_fail(sp, v, where, "a property path is a string "
                               "or a non-empty list of segments");
        }
    }
    if (klen == 0) {
        return pwr_sp_fail(sp, v, where, "empty property path");
    }
    sep = memchr(kdata, '\0', klen) ? '\0' : '.';
    n = 1;
    for (i = 0; i < klen; i++) {
        n += kdata[i] == sep;
    }
    out->segs = pwr_sc_alloc(sp, n, sizeof(pw_str_t));
    if (out->segs == NULL) {
        return pwr_sp_oom(sp);
    }
    out->nseg = 0;
    start = 0;
    for (i = 0; i <= klen; i++) {
        if (i == klen || kdata[i] == sep) {
            out->segs[out->nseg].data = kdata + start;
            out->segs[out->nseg].len = i - start;
            out->nseg++;
            start = i + 1;
        }
    }
    /* a trailing separator (C++ SDK style) adds no segment */
    if (out->nseg > 1 && out->segs[out->nseg - 1].len == 0) {
        out->nseg--;
    }
    return 0;
}

/* "text" | {"int": N} | {"uint": N} | {"bool": b} | {"double": x} |
 * {"bytes_hex": "..."} | {"string": "..."} */
static int
pwr_get_prop_value(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pw_str_t *out)
{
    const pwr_json_t *x;
    uint8_t *p;
    uint64_t u = 0;
    int i;

    if (v->type != PWR_JSON_OBJECT || v->n != 1) {
        return pwr_get_bytes(sp, v, where, out);
    }
    x = v->items[0];
    if (strcmp(v->keys[0], "bool") == 0) {
        if (pwr_expect(sp, x, PWR_JSON_BOOL, where) != 0) {
            return -1;
        }
        p = pwr_sc_alloc(sp, 1, 1);
        if (p == NULL) {
            return pwr_sp_oom(sp);
        }
        p[0] = (uint8_t) x->boolean;
        out->data = (const char *) p;
        out->len = 1;
        return 0;
    }
    if (strcmp(v->keys[0], "int") == 0 || strcmp(v->keys[0], "uint") == 0) {
        if (x->type != PWR_JSON_NUMBER || !x->is_int
            || (v->keys[0][0] == 'u' && x->integer < 0))
        {
            return pwr_sp_fail(sp, x, where, "expected an integer");
        }
        u = (uint64_t) x->integer;
    } else if (strcmp(v->keys[0], "double") == 0) {
        if (pwr_expect(sp, x, PWR_JSON_NUMBER, where) != 0) {
            return -1;
        }
        memcpy(&u, &x->number, 8);
    } else {
        return pwr_get_bytes(sp, v, where, out);
    }
    p = pwr_sc_alloc(sp, 8, 1);
    if (p == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < 8; i++) {
        p[i] = (uint8_t) (u >> (8 * i));
    }
    out->data = (const char *) p;
    out->len = 8;
    return 0;
}

static int
pwr_get_props(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_props_t *out)
{
    const pwr_json_t *e;
    size_t i;

    out->n = 0;
    if (v->type != PWR_JSON_OBJECT && v->type != PWR_JSON_ARRAY) {
        return pwr_sp_fail(sp, v, where, "expected an object {path: value} "
                           "or a list of [path, value]");
    }
    out->items = pwr_sc_alloc(sp, v->n + 1, sizeof(pwr_prop_t));
    if (out->items == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < v->n; i++) {
        pwr_prop_t *p = &out->items[i];

        if (v->type == PWR_JSON_OBJECT) {
            if (pwr_get_path(sp, NULL, v->keys[i], v->key_lens[i], where, p)
                    != 0
                || pwr_get_prop_value(sp, v->items[i], where, &p->value)
                    != 0)
            {
                return -1;
            }
            continue;
        }
        e = v->items[i];
        if (e->type != PWR_JSON_ARRAY || e->n != 2) {
            return pwr_sp_fail(sp, e, where, "expected [path, value]");
        }
        if (pwr_get_path(sp, e->items[0], NULL, 0, where, p) != 0
            || pwr_get_prop_value(sp, e->items[1], where, &p->value) != 0)
        {
            return -1;
        }
    }
    out->n = v->n;
    return 0;
}

static int
pwr_get_answer(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_answer_t *a)
{
    static const char *const keys[] = {
        "headers", "body", "trailers", "initial_metadata", "messages",
        "trailing_metadata", "status", "message", "close", NULL
    };
    const pwr_json_t *x;

    memset(a, 0, sizeof(*a));
    a->close = 1;
    if (v->type == PWR_JSON_STRING) {
        if (strcmp(v->str, "fail") == 0 || strcmp(v->str, "timeout") == 0) {
            a->kind = PWR_ANSWER_FAIL;
            return 0;
        }
        if (strcmp(v->str, "none") == 0) {
            a->kind = PWR_ANSWER_NONE;
            return 0;
        }
        return pwr_sp_fail(sp, v, where, "expected an answer object, "
                           "\"fail\", \"timeout\" or \"none\"");
    }
    if (pwr_expect(sp, v, PWR_JSON_OBJECT, where) != 0
        || pwr_check_keys(sp, v, where, keys) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "headers"))
        && pwr_get_hdrs(sp, x, where, &a->headers) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "body"))
        && pwr_get_bytes(sp, x, where, &a->body) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "trailers"))
        && pwr_get_hdrs(sp, x, where, &a->trailers) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "initial_metadata"))) {
        a->has_initial_metadata = 1;
        if (pwr_get_hdrs(sp, x, where, &a->initial_metadata) != 0) {
            return -1;
        }
    }
    if ((x = pwr_json_get(v, "messages"))) {
        if (pwr_expect(sp, x, PWR_JSON_ARRAY, where) != 0
            || pwr_get_chunks(sp, x, where, &a->messages) != 0)
        {
            return -1;
        }
    }
    if ((x = pwr_json_get(v, "trailing_metadata"))) {
        a->has_trailing_metadata = 1;
        if (pwr_get_hdrs(sp, x, where, &a->trailing_metadata) != 0) {
            return -1;
        }
    }
    if ((x = pwr_json_get(v, "status"))
        && pwr_get_u32(sp, x, where, &a->status) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "message"))
        && pwr_get_bytes(sp, x, where, &a->message) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "close"))) {
        if (pwr_expect(sp, x, PWR_JSON_BOOL, where) != 0) {
            return -1;
        }
        a->close = x->boolean;
    }
    return 0;
}

static int
pwr_get_callouts(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_callouts_t *out)
{
    const pwr_json_t *x;
    size_t i, j;

    if (pwr_expect(sp, v, PWR_JSON_OBJECT, where) != 0) {
        return -1;
    }
    out->items = pwr_sc_alloc(sp, v->n + 1, sizeof(pwr_callout_t));
    if (out->items == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < v->n; i++) {
        pwr_callout_t *c = &out->items[i];

        c->upstream.data = v->keys[i];
        c->upstream.len = v->key_lens[i];
        x = v->items[i];
        if (x->type != PWR_JSON_ARRAY) {
            c->answers = pwr_sc_alloc(sp, 1, sizeof(pwr_answer_t));
            if (c->answers == NULL) {
                return pwr_sp_oom(sp);
            }
            c->n = 1;
            c->repeat = 1;
            if (pwr_get_answer(sp, x, where, &c->answers[0]) != 0) {
                return -1;
            }
            continue;
        }
        c->answers = pwr_sc_alloc(sp, x->n + 1, sizeof(pwr_answer_t));
        if (c->answers == NULL) {
            return pwr_sp_oom(sp);
        }
        for (j = 0; j < x->n; j++) {
            if (pwr_get_answer(sp, x->items[j], where, &c->answers[j]) != 0) {
                return -1;
            }
        }
        c->n = x->n;
    }
    out->n = v->n;
    return 0;
}

static int
pwr_get_enqueues(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_enqueues_t *out)
{
    static const char *const keys[] = { "queue", "vm_id", "items", NULL };
    const pwr_json_t *e, *x;
    size_t i;

    if (pwr_expect(sp, v, PWR_JSON_ARRAY, where) != 0) {
        return -1;
    }
    out->items = pwr_sc_alloc(sp, v->n + 1, sizeof(pwr_enqueue_t));
    if (out->items == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < v->n; i++) {
        pwr_enqueue_t *q = &out->items[i];

        e = v->items[i];
        if (pwr_expect(sp, e, PWR_JSON_OBJECT, where) != 0
            || pwr_check_keys(sp, e, where, keys) != 0)
        {
            return -1;
        }
        x = pwr_json_get(e, "queue");
        if (x == NULL) {
            return pwr_sp_fail(sp, e, where, "missing \"queue\"");
        }
        if (pwr_get_text(sp, x, where, &q->name) != 0) {
            return -1;
        }
        q->vm_id = sp->sc->vm_id;
        if ((x = pwr_json_get(e, "vm_id"))
            && pwr_get_text(sp, x, where, &q->vm_id) != 0)
        {
            return -1;
        }
        if ((x = pwr_json_get(e, "items"))) {
            if (pwr_expect(sp, x, PWR_JSON_ARRAY, where) != 0
                || pwr_get_chunks(sp, x, where, &q->items) != 0)
            {
                return -1;
            }
        }
    }
    out->n = v->n;
    return 0;
}

static int
pwr_get_tcp(pwr_sp_t *sp, const pwr_json_t *v, pwr_exchange_t *ex)
{
    static const char *const keys[] = {
        "downstream", "upstream", "end", "close", NULL
    };
    const char *where = "tcp events";
    const pwr_json_t *e, *x;
    size_t i;

    if (pwr_expect(sp, v, PWR_JSON_ARRAY, where) != 0) {
        return -1;
    }
    ex->tcp = pwr_sc_alloc(sp, v->n + 1, sizeof(pwr_tcp_event_t));
    if (ex->tcp == NULL) {
        return pwr_sp_oom(sp);
    }
    for (i = 0; i < v->n; i++) {
        pwr_tcp_event_t *t = &ex->tcp[i];

        e = v->items[i];
        if (pwr_expect(sp, e, PWR_JSON_OBJECT, where) != 0
            || pwr_check_keys(sp, e, where, keys) != 0)
        {
            return -1;
        }
        if ((x = pwr_json_get(e, "close"))) {
            if (x->type == PWR_JSON_STRING
                && strcmp(x->str, "downstream") == 0)
            {
                t->kind = PWR_TCP_CLOSE_DOWNSTREAM;
            } else if (x->type == PWR_JSON_STRING
                       && strcmp(x->str, "upstream") == 0)
            {
                t->kind = PWR_TCP_CLOSE_UPSTREAM;
            } else {
                return pwr_sp_fail(sp, x, where, "close is \"downstream\" "
                                   "or \"upstream\"");
            }
            if (e->n != 1) {
                return pwr_sp_fail(sp, e, where, "a close event has no "
                                   "other keys");
            }
            continue;
        }
        if ((x = pwr_json_get(e, "downstream"))) {
            t->kind = PWR_TCP_DOWNSTREAM;
        } else if ((x = pwr_json_get(e, "upstream"))) {
            t->kind = PWR_TCP_UPSTREAM;
        } else {
            return pwr_sp_fail(sp, e, where, "an event has \"downstream\", "
                               "\"upstream\" or \"close\"");
        }
        if (pwr_json_get(e, "downstream") && pwr_json_get(e, "upstream")) {
            return pwr_sp_fail(sp, e, where, "one direction per event");
        }
        if (pwr_get_bytes(sp, x, where, &t->data) != 0) {
            return -1;
        }
        if ((x = pwr_json_get(e, "end"))) {
            if (pwr_expect(sp, x, PWR_JSON_BOOL, where) != 0) {
                return -1;
            }
            t->end = x->boolean;
        }
    }
    ex->ntcp = v->n;
    return 0;
}

static int
pwr_get_message(pwr_sp_t *sp, const pwr_json_t *v, const char *where,
    pwr_hdrs_t *h, pwr_chunks_t *body, pwr_hdrs_t *t)
{
    static const char *const keys[] = {
        "headers", "body", "trailers", NULL
    };
    const pwr_json_t *x;

    if (pwr_expect(sp, v, PWR_JSON_OBJECT, where) != 0
        || pwr_check_keys(sp, v, where, keys) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "headers"))
        && pwr_get_hdrs(sp, x, where, h) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "body"))
        && pwr_get_chunks(sp, x, where, body) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "trailers"))
        && pwr_get_hdrs(sp, x, where, t) != 0)
    {
        return -1;
    }
    return 0;
}

static int
pwr_get_exchange(pwr_sp_t *sp, const pwr_json_t *v, pwr_exchange_t *ex)
{
    static const char *const keys[] = {
        "type", "request", "response", "tcp", "callouts", "properties",
        "ticks_before", "enqueue_before", "comment", NULL
    };
    static pw_pair_t default_status[] = {
        { { ":status", 7 }, { "200", 3 } }
    };
    const char *where = "exchange";
    const pwr_json_t *x;

    if (pwr_expect(sp, v, PWR_JSON_OBJECT, where) != 0
        || pwr_check_keys(sp, v, where, keys) != 0)
    {
        return -1;
    }
    ex->kind = PWR_EX_HTTP;
    if ((x = pwr_json_get(v, "type"))) {
        if (x->type == PWR_JSON_STRING && strcmp(x->str, "tcp") == 0) {
            ex->kind = PWR_EX_TCP;
        } else if (x->type != PWR_JSON_STRING || strcmp(x->str, "http")) {
            return pwr_sp_fail(sp, x, where, "type is \"http\" or \"tcp\"");
        }
    }
    if ((x = pwr_json_get(v, "ticks_before"))
        && pwr_get_u32(sp, x, "ticks_before", &ex->ticks_before) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "enqueue_before"))
        && pwr_get_enqueues(sp, x, "enqueue_before", &ex->enqueue_before)
           != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "properties"))
        && pwr_get_props(sp, x, "properties", &ex->props) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "callouts"))
        && pwr_get_callouts(sp, x, "callouts", &ex->callouts) != 0)
    {
        return -1;
    }
    if (ex->kind == PWR_EX_TCP) {
        if (pwr_json_get(v, "request") || pwr_json_get(v, "response")) {
            return pwr_sp_fail(sp, v, where, "a tcp exchange has \"tcp\" "
                               "events, not request/response");
        }
        if ((x = pwr_json_get(v, "tcp"))) {
            return pwr_get_tcp(sp, x, ex);
        }
        return 0;
    }
    if (pwr_json_get(v, "tcp")) {
        return pwr_sp_fail(sp, v, where, "\"tcp\" events need "
                           "\"type\": \"tcp\"");
    }
    if ((x = pwr_json_get(v, "request"))
        && pwr_get_message(sp, x, "request", &ex->req_headers,
                           &ex->req_body, &ex->req_trailers) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(v, "response"))
        && pwr_get_message(sp, x, "response", &ex->resp_headers,
                           &ex->resp_body, &ex->resp_trailers) != 0)
    {
        return -1;
    }
    if (ex->resp_headers.n == 0) {
        ex->resp_headers.pairs = default_status;
        ex->resp_headers.n = 1;
    }
    return 0;
}

const char *
pwr_log_level_name(pw_log_level_t l)
{
    static const char *const names[] = {
        "trace", "debug", "info", "warn", "error", "critical"
    };

    return (unsigned) l < 6 ? names[l] : "unknown";
}

static int
pwr_get_top(pwr_sp_t *sp, const pwr_json_t *doc)
{
    static const char *const keys[] = {
        "vm_id", "vm_config", "root_id", "plugin_name", "configuration",
        "env", "max_call_ms", "log_level", "clock_ns", "max_wait_ticks",
        "properties", "callouts", "foreign_functions", "queues", "ticks",
        "enqueue", "exchanges", "ticks_after", "comment", NULL
    };
    pwr_scenario_t *sc = sp->sc;
    const pwr_json_t *x;
    size_t i;

    if (pwr_expect(sp, doc, PWR_JSON_OBJECT, "scenario") != 0
        || pwr_check_keys(sp, doc, "scenario", keys) != 0)
    {
        return -1;
    }
    if (((x = pwr_json_get(doc, "vm_id"))
         && pwr_get_text(sp, x, "vm_id", &sc->vm_id) != 0)
        || ((x = pwr_json_get(doc, "vm_config"))
            && pwr_get_bytes(sp, x, "vm_config", &sc->vm_config) != 0)
        || ((x = pwr_json_get(doc, "root_id"))
            && pwr_get_text(sp, x, "root_id", &sc->root_id) != 0)
        || ((x = pwr_json_get(doc, "plugin_name"))
            && pwr_get_text(sp, x, "plugin_name", &sc->plugin_name) != 0)
        || ((x = pwr_json_get(doc, "configuration"))
            && pwr_get_bytes(sp, x, "configuration", &sc->config) != 0)
        || ((x = pwr_json_get(doc, "max_call_ms"))
            && pwr_get_u32(sp, x, "max_call_ms", &sc->max_call_ms) != 0)
        || ((x = pwr_json_get(doc, "max_wait_ticks"))
            && pwr_get_u32(sp, x, "max_wait_ticks", &sc->max_wait_ticks)
               != 0)
        || ((x = pwr_json_get(doc, "ticks"))
            && pwr_get_u32(sp, x, "ticks", &sc->ticks) != 0)
        || ((x = pwr_json_get(doc, "ticks_after"))
            && pwr_get_u32(sp, x, "ticks_after", &sc->ticks_after) != 0)
        || ((x = pwr_json_get(doc, "properties"))
            && pwr_get_props(sp, x, "properties", &sc->props) != 0)
        || ((x = pwr_json_get(doc, "callouts"))
            && pwr_get_callouts(sp, x, "callouts", &sc->callouts) != 0))
    {
        return -1;
    }
    if ((x = pwr_json_get(doc, "log_level"))) {
        for (i = 0; i < 6; i++) {
            if (x->type == PWR_JSON_STRING
                && strcmp(x->str, pwr_log_level_name(i)) == 0)
            {
                break;
            }
        }
        if (i == 6) {
            return pwr_sp_fail(sp, x, "log_level", "expected one of trace, "
                               "debug, info, warn, error, critical");
        }
        sc->log_level = (pw_log_level_t) i;
    }
    if ((x = pwr_json_get(doc, "clock_ns"))) {
        if (x->type != PWR_JSON_NUMBER || !x->is_int || x->integer < 0) {
            return pwr_sp_fail(sp, x, "clock_ns", "expected a non-negative "
                               "integer");
        }
        sc->clock_ns = (uint64_t) x->integer;
    }
    if ((x = pwr_json_get(doc, "env"))) {
        if (x->type != PWR_JSON_OBJECT && x->type != PWR_JSON_ARRAY) {
            return pwr_sp_fail(sp, x, "env", "expected {\"NAME\": \"value\"}"
                               " or [\"NAME=value\"]");
        }
        sc->env = pwr_sc_alloc(sp, x->n + 1, sizeof(pw_str_t));
        if (sc->env == NULL) {
            return pwr_sp_oom(sp);
        }
        for (i = 0; i < x->n; i++) {
            const pwr_json_t *e = x->items[i];
            char *kv;

            if (pwr_expect(sp, e, PWR_JSON_STRING, "env") != 0) {
                return -1;
            }
            if (x->type == PWR_JSON_ARRAY) {
                sc->env[i].data = e->str;
                sc->env[i].len = e->len;
                continue;
            }
            kv = pwr_sc_alloc(sp, x->key_lens[i] + e->len + 2, 1);
            if (kv == NULL) {
                return pwr_sp_oom(sp);
            }
            memcpy(kv, x->keys[i], x->key_lens[i]);
            kv[x->key_lens[i]] = '=';
            memcpy(kv + x->key_lens[i] + 1, e->str, e->len);
            sc->env[i].data = kv;
            sc->env[i].len = x->key_lens[i] + 1 + e->len;
        }
        sc->nenv = x->n;
    }
    if ((x = pwr_json_get(doc, "foreign_functions"))) {
        if (pwr_expect(sp, x, PWR_JSON_OBJECT, "foreign_functions") != 0) {
            return -1;
        }
        sc->foreign = pwr_sc_alloc(sp, x->n + 1, sizeof(pwr_foreign_t));
        if (sc->foreign == NULL) {
            return pwr_sp_oom(sp);
        }
        for (i = 0; i < x->n; i++) {
            sc->foreign[i].name.data = x->keys[i];
            sc->foreign[i].name.len = x->key_lens[i];
            if (pwr_get_bytes(sp, x->items[i], "foreign_functions",
                              &sc->foreign[i].result) != 0)
            {
                return -1;
            }
        }
        sc->nforeign = x->n;
    }
    if ((x = pwr_json_get(doc, "queues"))) {
        if (pwr_expect(sp, x, PWR_JSON_ARRAY, "queues") != 0) {
            return -1;
        }
        sc->queues = pwr_sc_alloc(sp, x->n + 1, sizeof(pw_str_t));
        if (sc->queues == NULL) {
            return pwr_sp_oom(sp);
        }
        for (i = 0; i < x->n; i++) {
            if (pwr_get_text(sp, x->items[i], "queues", &sc->queues[i])
                != 0)
            {
                return -1;
            }
        }
        sc->nqueues = x->n;
    }
    if ((x = pwr_json_get(doc, "enqueue"))
        && pwr_get_enqueues(sp, x, "enqueue", &sc->enqueue) != 0)
    {
        return -1;
    }
    if ((x = pwr_json_get(doc, "exchanges"))) {
        if (pwr_expect(sp, x, PWR_JSON_ARRAY, "exchanges") != 0) {
            return -1;
        }
        sc->exchanges = pwr_sc_alloc(sp, x->n + 1, sizeof(pwr_exchange_t));
        if (sc->exchanges == NULL) {
            return pwr_sp_oom(sp);
        }
        for (i = 0; i < x->n; i++) {
            if (pwr_get_exchange(sp, x->items[i], &sc->exchanges[i]) != 0) {
                return -1;
            }
        }
        sc->nexchanges = x->n;
    }
    return 0;
}

int
pwr_scenario_parse(const char *text, size_t len, pwr_scenario_t *sc,
    char *err, size_t errlen)
{
    pwr_sp_t sp;

    memset(sc, 0, sizeof(*sc));
    sc->plugin_name = PW_STR("pwrun");
    sc->log_level = PW_LOG_TRACE;
    sc->clock_ns = 1700000000ULL * 1000000000ULL;
    sc->max_wait_ticks = 10;
    /* a runaway plugin must not hang a test run; 0 in the scenario lifts it */
    sc->max_call_ms = 10000;
    if (text == NULL) {
        return 0;
    }
    if (pwr_json_parse(text, len, PWR_JSON_DEFAULT_DEPTH, &sc->doc, err,
                       errlen) != 0)
    {
        return -1;
    }
    memset(&sp, 0, sizeof(sp));
    sp.sc = sc;
    sp.err = err;
    sp.errlen = errlen;
    if (pwr_get_top(&sp, sc->doc) != 0) {
        pwr_scenario_free(sc);
        return -1;
    }
    return 0;
}

void
pwr_scenario_free(pwr_scenario_t *sc)
{
    pwr_alloc_t *a, *next;

    for (a = sc->allocs; a; a = next) {
        next = a->next;
        free(a);
    }
    pwr_json_free(sc->doc);
    memset(sc, 0, sizeof(*sc));
}
