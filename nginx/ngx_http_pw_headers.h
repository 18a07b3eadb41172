/*
 * The request's and the response's header maps as Proxy-Wasm sees them.
 *
 * Request: ":method", ":path" (the unparsed URI with its query string),
 * ":authority" (Host, else r->headers_in.server), ":scheme" first, then
 * r->headers_in.headers in order. Response: ":status", then
 * "content-type", "content-length" and "last-modified" when nginx keeps
 * them as fields (r->headers_out.content_type with its charset as the
 * header filter sends it, content_length_n and last_modified_time without
 * a header element), then r->headers_out.headers in order (elements with
 * hash == 0 are deleted and skipped). Keys are lowercase.
 *
 * Changes go to where nginx reads them: the pseudo-headers rewrite the
 * method, URI and arguments, Host; special fields (content-length,
 * content-type, server, date, location, last-modified, ...) keep nginx's
 * shortcut pointers right, so the change shows on the wire.
 *
 * Request details:
 * - ":path" sets r->unparsed_uri (kept valid, so proxy_pass without a URI
 *   part sends it byte for byte), r->uri (percent-decoded, "." and ".."
 *   resolved, never above "/"), r->args, r->exten; r->valid_location is
 *   cleared when the new URI leaves the location's prefix (proxy_pass with
 *   a URI part then sends the whole URI, as after "rewrite ... break").
 *   The location is not searched again. Reading ":path" after a rewrite or
 *   an internal redirect gives the escaped r->uri and its arguments.
 * - ":method" sets r->method_name and r->method (NGX_HTTP_UNKNOWN when not
 *   one of nginx's). ":authority" replaces the Host elements and sets
 *   r->headers_in.server (lowercase, no port). ":scheme" writes are
 *   ignored; removing a pseudo-header does nothing (NGX_OK).
 * - Removed elements leave r->headers_in.headers; every shortcut of
 *   r->headers_in (host, user_agent, cookies, x_forwarded_for, ...) is
 *   pointed at the list again. content_length_n and chunked are not
 *   changed: they frame the body nginx reads from the client and the one
 *   the proxy sends upstream (with its own Content-Length).
 *
 * Response details:
 * - Deleted elements get hash 0 (nginx's own way; header filters skip
 *   them). Removing "server" or "date" also stops nginx from adding its
 *   own; removing "accept-ranges" clears r->allow_ranges.
 * - "content-type" and "content-length" live in their fields only; adding
 *   either replaces it. "last-modified" is an element, with
 *   last_modified_time parsed from it for the not-modified and range
 *   filters.
 * - set_pairs removes every key the map shows (as remove would), then adds
 *   the pairs; nginx's own Server and Date, not yet in the map, stay.
 *
 * Writes return NGX_ERROR for allocation failures and for what cannot go
 * on the wire: an empty key, a key that is not an HTTP token, a value
 * with CR, LF or NUL, an unknown pseudo-header, a ":path" not starting
 * with "/" (or "*") or holding controls, spaces, '#' or "%00", a ":method"
 * that is not a token, a ":authority" or "host" nginx would refuse (such
 * as ".." or "/"), a ":status" outside 100-999, a non-numeric
 * content-length. set_pairs checks every pair before changing anything.
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
