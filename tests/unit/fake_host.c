/*
 * The recording fake host (see fake_host.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"

static char *
fh_dup(const char *data, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL) {
        abort();
    }
    if (len) {
        memcpy(p, data, len);
    }
    p[len] = '\0';
    return p;
}

char *
fh_pairs_str(const pw_pairs_t *p)
{
    size_t i, len = 0, off = 0;
    char *s;

    for (i = 0; p && i < p->n; i++) {
        len += p->pairs[i].key.len + p->pairs[i].value.len + 3;
    }
    s = malloc(len + 1);
    if (s == NULL) {
        abort();
    }
    for (i = 0; p && i < p->n; i++) {
        memcpy(s + off, p->pairs[i].key.data, p->pairs[i].key.len);
        off += p->pairs[i].key.len;
        memcpy(s + off, ": ", 2);
        off += 2;
        memcpy(s + off, p->pairs[i].value.data, p->pairs[i].value.len);
        off += p->pairs[i].value.len;
        s[off++] = '\n';
    }
    s[off] = '\0';
    return s;
}

static fh_rec_t *
fh_rec(const pw_hctx_t *c, const char *kind)
{
    fake_host_t *fh = c->host;
    fh_rec_t *r;

    if (fh->nrecs == fh->cap) {
        fh->cap = fh->cap ? fh->cap * 2 : 64;
        fh->recs = realloc(fh->recs, fh->cap * sizeof(fh_rec_t));
        if (fh->recs == NULL) {
            abort();
        }
    }
    r = &fh->recs[fh->nrecs++];
    memset(r, 0, sizeof(*r));
    snprintf(r->kind, sizeof(r->kind), "%s", kind);
    r->plugin = c->plugin;
    r->plugin_data = c->plugin_data;
    r->stream = c->stream;
    r->stream_data = c->stream_data;
    return r;
}

static void
fh_s1(fh_rec_t *r, pw_str_t s)
{
    r->s1 = fh_dup(s.data, s.len);
    r->s1len = s.len;
}

static void
fh_s2(fh_rec_t *r, pw_str_t s)
{
    r->s2 = fh_dup(s.data, s.len);
    r->s2len = s.len;
}

static void
fh_s3(fh_rec_t *r, pw_str_t s)
{
    r->s3 = fh_dup(s.data, s.len);
    r->s3len = s.len;
}

static fake_host_t *
FH(const pw_hctx_t *c)
{
    return c->host;
}

/* ---- the host functions ---- */

static void
fh_log(const pw_hctx_t *c, pw_log_level_t level, pw_str_t msg)
{
    fh_rec_t *r = fh_rec(c, "log");

    r->t = level;
    fh_s1(r, msg);
}

static pw_log_level_t
fh_log_level(const pw_hctx_t *c)
{
    fh_rec(c, "log_level");
    return FH(c)->level;
}

static uint64_t
fh_clock_ns(const pw_hctx_t *c, int monotonic)
{
    fh_rec(c, "clock_ns")->t = (uint32_t) monotonic;
    return monotonic ? FH(c)->mono_ns : FH(c)->wall_ns;
}

static int
fh_map_pairs(const pw_hctx_t *c, pw_map_type_t t, pw_pairs_t *out)
{
    fh_rec_t *r = fh_rec(c, "map_pairs");

    r->t = t;
    pw_map_pairs(FH(c)->maps[t], out);
    return PW_OK;
}

static int
fh_map_get(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t *value)
{
    fh_rec_t *r = fh_rec(c, "map_get");

    r->t = t;
    fh_s1(r, key);
    r->rc = pw_map_get(FH(c)->maps[t], key, value);
    return r->rc;
}

static int
fh_map_set_pairs(const pw_hctx_t *c, pw_map_type_t t, const pw_pairs_t *p)
{
    fh_rec_t *r = fh_rec(c, "map_set_pairs");

    r->t = t;
    r->pairs = fh_pairs_str(p);
    if (FH(c)->fail_rc) {
        return r->rc = FH(c)->fail_rc;
    }
    return r->rc = pw_map_set_pairs(FH(c)->maps[t], p);
}

