/*
 * callout_token: keeps a token fetched over HTTP in shared data, the way an
 * auth plugin refreshes credentials. Configuration: "UPSTREAM PERIOD_MS
 * [now]".
 *
 *   - every PERIOD_MS (0: never) the tick asks UPSTREAM for GET /token,
 *     one call at a time; "now" also asks from on_configure (before the
 *     worker's event loop runs);
 *   - an answer with :status 200 is stored as shared data "callout_token"
 *     and logged "callout_token: stored <token> (call N)"; a failed call
 *     logs "callout_token: call N failed (0 headers)";
 *   - every request gets the stored token as request header "x-token", or
 *     a local 503 "no token yet" when there is none.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define TOKEN_KEY  "callout_token"

static char upstream[128];
static int in_flight;

static void
fetch(void)
{
    uint32_t token;
    px_status_t rc;
    const px_header_t headers[] = {
        { ":method", "GET" },
        { ":path", "/token" },
        { ":authority", "tokens" },
    };

    if (in_flight) {
        return;
    }

    rc = px_http_call(upstream, headers, 3, NULL, 0, NULL, 0, 2000, &token);
    if (rc != PX_OK) {
        px_logf(PX_LOG_ERROR, "callout_token: http_call: %s",
                px_status_name(rc));
        return;
    }

    in_flight = 1;
}

static bool
on_configure(uint32_t root_id, uint32_t size)
{
    char *conf = NULL, *p, *word;
    size_t len;
    unsigned long period = 0;
    int now = 0, i = 0;

    if (px_get_configuration(&conf, &len) != PX_OK || conf == NULL) {
        px_log(PX_LOG_ERROR, "callout_token: no configuration");
        return false;
    }

    for (word = strtok_r(conf, " ", &p); word; word = strtok_r(NULL, " ", &p))
    {
        if (i == 0) {
            strncpy(upstream, word, sizeof(upstream) - 1);
        } else if (i == 1) {
            period = strtoul(word, NULL, 10);
        } else if (strcmp(word, "now") == 0) {
            now = 1;
        }
        i++;
    }
    free(conf);

    if (period) {
        px_set_tick_period((uint32_t) period);
    }

    if (now) {
        fetch();
    }

    return true;
}

static void
on_tick(uint32_t root_id)
{
    fetch();
}

static void
on_http_call_response(uint32_t ctx, uint32_t token, uint32_t nheaders,
    uint32_t body_size, uint32_t ntrailers)
{
    char *status = NULL, *body = NULL;
    size_t len, blen;

    in_flight = 0;

    if (nheaders == 0) {
        px_logf(PX_LOG_WARN, "callout_token: call %u failed (0 headers)",
                token);
        return;
    }

    if (px_get_header(PX_MAP_HTTP_CALL_RESPONSE_HEADERS, ":status", &status,
                      &len) != PX_OK
        || strcmp(status, "200") != 0
        || px_get_buffer(PX_BUFFER_HTTP_CALL_RESPONSE_BODY, 0, body_size,
                         &body, &blen) != PX_OK)
    {
        px_logf(PX_LOG_WARN, "callout_token: call %u answered %s", token,
                status ? status : "?");
        free(status);
        return;
    }

    if (px_set_shared_data(TOKEN_KEY, body, blen, 0) == PX_OK) {
        px_logf(PX_LOG_INFO, "callout_token: stored %s (call %u)", body,
                token);
    }

    free(status);
    free(body);
}

static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    char *value = NULL;
    size_t len;

    if (px_get_shared_data(TOKEN_KEY, &value, &len, NULL) != PX_OK) {
        px_respond(503, "no token yet\n", NULL, 0);
        return PX_PAUSE;
    }

    px_replace_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-token", value);
    free(value);

    return PX_CONTINUE;
}

static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_tick = on_tick,
    .on_http_call_response = on_http_call_response,
    .on_request_headers = on_request_headers,
};

PX_PLUGIN(plugin);
