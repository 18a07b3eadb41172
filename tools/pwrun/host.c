/*
 * pwrun: the host interface. Every callback records what the plugin asked
 * for in the report and answers from the scenario. Nothing here calls
 * back into the plugin: answers to callouts and queue notifications are
 * queued and delivered by the player once the current callback returned,
 * as an event loop would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pwrun.h"

#define PWR_RUN(c) ((pwr_run_t *) (c)->host)
#define PWR_EX(c) ((pwr_ex_t *) (c)->stream_data)

static const char *const pwr_stream_names[] = {
    "request", "response", "downstream", "upstream"
};

/* ---- report helpers --------------------------------------------------- */

void
pwr_record(pwr_run_t *run, pwr_json_t *event)
{
    pwr_jn_push(run->ex ? run->ex->actions : run->events, event);
}

void
pwr_host_error(pwr_run_t *run, const char *what, const char *detail)
{
    pwr_json_t *e;

    e = pwr_jn_push(run->host_errors, pwr_jn_object());
    pwr_jn_set(e, "what", pwr_jn_cstr(what));
    pwr_jn_set(e, "detail", pwr_jn_cstr(detail));
}

pwr_json_t *
pwr_pairs_json(const pw_pairs_t *p)
{
    pwr_json_t *a, *pair;
    size_t i;

    a = pwr_jn_array();
    for (i = 0; p && i < p->n; i++) {
        pair = pwr_jn_push(a, pwr_jn_array());
        pwr_jn_push(pair, pwr_jn_bytes(p->pairs[i].key.data,
                                       p->pairs[i].key.len));
        pwr_jn_push(pair, pwr_jn_bytes(p->pairs[i].value.data,
                                       p->pairs[i].value.len));
    }
    return a;
}

pwr_json_t *
pwr_map_json(const pw_map_t *m)
{
    pw_pairs_t p = { NULL, 0 };

    if (m) {
        pw_map_pairs(m, &p);
    }
    return pwr_pairs_json(&p);
}

static pwr_json_t *
pwr_path_json(const pw_str_t *path, size_t nseg)
{
    pwr_buf_t b = { 0 };
    pwr_json_t *v;
    size_t i;

    for (i = 0; i < nseg; i++) {
        if (i) {
            pwr_buf_addc(&b, '.');
        }
        pwr_buf_add(&b, path[i].data, path[i].len);
    }
    v = b.oom ? NULL : pwr_jn_bytes(b.data, b.len);
    pwr_buf_free(&b);
    return v;
}

void
pwr_note_qid(pwr_run_t *run, uint32_t qid)
{
    uint32_t *p;
    size_t i;

    for (i = 0; i < run->nqids; i++) {
        if (run->qids[i] == qid) {
            return;
        }
    }
    p = realloc(run->qids, (run->nqids + 1) * sizeof(*p));
    if (p == NULL) {
        return;
    }
    run->qids = p;
    run->qids[run->nqids++] = qid;
}

/* ---- logging and time ------------------------------------------------- */

static void
pwr_log(const pw_hctx_t *c, pw_log_level_t level, pw_str_t msg)
{
    pwr_run_t *run = PWR_RUN(c);
    pwr_json_t *e;

    e = pwr_jn_push(run->logs, pwr_jn_object());
    pwr_jn_set(e, "level", pwr_jn_cstr(pwr_log_level_name(level)));
    pwr_jn_set(e, "message", pwr_jn_bytes(msg.data, msg.len));
}

static pw_log_level_t
pwr_log_level(const pw_hctx_t *c)
{
    return PWR_RUN(c)->sc->log_level;
}

static uint64_t
pwr_clock_ns(const pw_hctx_t *c, int monotonic)
{
    pwr_run_t *run = PWR_RUN(c);

    return monotonic ? run->mono_ns : run->wall_ns;
}

/* ---- header maps ------------------------------------------------------ */

static pw_map_t *
pwr_stream_map(const pw_hctx_t *c, pw_map_type_t t)
{
    pwr_ex_t *ex = PWR_EX(c);

    if (ex == NULL || (unsigned) t > PW_MAP_HTTP_RESPONSE_TRAILERS
        || !ex->have_map[t])
    {
        return NULL;
    }
    return ex->maps[t];
}

