/*
 * Properties nginx answers for Proxy-Wasm plugins: Envoy's attribute names
 * (request.*, response.*, source.*, destination.*, connection.*,
 * upstream.*) with Envoy's encodings, and ngx.<variable> for every nginx
 * variable. docs/PROPERTIES.md is the reference.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_pw_headers.h"
#include "ngx_http_pw_properties.h"


/* request.headers.<name> needs three segments; nothing needs more */
#define NGX_HTTP_PW_PROP_MAX_SEGMENTS  3


typedef ngx_int_t (*ngx_http_pw_prop_get_pt)(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);


typedef struct {
    ngx_str_t                 name;
    ngx_http_pw_prop_get_pt   get;
} ngx_http_pw_prop_t;


typedef struct {
    ngx_str_t                 name;
    ngx_http_pw_prop_t       *props;
} ngx_http_pw_prop_group_t;


static ngx_uint_t ngx_http_pw_prop_split(const pw_str_t *path, size_t nseg,
    pw_str_t *seg);
static ngx_int_t ngx_http_pw_prop_is(pw_str_t s, ngx_str_t *name);
static ngx_int_t ngx_http_pw_prop_header(ngx_http_request_t *r,
    ngx_uint_t response, ngx_pool_t *pool, pw_str_t name, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_header_map(ngx_http_request_t *r,
    ngx_uint_t response, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_variable_get(ngx_http_request_t *r,
    ngx_pool_t *pool, pw_str_t name, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_variable_set(ngx_http_request_t *r,
    pw_str_t name, pw_str_t value);
static u_char *ngx_http_pw_prop_lowcase(ngx_pool_t *pool, pw_str_t name,
    ngx_uint_t *key);

static ngx_int_t ngx_http_pw_prop_int(ngx_pool_t *pool, int64_t v,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_bool(ngx_pool_t *pool, ngx_uint_t v,
    pw_str_t *out);
static void ngx_http_pw_prop_str(u_char *data, size_t len, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_addr(ngx_pool_t *pool, struct sockaddr *sa,
    socklen_t socklen, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_port(ngx_pool_t *pool, struct sockaddr *sa,
    pw_str_t *out);

static ngx_int_t ngx_http_pw_prop_request_path(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_url_path(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_host(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_scheme(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_method(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_headers(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_referer(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_useragent(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_id(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_protocol(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_query(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_time(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_duration(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_size(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_request_total_size(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);

static ngx_int_t ngx_http_pw_prop_response_code(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_response_code_details(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_response_headers(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_response_size(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_response_total_size(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);

static ngx_int_t ngx_http_pw_prop_source_address(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_source_port(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_destination_address(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_destination_port(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);

static ngx_int_t ngx_http_pw_prop_connection_id(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_connection_mtls(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_connection_sni(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_connection_tls_version(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);

static ngx_int_t ngx_http_pw_prop_upstream_address(
    ngx_http_pw_prop_ctx_t *pc, ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t *out);
static ngx_int_t ngx_http_pw_prop_upstream_port(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out);
static ngx_str_t *ngx_http_pw_prop_upstream_name(ngx_http_request_t *r);

static void ngx_http_pw_prop_request_id_cleanup(void *data);


static ngx_http_pw_prop_t  ngx_http_pw_prop_request[] = {
    { ngx_string("path"), ngx_http_pw_prop_request_path },
    { ngx_string("url_path"), ngx_http_pw_prop_request_url_path },
    { ngx_string("host"), ngx_http_pw_prop_request_host },
    { ngx_string("scheme"), ngx_http_pw_prop_request_scheme },
    { ngx_string("method"), ngx_http_pw_prop_request_method },
    { ngx_string("headers"), ngx_http_pw_prop_request_headers },
    { ngx_string("referer"), ngx_http_pw_prop_request_referer },
    { ngx_string("useragent"), ngx_http_pw_prop_request_useragent },
    { ngx_string("id"), ngx_http_pw_prop_request_id },
    { ngx_string("protocol"), ngx_http_pw_prop_request_protocol },
    { ngx_string("query"), ngx_http_pw_prop_request_query },
    { ngx_string("time"), ngx_http_pw_prop_request_time },
    { ngx_string("duration"), ngx_http_pw_prop_request_duration },
    { ngx_string("size"), ngx_http_pw_prop_request_size },
    { ngx_string("total_size"), ngx_http_pw_prop_request_total_size },
    { ngx_null_string, NULL }
};


static ngx_http_pw_prop_t  ngx_http_pw_prop_response[] = {
    { ngx_string("code"), ngx_http_pw_prop_response_code },
    { ngx_string("code_details"), ngx_http_pw_prop_response_code_details },
    { ngx_string("headers"), ngx_http_pw_prop_response_headers },
    { ngx_string("size"), ngx_http_pw_prop_response_size },
    { ngx_string("total_size"), ngx_http_pw_prop_response_total_size },
    { ngx_null_string, NULL }
};


static ngx_http_pw_prop_t  ngx_http_pw_prop_source[] = {
    { ngx_string("address"), ngx_http_pw_prop_source_address },
    { ngx_string("port"), ngx_http_pw_prop_source_port },
    { ngx_null_string, NULL }
};


static ngx_http_pw_prop_t  ngx_http_pw_prop_destination[] = {
    { ngx_string("address"), ngx_http_pw_prop_destination_address },
    { ngx_string("port"), ngx_http_pw_prop_destination_port },
    { ngx_null_string, NULL }
};


static ngx_http_pw_prop_t  ngx_http_pw_prop_connection[] = {
    { ngx_string("id"), ngx_http_pw_prop_connection_id },
    { ngx_string("mtls"), ngx_http_pw_prop_connection_mtls },
    { ngx_string("requested_server_name"), ngx_http_pw_prop_connection_sni },
    { ngx_string("tls_version"), ngx_http_pw_prop_connection_tls_version },
    { ngx_null_string, NULL }
};


static ngx_http_pw_prop_t  ngx_http_pw_prop_upstream[] = {
    { ngx_string("address"), ngx_http_pw_prop_upstream_address },
    { ngx_string("port"), ngx_http_pw_prop_upstream_port },
    { ngx_null_string, NULL }
};


static ngx_http_pw_prop_group_t  ngx_http_pw_prop_groups[] = {
    { ngx_string("request"), ngx_http_pw_prop_request },
    { ngx_string("response"), ngx_http_pw_prop_response },
    { ngx_string("source"), ngx_http_pw_prop_source },
    { ngx_string("destination"), ngx_http_pw_prop_destination },
    { ngx_string("connection"), ngx_http_pw_prop_connection },
    { ngx_string("upstream"), ngx_http_pw_prop_upstream },
    { ngx_null_string, NULL }
};


static ngx_str_t  ngx_http_pw_prop_ngx = ngx_string("ngx");
static ngx_str_t  ngx_http_pw_prop_headers = ngx_string("headers");


ngx_int_t
ngx_http_pw_property_get(ngx_http_pw_prop_ctx_t *pc, ngx_pool_t *pool,
    const pw_str_t *path, size_t nseg, pw_str_t *out)
{
    pw_str_t                   seg[NGX_HTTP_PW_PROP_MAX_SEGMENTS];
    ngx_uint_t                 n;
    ngx_http_request_t        *r;
    ngx_http_pw_prop_t        *p;
    ngx_http_pw_prop_group_t  *g;

    if (pc == NULL || pc->r == NULL || pc->r->connection == NULL) {
        return NGX_DECLINED;
    }

    r = pc->r;

    n = ngx_http_pw_prop_split(path, nseg, seg);
    if (n < 2) {
        return NGX_DECLINED;
    }

    if (ngx_http_pw_prop_is(seg[0], &ngx_http_pw_prop_ngx)) {
        if (n != 2) {
            return NGX_DECLINED;
        }

        return ngx_http_pw_prop_variable_get(r, pool, seg[1], out);
    }

    for (g = ngx_http_pw_prop_groups; g->name.len; g++) {
        if (ngx_http_pw_prop_is(seg[0], &g->name)) {
            break;
        }
    }

    if (g->name.len == 0) {
        return NGX_DECLINED;
    }

    if (n == 3) {
        /* only the header maps have a third level: the header's name */

        if (!ngx_http_pw_prop_is(seg[1], &ngx_http_pw_prop_headers)
            || (g->props != ngx_http_pw_prop_request
                && g->props != ngx_http_pw_prop_response))
        {
            return NGX_DECLINED;
        }

        return ngx_http_pw_prop_header(r,
                                       g->props == ngx_http_pw_prop_response,
                                       pool, seg[2], out);
    }

    for (p = g->props; p->name.len; p++) {
        if (ngx_http_pw_prop_is(seg[1], &p->name)) {
            return p->get(pc, r, pool, out);
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_pw_property_set(ngx_http_pw_prop_ctx_t *pc, const pw_str_t *path,
    size_t nseg, pw_str_t value)
{
    pw_str_t    seg[NGX_HTTP_PW_PROP_MAX_SEGMENTS];
    ngx_uint_t  n;

    if (pc == NULL || pc->r == NULL) {
        return NGX_DECLINED;
    }

    n = ngx_http_pw_prop_split(path, nseg, seg);

    if (n != 2 || !ngx_http_pw_prop_is(seg[0], &ngx_http_pw_prop_ngx)) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_prop_variable_set(pc->r, seg[1], value);
}


/*
 * Normalise the path to at most three segments. A single segment holding
 * dots is the dotted form of ngx_wasm_module ("request.path"): the last
 * part keeps any further dots, so "ngx.a.b" names the variable "a.b" and
 * "request.headers.x.y" the header "x.y". 0 when the path cannot name
 * anything.
 */

static ngx_uint_t
ngx_http_pw_prop_split(const pw_str_t *path, size_t nseg, pw_str_t *seg)
{
    size_t       i;
    ngx_uint_t   n, max;
    const char  *p, *end, *dot;

    if (path == NULL || nseg == 0 || nseg > NGX_HTTP_PW_PROP_MAX_SEGMENTS) {
        return 0;
    }

    if (nseg > 1) {
        for (i = 0; i < nseg; i++) {
            seg[i] = path[i];
        }

        return nseg;
    }

    p = path[0].data;
    end = p + path[0].len;

    if (p == NULL) {
        return 0;
    }

    max = NGX_HTTP_PW_PROP_MAX_SEGMENTS;

    for (n = 0; n < max - 1; n++) {
        dot = memchr(p, '.', end - p);
        if (dot == NULL) {
            break;
        }

        seg[n].data = p;
        seg[n].len = dot - p;
        p = dot + 1;

        if (n == 0 && ngx_http_pw_prop_is(seg[0], &ngx_http_pw_prop_ngx)) {
            max = 2;
        }
    }

    seg[n].data = p;
    seg[n].len = end - p;

    return n + 1;
}


static ngx_int_t
ngx_http_pw_prop_is(pw_str_t s, ngx_str_t *name)
{
    return s.len == name->len && ngx_memcmp(s.data, name->data, s.len) == 0;
}


static ngx_int_t
ngx_http_pw_prop_header(ngx_http_request_t *r, ngx_uint_t response,
    ngx_pool_t *pool, pw_str_t name, pw_str_t *out)
{
    if (name.len == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_headers_get(r, response, pool, name, out);
}


/* The whole map, serialized as proxy_get_header_map_pairs returns it. */

static ngx_int_t
ngx_http_pw_prop_header_map(ngx_http_request_t *r, ngx_uint_t response,
    ngx_pool_t *pool, pw_str_t *out)
{
    size_t      size;
    u_char     *p;
    pw_pairs_t  pairs;

    if (ngx_http_pw_headers_pairs(r, response, pool, &pairs) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pw_pairs_size(&pairs, &size) != PW_OK) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    pw_pairs_serialize(&pairs, p);

    out->data = (const char *) p;
    out->len = size;

    return NGX_OK;
}


/* ---- ngx.<variable> ---- */

static u_char *
ngx_http_pw_prop_lowcase(ngx_pool_t *pool, pw_str_t name, ngx_uint_t *key)
{
    u_char  *low;

    low = ngx_pnalloc(pool, name.len);
    if (low == NULL) {
        return NULL;
    }

    *key = ngx_hash_strlow(low, (u_char *) name.data, name.len);

    return low;
}


static ngx_int_t
ngx_http_pw_prop_variable_get(ngx_http_request_t *r, ngx_pool_t *pool,
    pw_str_t name, pw_str_t *out)
{
    ngx_str_t                   lname;
    ngx_uint_t                  key;
    ngx_http_variable_value_t  *vv;

    if (name.len == 0) {
        return NGX_DECLINED;
    }

    lname.len = name.len;
    lname.data = ngx_http_pw_prop_lowcase(pool, name, &key);
    if (lname.data == NULL) {
        return NGX_ERROR;
    }

    vv = ngx_http_get_variable(r, &lname, key);

    /* NULL is also nginx's answer for a failing handler: treat as absent */
    if (vv == NULL || vv->not_found) {
        return NGX_DECLINED;
    }

    ngx_http_pw_prop_str(vv->data, vv->len, out);

    return NGX_OK;
}


/*
 * nginx keeps the variables in cmcf->variables_hash once configuration is
 * done (variables_keys is gone by then). A variable can take a value when
 * it is changeable and either has a set_handler ($args, $limit_rate) or is
 * indexed, i.e. has a slot in r->variables (variables made by "set").
 */

static ngx_int_t
ngx_http_pw_prop_variable_set(ngx_http_request_t *r, pw_str_t name,
    pw_str_t value)
{
    u_char                     *low, *data;
    ngx_uint_t                  key;
    ngx_http_variable_t        *v;
    ngx_http_variable_value_t  *vv;
    ngx_http_core_main_conf_t  *cmcf;

    if (name.len == 0) {
        return NGX_DECLINED;
    }

    low = ngx_http_pw_prop_lowcase(r->pool, name, &key);
    if (low == NULL) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    v = ngx_hash_find(&cmcf->variables_hash, key, low, name.len);

    if (v == NULL
        || !(v->flags & NGX_HTTP_VAR_CHANGEABLE)
        || (v->set_handler == NULL && !(v->flags & NGX_HTTP_VAR_INDEXED)))
    {
        return NGX_DECLINED;
    }

    if ((v->flags & NGX_HTTP_VAR_INDEXED)
        && (r->variables == NULL || v->index >= cmcf->variables.nelts))
    {
        return NGX_DECLINED;
    }

    /* the value lives in plugin memory: copy it for the request's life */

    data = ngx_pnalloc(r->pool, value.len ? value.len : 1);
    if (data == NULL) {
        return NGX_ERROR;
    }

    if (value.len) {
        ngx_memcpy(data, value.data, value.len);
    }

    if (v->set_handler) {
        vv = ngx_pcalloc(r->pool, sizeof(ngx_http_variable_value_t));
        if (vv == NULL) {
            return NGX_ERROR;
        }

    } else {
        vv = &r->variables[v->index];
    }

    vv->len = value.len;
    vv->data = data;
    vv->valid = 1;
    vv->no_cacheable = 0;
    vv->not_found = 0;
    vv->escape = 0;

    if (v->set_handler) {
        v->set_handler(r, vv, v->data);
    }

    return NGX_OK;
}


/* ---- encodings ---- */

static ngx_int_t
ngx_http_pw_prop_int(ngx_pool_t *pool, int64_t v, pw_str_t *out)
{
    u_char      *p;
    uint64_t     u;
    ngx_uint_t   i;

    p = ngx_pnalloc(pool, 8);
    if (p == NULL) {
        return NGX_ERROR;
    }

    u = (uint64_t) v;

    for (i = 0; i < 8; i++) {
        p[i] = (u_char) (u >> (8 * i));
    }

    out->data = (const char *) p;
    out->len = 8;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_bool(ngx_pool_t *pool, ngx_uint_t v, pw_str_t *out)
{
    u_char  *p;

    p = ngx_pnalloc(pool, 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p = v ? 1 : 0;

    out->data = (const char *) p;
    out->len = 1;

    return NGX_OK;
}


/* Strings are borrowed: they live at least as long as the request. */

static void
ngx_http_pw_prop_str(u_char *data, size_t len, pw_str_t *out)
{
    out->data = len ? (const char *) data : "";
    out->len = len;
}


static ngx_int_t
ngx_http_pw_prop_addr(ngx_pool_t *pool, struct sockaddr *sa,
    socklen_t socklen, pw_str_t *out)
{
    u_char  *p;
    size_t   len;

    if (sa == NULL || socklen == 0) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sock_ntop(sa, socklen, p, NGX_SOCKADDR_STRLEN, 1);
    if (len == 0) {
        return NGX_DECLINED;
    }

    out->data = (const char *) p;
    out->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_port(ngx_pool_t *pool, struct sockaddr *sa, pw_str_t *out)
{
    if (sa == NULL) {
        return NGX_DECLINED;
    }

    switch (sa->sa_family) {

    case AF_INET:
#if (NGX_HAVE_INET6)
    case AF_INET6:
#endif
        return ngx_http_pw_prop_int(pool, ngx_inet_get_port(sa), out);

    default:
        return NGX_DECLINED;
    }
}


/* ---- request.* ---- */

static ngx_int_t
ngx_http_pw_prop_request_path(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    if (r->unparsed_uri.len == 0) {
        return NGX_DECLINED;
    }

    ngx_http_pw_prop_str(r->unparsed_uri.data, r->unparsed_uri.len, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_url_path(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    size_t   i;
    u_char  *p;

    p = r->unparsed_uri.data;

    if (r->unparsed_uri.len == 0) {
        return NGX_DECLINED;
    }

    for (i = 0; i < r->unparsed_uri.len; i++) {
        if (p[i] == '?' || p[i] == '#') {
            break;
        }
    }

    ngx_http_pw_prop_str(p, i, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_query(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    u_char  *p, *q, *end;

    if (r->unparsed_uri.len == 0) {
        return NGX_DECLINED;
    }

    p = r->unparsed_uri.data;
    end = p + r->unparsed_uri.len;

    q = ngx_strlchr(p, end, '?');

    if (q == NULL) {
        ngx_http_pw_prop_str(NULL, 0, out);
        return NGX_OK;
    }

    q++;
    p = ngx_strlchr(q, end, '#');

    ngx_http_pw_prop_str(q, (p ? p : end) - q, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_host(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.host;

    if (h && h->hash && h->value.len) {
        ngx_http_pw_prop_str(h->value.data, h->value.len, out);
        return NGX_OK;
    }

    if (r->headers_in.server.len) {
        ngx_http_pw_prop_str(r->headers_in.server.data,
                             r->headers_in.server.len, out);
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_pw_prop_request_scheme(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        *out = (pw_str_t) { "https", 5 };
        return NGX_OK;
    }
#endif

    *out = (pw_str_t) { "http", 4 };

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_method(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    if (r->method_name.len == 0) {
        return NGX_DECLINED;
    }

    ngx_http_pw_prop_str(r->method_name.data, r->method_name.len, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_headers(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_header_map(r, 0, pool, out);
}


static ngx_int_t
ngx_http_pw_prop_request_referer(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_header(r, 0, pool, (pw_str_t) { "referer", 7 },
                                   out);
}


static ngx_int_t
ngx_http_pw_prop_request_useragent(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_header(r, 0, pool,
                                   (pw_str_t) { "user-agent", 10 }, out);
}


/*
 * $request_id is computed afresh on every lookup unless the configuration
 * indexes it, so the first answer is kept in a cleanup entry of the
 * request's pool: the id stays the same for the whole request.
 */

static void
ngx_http_pw_prop_request_id_cleanup(void *data)
{
    /* holds the cached id only; the pool frees the memory */
}


static ngx_int_t
ngx_http_pw_prop_request_id(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_str_t                  *id;
    ngx_str_t                   name = ngx_string("request_id");
    ngx_uint_t                  key;
    ngx_pool_cleanup_t         *cln;
    ngx_http_variable_value_t  *vv;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_pw_prop_request_id_cleanup) {
            id = cln->data;
            ngx_http_pw_prop_str(id->data, id->len, out);
            return NGX_OK;
        }
    }

    key = ngx_hash_key(name.data, name.len);

    vv = ngx_http_get_variable(r, &name, key);
    if (vv == NULL || vv->not_found) {
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    id = cln->data;
    id->data = vv->data;
    id->len = vv->len;
    cln->handler = ngx_http_pw_prop_request_id_cleanup;

    ngx_http_pw_prop_str(id->data, id->len, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_protocol(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    switch (r->http_version) {

    case NGX_HTTP_VERSION_9:
        *out = (pw_str_t) { "HTTP/0.9", 8 };
        break;

    case NGX_HTTP_VERSION_10:
        *out = (pw_str_t) { "HTTP/1.0", 8 };
        break;

    case NGX_HTTP_VERSION_11:
        *out = (pw_str_t) { "HTTP/1.1", 8 };
        break;

    case NGX_HTTP_VERSION_20:
        *out = (pw_str_t) { "HTTP/2", 6 };
        break;

#ifdef NGX_HTTP_VERSION_30
    case NGX_HTTP_VERSION_30:
        *out = (pw_str_t) { "HTTP/3", 6 };
        break;
#endif

    default:
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_request_time(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    int64_t  ns;

    ns = (int64_t) r->start_sec * 1000000000
         + (int64_t) r->start_msec * 1000000;

    return ngx_http_pw_prop_int(pool, ns, out);
}


static ngx_int_t
ngx_http_pw_prop_request_duration(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    int64_t         ns;
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    ns = ((int64_t) tv.tv_sec - (int64_t) r->start_sec) * 1000000000
         + ((int64_t) tv.tv_usec * 1000
            - (int64_t) r->start_msec * 1000000);

    if (ns < 0) {
        ns = 0;
    }

    return ngx_http_pw_prop_int(pool, ns, out);
}


static ngx_int_t
ngx_http_pw_prop_request_size(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    off_t  size;

    if (r->headers_in.content_length_n >= 0) {
        size = r->headers_in.content_length_n;

    } else if (r->request_body) {
        size = r->request_body->received;

    } else {
        size = 0;
    }

    return ngx_http_pw_prop_int(pool, (int64_t) size, out);
}


static ngx_int_t
ngx_http_pw_prop_request_total_size(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_int(pool, (int64_t) r->request_length, out);
}


/* ---- response.* ---- */

static ngx_int_t
ngx_http_pw_prop_response_code(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    if (r->headers_out.status == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_prop_int(pool, (int64_t) r->headers_out.status, out);
}


static ngx_int_t
ngx_http_pw_prop_response_code_details(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    if (pc->code_details.len) {
        ngx_http_pw_prop_str(pc->code_details.data, pc->code_details.len,
                             out);
        return NGX_OK;
    }

    if (r->upstream) {
        *out = (pw_str_t) { "via_upstream", 12 };
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_pw_prop_response_headers(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    if (r->headers_out.status == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_prop_header_map(r, 1, pool, out);
}


static ngx_int_t
ngx_http_pw_prop_response_size(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    off_t  sent;

    sent = 0;

    if (r->header_sent) {
        sent = r->connection->sent - (off_t) r->header_size;

        if (sent < 0) {
            sent = 0;
        }
    }

    return ngx_http_pw_prop_int(pool, (int64_t) sent, out);
}


static ngx_int_t
ngx_http_pw_prop_response_total_size(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_int(pool, (int64_t) r->connection->sent, out);
}


/* ---- source.*, destination.* ---- */

static ngx_int_t
ngx_http_pw_prop_source_address(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_connection_t  *c;

    c = r->connection;

    return ngx_http_pw_prop_addr(pool, c->sockaddr, c->socklen, out);
}


static ngx_int_t
ngx_http_pw_prop_source_port(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_port(pool, r->connection->sockaddr, out);
}


/* The listening address may be a wildcard: ask the socket (and cache). */

static ngx_int_t
ngx_http_pw_prop_destination_address(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_connection_t  *c;

    c = r->connection;

    if (c->fd == (ngx_socket_t) -1 && c->local_sockaddr == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_prop_addr(pool, c->local_sockaddr, c->local_socklen,
                                 out);
}


static ngx_int_t
ngx_http_pw_prop_destination_port(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_connection_t  *c;

    c = r->connection;

    if (c->fd == (ngx_socket_t) -1 && c->local_sockaddr == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_prop_port(pool, c->local_sockaddr, out);
}


/* ---- connection.* ---- */

static ngx_int_t
ngx_http_pw_prop_connection_id(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    return ngx_http_pw_prop_int(pool, (int64_t) r->connection->number, out);
}


static ngx_int_t
ngx_http_pw_prop_connection_mtls(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_uint_t  mtls;
#if (NGX_HTTP_SSL)
    X509       *cert;
#endif

    mtls = 0;

#if (NGX_HTTP_SSL)
    if (r->connection->ssl && r->connection->ssl->connection) {
        cert = SSL_get_peer_certificate(r->connection->ssl->connection);

        if (cert) {
            mtls = SSL_get_verify_result(r->connection->ssl->connection)
                   == X509_V_OK;
            X509_free(cert);
        }
    }
#endif

    return ngx_http_pw_prop_bool(pool, mtls, out);
}


/* As Envoy: an empty string without TLS or without SNI. */

static ngx_int_t
ngx_http_pw_prop_connection_sni(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
#if (NGX_HTTP_SSL && defined SSL_CTRL_SET_TLSEXT_HOSTNAME)
    const char  *name;

    if (r->connection->ssl && r->connection->ssl->connection) {
        name = SSL_get_servername(r->connection->ssl->connection,
                                  TLSEXT_NAMETYPE_host_name);
        if (name) {
            out->data = name;
            out->len = ngx_strlen(name);
            return NGX_OK;
        }
    }
#endif

    ngx_http_pw_prop_str(NULL, 0, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_connection_tls_version(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
#if (NGX_HTTP_SSL)
    const char  *v;

    if (r->connection->ssl && r->connection->ssl->connection) {
        v = SSL_get_version(r->connection->ssl->connection);
        if (v) {
            out->data = v;
            out->len = ngx_strlen(v);
            return NGX_OK;
        }
    }
#endif

    return NGX_DECLINED;
}


/* ---- upstream.* ---- */

/* The name nginx logs as $upstream_addr for the last peer tried. */

static ngx_str_t *
ngx_http_pw_prop_upstream_name(ngx_http_request_t *r)
{
    ngx_uint_t                  i;
    ngx_http_upstream_t        *u;
    ngx_http_upstream_state_t  *state;

    u = r->upstream;

    if (u && u->state && u->state->peer && u->state->peer->len) {
        return u->state->peer;
    }

    if (r->upstream_states == NULL) {
        return NULL;
    }

    state = r->upstream_states->elts;

    for (i = r->upstream_states->nelts; i > 0; i--) {
        if (state[i - 1].peer && state[i - 1].peer->len) {
            return state[i - 1].peer;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_pw_prop_upstream_address(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    ngx_str_t            *name;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (u && u->peer.sockaddr && u->peer.socklen) {
        return ngx_http_pw_prop_addr(pool, u->peer.sockaddr, u->peer.socklen,
                                     out);
    }

    name = ngx_http_pw_prop_upstream_name(r);
    if (name == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_pw_prop_str(name->data, name->len, out);

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_prop_upstream_port(ngx_http_pw_prop_ctx_t *pc,
    ngx_http_request_t *r, ngx_pool_t *pool, pw_str_t *out)
{
    u_char               *p, *colon;
    ngx_int_t             port;
    ngx_str_t            *name;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (u && u->peer.sockaddr && u->peer.socklen) {
        return ngx_http_pw_prop_port(pool, u->peer.sockaddr, out);
    }

    name = ngx_http_pw_prop_upstream_name(r);
    if (name == NULL) {
        return NGX_DECLINED;
    }

    /* "ip:port" or "[ip6]:port"; "unix:/path" has no port */

    colon = NULL;

    for (p = name->data; p < name->data + name->len; p++) {
        if (*p == ':') {
            colon = p;
        }
    }

    if (colon == NULL || colon + 1 == name->data + name->len) {
        return NGX_DECLINED;
    }

    port = ngx_atoi(colon + 1, name->data + name->len - colon - 1);
    if (port <= 0 || port > 65535) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_prop_int(pool, port, out);
}