static int
fh_map_add(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t value)
{
    fh_rec_t *r = fh_rec(c, "map_add");

    r->t = t;
    fh_s1(r, key);
    fh_s2(r, value);
    if (FH(c)->fail_rc) {
        return r->rc = FH(c)->fail_rc;
    }
    return r->rc = pw_map_add(FH(c)->maps[t], key, value);
}

static int
fh_map_replace(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t value)
{
    fh_rec_t *r = fh_rec(c, "map_replace");

    r->t = t;
    fh_s1(r, key);
    fh_s2(r, value);
    return r->rc = pw_map_replace(FH(c)->maps[t], key, value);
}

static int
fh_map_remove(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key)
{
    fh_rec_t *r = fh_rec(c, "map_remove");

    r->t = t;
    fh_s1(r, key);
    return r->rc = pw_map_remove(FH(c)->maps[t], key);
}

static int
fh_buffer_get(const pw_hctx_t *c, pw_buffer_type_t t, pw_str_t *out)
{
    fake_host_t *fh = FH(c);
    fh_rec_t *r = fh_rec(c, "buffer_get");

    r->t = t;
    if (t > PW_BUFFER_UPSTREAM_DATA || fh->bufs[t] == NULL) {
        return r->rc = PW_ENOTFOUND;
    }
    out->data = fh->bufs[t];
    out->len = fh->buflens[t];
    return PW_OK;
}

static int
fh_buffer_set(const pw_hctx_t *c, pw_buffer_type_t t, uint32_t start,
    uint32_t size, pw_str_t value)
{
    fake_host_t *fh = FH(c);
    fh_rec_t *r = fh_rec(c, "buffer_set");
    size_t len = fh->buflens[t], nlen;
    char *nb;

    r->t = t;
    r->a = start;
    r->b = size;
    fh_s1(r, value);
    if (fh->fail_rc) {
        return r->rc = fh->fail_rc;
    }
    if (t > PW_BUFFER_UPSTREAM_DATA || start > len || size > len - start) {
        /* the core must have normalised start and size */
        return r->rc = PW_EINVAL;
    }
    nlen = len - size + value.len;
    nb = malloc(nlen + 1);
    if (nb == NULL) {
        abort();
    }
    if (start) {
        memcpy(nb, fh->bufs[t], start);
    }
    if (value.len) {
        memcpy(nb + start, value.data, value.len);
    }
    if (len - start - size) {
        memcpy(nb + start + value.len, fh->bufs[t] + start + size,
               len - start - size);
    }
    nb[nlen] = '\0';
    free(fh->bufs[t]);
    fh->bufs[t] = nb;
    fh->buflens[t] = nlen;
    return PW_OK;
}

static int
fh_send_local_response(const pw_hctx_t *c, uint32_t status,
    pw_str_t details, pw_str_t body, const pw_pairs_t *headers,
    int32_t grpc_status)
{
    fh_rec_t *r = fh_rec(c, "send_local_response");

    r->t = status;
    fh_s1(r, details);
    fh_s2(r, body);
    r->pairs = fh_pairs_str(headers);
    r->i = grpc_status;
    return PW_OK;
}

static int
fh_continue_stream(const pw_hctx_t *c, pw_stream_type_t t)
{
    fh_rec(c, "continue_stream")->t = t;
    return PW_OK;
}

static int
fh_close_stream(const pw_hctx_t *c, pw_stream_type_t t)
{
    fh_rec(c, "close_stream")->t = t;
    return PW_OK;
}

static int
fh_clear_route_cache(const pw_hctx_t *c)
{
    fh_rec(c, "clear_route_cache");
    return PW_OK;
}

static void
fh_join_path(const pw_str_t *path, size_t nseg, char *out, size_t outlen)
{
    size_t i, off = 0;

    out[0] = '\0';
    for (i = 0; i < nseg; i++) {
        off += (size_t) snprintf(out + off, off < outlen ? outlen - off : 0,
                                 "%s%.*s", i ? "." : "", (int) path[i].len,
                                 path[i].data);
        if (off >= outlen) {
            break;
        }
    }
}