static int
pwr_map_pairs(const pw_hctx_t *c, pw_map_type_t t, pw_pairs_t *out)
{
    pw_map_t *m = pwr_stream_map(c, t);

    if (m == NULL) {
        return PW_ENOTFOUND;
    }
    pw_map_pairs(m, out);
    return PW_OK;
}

/* Every value of key joined with ",", borrowed from run->scratch. */
static int
pwr_join_values(pwr_run_t *run, const pw_map_t *m, pw_str_t key,
    pw_str_t *value)
{
    pw_pairs_t p;
    size_t i, found = 0;

    pw_map_pairs(m, &p);
    run->scratch.len = 0;
    for (i = 0; i < p.n; i++) {
        if (p.pairs[i].key.len != key.len
            || strncasecmp(p.pairs[i].key.data, key.data, key.len) != 0)
        {
            continue;
        }
        if (found++) {
            pwr_buf_addc(&run->scratch, ',');
        }
        pwr_buf_add(&run->scratch, p.pairs[i].value.data,
                    p.pairs[i].value.len);
    }
    if (found == 0) {
        return PW_ENOTFOUND;
    }
    if (run->scratch.oom) {
        return PW_ENOMEM;
    }
    value->data = run->scratch.len ? run->scratch.data : "";
    value->len = run->scratch.len;
    return PW_OK;
}

static int
pwr_map_get(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t *value)
{
    pw_map_t *m = pwr_stream_map(c, t);

    if (m == NULL) {
        return PW_ENOTFOUND;
    }
    return pwr_join_values(PWR_RUN(c), m, key, value);
}

static int
pwr_map_set_pairs(const pw_hctx_t *c, pw_map_type_t t, const pw_pairs_t *p)
{
    pw_map_t *m = pwr_stream_map(c, t);

    return m ? pw_map_set_pairs(m, p) : PW_ENOTFOUND;
}

static int
pwr_map_add(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t value)
{
    pw_map_t *m = pwr_stream_map(c, t);

    return m ? pw_map_add(m, key, value) : PW_ENOTFOUND;
}

static int
pwr_map_replace(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t value)
{
    pw_map_t *m = pwr_stream_map(c, t);

    return m ? pw_map_replace(m, key, value) : PW_ENOTFOUND;
}

static int
pwr_map_remove(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key)
{
    pw_map_t *m = pwr_stream_map(c, t);

    return m ? pw_map_remove(m, key) : PW_ENOTFOUND;
}

/* ---- buffers ---------------------------------------------------------- */

static int
pwr_buffer_get(const pw_hctx_t *c, pw_buffer_type_t t, pw_str_t *out)
{
    pwr_ex_t *ex = PWR_EX(c);

    if (ex == NULL || (unsigned) t > PW_BUFFER_UPSTREAM_DATA
        || !ex->have_buf[t])
    {
        return PW_ENOTFOUND;
    }
    out->data = ex->pending[t].len ? ex->pending[t].data : "";
    out->len = ex->pending[t].len;
    return PW_OK;
}

static int
pwr_buffer_set(const pw_hctx_t *c, pw_buffer_type_t t, uint32_t start,
    uint32_t size, pw_str_t value)
{
    pwr_ex_t *ex = PWR_EX(c);
    pwr_buf_t *b, nb = { 0 };
    size_t s, n;

    if (ex == NULL || (unsigned) t > PW_BUFFER_UPSTREAM_DATA
        || !ex->have_buf[t])
    {
        return PW_ENOTFOUND;
    }
    b = &ex->pending[t];
    s = start < b->len ? start : b->len;
    n = size < b->len - s ? size : b->len - s;
    if (b->len - n > PW_MAX_BUFFER_BYTES
        || value.len > PW_MAX_BUFFER_BYTES - (b->len - n))
    {
        return PW_ELIMIT;
    }
    pwr_buf_add(&nb, b->data, s);
    pwr_buf_add(&nb, value.data, value.len);
    pwr_buf_add(&nb, b->data + s, b->len - s - n);
    if (nb.oom) {
        pwr_buf_free(&nb);
        return PW_ENOMEM;
    }
    pwr_buf_free(b);
    *b = nb;
    return PW_OK;
}

