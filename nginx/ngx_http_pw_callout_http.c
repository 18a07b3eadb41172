/*
 * HTTP calls from plugins (proxy_http_call). Not implemented yet: an
 * explicit stub answering UNIMPLEMENTED.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_pw_callout.h"


int
ngx_http_pw_http_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers,
    uint32_t timeout_ms)
{
    return PW_EUNIMPLEMENTED;
}


void
ngx_http_pw_callouts_cancel(ngx_http_pw_fctx_t *f)
{
}
