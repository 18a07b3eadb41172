/*
 * Callouts from plugins: HTTP calls (ngx_http_pw_callout_http.c) and gRPC
 * calls and streams over HTTP/2 with nghttp2 (ngx_http_pw_callout_grpc.c),
 * on nginx's event loop. The core picks the token and keeps the callout
 * bookkeeping; these files own the network side and deliver answers with
 * pw_plugin_http_response() / pw_plugin_grpc_*() on the root context
 * (never from inside a plugin call: from an event handler).
 *
 * Each in-flight call holds a reference on its instance
 * (ngx_pw_instance_t.refs) so the root plugin outlives it; when the
 * instance failed meanwhile the answer is dropped. A call made while a
 * request was the effective context (on_log and on_delete included) is
 * cancelled when that request ends (ngx_http_pw_callouts_cancel, called
 * by the request code after the last callbacks).
 */
#ifndef NGX_HTTP_PW_CALLOUT_H
#define NGX_HTTP_PW_CALLOUT_H

#include "ngx_pw.h"

/* pw_host_t entries */
int ngx_http_pw_http_call(const pw_hctx_t *c, uint32_t token,
    pw_str_t upstream, const pw_pairs_t *headers, pw_str_t body,
    const pw_pairs_t *trailers, uint32_t timeout_ms);
int ngx_http_pw_grpc_call(const pw_hctx_t *c, uint32_t token,
    pw_str_t upstream, pw_str_t service, pw_str_t method,
    const pw_pairs_t *metadata, pw_str_t message, uint32_t timeout_ms);
int ngx_http_pw_grpc_stream(const pw_hctx_t *c, uint32_t token,
    pw_str_t upstream, pw_str_t service, pw_str_t method,
    const pw_pairs_t *metadata);
int ngx_http_pw_grpc_send(const pw_hctx_t *c, uint32_t token,
    pw_str_t message, int end_stream);
int ngx_http_pw_grpc_cancel(const pw_hctx_t *c, uint32_t token);
int ngx_http_pw_grpc_close(const pw_hctx_t *c, uint32_t token);

/* The request of fctx ends: cancel the calls it made (HTTP and gRPC). */
void ngx_http_pw_callouts_cancel(ngx_http_pw_fctx_t *f);
void ngx_http_pw_grpc_cancel_all(ngx_http_pw_fctx_t *f);

#endif /* NGX_HTTP_PW_CALLOUT_H */
