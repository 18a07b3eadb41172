/*
 * callout_auth: an asynchronous HTTP callout. Each request is paused while
 * the plugin asks the upstream "auth" (GET /auth with the request's
 * Authorization header). The answer arrives on the root context; the
 * runtime hands back the stream's context id, the plugin makes it the
 * effective context and then either resumes the request (auth said 200)
 * or answers 403 itself.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define AUTH_UPSTREAM  "auth"
#define AUTH_TIMEOUT   5000

static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    char *authz = NULL;
    size_t len, n;
    uint32_t token;
    px_status_t rc;
    px_header_t headers[4] = {
        { ":method", "GET" },
        { ":path", "/auth" },
        { ":authority", AUTH_UPSTREAM },
        { "authorization", "" },
    };

    n = 3;
    if (px_get_header(PX_MAP_HTTP_REQUEST_HEADERS, "authorization", &authz,
                      &len) == PX_OK)
    {
        headers[3].value = authz;
        n = 4;
    }

    rc = px_http_call(AUTH_UPSTREAM, headers, n, NULL, 0, NULL, 0,
                      AUTH_TIMEOUT, &token);
    free(authz);

    if (rc != PX_OK) {
        px_logf(PX_LOG_ERROR, "callout_auth: http_call failed: %s",
                px_status_name(rc));
        px_respond(403, "forbidden\n", NULL, 0);
        return PX_PAUSE;
    }

    px_logf(PX_LOG_INFO, "callout_auth: asked %s (call %u)", AUTH_UPSTREAM,
            token);
    return PX_PAUSE;
}


static void
on_http_call_response(uint32_t ctx, uint32_t token, uint32_t nheaders,
    uint32_t body_size, uint32_t ntrailers)
{
    char *status = NULL;
    size_t len;
    bool allowed;

    allowed = nheaders != 0
              && px_get_header(PX_MAP_HTTP_CALL_RESPONSE_HEADERS, ":status",
                               &status, &len) == PX_OK
              && strcmp(status, "200") == 0;

    px_logf(PX_LOG_INFO, "callout_auth: call %u answered %s", token,
            status ? status : "nothing");
    free(status);

    if (px_set_effective_context(ctx) != PX_OK) {
        px_log(PX_LOG_WARN, "callout_auth: request is gone");
        return;
    }

    if (allowed) {
        px_continue_request();
    } else {
        px_respond(403, "forbidden\n", NULL, 0);
    }
}


static const px_plugin_t plugin = {
    .on_request_headers = on_request_headers,
    .on_http_call_response = on_http_call_response,
};

PX_PLUGIN(plugin);