/* ---- stream control --------------------------------------------------- */

static int
pwr_send_local_response(const pw_hctx_t *c, uint32_t status,
    pw_str_t details, pw_str_t body, const pw_pairs_t *headers,
    int32_t grpc_status)
{
    pwr_ex_t *ex = PWR_EX(c);
    pwr_json_t *lr, *e;

    if (ex == NULL || ex->sc->kind != PWR_EX_HTTP) {
        return PW_ENOTFOUND;
    }
    if (ex->local) {
        /* one local response per stream, as a proxy can send only one */
        return PW_EINVAL;
    }
    ex->local = 1;
    ex->ended = 1;
    lr = pwr_jn_object();
    pwr_jn_set(lr, "status", pwr_jn_int(status));
    pwr_jn_set(lr, "details", pwr_jn_bytes(details.data, details.len));
    pwr_jn_set(lr, "headers", pwr_pairs_json(headers));
    pwr_jn_set(lr, "body", pwr_jn_bytes(body.data, body.len));
    pwr_jn_set(lr, "grpc_status", pwr_jn_int(grpc_status));
    ex->local_response = lr;

    e = pwr_jn_object();
    pwr_jn_set(e, "host", pwr_jn_cstr("send_local_response"));
    pwr_jn_set(e, "status", pwr_jn_int(status));
    pwr_record(ex->run, e);
    return PW_OK;
}

static int
pwr_continue_stream(const pw_hctx_t *c, pw_stream_type_t t)
{
    pwr_ex_t *ex = PWR_EX(c);
    pwr_json_t *e;

    if (ex == NULL) {
        return PW_ENOTFOUND;
    }
    if ((unsigned) t > PW_STREAM_UPSTREAM) {
        return PW_EINVAL;
    }
    ex->resume[t] = 1;
    e = pwr_jn_object();
    pwr_jn_set(e, "host", pwr_jn_cstr("continue_stream"));
    pwr_jn_set(e, "stream", pwr_jn_cstr(pwr_stream_names[t]));
    pwr_record(ex->run, e);
    return PW_OK;
}

static int
pwr_close_stream(const pw_hctx_t *c, pw_stream_type_t t)
{
    pwr_ex_t *ex = PWR_EX(c);
    pwr_json_t *e;

    if (ex == NULL) {
        return PW_ENOTFOUND;
    }
    if ((unsigned) t > PW_STREAM_UPSTREAM) {
        return PW_EINVAL;
    }
    ex->ended = 1;
    if (ex->closed == NULL) {
        ex->closed = pwr_stream_names[t];
    }
    e = pwr_jn_object();
    pwr_jn_set(e, "host", pwr_jn_cstr("close_stream"));
    pwr_jn_set(e, "stream", pwr_jn_cstr(pwr_stream_names[t]));
    pwr_record(ex->run, e);
    return PW_OK;
}

static int
pwr_clear_route_cache(const pw_hctx_t *c)
{
    pwr_json_t *e;

    e = pwr_jn_object();
    pwr_jn_set(e, "host", pwr_jn_cstr("clear_route_cache"));
    pwr_record(PWR_RUN(c), e);
    return PW_OK;
}

/* ---- properties ------------------------------------------------------- */

static int
pwr_path_eq(const pwr_prop_t *p, const pw_str_t *path, size_t nseg)
{
    size_t i;

    if (p->nseg != nseg) {
        return 0;
    }
    for (i = 0; i < nseg; i++) {
        if (p->segs[i].len != path[i].len
            || memcmp(p->segs[i].data, path[i].data, path[i].len) != 0)
        {
            return 0;
        }
    }
    return 1;
}

