/*
 * The request's and the response's header maps as Proxy-Wasm sees them,
 * read from and written to where nginx 1.22 keeps them.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_pw.h"
#include "ngx_http_pw_headers.h"


/* A pass over a map: counts, collects pairs or joins the values of a key. */
typedef struct {
    ngx_pool_t                *pool;     /* NULL: count only, no values */
    ngx_str_t                  want;     /* len 0: every key */
    ngx_uint_t                 n;
    size_t                     total;    /* bytes of the values seen */
    ngx_str_t                  first;
    pw_pair_t                 *pairs;    /* store pairs here */
    ngx_uint_t                 npairs;
    u_char                    *join;     /* copy values here, ','-joined */
} ngx_http_pw_walk_t;


/* How a response header is kept in r->headers_out besides the list. */
typedef enum {
    NGX_HTTP_PW_OUT_PTR = 0,    /* a shortcut pointer to its element */
    NGX_HTTP_PW_OUT_HIDE,       /* nginx emits its own while it is NULL */
    NGX_HTTP_PW_OUT_ARRAY,      /* an array of pointers to its elements */
    NGX_HTTP_PW_OUT_TYPE,       /* content_type and friends, no element */
    NGX_HTTP_PW_OUT_LENGTH,     /* content_length_n, no element */
    NGX_HTTP_PW_OUT_MODIFIED    /* last_modified_time and its element */
} ngx_http_pw_out_kind_e;


typedef struct {
    ngx_str_t                  name;
    ngx_uint_t                 offset;
    ngx_http_pw_out_kind_e     kind;
} ngx_http_pw_out_field_t;


typedef struct {
    ngx_str_t                  name;
    ngx_uint_t                 method;
} ngx_http_pw_method_t;


static ngx_int_t ngx_http_pw_walk(ngx_http_request_t *r, ngx_uint_t response,
    ngx_http_pw_walk_t *w);
static ngx_int_t ngx_http_pw_walk_request(ngx_http_request_t *r,
    ngx_http_pw_walk_t *w);
static ngx_int_t ngx_http_pw_walk_response(ngx_http_request_t *r,
    ngx_http_pw_walk_t *w);
static ngx_uint_t ngx_http_pw_wants(ngx_http_pw_walk_t *w, const char *key,
    size_t len);
static ngx_int_t ngx_http_pw_emit(ngx_http_pw_walk_t *w, u_char *key,
    size_t len, ngx_uint_t lowcase, ngx_str_t *value);

static ngx_uint_t ngx_http_pw_key_is(pw_str_t key, const char *name,
    size_t len);
static ngx_uint_t ngx_http_pw_elt_is(ngx_table_elt_t *h, pw_str_t key);
static ngx_int_t ngx_http_pw_check(ngx_uint_t response, pw_str_t key,
    pw_str_t value);
static ngx_int_t ngx_http_pw_token(pw_str_t s);
static ngx_int_t ngx_http_pw_check_path(pw_str_t path);
static ngx_int_t ngx_http_pw_host_server(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_str_t *server);
static u_char *ngx_http_pw_copy(ngx_pool_t *pool, pw_str_t s);
static ngx_table_elt_t *ngx_http_pw_push(ngx_pool_t *pool, ngx_list_t *list,
    pw_str_t key, pw_str_t value, ngx_uint_t response);

static ngx_int_t ngx_http_pw_req_add(ngx_http_request_t *r, pw_str_t key,
    pw_str_t value);
static ngx_int_t ngx_http_pw_req_remove(ngx_http_request_t *r, pw_str_t key);
static ngx_int_t ngx_http_pw_req_pseudo(ngx_http_request_t *r, pw_str_t key,
    pw_str_t value);
static ngx_int_t ngx_http_pw_req_set_path(ngx_http_request_t *r,
    pw_str_t path);
static ngx_int_t ngx_http_pw_req_set_authority(ngx_http_request_t *r,
    pw_str_t value);
static ngx_uint_t ngx_http_pw_req_drop(ngx_list_t *list, pw_str_t key);
static void ngx_http_pw_req_rescan(ngx_http_request_t *r);
static ngx_int_t ngx_http_pw_req_derive(ngx_http_request_t *r,
    ngx_uint_t host, ngx_uint_t authorization);
static ngx_int_t ngx_http_pw_hex(u_char c);
static size_t ngx_http_pw_unescape_path(u_char *dst, u_char *src,
    size_t len);
static size_t ngx_http_pw_remove_dots(u_char *uri, size_t len);

static ngx_http_pw_out_field_t *ngx_http_pw_out_field(pw_str_t key);
static void ngx_http_pw_out_zero(ngx_http_request_t *r, pw_str_t key);
static ngx_int_t ngx_http_pw_out_clear(ngx_http_request_t *r, pw_str_t key,
    ngx_uint_t hide);
static ngx_int_t ngx_http_pw_out_add(ngx_http_request_t *r, pw_str_t key,
    pw_str_t value, ngx_uint_t replace);
static ngx_int_t ngx_http_pw_out_set_type(ngx_http_request_t *r,
    pw_str_t value);


#define ngx_http_pw_pseudo(key)  ((key).len > 0 && (key).data[0] == ':')

#define ngx_http_pw_is(key, lit)                                            \
    ngx_http_pw_key_is(key, lit, sizeof(lit) - 1)

#define NGX_HTTP_PW_TIME_LEN  (sizeof("Mon, 28 Sep 1970 06:00:00 GMT") - 1)