static int
fh_get_property(const pw_hctx_t *c, const pw_str_t *path, size_t nseg,
    pw_str_t *out)
{
    fake_host_t *fh = FH(c);
    fh_rec_t *r = fh_rec(c, "get_property");
    char joined[256];
    size_t i;

    fh_join_path(path, nseg, joined, sizeof(joined));
    fh_s1(r, (pw_str_t){ joined, strlen(joined) });
    r->t = (uint32_t) nseg;
    for (i = 0; i < fh->nprops; i++) {
        if (strcmp(fh->props[i].path, joined) == 0) {
            out->data = fh->props[i].value;
            out->len = fh->props[i].len;
            return r->rc = PW_OK;
        }
    }
    return r->rc = PW_ENOTFOUND;
}

static int
fh_set_property(const pw_hctx_t *c, const pw_str_t *path, size_t nseg,
    pw_str_t value)
{
    fh_rec_t *r = fh_rec(c, "set_property");
    char joined[256];

    fh_join_path(path, nseg, joined, sizeof(joined));
    fh_s1(r, (pw_str_t){ joined, strlen(joined) });
    fh_s2(r, value);
    r->t = (uint32_t) nseg;
    return r->rc = fh_set_prop(FH(c), joined, value.data, value.len);
}

static int
fh_upstream_rc(const pw_hctx_t *c, pw_str_t upstream)
{
    const char *u = FH(c)->unknown_upstream;

    if (u && strlen(u) == upstream.len
        && memcmp(u, upstream.data, upstream.len) == 0)
    {
        return PW_ENOTFOUND;
    }
    return PW_OK;
}

static int
fh_http_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers,
    uint32_t timeout_ms)
{
    fh_rec_t *r = fh_rec(c, "http_call");

    r->t = token;
    r->a = timeout_ms;
    fh_s1(r, upstream);
    fh_s2(r, body);
    r->pairs = fh_pairs_str(headers);
    r->pairs2 = fh_pairs_str(trailers);
    return r->rc = fh_upstream_rc(c, upstream);
}

static int
fh_grpc_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata,
    pw_str_t message, uint32_t timeout_ms)
{
    fh_rec_t *r = fh_rec(c, "grpc_call");
    char *m;

    r->t = token;
    r->a = timeout_ms;
    fh_s1(r, upstream);
    fh_s2(r, service);
    fh_s3(r, method);
    r->pairs = fh_pairs_str(metadata);
    m = fh_dup(message.data, message.len);
    r->pairs2 = m;
    return r->rc = fh_upstream_rc(c, upstream);
}

static int
fh_grpc_stream(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata)
{
    fh_rec_t *r = fh_rec(c, "grpc_stream");

    r->t = token;
    fh_s1(r, upstream);
    fh_s2(r, service);
    fh_s3(r, method);
    r->pairs = fh_pairs_str(metadata);
    return r->rc = fh_upstream_rc(c, upstream);
}

static int
fh_grpc_send(const pw_hctx_t *c, uint32_t token, pw_str_t message,
    int end_stream)
{
    fh_rec_t *r = fh_rec(c, "grpc_send");

    r->t = token;
    r->b = (uint32_t) end_stream;
    fh_s1(r, message);
    return PW_OK;
}

static int
fh_grpc_cancel(const pw_hctx_t *c, uint32_t token)
{
    fh_rec(c, "grpc_cancel")->t = token;
    return PW_OK;
}

static int
fh_grpc_close(const pw_hctx_t *c, uint32_t token)
{
    fh_rec(c, "grpc_close")->t = token;
    return PW_OK;
}

static int
fh_set_tick_period(const pw_hctx_t *c, uint32_t ms)
{
    fh_rec(c, "set_tick_period")->t = ms;
    return PW_OK;
}

static int
fh_random(const pw_hctx_t *c, uint8_t *buf, size_t len)
{
    fh_rec(c, "random")->t = (uint32_t) len;
    memset(buf, 0xAB, len);
    return PW_OK;
}

/* ---- setup and queries ---- */