static const pwr_prop_t *
pwr_props_find(const pwr_props_t *props, const pw_str_t *path, size_t nseg)
{
    size_t i;

    /* later entries win: set_property appends nothing twice, but a
     * scenario may list a path twice */
    for (i = props->n; i > 0; i--) {
        if (pwr_path_eq(&props->items[i - 1], path, nseg)) {
            return &props->items[i - 1];
        }
    }
    return NULL;
}

static int
pwr_props_set(pwr_props_t *props, const pw_str_t *path, size_t nseg,
    pw_str_t value)
{
    pwr_prop_t *items, *p;
    size_t i, total;
    char *blk, *q;

    total = nseg * sizeof(pw_str_t) + value.len + 1;
    for (i = 0; i < nseg; i++) {
        total += path[i].len;
    }
    blk = malloc(total);
    if (blk == NULL) {
        return PW_ENOMEM;
    }
    p = (pwr_prop_t *) pwr_props_find(props, path, nseg);
    if (p == NULL) {
        items = realloc(props->items, (props->n + 1) * sizeof(*items));
        if (items == NULL) {
            free(blk);
            return PW_ENOMEM;
        }
        props->items = items;
        p = &props->items[props->n++];
    } else {
        free(p->segs);
    }
    p->segs = (pw_str_t *) blk;
    p->nseg = nseg;
    q = blk + nseg * sizeof(pw_str_t);
    for (i = 0; i < nseg; i++) {
        memcpy(q, path[i].data, path[i].len);
        p->segs[i].data = q;
        p->segs[i].len = path[i].len;
        q += path[i].len;
    }
    if (value.len) {
        memcpy(q, value.data, value.len);
    }
    p->value.data = q;
    p->value.len = value.len;
    return PW_OK;
}

void
pwr_props_clear(pwr_props_t *p)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        free(p->items[i].segs);
    }
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

static int
pwr_seg_is(const pw_str_t *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->data, lit, s->len) == 0;
}

/* request.* and response.* derived from the exchange's header maps. */
static int
pwr_derived_property(pwr_run_t *run, pwr_ex_t *ex, const pw_str_t *path,
    size_t nseg, pw_str_t *out)
{
    static const struct {
        const char *name;
        const char *header;
    } req[] = {
        { "path", ":path" }, { "url_path", ":path" }, { "query", ":path" },
        { "host", ":authority" }, { "scheme", ":scheme" },
        { "method", ":method" }, { "id", "x-request-id" },
    };
    pw_str_t v;
    size_t i;
    const char *q;
    uint64_t code = 0;

    if (ex == NULL || nseg < 2 || ex->sc->kind != PWR_EX_HTTP) {
        return PW_ENOTFOUND;
    }
    if (pwr_seg_is(&path[0], "request")) {
        if (!ex->have_map[PW_MAP_HTTP_REQUEST_HEADERS]) {
            return PW_ENOTFOUND;
        }
        if (nseg == 3 && pwr_seg_is(&path[1], "headers")) {
            return pwr_join_values(run, ex->maps[PW_MAP_HTTP_REQUEST_HEADERS],
                                   path[2], out);
        }
        if (nseg != 2) {
            return PW_ENOTFOUND;
        }
        for (i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
            if (!pwr_seg_is(&path[1], req[i].name)) {
                continue;
            }
            if (pwr_join_values(run, ex->maps[PW_MAP_HTTP_REQUEST_HEADERS],
                                (pw_str_t) { req[i].header,
                                             strlen(req[i].header) },
                                &v) != PW_OK)
            {
                return PW_ENOTFOUND;
            }
            q = memchr(v.data, '?', v.len);
            if (pwr_seg_is(&path[1], "url_path") && q) {
                v.len = (size_t) (q - v.data);
            } else if (pwr_seg_is(&path[1], "query")) {
                if (q == NULL) {
                    v.len = 0;
                } else {
                    v.len -= (size_t) (q + 1 - v.data);
                    v.data = q + 1;
                }
            }
            *out = v;
            return PW_OK;
        }
        return PW_ENOTFOUND;
    }
    if (pwr_seg_is(&path[0], "response")) {
        if (!ex->have_map[PW_MAP_HTTP_RESPONSE_HEADERS]) {
            return PW_ENOTFOUND;
        }
        if (nseg == 3 && pwr_seg_is(&path[1], "headers")) {
            return pwr_join_values(run,
                                   ex->maps[PW_MAP_HTTP_RESPONSE_HEADERS],
                                   path[2], out);
        }
        if (nseg == 2 && pwr_seg_is(&path[1], "code")) {
            if (pwr_join_values(run, ex->maps[PW_MAP_HTTP_RESPONSE_HEADERS],
                                PW_STR(":status"), &v) != PW_OK)
            {
                return PW_ENOTFOUND;
            }
            for (i = 0; i < v.len && i < 10; i++) {
                if (v.data[i] < '0' || v.data[i] > '9') {
                    return PW_ENOTFOUND;
                }
                code = code * 10 + (uint64_t) (v.data[i] - '0');
            }
            /* an int property: 8 bytes little-endian, as Envoy */
            run->scratch.len = 0;
            for (i = 0; i < 8; i++) {
                pwr_buf_addc(&run->scratch, (char) (code >> (8 * i)));
            }
            if (run->scratch.oom) {
                return PW_ENOMEM;
            }
            out->data = run->scratch.data;
            out->len = 8;
            return PW_OK;
        }
    }
    return PW_ENOTFOUND;
}