static ngx_http_pw_out_field_t  ngx_http_pw_out_fields[] = {

    { ngx_string("content-type"), 0, NGX_HTTP_PW_OUT_TYPE },

    { ngx_string("content-length"),
      offsetof(ngx_http_headers_out_t, content_length),
      NGX_HTTP_PW_OUT_LENGTH },

    { ngx_string("last-modified"),
      offsetof(ngx_http_headers_out_t, last_modified),
      NGX_HTTP_PW_OUT_MODIFIED },

    { ngx_string("server"),
      offsetof(ngx_http_headers_out_t, server), NGX_HTTP_PW_OUT_HIDE },

    { ngx_string("date"),
      offsetof(ngx_http_headers_out_t, date), NGX_HTTP_PW_OUT_HIDE },

    { ngx_string("location"),
      offsetof(ngx_http_headers_out_t, location), NGX_HTTP_PW_OUT_PTR },

    { ngx_string("content-encoding"),
      offsetof(ngx_http_headers_out_t, content_encoding),
      NGX_HTTP_PW_OUT_PTR },

    { ngx_string("refresh"),
      offsetof(ngx_http_headers_out_t, refresh), NGX_HTTP_PW_OUT_PTR },

    { ngx_string("content-range"),
      offsetof(ngx_http_headers_out_t, content_range), NGX_HTTP_PW_OUT_PTR },

    { ngx_string("accept-ranges"),
      offsetof(ngx_http_headers_out_t, accept_ranges), NGX_HTTP_PW_OUT_PTR },

    { ngx_string("www-authenticate"),
      offsetof(ngx_http_headers_out_t, www_authenticate),
      NGX_HTTP_PW_OUT_PTR },

    { ngx_string("expires"),
      offsetof(ngx_http_headers_out_t, expires), NGX_HTTP_PW_OUT_PTR },

    { ngx_string("etag"),
      offsetof(ngx_http_headers_out_t, etag), NGX_HTTP_PW_OUT_PTR },

    { ngx_string("cache-control"),
      offsetof(ngx_http_headers_out_t, cache_control),
      NGX_HTTP_PW_OUT_ARRAY },

    { ngx_string("link"),
      offsetof(ngx_http_headers_out_t, link), NGX_HTTP_PW_OUT_ARRAY },

    { ngx_null_string, 0, 0 }
};


static ngx_http_pw_method_t  ngx_http_pw_methods[] = {
    { ngx_string("GET"), NGX_HTTP_GET },
    { ngx_string("HEAD"), NGX_HTTP_HEAD },
    { ngx_string("POST"), NGX_HTTP_POST },
    { ngx_string("PUT"), NGX_HTTP_PUT },
    { ngx_string("DELETE"), NGX_HTTP_DELETE },
    { ngx_string("MKCOL"), NGX_HTTP_MKCOL },
    { ngx_string("COPY"), NGX_HTTP_COPY },
    { ngx_string("MOVE"), NGX_HTTP_MOVE },
    { ngx_string("OPTIONS"), NGX_HTTP_OPTIONS },
    { ngx_string("PROPFIND"), NGX_HTTP_PROPFIND },
    { ngx_string("PROPPATCH"), NGX_HTTP_PROPPATCH },
    { ngx_string("LOCK"), NGX_HTTP_LOCK },
    { ngx_string("UNLOCK"), NGX_HTTP_UNLOCK },
    { ngx_string("PATCH"), NGX_HTTP_PATCH },
    { ngx_string("TRACE"), NGX_HTTP_TRACE },
    { ngx_string("CONNECT"), NGX_HTTP_CONNECT },
    { ngx_null_string, 0 }
};


/* ---- reading -------------------------------------------------------- */


ngx_int_t
ngx_http_pw_headers_pairs(ngx_http_request_t *r, ngx_uint_t response,
    ngx_pool_t *pool, pw_pairs_t *out)
{
    ngx_http_pw_walk_t  w;

    ngx_memzero(&w, sizeof(ngx_http_pw_walk_t));

    if (ngx_http_pw_walk(r, response, &w) != NGX_OK) {
        return NGX_ERROR;
    }

    out->n = 0;
    out->pairs = NULL;

    if (w.n == 0) {
        return NGX_OK;
    }

    w.npairs = w.n;
    w.pairs = ngx_palloc(pool, w.npairs * sizeof(pw_pair_t));
    if (w.pairs == NULL) {
        return NGX_ERROR;
    }

    w.pool = pool;
    w.n = 0;

    if (ngx_http_pw_walk(r, response, &w) != NGX_OK) {
        return NGX_ERROR;
    }

    out->pairs = w.pairs;
    out->n = w.n;

    return NGX_OK;
}


ngx_int_t
ngx_http_pw_headers_get(ngx_http_request_t *r, ngx_uint_t response,
    ngx_pool_t *pool, pw_str_t key, pw_str_t *value)
{
    u_char              *p;
    ngx_http_pw_walk_t   w;

    if (key.len == 0) {
        return NGX_DECLINED;
    }

    ngx_memzero(&w, sizeof(ngx_http_pw_walk_t));

    w.pool = pool;
    w.want.data = (u_char *) key.data;
    w.want.len = key.len;

    if (ngx_http_pw_walk(r, response, &w) != NGX_OK) {
        return NGX_ERROR;
    }

    if (w.n == 0) {
        return NGX_DECLINED;
    }

    if (w.n == 1) {
        value->data = (const char *) w.first.data;
        value->len = w.first.len;
        return NGX_OK;
    }

    /* a second pass copies: growing a buffer per value is quadratic */

    p = ngx_pnalloc(pool, w.total + w.n - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    w.join = p;
    w.n = 0;
    w.total = 0;

    if (ngx_http_pw_walk(r, response, &w) != NGX_OK) {
        return NGX_ERROR;
    }

    value->data = (const char *) p;
    value->len = w.join - p;

    return NGX_OK;
}


/* The number of elements of an ngx_list_t of ngx_table_elt_t; with
 * hashed, only those whose hash is not 0 (nginx's mark of a removed
 * header). */
NGX_PW_HOT static ngx_uint_t
ngx_http_pw_list_count(ngx_list_t *list, ngx_uint_t hashed)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;

    for (part = &list->part; part; part = part->next) {
        if (!hashed) {
            n += part->nelts;
            continue;
        }

        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            n += h[i].hash != 0;
        }
    }

    return n;
}


/*
 * What ngx_http_pw_walk would emit, counted without building anything:
 * it runs on every request and response, for the callbacks' argument.
 * The pseudo-headers and the fields nginx keeps outside the list are
 * the walk's: keep the two in step (tests/nginx/test_response_order.py
 * checks the count against the pairs).
 */
