/*
 * The host interface of the nginx module: what the core asks of nginx.
 * Callbacks never finalize, resume or answer a request themselves: they
 * record what the plugin asked and the request code acts on it after the
 * call into the plugin returns (or from a posted event).
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_pw.h"
#include "ngx_http_pw_headers.h"
#include "ngx_http_pw_properties.h"
#include "ngx_http_pw_callout.h"


static ngx_pool_t  *ngx_http_pw_root_pool;


static ngx_log_t *
ngx_http_pw_hlog(const pw_hctx_t *c)
{
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);
    ngx_pw_instance_t   *inst = c->host;

    if (f) {
        return f->ctx->r->connection->log;
    }

    return inst ? inst->log : ngx_cycle->log;
}


static int
ngx_http_pw_rc(ngx_int_t rc)
{
    switch (rc) {
    case NGX_OK:
        return PW_OK;
    case NGX_DECLINED:
        return PW_ENOTFOUND;
    default:
        return PW_ENOMEM;
    }
}


/* Header writes refuse bad names and values (CR/LF, bad :path, ...) with
 * NGX_ERROR: the plugin gets BAD_ARGUMENT. */
static int
ngx_http_pw_write_rc(ngx_int_t rc)
{
    return rc == NGX_ERROR ? PW_EINVAL : ngx_http_pw_rc(rc);
}


/* ---- logging ---- */


static void
ngx_http_pw_log(const pw_hctx_t *c, pw_log_level_t level, pw_str_t msg)
{
    ngx_uint_t          nlevel;
    ngx_log_t          *log;
    ngx_pw_instance_t  *inst = c->host;

    switch (level) {
    case PW_LOG_TRACE:
    case PW_LOG_DEBUG:
        nlevel = NGX_LOG_DEBUG;
        break;
    case PW_LOG_INFO:
        nlevel = NGX_LOG_INFO;
        break;
    case PW_LOG_WARN:
        nlevel = NGX_LOG_WARN;
        break;
    case PW_LOG_ERROR:
        nlevel = NGX_LOG_ERR;
        break;
    default:
        nlevel = NGX_LOG_CRIT;
        break;
    }

    log = ngx_http_pw_hlog(c);

    ngx_log_error(nlevel, log, 0, "[wasm] %V: %*s", &inst->module->name,
                  msg.len, msg.data);
}


static pw_log_level_t
ngx_http_pw_log_level(const pw_hctx_t *c)
{
    ngx_uint_t  l;

    l = ngx_http_pw_hlog(c)->log_level;

    if (l >= NGX_LOG_DEBUG) {
        return PW_LOG_DEBUG;
    }
    if (l >= NGX_LOG_INFO) {
        return PW_LOG_INFO;
    }
    if (l >= NGX_LOG_WARN) {
        return PW_LOG_WARN;
    }
    if (l >= NGX_LOG_ERR) {
        return PW_LOG_ERROR;
    }

    return PW_LOG_CRITICAL;
}


/* ---- response trailers (r->headers_out.trailers: add_trailer, grpc_pass)
 * deleted elements have hash 0, as nginx's own filters do ---- */


static ngx_uint_t
ngx_http_pw_trailer_is(ngx_table_elt_t *h, pw_str_t key)
{
    return h->hash != 0 && h->key.len == key.len
           && ngx_strncasecmp(h->key.data, (u_char *) key.data, key.len)
              == 0;
}


#define ngx_http_pw_trailers_each(r, part, h, i)                            \
    for (part = &(r)->headers_out.trailers.part, h = part->elts, i = 0;    \
         part; i++)                                                         \
        if (i >= part->nelts) {                                             \
            part = part->next;                                              \
            h = part ? part->elts : NULL;                                   \
            i = (ngx_uint_t) -1;                                            \
        } else


ngx_uint_t
ngx_http_pw_trailers_count(ngx_http_request_t *r)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;
    ngx_http_pw_trailers_each(r, part, h, i) {
        if (h[i].hash) {
            n++;
        }
    }

    return n;
}