static int
pwr_get_property(const pw_hctx_t *c, const pw_str_t *path, size_t nseg,
    pw_str_t *out)
{
    pwr_run_t *run = PWR_RUN(c);
    pwr_ex_t *ex = PWR_EX(c);
    const pwr_prop_t *p = NULL;

    if (ex) {
        p = pwr_props_find(&ex->set_props, path, nseg);
        if (p == NULL) {
            p = pwr_props_find(&ex->sc->props, path, nseg);
        }
        if (p == NULL
            && pwr_derived_property(run, ex, path, nseg, out) == PW_OK)
        {
            return PW_OK;
        }
    }
    if (p == NULL) {
        p = pwr_props_find(&run->set_props, path, nseg);
    }
    if (p == NULL) {
        p = pwr_props_find(&run->sc->props, path, nseg);
    }
    if (p == NULL) {
        return PW_ENOTFOUND;
    }
    out->data = p->value.len ? p->value.data : "";
    out->len = p->value.len;
    return PW_OK;
}

static int
pwr_set_property(const pw_hctx_t *c, const pw_str_t *path, size_t nseg,
    pw_str_t value)
{
    pwr_run_t *run = PWR_RUN(c);
    pwr_ex_t *ex = PWR_EX(c);
    pwr_json_t *e;
    int rc;

    if (nseg == 0) {
        return PW_EINVAL;
    }
    rc = pwr_props_set(ex ? &ex->set_props : &run->set_props, path, nseg,
                       value);
    if (rc != PW_OK) {
        return rc;
    }
    e = pwr_jn_push(ex ? ex->props_set : run->props_set, pwr_jn_object());
    pwr_jn_set(e, "path", pwr_path_json(path, nseg));
    pwr_jn_set(e, "value", pwr_jn_bytes(value.data, value.len));
    return PW_OK;
}

/* ---- callouts --------------------------------------------------------- */

static pwr_callout_t *
pwr_find_callout(pwr_callouts_t *cs, pw_str_t upstream)
{
    size_t i;

    for (i = 0; i < cs->n; i++) {
        if (cs->items[i].upstream.len == upstream.len
            && memcmp(cs->items[i].upstream.data, upstream.data,
                      upstream.len) == 0)
        {
            return &cs->items[i];
        }
    }
    return NULL;
}

/*
 * The canned answer for a call to upstream: the exchange's table first,
 * then the scenario's. *found is 0 for an unknown upstream; the answer is
 * NULL when a list of answers ran out (a failure).
 */