void
fh_init(fake_host_t *fh)
{
    int i;

    memset(fh, 0, sizeof(*fh));
    fh->host.log = fh_log;
    fh->host.log_level = fh_log_level;
    fh->host.clock_ns = fh_clock_ns;
    fh->host.map_pairs = fh_map_pairs;
    fh->host.map_get = fh_map_get;
    fh->host.map_set_pairs = fh_map_set_pairs;
    fh->host.map_add = fh_map_add;
    fh->host.map_replace = fh_map_replace;
    fh->host.map_remove = fh_map_remove;
    fh->host.buffer_get = fh_buffer_get;
    fh->host.buffer_set = fh_buffer_set;
    fh->host.send_local_response = fh_send_local_response;
    fh->host.continue_stream = fh_continue_stream;
    fh->host.close_stream = fh_close_stream;
    fh->host.clear_route_cache = fh_clear_route_cache;
    fh->host.get_property = fh_get_property;
    fh->host.set_property = fh_set_property;
    fh->host.http_call = fh_http_call;
    fh->host.grpc_call = fh_grpc_call;
    fh->host.grpc_stream = fh_grpc_stream;
    fh->host.grpc_send = fh_grpc_send;
    fh->host.grpc_cancel = fh_grpc_cancel;
    fh->host.grpc_close = fh_grpc_close;
    fh->host.set_tick_period = fh_set_tick_period;
    fh->host.random = fh_random;
    for (i = 0; i < 4; i++) {
        if (pw_map_new(&fh->maps[i]) != PW_OK) {
            abort();
        }
    }
    fh->level = PW_LOG_INFO;
    fh->wall_ns = 1700000000123456789ull;
    fh->mono_ns = 42424242ull;
}

void
fh_reset_log(fake_host_t *fh)
{
    size_t i;

    for (i = 0; i < fh->nrecs; i++) {
        free(fh->recs[i].s1);
        free(fh->recs[i].s2);
        free(fh->recs[i].s3);
        free(fh->recs[i].pairs);
        free(fh->recs[i].pairs2);
    }
    fh->nrecs = 0;
}

void
fh_free(fake_host_t *fh)
{
    size_t i;

    fh_reset_log(fh);
    free(fh->recs);
    for (i = 0; i < 4; i++) {
        pw_map_free(fh->maps[i]);
        free(fh->bufs[i]);
    }
    for (i = 0; i < fh->nprops; i++) {
        free(fh->props[i].value);
    }
    memset(fh, 0, sizeof(*fh));
}

int
fh_set_body(fake_host_t *fh, pw_buffer_type_t t, const char *data)
{
    free(fh->bufs[t]);
    fh->bufs[t] = data ? fh_dup(data, strlen(data)) : NULL;
    fh->buflens[t] = data ? strlen(data) : 0;
    return PW_OK;
}

int
fh_set_prop(fake_host_t *fh, const char *path, const void *v, size_t len)
{
    size_t i;

    for (i = 0; i < fh->nprops; i++) {
        if (strcmp(fh->props[i].path, path) == 0) {
            break;
        }
    }
    if (i == fh->nprops) {
        if (fh->nprops == FH_MAX_PROPS) {
            return PW_EFULL;
        }
        fh->nprops++;
        snprintf(fh->props[i].path, sizeof(fh->props[i].path), "%s", path);
    } else {
        free(fh->props[i].value);
    }
    fh->props[i].value = fh_dup(v, len);
    fh->props[i].len = len;
    return PW_OK;
}

size_t
fh_count(const fake_host_t *fh, const char *kind)
{
    size_t i, n = 0;

    for (i = 0; i < fh->nrecs; i++) {
        if (kind == NULL || strcmp(fh->recs[i].kind, kind) == 0) {
            n++;
        }
    }
    return n;
}

const fh_rec_t *
fh_find(const fake_host_t *fh, const char *kind, size_t nth)
{
    size_t i;

    for (i = 0; i < fh->nrecs; i++) {
        if (strcmp(fh->recs[i].kind, kind) == 0 && nth-- == 0) {
            return &fh->recs[i];
        }
    }
    return NULL;
}

const fh_rec_t *
fh_last(const fake_host_t *fh, const char *kind)
{
    size_t i;

    for (i = fh->nrecs; i > 0; i--) {
        if (strcmp(fh->recs[i - 1].kind, kind) == 0) {
            return &fh->recs[i - 1];
        }
    }
    return NULL;
}

const fh_rec_t *
fh_log_find(const fake_host_t *fh, const char *needle)
{
    size_t i;

    for (i = 0; i < fh->nrecs; i++) {
        if (strcmp(fh->recs[i].kind, "log") == 0
            && strstr(fh->recs[i].s1, needle) != NULL)
        {
            return &fh->recs[i];
        }
    }
    return NULL;
}