static int
ngx_http_pw_trailers_pairs(ngx_http_request_t *r, pw_pairs_t *out)
{
    ngx_uint_t        i, n;
    pw_pair_t        *p;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = ngx_http_pw_trailers_count(r);
    p = ngx_palloc(r->pool, (n ? n : 1) * sizeof(pw_pair_t));
    if (p == NULL) {
        return PW_ENOMEM;
    }

    n = 0;
    ngx_http_pw_trailers_each(r, part, h, i) {
        if (h[i].hash) {
            p[n].key.data = (const char *) h[i].key.data;
            p[n].key.len = h[i].key.len;
            p[n].value.data = (const char *) h[i].value.data;
            p[n].value.len = h[i].value.len;
            n++;
        }
    }

    out->pairs = p;
    out->n = n;

    return PW_OK;
}


static int
ngx_http_pw_trailers_get(ngx_http_request_t *r, pw_str_t key,
    pw_str_t *value)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ngx_http_pw_trailers_each(r, part, h, i) {
        if (ngx_http_pw_trailer_is(&h[i], key)) {
            value->data = (const char *) h[i].value.data;
            value->len = h[i].value.len;
            return PW_OK;
        }
    }

    return PW_ENOTFOUND;
}


static int
ngx_http_pw_trailers_remove(ngx_http_request_t *r, pw_str_t key)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ngx_http_pw_trailers_each(r, part, h, i) {
        if (key.len == 0 || ngx_http_pw_trailer_is(&h[i], key)) {
            h[i].hash = 0;
        }
    }

    return PW_OK;
}


static int
ngx_http_pw_trailers_add(ngx_http_request_t *r, pw_str_t key,
    pw_str_t value)
{
    ngx_table_elt_t  *h;

    if (key.len == 0) {
        return PW_EINVAL;
    }

    h = ngx_list_push(&r->headers_out.trailers);
    if (h == NULL) {
        return PW_ENOMEM;
    }

    h->key.data = ngx_pnalloc(r->pool, key.len);
    h->value.data = ngx_pnalloc(r->pool, value.len ? value.len : 1);
    if (h->key.data == NULL || h->value.data == NULL) {
        h->hash = 0;
        return PW_ENOMEM;
    }

    h->key.len = key.len;
    ngx_memcpy(h->key.data, key.data, key.len);
    h->value.len = value.len;
    ngx_memcpy(h->value.data, value.data, value.len);
    h->lowcase_key = h->key.data;
    h->hash = 1;

    return PW_OK;
}


static int
ngx_http_pw_trailers_op(ngx_http_request_t *r, ngx_uint_t op, pw_str_t key,
    pw_str_t value, const pw_pairs_t *pairs)
{
    size_t  i;
    int     rc;

    switch (op) {
    case 0:                                 /* add */
        return ngx_http_pw_trailers_add(r, key, value);

    case 1:                                 /* replace */
        (void) ngx_http_pw_trailers_remove(r, key);
        return ngx_http_pw_trailers_add(r, key, value);

    case 2:                                 /* remove */
        return ngx_http_pw_trailers_remove(r, key);

    default:                                /* set pairs */
        key.len = 0;
        (void) ngx_http_pw_trailers_remove(r, key);
        for (i = 0; i < pairs->n; i++) {
            rc = ngx_http_pw_trailers_add(r, pairs->pairs[i].key,
                                          pairs->pairs[i].value);
            if (rc != PW_OK) {
                return rc;
            }
        }
        return PW_OK;
    }
}


/* ---- header maps ---- */


/* The request of c and which map of it, or NULL. */
static ngx_http_request_t *
ngx_http_pw_map_of(const pw_hctx_t *c, pw_map_type_t t, ngx_uint_t *resp)
{
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    if (f == NULL) {
        return NULL;
    }

    switch (t) {
    case PW_MAP_HTTP_REQUEST_HEADERS:
        *resp = 0;
        return f->ctx->r;
    case PW_MAP_HTTP_RESPONSE_HEADERS:
        *resp = 1;
        return f->ctx->r;
    case PW_MAP_HTTP_RESPONSE_TRAILERS:
        *resp = 2;
        return f->ctx->r;
    default:
        /* HTTP/1.x trailers: nginx does not pass them on */
        return NULL;
    }
}