static const pwr_answer_t *
pwr_pick_answer(pwr_run_t *run, pw_str_t upstream, int *found)
{
    pwr_callout_t *co = NULL;
    size_t i;

    if (run->ex) {
        co = pwr_find_callout((pwr_callouts_t *) &run->ex->sc->callouts,
                              upstream);
    }
    if (co == NULL) {
        co = pwr_find_callout(&run->sc->callouts, upstream);
    }
    *found = co != NULL;
    if (co == NULL) {
        return NULL;
    }
    i = co->used++;
    if (co->repeat) {
        return &co->answers[0];
    }
    return i < co->n ? &co->answers[i] : NULL;
}

static int
pwr_deliver_later(pwr_run_t *run, pwr_dlv_kind_t kind, uint32_t token,
    const pwr_answer_t *a, size_t index)
{
    pwr_delivery_t *d;
    size_t cap;

    if (run->dlv_head > 0 && run->dlv_head == run->ndlv) {
        run->dlv_head = 0;
        run->ndlv = 0;
    }
    if (run->ndlv == run->dlv_cap) {
        cap = run->dlv_cap ? run->dlv_cap * 2 : 16;
        d = realloc(run->dlv, cap * sizeof(*d));
        if (d == NULL) {
            return PW_ENOMEM;
        }
        run->dlv = d;
        run->dlv_cap = cap;
    }
    d = &run->dlv[run->ndlv++];
    d->kind = kind;
    d->token = token;
    d->answer = a;
    d->index = index;
    d->dropped = 0;
    return PW_OK;
}

static pwr_json_t *
pwr_callout_record(pwr_run_t *run, const char *kind, uint32_t token,
    pw_str_t upstream)
{
    pwr_json_t *e;

    e = pwr_jn_push(run->ex ? run->ex->callouts : run->callouts,
                    pwr_jn_object());
    pwr_jn_set(e, "kind", pwr_jn_cstr(kind));
    pwr_jn_set(e, "token", pwr_jn_int(token));
    pwr_jn_set(e, "upstream", pwr_jn_bytes(upstream.data, upstream.len));
    return e;
}

static const char *
pwr_answer_name(int found, const pwr_answer_t *a)
{
    if (!found) {
        return "refused: unknown upstream";
    }
    if (a == NULL || a->kind == PWR_ANSWER_FAIL) {
        return "fail";
    }
    return a->kind == PWR_ANSWER_NONE ? "none" : "ok";
}

static int
pwr_http_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers,
    uint32_t timeout_ms)
{
    pwr_run_t *run = PWR_RUN(c);
    const pwr_answer_t *a;
    pwr_json_t *e;
    int found;

    a = pwr_pick_answer(run, upstream, &found);
    e = pwr_callout_record(run, "http", token, upstream);
    pwr_jn_set(e, "headers", pwr_pairs_json(headers));
    pwr_jn_set(e, "body", pwr_jn_bytes(body.data, body.len));
    pwr_jn_set(e, "trailers", pwr_pairs_json(trailers));
    pwr_jn_set(e, "timeout_ms", pwr_jn_int(timeout_ms));
    pwr_jn_set(e, "answer", pwr_jn_cstr(pwr_answer_name(found, a)));
    if (!found) {
        return PW_ENOTFOUND;
    }
    if (a && a->kind == PWR_ANSWER_NONE) {
        return PW_OK;
    }
    return pwr_deliver_later(run, PWR_DLV_HTTP, token,
                             a && a->kind == PWR_ANSWER_OK ? a : NULL, 0);
}

/* Queue the canned gRPC answer. A stream gets all of it: metadata,
 * messages, close. A unary call gets what Envoy delivers: its one answer
 * message when the status is OK, else only the close. */
