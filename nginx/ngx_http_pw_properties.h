/*
 * Properties the nginx host owns (request.*, response.*, source.*,
 * destination.*, connection.*, upstream.*, ngx.<variable>).
 * plugin_name, plugin_root_id and plugin_vm_id are answered by the core.
 * Encodings follow Envoy: integers as 8-byte little-endian, booleans as one
 * byte, timestamps and durations as nanoseconds (8-byte little-endian).
 * docs/PROPERTIES.md lists every name.
 */
#ifndef NGX_HTTP_PW_PROPERTIES_H
#define NGX_HTTP_PW_PROPERTIES_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <pw/pw.h>

typedef struct {
    ngx_http_request_t  *r;           /* NULL for root contexts */
    ngx_str_t            code_details; /* response.code_details when the
                                          host answered locally, else
                                          empty */
} ngx_http_pw_prop_ctx_t;

/*
 * Resolve path (nseg segments, already split on NUL) into *out.
 * Memory for the value comes from pool and must live until the caller has
 * copied it. NGX_OK, NGX_DECLINED when the property does not exist (or has
 * no value in this context: no request, no response yet), NGX_ERROR on
 * allocation failure.
 */
ngx_int_t ngx_http_pw_property_get(ngx_http_pw_prop_ctx_t *pc,
    ngx_pool_t *pool, const pw_str_t *path, size_t nseg, pw_str_t *out);

/*
 * Set a property: only ngx.<variable> for variables nginx marks
 * changeable (set_handler or NGX_HTTP_VAR_CHANGEABLE). NGX_OK,
 * NGX_DECLINED when the name is unknown or read-only, NGX_ERROR.
 */
ngx_int_t ngx_http_pw_property_set(ngx_http_pw_prop_ctx_t *pc,
    const pw_str_t *path, size_t nseg, pw_str_t value);

#endif /* NGX_HTTP_PW_PROPERTIES_H */