static int
ngx_http_pw_map_pairs(const pw_hctx_t *c, pw_map_type_t t, pw_pairs_t *out)
{
    ngx_uint_t           resp;
    ngx_http_request_t  *r;

    r = ngx_http_pw_map_of(c, t, &resp);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }

    if (resp == 2) {
        return ngx_http_pw_trailers_pairs(r, out);
    }

    return ngx_http_pw_rc(ngx_http_pw_headers_pairs(r, resp, r->pool, out));
}


static int
ngx_http_pw_map_get(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t *value)
{
    ngx_uint_t           resp;
    ngx_http_request_t  *r;

    r = ngx_http_pw_map_of(c, t, &resp);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }

    if (resp == 2) {
        return ngx_http_pw_trailers_get(r, key, value);
    }

    return ngx_http_pw_rc(ngx_http_pw_headers_get(r, resp, r->pool, key,
                                                  value));
}


static int
ngx_http_pw_map_set_pairs(const pw_hctx_t *c, pw_map_type_t t,
    const pw_pairs_t *p)
{
    pw_str_t             key_none = { "", 0 };
    ngx_uint_t           resp;
    ngx_http_request_t  *r;

    r = ngx_http_pw_map_of(c, t, &resp);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }

    if (resp == 2) {
        return ngx_http_pw_trailers_op(r, 3, key_none, key_none, p);
    }

    return ngx_http_pw_write_rc(ngx_http_pw_headers_set_pairs(r, resp, p));
}


NGX_PW_HOT static int
ngx_http_pw_map_add(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t value)
{
    ngx_uint_t           resp;
    ngx_http_request_t  *r;

    r = ngx_http_pw_map_of(c, t, &resp);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }

    if (resp == 2) {
        return ngx_http_pw_trailers_op(r, 0, key, value, NULL);
    }

    return ngx_http_pw_write_rc(ngx_http_pw_headers_add(r, resp, key, value));
}


static int
ngx_http_pw_map_replace(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
    pw_str_t value)
{
    ngx_uint_t           resp;
    ngx_http_request_t  *r;

    r = ngx_http_pw_map_of(c, t, &resp);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }

    if (resp == 2) {
        return ngx_http_pw_trailers_op(r, 1, key, value, NULL);
    }

    return ngx_http_pw_write_rc(ngx_http_pw_headers_replace(r, resp, key, value));
}


static int
ngx_http_pw_map_remove(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key)
{
    ngx_uint_t           resp;
    ngx_http_request_t  *r;

    r = ngx_http_pw_map_of(c, t, &resp);
    if (r == NULL) {
        return PW_ENOTFOUND;
    }

    if (resp == 2) {
        return ngx_http_pw_trailers_op(r, 2, key, key, NULL);
    }

    return ngx_http_pw_write_rc(ngx_http_pw_headers_remove(r, resp, key));
}


/* ---- bodies ---- */


static int
ngx_http_pw_buffer_get(const pw_hctx_t *c, pw_buffer_type_t t,
    pw_str_t *out)
{
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    if (f == NULL || f->body_type != (ngx_uint_t) t) {
        return PW_ENOTFOUND;
    }

    out->data = (const char *) f->body;
    out->len = f->body_len;

    return PW_OK;
}


static int
ngx_http_pw_buffer_set(const pw_hctx_t *c, pw_buffer_type_t t,
    uint32_t start, uint32_t size, pw_str_t value)
{
    ngx_int_t            rc;
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    if (f == NULL || f->body_type != (ngx_uint_t) t) {
        return PW_ENOTFOUND;
    }

    rc = ngx_http_pw_body_splice(f, start, size, (const u_char *) value.data,
                                 value.len);

    return rc == NGX_OK ? PW_OK : rc == NGX_DECLINED ? PW_ELIMIT : PW_ENOMEM;
}