static int
pwr_grpc_answer(pwr_run_t *run, uint32_t token, const pwr_answer_t *a,
    int unary)
{
    size_t i;
    int rc = PW_OK;

    if (a && a->kind == PWR_ANSWER_NONE) {
        return PW_OK;
    }
    if (a == NULL || a->kind == PWR_ANSWER_FAIL) {
        return pwr_deliver_later(run, PWR_DLV_GRPC_CLOSE, token, NULL, 0);
    }
    if (unary) {
        if (a->status == 0 && a->messages.n > 0) {
            return pwr_deliver_later(run, PWR_DLV_GRPC_MESSAGE, token, a, 0);
        }
        return pwr_deliver_later(run, PWR_DLV_GRPC_CLOSE, token, a, 0);
    }
    if (a->has_initial_metadata) {
        rc = pwr_deliver_later(run, PWR_DLV_GRPC_INITIAL, token, a, 0);
    }
    for (i = 0; rc == PW_OK && i < a->messages.n; i++) {
        rc = pwr_deliver_later(run, PWR_DLV_GRPC_MESSAGE, token, a, i);
    }
    if (rc == PW_OK && a->has_trailing_metadata) {
        rc = pwr_deliver_later(run, PWR_DLV_GRPC_TRAILING, token, a, 0);
    }
    if (rc == PW_OK && a->close) {
        rc = pwr_deliver_later(run, PWR_DLV_GRPC_CLOSE, token, a, 0);
    }
    return rc;
}

static int
pwr_grpc_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata,
    pw_str_t message, uint32_t timeout_ms)
{
    pwr_run_t *run = PWR_RUN(c);
    const pwr_answer_t *a;
    pwr_json_t *e;
    int found;

    a = pwr_pick_answer(run, upstream, &found);
    e = pwr_callout_record(run, "grpc", token, upstream);
    pwr_jn_set(e, "service", pwr_jn_bytes(service.data, service.len));
    pwr_jn_set(e, "method", pwr_jn_bytes(method.data, method.len));
    pwr_jn_set(e, "metadata", pwr_pairs_json(metadata));
    pwr_jn_set(e, "message", pwr_jn_bytes(message.data, message.len));
    pwr_jn_set(e, "timeout_ms", pwr_jn_int(timeout_ms));
    pwr_jn_set(e, "answer", pwr_jn_cstr(pwr_answer_name(found, a)));
    if (!found) {
        return PW_ENOTFOUND;
    }
    return pwr_grpc_answer(run, token, a, 1);
}

static int
pwr_grpc_stream(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata)
{
    pwr_run_t *run = PWR_RUN(c);
    const pwr_answer_t *a;
    pwr_json_t *e;
    int found;

    a = pwr_pick_answer(run, upstream, &found);
    e = pwr_callout_record(run, "grpc_stream", token, upstream);
    pwr_jn_set(e, "service", pwr_jn_bytes(service.data, service.len));
    pwr_jn_set(e, "method", pwr_jn_bytes(method.data, method.len));
    pwr_jn_set(e, "metadata", pwr_pairs_json(metadata));
    pwr_jn_set(e, "sent", pwr_jn_array());
    pwr_jn_set(e, "answer", pwr_jn_cstr(pwr_answer_name(found, a)));
    if (!found) {
        return PW_ENOTFOUND;
    }
    return pwr_grpc_answer(run, token, a, 0);
}

static pwr_json_t *
pwr_find_record(pwr_json_t *list, uint32_t token)
{
    const pwr_json_t *t;
    size_t i;

    for (i = 0; list && i < list->n; i++) {
        t = pwr_json_get(list->items[i], "token");
        if (t && t->integer == (int64_t) token) {
            return list->items[i];
        }
    }
    return NULL;
}

static pwr_json_t *
pwr_callout_by_token(pwr_run_t *run, uint32_t token)
{
    pwr_json_t *r = NULL;

    if (run->ex) {
        r = pwr_find_record(run->ex->callouts, token);
    }
    return r ? r : pwr_find_record(run->callouts, token);
}

static int
pwr_grpc_send(const pw_hctx_t *c, uint32_t token, pw_str_t message,
    int end_stream)
{
    pwr_run_t *run = PWR_RUN(c);
    pwr_json_t *r, *sent, *e;

    r = pwr_callout_by_token(run, token);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }
    sent = (pwr_json_t *) pwr_json_get(r, "sent");
    if (sent == NULL) {
        sent = pwr_jn_set(r, "sent", pwr_jn_array());
    }
    e = pwr_jn_push(sent, pwr_jn_object());
    pwr_jn_set(e, "message", pwr_jn_bytes(message.data, message.len));
    pwr_jn_set(e, "end_stream", pwr_jn_bool(end_stream));
    return PW_OK;
}