NGX_PW_HOT ngx_uint_t
ngx_http_pw_headers_count(ngx_http_request_t *r, ngx_uint_t response)
{
    ngx_http_headers_out_t  *ho;

    if (!response) {
        /* :method :path :authority :scheme */
        return 4 + ngx_http_pw_list_count(&r->headers_in.headers, 0);
    }

    ho = &r->headers_out;

    return 1                                                /* :status */
           + (ho->content_type.len != 0)
           + (ho->content_length == NULL && ho->content_length_n >= 0)
           + (ho->last_modified == NULL && ho->last_modified_time != -1)
           + ngx_http_pw_list_count(&ho->headers, 1);
}


static ngx_int_t
ngx_http_pw_walk(ngx_http_request_t *r, ngx_uint_t response,
    ngx_http_pw_walk_t *w)
{
    if (response) {
        return ngx_http_pw_walk_response(r, w);
    }

    return ngx_http_pw_walk_request(r, w);
}


static ngx_int_t
ngx_http_pw_walk_request(ngx_http_request_t *r, ngx_http_pw_walk_t *w)
{
    u_char           *p;
    size_t            len;
    uintptr_t         escape;
    ngx_str_t         v;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (ngx_http_pw_emit(w, (u_char *) ":method", 7, 1, &r->method_name)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * After an internal redirect or a rewrite the unparsed URI is stale:
     * show what nginx would send upstream instead.
     */

    if (r->valid_unparsed_uri) {
        v = r->unparsed_uri;

    } else {
        ngx_str_null(&v);

        if (w->pool && ngx_http_pw_wants(w, ":path", 5)) {
            escape = 2 * ngx_escape_uri(NULL, r->uri.data, r->uri.len,
                                        NGX_ESCAPE_URI);
            len = r->uri.len + escape + (r->args.len ? 1 + r->args.len : 0);

            p = ngx_pnalloc(w->pool, len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v.data = p;

            if (escape) {
                p = (u_char *) ngx_escape_uri(p, r->uri.data, r->uri.len,
                                              NGX_ESCAPE_URI);
            } else {
                p = ngx_cpymem(p, r->uri.data, r->uri.len);
            }

            if (r->args.len) {
                *p++ = '?';
                p = ngx_cpymem(p, r->args.data, r->args.len);
            }

            v.len = p - v.data;
        }
    }

    if (ngx_http_pw_emit(w, (u_char *) ":path", 5, 1, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v = r->headers_in.host ? r->headers_in.host->value : r->headers_in.server;

    if (ngx_http_pw_emit(w, (u_char *) ":authority", 10, 1, &v) != NGX_OK) {
        return NGX_ERROR;
    }

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        ngx_str_set(&v, "https");
    } else
#endif
    {
        ngx_str_set(&v, "http");
    }

    if (ngx_http_pw_emit(w, (u_char *) ":scheme", 7, 1, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].lowcase_key) {
            if (ngx_http_pw_emit(w, h[i].lowcase_key, h[i].key.len, 1,
                                 &h[i].value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else if (ngx_http_pw_emit(w, h[i].key.data, h[i].key.len, 0,
                                    &h[i].value)
                   != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_walk_response(ngx_http_request_t *r, ngx_http_pw_walk_t *w)
{
    u_char                  *p;
    ngx_str_t                v;
    ngx_uint_t               i;
    ngx_list_part_t         *part;
    ngx_table_elt_t         *h;
    ngx_http_headers_out_t  *ho;

    ho = &r->headers_out;

    ngx_str_null(&v);

    if (w->pool && ngx_http_pw_wants(w, ":status", 7)) {
        p = ngx_pnalloc(w->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v.data = p;
        v.len = ngx_sprintf(p, "%ui", ho->status) - p;
    }

    if (ngx_http_pw_emit(w, (u_char *) ":status", 7, 1, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the fields below are emitted by the header filters when set so */

    if (ho->content_type.len) {
        v = ho->content_type;

        if (ho->content_type_len == ho->content_type.len
            && ho->charset.len
            && w->pool
            && ngx_http_pw_wants(w, "content-type", 12))
        {
            p = ngx_pnalloc(w->pool, ho->content_type.len
                                     + sizeof("; charset=") - 1
                                     + ho->charset.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v.data = p;
            p = ngx_cpymem(p, ho->content_type.data, ho->content_type.len);
            p = ngx_cpymem(p, "; charset=", sizeof("; charset=") - 1);
            p = ngx_cpymem(p, ho->charset.data, ho->charset.len);
            v.len = p - v.data;
        }

        if (ngx_http_pw_emit(w, (u_char *) "content-type", 12, 1, &v)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ho->content_length == NULL && ho->content_length_n >= 0) {
        ngx_str_null(&v);

        if (w->pool && ngx_http_pw_wants(w, "content-length", 14)) {
            p = ngx_pnalloc(w->pool, NGX_OFF_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v.data = p;
            v.len = ngx_sprintf(p, "%O", ho->content_length_n) - p;
        }

        if (ngx_http_pw_emit(w, (u_char *) "content-length", 14, 1, &v)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ho->last_modified == NULL && ho->last_modified_time != -1) {
        ngx_str_null(&v);

        if (w->pool && ngx_http_pw_wants(w, "last-modified", 13)) {
            p = ngx_pnalloc(w->pool, NGX_HTTP_PW_TIME_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v.data = p;
            v.len = ngx_http_time(p, ho->last_modified_time) - p;
        }

        if (ngx_http_pw_emit(w, (u_char *) "last-modified", 13, 1, &v)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* lowcase_key is not set by every module that adds response headers */

    part = &ho->headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if (ngx_http_pw_emit(w, h[i].key.data, h[i].key.len, 0, &h[i].value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_pw_wants(ngx_http_pw_walk_t *w, const char *key, size_t len)
{
    return w->want.len == 0
           || (w->want.len == len
               && ngx_strncasecmp(w->want.data, (u_char *) key, len) == 0);
}


static ngx_int_t
ngx_http_pw_emit(ngx_http_pw_walk_t *w, u_char *key, size_t len,
    ngx_uint_t lowcase, ngx_str_t *value)
{
    u_char     *p;
    size_t      i;
    pw_pair_t  *pair;

    if (w->want.len
        && (w->want.len != len
            || ngx_strncasecmp(w->want.data, key, len) != 0))
    {
        return NGX_OK;
    }

    if (w->pairs) {
        if (w->n >= w->npairs) {
            return NGX_ERROR;
        }

        if (!lowcase) {
            for (i = 0; i < len; i++) {
                if (key[i] >= 'A' && key[i] <= 'Z') {
                    break;
                }
            }

            if (i < len) {
                p = ngx_pnalloc(w->pool, len);
                if (p == NULL) {
                    return NGX_ERROR;
                }

                ngx_strlow(p, key, len);
                key = p;
            }
        }

        pair = &w->pairs[w->n];
        pair->key.data = (const char *) key;
        pair->key.len = len;
        pair->value.data = (const char *) value->data;
        pair->value.len = value->len;
    }

    if (w->join) {
        if (w->n) {
            *w->join++ = ',';
        }

        w->join = ngx_cpymem(w->join, value->data, value->len);
    }

    if (w->n == 0) {
        w->first = *value;
    }

    w->total += value->len;
    w->n++;

    return NGX_OK;
}


/* ---- writing: the shared entry points ------------------------------- */


NGX_PW_HOT ngx_int_t
ngx_http_pw_headers_add(ngx_http_request_t *r, ngx_uint_t response,
    pw_str_t key, pw_str_t value)
{
    if (ngx_http_pw_check(response, key, value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (response) {
        return ngx_http_pw_out_add(r, key, value, 0);
    }

    if (ngx_http_pw_pseudo(key)) {
        return ngx_http_pw_req_pseudo(r, key, value);
    }

    return ngx_http_pw_req_add(r, key, value);
}


ngx_int_t
ngx_http_pw_headers_replace(ngx_http_request_t *r, ngx_uint_t response,
    pw_str_t key, pw_str_t value)
{
    if (ngx_http_pw_check(response, key, value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (response) {
        return ngx_http_pw_out_add(r, key, value, 1);
    }

    if (ngx_http_pw_pseudo(key)) {
        return ngx_http_pw_req_pseudo(r, key, value);
    }

    if (ngx_http_pw_req_remove(r, key) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_pw_req_add(r, key, value);
}


ngx_int_t
ngx_http_pw_headers_remove(ngx_http_request_t *r, ngx_uint_t response,
    pw_str_t key)
{
    if (key.len == 0 || ngx_http_pw_pseudo(key)) {
        return NGX_OK;
    }

    if (response) {
        return ngx_http_pw_out_clear(r, key, 1);
    }

    return ngx_http_pw_req_remove(r, key);
}


ngx_int_t
ngx_http_pw_headers_set_pairs(ngx_http_request_t *r, ngx_uint_t response,
    const pw_pairs_t *pairs)
{
    size_t            i;
    pw_str_t          key;
    ngx_uint_t        j;
    ngx_list_t       *list;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* all or nothing, as far as validation goes */

    for (i = 0; i < pairs->n; i++) {
        if (ngx_http_pw_check(response, pairs->pairs[i].key,
                              pairs->pairs[i].value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (response) {

        /* delete what the map shows, each key the way remove() does */

        if (r->headers_out.content_type.len) {
            if (ngx_http_pw_out_clear(r, PW_STR("content-type"), 1)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        r->headers_out.content_length_n = -1;
        r->headers_out.last_modified_time = -1;

        part = &r->headers_out.headers.part;
        h = part->elts;

        for (j = 0; /* void */; j++) {

            if (j >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                j = 0;
            }

            if (h[j].hash == 0) {
                continue;
            }

            key.data = (const char *) h[j].key.data;
            key.len = h[j].key.len;

            if (ngx_http_pw_out_clear(r, key, 1) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        for (i = 0; i < pairs->n; i++) {
            if (ngx_http_pw_out_add(r, pairs->pairs[i].key,
                                    pairs->pairs[i].value, 0)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    list = &r->headers_in.headers;

    list->part.nelts = 0;
    list->part.next = NULL;
    list->last = &list->part;

    for (i = 0; i < pairs->n; i++) {
        if (ngx_http_pw_pseudo(pairs->pairs[i].key)) {
            continue;
        }

        if (ngx_http_pw_push(r->pool, list, pairs->pairs[i].key,
                             pairs->pairs[i].value, 0)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    ngx_http_pw_req_rescan(r);

    if (ngx_http_pw_req_derive(r, 1, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    /* after the plain headers, so that ":authority" wins over "host" */

    for (i = 0; i < pairs->n; i++) {
        if (!ngx_http_pw_pseudo(pairs->pairs[i].key)) {
            continue;
        }

        if (ngx_http_pw_req_pseudo(r, pairs->pairs[i].key,
                                   pairs->pairs[i].value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* ---- writing: helpers ----------------------------------------------- */


static ngx_uint_t
ngx_http_pw_key_is(pw_str_t key, const char *name, size_t len)
{
    return key.len == len
           && ngx_strncasecmp((u_char *) key.data, (u_char *) name, len) == 0;
}


static ngx_uint_t
ngx_http_pw_elt_is(ngx_table_elt_t *h, pw_str_t key)
{
    return h->key.len == key.len
           && ngx_strncasecmp(h->key.data, (u_char *) key.data, key.len)
              == 0;
}


/*
 * Refuses what cannot go on the wire as given: a value with CR, LF or NUL
 * would split the header block sent upstream or to the client.
 */

NGX_PW_HOT static ngx_int_t
ngx_http_pw_check(ngx_uint_t response, pw_str_t key, pw_str_t value)
{
    u_char      c;
    size_t      i;
    ngx_str_t   server;
    ngx_int_t   status;

    if (key.len == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < value.len; i++) {
        c = (u_char) value.data[i];

        if (c == '\0' || c == CR || c == LF) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_pw_pseudo(key)) {

        if (response) {
            if (!ngx_http_pw_is(key, ":status") || value.len != 3) {
                return NGX_ERROR;
            }

            status = ngx_atoi((u_char *) value.data, value.len);

            return (status >= 100 && status <= 999) ? NGX_OK : NGX_ERROR;
        }

        if (ngx_http_pw_is(key, ":scheme")) {
            return NGX_OK;
        }

        if (ngx_http_pw_is(key, ":path")) {
            return ngx_http_pw_check_path(value);
        }

        if (ngx_http_pw_is(key, ":authority")) {
            return ngx_http_pw_host_server(NULL, (u_char *) value.data,
                                           value.len, &server);
        }

        if (ngx_http_pw_is(key, ":method")) {
            return ngx_http_pw_token(value);
        }

        return NGX_ERROR;
    }

    if (ngx_http_pw_token(key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_pw_is(key, "content-length")) {
        if (value.len == 0
            || ngx_atoof((u_char *) value.data, value.len) == NGX_ERROR)
        {
            return NGX_ERROR;
        }
    }

    if (!response && ngx_http_pw_is(key, "host")) {
        return ngx_http_pw_host_server(NULL, (u_char *) value.data,
                                       value.len, &server);
    }

    return NGX_OK;
}


/* a header name or a method: an RFC 9110 token */

/* RFC 9110 tchar: one byte per byte value, looked up once per character */
static const u_char  ngx_http_pw_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1
};


/* each byte value lowercased, for names: one load instead of a test */
#define NGX_HTTP_PW_LC(c)    ((c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c))
#define NGX_HTTP_PW_LC4(c)   NGX_HTTP_PW_LC(c), NGX_HTTP_PW_LC((c) + 1),      \
                             NGX_HTTP_PW_LC((c) + 2), NGX_HTTP_PW_LC((c) + 3)
#define NGX_HTTP_PW_LC16(c)  NGX_HTTP_PW_LC4(c), NGX_HTTP_PW_LC4((c) + 4),    \
                             NGX_HTTP_PW_LC4((c) + 8), NGX_HTTP_PW_LC4((c) + 12)
#define NGX_HTTP_PW_LC64(c)  NGX_HTTP_PW_LC16(c), NGX_HTTP_PW_LC16((c) + 16), \
                             NGX_HTTP_PW_LC16((c) + 32),                      \
                             NGX_HTTP_PW_LC16((c) + 48)

static const u_char  ngx_http_pw_lc[256] = {
    NGX_HTTP_PW_LC64(0), NGX_HTTP_PW_LC64(64), NGX_HTTP_PW_LC64(128),
    NGX_HTTP_PW_LC64(192)
};


NGX_PW_HOT static ngx_int_t
ngx_http_pw_token(pw_str_t s)
{
    size_t  i;

    if (s.len == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < s.len; i++) {
        if (!ngx_http_pw_tchar[(u_char) s.data[i]]) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_check_path(pw_str_t path)
{
    u_char  c;
    size_t  i;

    if (path.len == 0 || (path.data[0] != '/' && path.data[0] != '*')) {
        return NGX_ERROR;
    }

    if (path.data[0] == '*' && path.len != 1) {
        return NGX_ERROR;
    }

    for (i = 0; i < path.len; i++) {
        c = (u_char) path.data[i];

        if (c <= 0x20 || c == 0x7f || c == '#') {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The virtual server name nginx derives from a Host value: lowercase, no
 * port, no trailing dot. Like nginx, refuses "..", "/", controls, so that
 * $host stays safe in file paths. With pool NULL it only validates.
 */

static ngx_int_t
ngx_http_pw_host_server(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *server)
{
    u_char      c;
    size_t      i, host_len;
    ngx_uint_t  literal, rest;

    literal = 0;
    rest = 0;
    host_len = len;

    for (i = 0; i < len; i++) {
        c = data[i];

        if (c <= 0x20 || c == 0x7f || c == '/' || c == '\\') {
            return NGX_ERROR;
        }

        if (rest) {
            continue;
        }

        switch (c) {

        case '.':
            if (i > 0 && data[i - 1] == '.') {
                return NGX_ERROR;
            }
            break;

        case '[':
            if (i == 0) {
                literal = 1;
            }
            break;

        case ']':
            if (literal) {
                host_len = i + 1;
                rest = 1;
            }
            break;

        case ':':
            if (!literal) {
                host_len = i;
                rest = 1;
            }
            break;
        }
    }

    if (host_len && data[host_len - 1] == '.') {
        host_len--;
    }

    if (host_len == 0) {
        return NGX_ERROR;
    }

    if (pool == NULL) {
        return NGX_OK;
    }

    server->data = ngx_pnalloc(pool, host_len);
    if (server->data == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(server->data, data, host_len);
    server->len = host_len;

    return NGX_OK;
}


/* a NUL-terminated copy: some nginx code scans values up to the NUL */

static u_char *
ngx_http_pw_copy(ngx_pool_t *pool, pw_str_t s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s.len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s.data, s.len);
    p[s.len] = '\0';

    return p;
}


NGX_PW_HOT static ngx_table_elt_t *
ngx_http_pw_push(ngx_pool_t *pool, ngx_list_t *list, pw_str_t key,
    pw_str_t value, ngx_uint_t response)
{
    u_char            c, *p;
    size_t            i;
    ngx_uint_t        hash;
    ngx_table_elt_t  *h;

    /* key, NUL, value, NUL, lowcase key; pushed last so a failure is clean */

    p = ngx_pnalloc(pool, key.len + 1 + value.len + 1 + key.len);
    if (p == NULL) {
        return NULL;
    }

    h = ngx_list_push(list);
    if (h == NULL) {
        return NULL;
    }

    h->key.data = p;
    h->key.len = key.len;
    p = ngx_cpymem(p, key.data, key.len);
    *p++ = '\0';

    h->value.data = p;
    h->value.len = value.len;
    p = ngx_cpymem(p, value.data, value.len);
    *p++ = '\0';

    /* ngx_hash_strlow's work, inline: a call costs as much as a name */
    h->lowcase_key = p;
    hash = 0;
    for (i = 0; i < key.len; i++) {
        c = ngx_http_pw_lc[(u_char) key.data[i]];
        p[i] = c;
        hash = ngx_hash(hash, c);
    }

    /* hash 0 deletes a response header */

    h->hash = (response && hash == 0) ? 1 : hash;

    return h;
}


/* ---- writing: the request ------------------------------------------- */


static ngx_int_t
ngx_http_pw_req_add(ngx_http_request_t *r, pw_str_t key, pw_str_t value)
{
    ngx_uint_t  host;

    if (ngx_http_pw_push(r->pool, &r->headers_in.headers, key, value, 0)
        == NULL)
    {
        return NGX_ERROR;
    }

    ngx_http_pw_req_rescan(r);

    host = ngx_http_pw_is(key, "host");

    return ngx_http_pw_req_derive(r, host,
                                  ngx_http_pw_is(key, "authorization"));
}


static ngx_int_t
ngx_http_pw_req_remove(ngx_http_request_t *r, pw_str_t key)
{
    if (ngx_http_pw_req_drop(&r->headers_in.headers, key) == 0) {
        return NGX_OK;
    }

    ngx_http_pw_req_rescan(r);

    /* server stays: nginx keeps it without a Host header too */

    return ngx_http_pw_req_derive(r, 0, ngx_http_pw_is(key, "authorization"));
}


static ngx_int_t
ngx_http_pw_req_pseudo(ngx_http_request_t *r, pw_str_t key, pw_str_t value)
{
    u_char                *p;
    ngx_http_pw_method_t  *m;

    if (ngx_http_pw_is(key, ":scheme")) {
        return NGX_OK;
    }

    if (ngx_http_pw_is(key, ":path")) {
        return ngx_http_pw_req_set_path(r, value);
    }

    if (ngx_http_pw_is(key, ":authority")) {
        return ngx_http_pw_req_set_authority(r, value);
    }

    if (!ngx_http_pw_is(key, ":method")) {
        return NGX_ERROR;
    }

    p = ngx_http_pw_copy(r->pool, value);
    if (p == NULL) {
        return NGX_ERROR;
    }

    r->method = NGX_HTTP_UNKNOWN;

    for (m = ngx_http_pw_methods; m->name.len; m++) {
        if (m->name.len == value.len
            && ngx_strncmp(m->name.data, p, value.len) == 0)
        {
            r->method = m->method;
            break;
        }
    }

    r->method_name.data = p;
    r->method_name.len = value.len;

    return NGX_OK;
}


/*
 * The new path goes upstream byte for byte: proxy_pass without a URI part
 * sends r->unparsed_uri while valid_unparsed_uri is set. r->uri is the
 * decoded path with dot segments resolved (what locations, aliases and
 * roots see), r->args the query.
 */

static ngx_int_t
ngx_http_pw_req_set_path(ngx_http_request_t *r, pw_str_t path)
{
    u_char                    *raw, *uri, *q;
    size_t                     len, plen;
    ngx_http_core_loc_conf_t  *clcf;

    raw = ngx_http_pw_copy(r->pool, path);
    if (raw == NULL) {
        return NGX_ERROR;
    }

    len = path.len;
    q = ngx_strlchr(raw, raw + len, '?');
    plen = q ? (size_t) (q - raw) : len;

    uri = ngx_pnalloc(r->pool, plen + 1);
    if (uri == NULL) {
        return NGX_ERROR;
    }

    plen = ngx_http_pw_unescape_path(uri, raw, plen);
    if (plen == 0) {
        return NGX_ERROR;
    }

    if (uri[0] == '/') {
        plen = ngx_http_pw_remove_dots(uri, plen);
    }

    uri[plen] = '\0';

    r->unparsed_uri.data = raw;
    r->unparsed_uri.len = len;
    r->valid_unparsed_uri = 1;

    r->uri.data = uri;
    r->uri.len = plen;

    if (q) {
        r->args.data = q + 1;
        r->args.len = raw + len - (q + 1);

    } else {
        ngx_str_null(&r->args);
    }

    r->quoted_uri = (ngx_strlchr(raw, q ? q : raw + len, '%') != NULL);
    r->plus_in_uri = (ngx_strlchr(raw, raw + len, '+') != NULL);
    r->empty_path_in_uri = 0;

    /*
     * proxy_pass with a URI part swaps the location prefix for its own:
     * only right while the new path still starts with that prefix.
     */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->valid_location
        && (r->uri.len < clcf->name.len
            || ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len)
               != 0))
    {
        r->valid_location = 0;
    }

    ngx_http_set_exten(r);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_req_set_authority(ngx_http_request_t *r, pw_str_t value)
{
    ngx_str_t  server;

    if (ngx_http_pw_host_server(r->pool, (u_char *) value.data, value.len,
                                &server)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    (void) ngx_http_pw_req_drop(&r->headers_in.headers,
                                PW_STR("host"));

    if (ngx_http_pw_push(r->pool, &r->headers_in.headers,
                         PW_STR("Host"), value, 0)
        == NULL)
    {
        return NGX_ERROR;
    }

    ngx_http_pw_req_rescan(r);

    r->headers_in.server = server;

    return NGX_OK;
}


/*
 * ngx_list_t cannot remove: compact the elements towards the front, across
 * parts, and cut the list after the last one. Every part but the last
 * stays full, as list iterators require (they do not expect empty parts).
 */

static ngx_uint_t
ngx_http_pw_req_drop(ngx_list_t *list, pw_str_t key)
{
    ngx_uint_t        ri, wi, dropped;
    ngx_list_part_t  *rpart, *wpart;
    ngx_table_elt_t  *relts, *welts;

    dropped = 0;

    wpart = &list->part;
    welts = wpart->elts;
    wi = 0;

    for (rpart = &list->part; rpart; rpart = rpart->next) {
        relts = rpart->elts;

        for (ri = 0; ri < rpart->nelts; ri++) {

            if (ngx_http_pw_elt_is(&relts[ri], key)) {
                dropped++;
                continue;
            }

            if (wi == list->nalloc) {
                wpart = wpart->next;
                welts = wpart->elts;
                wi = 0;
            }

            if (&welts[wi] != &relts[ri]) {
                welts[wi] = relts[ri];
            }

            wi++;
        }
    }

    if (dropped == 0) {
        return 0;
    }

    wpart->nelts = wi;
    wpart->next = NULL;
    list->last = wpart;

    return dropped;
}


/*
 * Points every shortcut of r->headers_in at the list again, first element
 * wins as in nginx's own handlers; the table and its offsets are nginx's.
 */

static void
ngx_http_pw_req_rescan(ngx_http_request_t *r)
{
    u_char                     *base;
    ngx_uint_t                  i, hash, off;
    ngx_array_t                *a;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h, **ph;
    ngx_http_header_t          *hh;
    ngx_http_core_main_conf_t  *cmcf;

    base = (u_char *) &r->headers_in;

    for (hh = ngx_http_headers_in; hh->name.len; hh++) {
        off = hh->offset;

        if (off == offsetof(ngx_http_headers_in_t, cookies)
#if (NGX_HTTP_X_FORWARDED_FOR)
            || off == offsetof(ngx_http_headers_in_t, x_forwarded_for)
#endif
           )
        {
            ((ngx_array_t *) (base + off))->nelts = 0;

        } else if (off >= offsetof(ngx_http_headers_in_t, host)
                   && off < offsetof(ngx_http_headers_in_t, user))
        {
            *(ngx_table_elt_t **) (base + off) = NULL;
        }
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].lowcase_key == NULL) {
            continue;
        }

        hash = ngx_hash_key(h[i].lowcase_key, h[i].key.len);

        hh = ngx_hash_find(&cmcf->headers_in_hash, hash, h[i].lowcase_key,
                           h[i].key.len);
        if (hh == NULL) {
            continue;
        }

        off = hh->offset;

        if (off == offsetof(ngx_http_headers_in_t, cookies)
#if (NGX_HTTP_X_FORWARDED_FOR)
            || off == offsetof(ngx_http_headers_in_t, x_forwarded_for)
#endif
           )
        {
            a = (ngx_array_t *) (base + off);

            if (a->elts == NULL
                && ngx_array_init(a, r->pool, 1, sizeof(ngx_table_elt_t *))
                   != NGX_OK)
            {
                continue;
            }

            ph = ngx_array_push(a);
            if (ph != NULL) {
                *ph = &h[i];
            }

        } else if (off >= offsetof(ngx_http_headers_in_t, host)
                   && off < offsetof(ngx_http_headers_in_t, user))
        {
            ph = (ngx_table_elt_t **) (base + off);

            if (*ph == NULL) {
                *ph = &h[i];
            }
        }
    }
}


/*
 * What nginx derived from a header when it read it. content_length_n and
 * chunked are left alone on purpose: they frame the body nginx reads from
 * the client and sends upstream (the proxy writes its own Content-Length
 * from them), so changing them here would desynchronise a connection.
 */

static ngx_int_t
ngx_http_pw_req_derive(ngx_http_request_t *r, ngx_uint_t host,
    ngx_uint_t authorization)
{
    ngx_table_elt_t  *h;

    if (authorization) {
        /* parsed again by ngx_http_auth_basic_user() */
        ngx_str_null(&r->headers_in.user);
        ngx_str_null(&r->headers_in.passwd);
    }

    h = r->headers_in.host;

    if (host && h) {
        if (ngx_http_pw_host_server(r->pool, h->value.data, h->value.len,
                                    &r->headers_in.server)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_hex(u_char c)
{
    u_char  l;

    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    l = (u_char) (c | 0x20);

    if (l >= 'a' && l <= 'f') {
        return l - 'a' + 10;
    }

    return -1;
}


/* percent-decoding; a stray '%' stays, a decoded NUL refuses the path */

static size_t
ngx_http_pw_unescape_path(u_char *dst, u_char *src, size_t len)
{
    u_char     *d, c;
    size_t      i;
    ngx_int_t   hi, lo;

    d = dst;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == '%' && i + 2 < len) {
            hi = ngx_http_pw_hex(src[i + 1]);
            lo = ngx_http_pw_hex(src[i + 2]);

            if (hi >= 0 && lo >= 0) {
                c = (u_char) (hi << 4 | lo);

                if (c == '\0') {
                    return 0;
                }

                i += 2;
            }
        }

        *d++ = c;
    }

    return d - dst;
}


/* resolves "." and ".." segments in place; ".." never climbs above "/" */

static size_t
ngx_http_pw_remove_dots(u_char *uri, size_t len)
{
    u_char  *src, *end, *dst, *seg, *next;
    size_t   n;

    src = uri;
    end = uri + len;
    dst = uri;

    while (src < end) {
        seg = src + 1;
        next = ngx_strlchr(seg, end, '/');
        if (next == NULL) {
            next = end;
        }

        n = next - seg;

        if (n == 1 && seg[0] == '.') {
            if (next == end) {
                *dst++ = '/';
            }

        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (dst > uri && *--dst != '/') { /* void */ }

            if (next == end) {
                *dst++ = '/';
            }

        } else {
            *dst++ = '/';
            ngx_memmove(dst, seg, n);
            dst += n;
        }

        src = next;
    }

    if (dst == uri) {
        *dst++ = '/';
    }

    return dst - uri;
}


/* ---- writing: the response ------------------------------------------ */


NGX_PW_HOT static ngx_http_pw_out_field_t *
ngx_http_pw_out_field(pw_str_t key)
{
    u_char                    c;
    ngx_http_pw_out_field_t  *f;

    /* a bit per first letter of the names (lowercase), made once */
    static uint32_t           firsts;

    if (firsts == 0) {
        for (f = ngx_http_pw_out_fields; f->name.len; f++) {
            firsts |= 1U << (f->name.data[0] - 'a');
        }
    }

    if (key.len == 0) {
        return NULL;
    }

    /* most names a plugin adds (x-...) are none of these: no scan */
    c = ngx_tolower((u_char) key.data[0]);
    if (c < 'a' || c > 'z' || !(firsts & (1U << (c - 'a')))) {
        return NULL;
    }

    for (f = ngx_http_pw_out_fields; f->name.len; f++) {
        if (f->name.len == key.len && f->name.data[0] == c
            && ngx_strncasecmp(f->name.data, (u_char *) key.data, key.len)
               == 0)
        {
            return f;
        }
    }

    return NULL;
}


/* hash 0 is how nginx deletes: the header filters skip such elements */

static void
ngx_http_pw_out_zero(ngx_http_request_t *r, pw_str_t key)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash && ngx_http_pw_elt_is(&h[i], key)) {
            h[i].hash = 0;
        }
    }
}


/*
 * Deletes every key from the list and its field. With hide, "server" and
 * "date" keep a deleted element as their shortcut, so that nginx adds none
 * of its own either.
 */

static ngx_int_t
ngx_http_pw_out_clear(ngx_http_request_t *r, pw_str_t key, ngx_uint_t hide)
{
    ngx_table_elt_t          *h, **ph;
    ngx_http_headers_out_t   *ho;
    ngx_http_pw_out_field_t  *f;

    ho = &r->headers_out;

    ngx_http_pw_out_zero(r, key);

    f = ngx_http_pw_out_field(key);
    if (f == NULL) {
        return NGX_OK;
    }

    ph = (ngx_table_elt_t **) ((u_char *) ho + f->offset);

    switch (f->kind) {

    case NGX_HTTP_PW_OUT_TYPE:
        ngx_str_null(&ho->content_type);
        ngx_str_null(&ho->charset);
        ho->content_type_len = 0;
        ho->content_type_lowcase = NULL;
        ho->content_type_hash = 0;
        break;

    case NGX_HTTP_PW_OUT_LENGTH:
        ngx_http_clear_content_length(r);
        break;

    case NGX_HTTP_PW_OUT_MODIFIED:
        ngx_http_clear_last_modified(r);
        break;

    case NGX_HTTP_PW_OUT_ARRAY:
        ((ngx_array_t *) ph)->nelts = 0;
        break;

    case NGX_HTTP_PW_OUT_HIDE:
        if (*ph) {
            (*ph)->hash = 0;

            if (!hide) {
                *ph = NULL;
            }

            break;
        }

        if (!hide) {
            break;
        }

        h = ngx_http_pw_push(r->pool, &ho->headers, key, (pw_str_t) { "", 0 },
                             1);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 0;
        *ph = h;
        break;

    default: /* NGX_HTTP_PW_OUT_PTR */
        if (*ph) {
            (*ph)->hash = 0;
            *ph = NULL;
        }

        if (f->offset == offsetof(ngx_http_headers_out_t, accept_ranges)) {
            /* or the range filter adds "Accept-Ranges: bytes" again */
            r->allow_ranges = 0;
        }

        break;
    }

    return NGX_OK;
}


NGX_PW_HOT static ngx_int_t
ngx_http_pw_out_add(ngx_http_request_t *r, pw_str_t key, pw_str_t value,
    ngx_uint_t replace)
{
    time_t                    t;
    ngx_array_t              *a;
    ngx_table_elt_t          *h, **ph;
    ngx_http_headers_out_t   *ho;
    ngx_http_pw_out_field_t  *f;

    ho = &r->headers_out;

    if (ngx_http_pw_pseudo(key)) {
        /* ":status", checked already */
        ho->status = ngx_atoi((u_char *) value.data, value.len);
        ngx_str_null(&ho->status_line);
        return NGX_OK;
    }

    f = ngx_http_pw_out_field(key);

    if (f
        && (f->kind == NGX_HTTP_PW_OUT_TYPE
            || f->kind == NGX_HTTP_PW_OUT_LENGTH
            || f->kind == NGX_HTTP_PW_OUT_MODIFIED))
    {
        /* single fields: adding one replaces it */
        replace = 1;
    }

    if (replace && ngx_http_pw_out_clear(r, key, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (f && f->kind == NGX_HTTP_PW_OUT_TYPE) {
        return ngx_http_pw_out_set_type(r, value);
    }

    if (f && f->kind == NGX_HTTP_PW_OUT_LENGTH) {
        ho->content_length_n = ngx_atoof((u_char *) value.data, value.len);
        return NGX_OK;
    }

    h = ngx_http_pw_push(r->pool, &ho->headers, key, value, 1);
    if (h == NULL) {
        return NGX_ERROR;
    }

    if (f == NULL) {
        return NGX_OK;
    }

    ph = (ngx_table_elt_t **) ((u_char *) ho + f->offset);

    switch (f->kind) {

    case NGX_HTTP_PW_OUT_MODIFIED:
        /* the not-modified and range filters compare the time */
        *ph = h;
        t = ngx_parse_http_time(h->value.data, h->value.len);
        ho->last_modified_time = (t == NGX_ERROR) ? -1 : t;
        break;

    case NGX_HTTP_PW_OUT_ARRAY:
        a = (ngx_array_t *) ph;

        if (a->elts == NULL
            && ngx_array_init(a, r->pool, 1, sizeof(ngx_table_elt_t *))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        ph = ngx_array_push(a);
        if (ph == NULL) {
            return NGX_ERROR;
        }

        *ph = h;
        break;

    default: /* NGX_HTTP_PW_OUT_PTR, NGX_HTTP_PW_OUT_HIDE */
        if (*ph == NULL || (*ph)->hash == 0) {
            *ph = h;
        }

        break;
    }

    return NGX_OK;
}


/*
 * As nginx takes a Content-Type from upstream: content_type_len stops
 * before a charset parameter, which goes to charset, so that the type
 * tests (gzip_types, charset_types, ...) see the bare type while the
 * header filter still sends the value as given.
 */

static ngx_int_t
ngx_http_pw_out_set_type(ngx_http_request_t *r, pw_str_t value)
{
    u_char                  *p, *start, *last, *semi;
    ngx_http_headers_out_t  *ho;

    ho = &r->headers_out;

    start = ngx_http_pw_copy(r->pool, value);
    if (start == NULL) {
        return NGX_ERROR;
    }

    last = start + value.len;

    ho->content_type.data = start;
    ho->content_type.len = value.len;
    ho->content_type_len = value.len;
    ho->content_type_lowcase = NULL;
    ho->content_type_hash = 0;
    ngx_str_null(&ho->charset);

    for (p = start; p < last; p++) {
        if (*p != ';') {
            continue;
        }

        semi = p;

        while (p + 1 < last && p[1] == ' ') {
            p++;
        }

        if ((size_t) (last - (p + 1)) < sizeof("charset=") - 1
            || ngx_strncasecmp(p + 1, (u_char *) "charset=",
                               sizeof("charset=") - 1)
               != 0)
        {
            continue;
        }

        p += sizeof("charset=");

        if (p < last && *p == '"') {
            p++;
        }

        ho->content_type_len = semi - start;
        ho->charset.data = p;
        ho->charset.len = (last > p && last[-1] == '"') ? last - 1 - p
                                                        : last - p;
        break;
    }

    return NGX_OK;
}
