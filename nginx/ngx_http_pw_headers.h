/*
 * The request's and the response's header maps as Proxy-Wasm sees them.
 *
 * Request: ":method", ":path" (the unparsed URI with its query string),
 * ":authority" (Host), ":scheme" first, then r->headers_in.headers in
 * order. Response: ":status", then "content-type" and "content-length"
 * when nginx keeps them as fields (r->headers_out.content_type,
 * content_length_n without a header element), then
 * r->headers_out.headers in order (elements with hash == 0 are deleted
 * and skipped). Keys are lowercase.
 *
 * Changes go to where nginx reads them: the pseudo-headers rewrite the
 * method, URI and arguments, Host; special fields (content-length,
 * content-type, server, date, location, last-modified, ...) keep nginx's
 * shortcut pointers right, so the change shows on the wire.
 */
#ifndef NGX_HTTP_PW_HEADERS_H
#define NGX_HTTP_PW_HEADERS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <pw/pw.h>

/*
 * All pairs of a map. The pairs array and any values built for it come
 * from pool; values point into nginx memory or pool memory and stay valid
 * until the map is next changed. NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_pw_headers_pairs(ngx_http_request_t *r,
    ngx_uint_t response, ngx_pool_t *pool, pw_pairs_t *out);

/*
 * The value of key (lowercase comparison); several values are joined with
 * ",". NGX_OK, NGX_DECLINED when absent, NGX_ERROR.
 */
ngx_int_t ngx_http_pw_headers_get(ngx_http_request_t *r,
    ngx_uint_t response, ngx_pool_t *pool, pw_str_t key, pw_str_t *value);

/* Append key: value (copied into r->pool). */
ngx_int_t ngx_http_pw_headers_add(ngx_http_request_t *r,
    ngx_uint_t response, pw_str_t key, pw_str_t value);

/* Remove every key, then add key: value. */
ngx_int_t ngx_http_pw_headers_replace(ngx_http_request_t *r,
    ngx_uint_t response, pw_str_t key, pw_str_t value);

/* Remove every key; NGX_OK when absent too. */
ngx_int_t ngx_http_pw_headers_remove(ngx_http_request_t *r,
    ngx_uint_t response, pw_str_t key);

/* Replace the whole map with pairs (pseudo-headers included). */
ngx_int_t ngx_http_pw_headers_set_pairs(ngx_http_request_t *r,
    ngx_uint_t response, const pw_pairs_t *pairs);

/* Number of pairs ngx_http_pw_headers_pairs would return. */
ngx_uint_t ngx_http_pw_headers_count(ngx_http_request_t *r,
    ngx_uint_t response);

#endif /* NGX_HTTP_PW_HEADERS_H */