static int
pwr_grpc_end(const pw_hctx_t *c, uint32_t token, const char *how)
{
    pwr_run_t *run = PWR_RUN(c);
    pwr_json_t *r;
    size_t i;

    r = pwr_callout_by_token(run, token);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }
    if (pwr_json_get(r, "ended_by_plugin") == NULL) {
        pwr_jn_set(r, "ended_by_plugin", pwr_jn_cstr(how));
    }
    for (i = run->dlv_head; i < run->ndlv; i++) {
        if (run->dlv[i].token == token && run->dlv[i].kind != PWR_DLV_QUEUE) {
            run->dlv[i].dropped = 1;
        }
    }
    return PW_OK;
}

static int
pwr_grpc_cancel(const pw_hctx_t *c, uint32_t token)
{
    return pwr_grpc_end(c, token, "cancel");
}

static int
pwr_grpc_close(const pw_hctx_t *c, uint32_t token)
{
    return pwr_grpc_end(c, token, "close");
}

/* ---- timers, queues, foreign functions -------------------------------- */

static int
pwr_set_tick_period(const pw_hctx_t *c, uint32_t ms)
{
    pwr_run_t *run = PWR_RUN(c);
    pwr_json_t *e;

    run->tick_ms = ms;
    e = pwr_jn_object();
    pwr_jn_set(e, "host", pwr_jn_cstr("set_tick_period"));
    pwr_jn_set(e, "ms", pwr_jn_int(ms));
    pwr_record(run, e);
    return PW_OK;
}

void
pwr_queue_ready(void *data, uint32_t qid, uint64_t owner)
{
    pwr_run_t *run = data;

    pwr_note_qid(run, qid);
    if (owner == PWR_QUEUE_OWNER_PWRUN) {
        return;
    }
    if (pwr_deliver_later(run, PWR_DLV_QUEUE, qid, NULL, 0) != PW_OK) {
        pwr_host_error(run, "queue_ready", "out of memory");
    }
}

int
pwr_foreign_fn(void *data, const pw_hctx_t *c, pw_str_t args,
    uint8_t **result, size_t *rlen)
{
    const pwr_foreign_t *f = data;
    pwr_run_t *run = PWR_RUN(c);
    pwr_json_t *e;

    e = pwr_jn_push(run->foreign_calls, pwr_jn_object());
    pwr_jn_set(e, "name", pwr_jn_bytes(f->name.data, f->name.len));
    pwr_jn_set(e, "args", pwr_jn_bytes(args.data, args.len));
    *result = NULL;
    *rlen = 0;
    if (f->result.len == 0) {
        return PW_OK;
    }
    *result = malloc(f->result.len);
    if (*result == NULL) {
        return PW_ENOMEM;
    }
    memcpy(*result, f->result.data, f->result.len);
    *rlen = f->result.len;
    return PW_OK;
}

const pw_host_t pwr_host = {
    .log = pwr_log,
    .log_level = pwr_log_level,
    .clock_ns = pwr_clock_ns,
    .map_pairs = pwr_map_pairs,
    .map_get = pwr_map_get,
    .map_set_pairs = pwr_map_set_pairs,
    .map_add = pwr_map_add,
    .map_replace = pwr_map_replace,
    .map_remove = pwr_map_remove,
    .buffer_get = pwr_buffer_get,
    .buffer_set = pwr_buffer_set,
    .send_local_response = pwr_send_local_response,
    .continue_stream = pwr_continue_stream,
    .close_stream = pwr_close_stream,
    .clear_route_cache = pwr_clear_route_cache,
    .get_property = pwr_get_property,
    .set_property = pwr_set_property,
    .http_call = pwr_http_call,
    .grpc_call = pwr_grpc_call,
    .grpc_stream = pwr_grpc_stream,
    .grpc_send = pwr_grpc_send,
    .grpc_cancel = pwr_grpc_cancel,
    .grpc_close = pwr_grpc_close,
    .set_tick_period = pwr_set_tick_period,
    .random = NULL,
};
