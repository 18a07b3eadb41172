/*
 * gRPC calls and streams from plugins. Not implemented yet: explicit
 * stubs answering UNIMPLEMENTED.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_pw_callout.h"


int
ngx_http_pw_grpc_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata,
    pw_str_t message, uint32_t timeout_ms)
{
    return PW_EUNIMPLEMENTED;
}


int
ngx_http_pw_grpc_stream(const pw_hctx_t *c, uint32_t token,
    pw_str_t upstream, pw_str_t service, pw_str_t method,
    const pw_pairs_t *metadata)
{
    return PW_EUNIMPLEMENTED;
}


int
ngx_http_pw_grpc_send(const pw_hctx_t *c, uint32_t token, pw_str_t message,
    int end_stream)
{
    return PW_EUNIMPLEMENTED;
}


int
ngx_http_pw_grpc_cancel(const pw_hctx_t *c, uint32_t token)
{
    return PW_EUNIMPLEMENTED;
}


int
ngx_http_pw_grpc_close(const pw_hctx_t *c, uint32_t token)
{
    return PW_EUNIMPLEMENTED;
}