/* ---- stream control ---- */


static ngx_str_t
ngx_http_pw_pstrdup(ngx_pool_t *pool, const char *data, size_t len)
{
    ngx_str_t  s;

    s.len = len;
    s.data = len ? ngx_pnalloc(pool, len) : (u_char *) "";
    if (s.data == NULL) {
        s.len = 0;
        return s;
    }
    if (len) {
        ngx_memcpy(s.data, data, len);
    }

    return s;
}


static int
ngx_http_pw_send_local_response(const pw_hctx_t *c, uint32_t status,
    pw_str_t details, pw_str_t body, const pw_pairs_t *headers,
    int32_t grpc_status)
{
    size_t               i;
    ngx_pool_t          *pool;
    ngx_keyval_t        *kv;
    ngx_http_pw_ctx_t   *ctx;
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    if (f == NULL) {
        return PW_ENOTFOUND;
    }

    ctx = f->ctx;

    if (ctx->lr_sent) {
        return PW_EINVAL;
    }

    if (status < 100 || status > 999) {
        return PW_EINVAL;
    }

    pool = ctx->r->pool;

    ctx->lr_status = status;
    ctx->lr_body = ngx_http_pw_pstrdup(pool, body.data, body.len);
    ctx->lr_details = ngx_http_pw_pstrdup(pool, details.data, details.len);
    ctx->lr_grpc_status = grpc_status;

    ctx->lr_headers = ngx_array_create(pool, headers->n ? headers->n : 1,
                                       sizeof(ngx_keyval_t));
    if (ctx->lr_headers == NULL
        || (body.len && ctx->lr_body.len != body.len))
    {
        return PW_ENOMEM;
    }

    for (i = 0; i < headers->n; i++) {
        kv = ngx_array_push(ctx->lr_headers);
        if (kv == NULL) {
            return PW_ENOMEM;
        }
        kv->key = ngx_http_pw_pstrdup(pool, headers->pairs[i].key.data,
                                      headers->pairs[i].key.len);
        kv->value = ngx_http_pw_pstrdup(pool, headers->pairs[i].value.data,
                                        headers->pairs[i].value.len);
    }

    ctx->lr_pending = 1;
    ngx_http_pw_post_resume(ctx);

    return PW_OK;
}


static int
ngx_http_pw_continue_stream(const pw_hctx_t *c, pw_stream_type_t t)
{
    ngx_http_pw_ctx_t   *ctx;
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    if (f == NULL) {
        return PW_ENOTFOUND;
    }

    if (t != PW_STREAM_HTTP_REQUEST && t != PW_STREAM_HTTP_RESPONSE) {
        return PW_EINVAL;
    }

    ctx = f->ctx;
    ctx->resume_pending = 1;

    if (t == PW_STREAM_HTTP_REQUEST
        && (ctx->waiting == NGX_HTTP_PW_WAIT_REQ_HEADERS
            || ctx->waiting == NGX_HTTP_PW_WAIT_REQ_BODY))
    {
        ngx_http_pw_post_resume(ctx);
    }

    if (t == PW_STREAM_HTTP_RESPONSE
        && (ctx->waiting == NGX_HTTP_PW_WAIT_RESP_HEADERS
            || ctx->waiting == NGX_HTTP_PW_WAIT_RESP_BODY))
    {
        ngx_http_pw_post_resume(ctx);
    }

    return PW_OK;
}


static int
ngx_http_pw_close_stream(const pw_hctx_t *c, pw_stream_type_t t)
{
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    if (f == NULL) {
        return PW_ENOTFOUND;
    }

    if (t != PW_STREAM_HTTP_REQUEST && t != PW_STREAM_HTTP_RESPONSE) {
        return PW_EINVAL;
    }

    f->ctx->close_pending = 1;
    ngx_http_pw_post_resume(f->ctx);

    return PW_OK;
}


static int
ngx_http_pw_clear_route_cache(const pw_hctx_t *c)
{
    /* nginx picked the location before the plugin ran; a changed :path
     * reaches proxy_pass without a new location match */
    return PW_OK;
}


/* ---- properties ---- */


static ngx_pool_t *
ngx_http_pw_prop_pool(const pw_hctx_t *c, ngx_http_pw_prop_ctx_t *pc)
{
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    ngx_memzero(pc, sizeof(*pc));

    if (f) {
        pc->r = f->ctx->r;
        pc->code_details = f->ctx->code_details;
        return f->ctx->r->pool;
    }

    /* root contexts: a worker pool, emptied before each use (the core
     * copies the value before the next call) */
    if (ngx_http_pw_root_pool == NULL) {
        ngx_http_pw_root_pool = ngx_create_pool(4096, ngx_cycle->log);
    } else {
        ngx_reset_pool(ngx_http_pw_root_pool);
    }

    return ngx_http_pw_root_pool;
}


static int
ngx_http_pw_get_property(const pw_hctx_t *c, const pw_str_t *path,
    size_t nseg, pw_str_t *out)
{
    ngx_pool_t              *pool;
    ngx_http_pw_prop_ctx_t   pc;

    pool = ngx_http_pw_prop_pool(c, &pc);
    if (pool == NULL) {
        return PW_ENOMEM;
    }

    return ngx_http_pw_rc(ngx_http_pw_property_get(&pc, pool, path, nseg,
                                                   out));
}


static int
ngx_http_pw_set_property(const pw_hctx_t *c, const pw_str_t *path,
    size_t nseg, pw_str_t value)
{
    ngx_pool_t              *pool;
    ngx_http_pw_prop_ctx_t   pc;

    pool = ngx_http_pw_prop_pool(c, &pc);
    if (pool == NULL) {
        return PW_ENOMEM;
    }

    return ngx_http_pw_rc(ngx_http_pw_property_set(&pc, path, nseg, value));
}


/* ---- timers ---- */


static int
ngx_http_pw_set_tick_period(const pw_hctx_t *c, uint32_t ms)
{
    ngx_pw_root_t  *root = c->plugin_data;

    if (root == NULL) {
        return PW_EINVAL;
    }

    root->tick_period = ms;

    if (root->tick.timer_set) {
        ngx_del_timer(&root->tick);
    }

    if (ms) {
        ngx_add_timer(&root->tick, ms);
    }

    return PW_OK;
}


const pw_host_t  ngx_http_pw_host = {
    .log = ngx_http_pw_log,
    .log_level = ngx_http_pw_log_level,
    .map_pairs = ngx_http_pw_map_pairs,
    .map_get = ngx_http_pw_map_get,
    .map_set_pairs = ngx_http_pw_map_set_pairs,
    .map_add = ngx_http_pw_map_add,
    .map_replace = ngx_http_pw_map_replace,
    .map_remove = ngx_http_pw_map_remove,
    .buffer_get = ngx_http_pw_buffer_get,
    .buffer_set = ngx_http_pw_buffer_set,
    .send_local_response = ngx_http_pw_send_local_response,
    .continue_stream = ngx_http_pw_continue_stream,
    .close_stream = ngx_http_pw_close_stream,
    .clear_route_cache = ngx_http_pw_clear_route_cache,
    .get_property = ngx_http_pw_get_property,
    .set_property = ngx_http_pw_set_property,
    .http_call = ngx_http_pw_http_call,
    .grpc_call = ngx_http_pw_grpc_call,
    .grpc_stream = ngx_http_pw_grpc_stream,
    .grpc_send = ngx_http_pw_grpc_send,
    .grpc_cancel = ngx_http_pw_grpc_cancel,
    .grpc_close = ngx_http_pw_grpc_close,
    .set_tick_period = ngx_http_pw_set_tick_period,
};
