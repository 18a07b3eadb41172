/*
 * ngxtest: a plugin for the nginx end-to-end tests, for what the script of
 * testplugin cannot say. Its configuration is a list of words:
 *
 *   count          a counter in plugin memory (a C global) incremented on
 *                  every request; each response gets "x-count: N", and
 *                  "x-configured: M" (calls of on_configure in this VM)
 *   pause=PHASE    pause the stream in PHASE (request_headers, request_body,
 *                  response_headers, response_body), once per request, and
 *                  resume it from the next tick (body callbacks until then
 *                  keep answering pause, so the host buffers); the tick adds
 *                  "x-resumed: PHASE" to the request headers (request_headers)
 *                  or the response headers (response_headers) before
 *                  resuming
 *   tick=MS        tick period (default 20 with pause=)
 *   hold=MS        the tick resumes a stream only once it has been paused
 *                  that long (default 0)
 *   loglevel       log "ngxtest: log level N" (proxy_get_log_level) at
 *                  critical level in on_configure and on every request
 *   nheaders       log "ngxtest: request|response headers n=N pairs=P": the
 *                  count the host passed and the pairs it gives
 *   trace          log each response callback in order: "ngxtest: trace
 *                  response_headers eos=E body=S" (S: the status of
 *                  reading the response body there, which Envoy does not
 *                  give yet) and "ngxtest: trace response_body size=N
 *                  eos=E"
 *   req_body=OP:TEXT, resp_body=OP:TEXT
 *                  buffer the body (pause until end of stream), log
 *                  "ngxtest: request|response body size=N", then change it:
 *                  OP set (replace it all), prepend or append; OP keep
 *                  only buffers and logs
 *
 * Log lines (info): "ngxtest: paused PHASE ctx=N", "ngxtest: resumed PHASE
 * ctx=N status=S".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define MAX_PENDING  64

enum { PH_NONE, PH_REQ_HEADERS, PH_REQ_BODY, PH_RESP_HEADERS, PH_RESP_BODY };

static const char *phase_names[] = {
    "none", "request_headers", "request_body", "response_headers",
    "response_body"
};

static unsigned requests;
static unsigned configured;
static int count_on;
static int pause_phase;
static uint32_t pending[MAX_PENDING];
static int pending_phase[MAX_PENDING];
static uint64_t pending_since[MAX_PENDING];
static int npending;
static uint64_t hold_ns;

/* streams already paused once (so each pauses once per request) */
static uint32_t done_ctx[MAX_PENDING];
static int ndone;

typedef struct {
    int on;
    char op[16];
    char text[256];
} body_op_t;

static body_op_t req_op, resp_op;
static int loglevel_on;
static int nheaders_on;
static int trace_on;


static void
log_level(void)
{
#if PX_ABI_VERSION >= PX_ABI_0_2_1
    px_log_level_t level;

    if (loglevel_on && px_get_log_level(&level) == PX_OK) {
        px_logf(PX_LOG_CRITICAL, "ngxtest: log level %d", (int) level);
    }
#endif
}


static bool
parse_body_op(body_op_t *op, const char *arg)
{
    const char *colon;

    colon = strchr(arg, ':');
    if (colon == NULL) {
        colon = arg + strlen(arg);
    }
    if ((size_t) (colon - arg) >= sizeof(op->op)) {
        return false;
    }
    memcpy(op->op, arg, colon - arg);
    op->op[colon - arg] = '\0';
    snprintf(op->text, sizeof(op->text), "%s", *colon ? colon + 1 : "");
    op->on = 1;
    return strcmp(op->op, "set") == 0 || strcmp(op->op, "prepend") == 0
           || strcmp(op->op, "append") == 0 || strcmp(op->op, "keep") == 0;
}


static px_action_t
body(const body_op_t *op, px_buffer_type_t type, const char *what,
    uint32_t size, bool eos)
{
    if (!op->on) {
        return PX_CONTINUE;
    }
    if (!eos) {
        return PX_PAUSE;
    }
    px_logf(PX_LOG_INFO, "ngxtest: %s body size=%u", what, size);
    if (strcmp(op->op, "set") == 0) {
        px_set_buffer(type, 0, size, op->text, strlen(op->text));
    } else if (strcmp(op->op, "prepend") == 0) {
        px_set_buffer(type, 0, 0, op->text, strlen(op->text));
    } else if (strcmp(op->op, "append") == 0) {
        px_set_buffer(type, size, 0, op->text, strlen(op->text));
    }
    return PX_CONTINUE;
}


static bool
on_configure(uint32_t root_id, uint32_t size)
{
    char *config, *w, *save;
    size_t len;
    unsigned tick = 0;
    int i;

    configured++;
    if (px_get_configuration(&config, &len) != PX_OK) {
        return true;
    }

    for (w = strtok_r(config, " \t\n", &save); w != NULL;
         w = strtok_r(NULL, " \t\n", &save))
    {
        if (strcmp(w, "count") == 0) {
            count_on = 1;
        } else if (strncmp(w, "pause=", 6) == 0) {
            for (i = 1; i <= PH_RESP_BODY; i++) {
                if (strcmp(w + 6, phase_names[i]) == 0) {
                    pause_phase = i;
                }
            }
            if (pause_phase == PH_NONE) {
                px_logf(PX_LOG_ERROR, "ngxtest: unknown phase %s", w + 6);
                free(config);
                return false;
            }
            if (tick == 0) {
                tick = 20;
            }
        } else if (strcmp(w, "loglevel") == 0) {
            loglevel_on = 1;
        } else if (strcmp(w, "nheaders") == 0) {
            nheaders_on = 1;
        } else if (strcmp(w, "trace") == 0) {
            trace_on = 1;
        } else if (strncmp(w, "req_body=", 9) == 0
                   || strncmp(w, "resp_body=", 10) == 0)
        {
            if (!parse_body_op(w[2] == 'q' ? &req_op : &resp_op,
                               strchr(w, '=') + 1))
            {
                px_logf(PX_LOG_ERROR, "ngxtest: bad body operation %s", w);
                free(config);
                return false;
            }
        } else if (strncmp(w, "hold=", 5) == 0) {
            hold_ns = (uint64_t) atoi(w + 5) * 1000000;
        } else if (strncmp(w, "tick=", 5) == 0) {
            tick = (unsigned) atoi(w + 5);
        } else {
            px_logf(PX_LOG_ERROR, "ngxtest: unknown word %s", w);
            free(config);
            return false;
        }
    }
    free(config);

    if (tick != 0) {
        px_set_tick_period(tick);
    }
    px_logf(PX_LOG_INFO, "ngxtest: configured (%u)", configured);
    log_level();
    return true;
}


static px_action_t
maybe_pause(uint32_t ctx, int phase)
{
    int i;

    if (pause_phase != phase) {
        return PX_CONTINUE;
    }
    /* a body keeps coming while paused: stay paused until the tick */
    for (i = 0; i < npending; i++) {
        if (pending[i] == ctx) {
            return PX_PAUSE;
        }
    }
    for (i = 0; i < ndone; i++) {
        if (done_ctx[i] == ctx) {
            return PX_CONTINUE;
        }
    }
    if (npending == MAX_PENDING || ndone == MAX_PENDING) {
        px_log(PX_LOG_ERROR, "ngxtest: too many paused streams");
        return PX_CONTINUE;
    }
    done_ctx[ndone++] = ctx;
    pending_since[npending] = 0;
    px_get_current_time_ns(&pending_since[npending]);
    pending[npending] = ctx;
    pending_phase[npending++] = phase;
    px_logf(PX_LOG_INFO, "ngxtest: paused %s ctx=%u", phase_names[phase],
            ctx);
    return PX_PAUSE;
}


static void
on_tick(uint32_t root_id)
{
    int i, n, phase;
    uint32_t ctx;
    uint64_t now = 0;
    px_status_t rc;

    px_get_current_time_ns(&now);

    for (i = 0, n = 0; i < npending; i++) {
        ctx = pending[i];
        phase = pending_phase[i];
        if (now - pending_since[i] < hold_ns) {
            pending[n] = ctx;
            pending_phase[n] = phase;
            pending_since[n++] = pending_since[i];
            continue;
        }
        rc = px_set_effective_context(ctx);
        if (rc == PX_OK) {
            if (phase == PH_REQ_HEADERS) {
                px_add_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-resumed",
                              phase_names[phase]);
            } else if (phase == PH_RESP_HEADERS) {
                px_add_header(PX_MAP_HTTP_RESPONSE_HEADERS, "x-resumed",
                              phase_names[phase]);
            }
            rc = px_continue_stream(phase <= PH_REQ_BODY
                                    ? PX_STREAM_HTTP_REQUEST
                                    : PX_STREAM_HTTP_RESPONSE);
        }
        px_logf(PX_LOG_INFO, "ngxtest: resumed %s ctx=%u status=%u",
                phase_names[phase], ctx, (unsigned) rc);
    }
    npending = n;
}


static void
log_nheaders(px_map_type_t map, const char *what, uint32_t n)
{
    px_headers_t h;

    if (!nheaders_on || px_get_headers(map, &h) != PX_OK) {
        return;
    }
    px_logf(PX_LOG_INFO, "ngxtest: %s headers n=%u pairs=%u", what, n,
            (unsigned) h.count);
    px_headers_free(&h);
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t n, bool eos)
{
    requests++;
    log_nheaders(PX_MAP_HTTP_REQUEST_HEADERS, "request", n);
    log_level();
    return maybe_pause(ctx, PH_REQ_HEADERS);
}


static px_action_t
on_request_body(uint32_t ctx, uint32_t size, bool eos)
{
    if (req_op.on) {
        return body(&req_op, PX_BUFFER_HTTP_REQUEST_BODY, "request", size,
                    eos);
    }
    return maybe_pause(ctx, PH_REQ_BODY);
}


static px_action_t
on_response_headers(uint32_t ctx, uint32_t n, bool eos)
{
    char buf[32];
    size_t len;
    uint32_t flags;

    log_nheaders(PX_MAP_HTTP_RESPONSE_HEADERS, "response", n);
    if (trace_on) {
        px_logf(PX_LOG_INFO, "ngxtest: trace response_headers eos=%d body=%d",
                (int) eos,
                (int) px_get_buffer_status(PX_BUFFER_HTTP_RESPONSE_BODY,
                                           &len, &flags));
    }
    if (count_on) {
        snprintf(buf, sizeof(buf), "%u", requests);
        px_add_header(PX_MAP_HTTP_RESPONSE_HEADERS, "x-count", buf);
        snprintf(buf, sizeof(buf), "%u", configured);
        px_add_header(PX_MAP_HTTP_RESPONSE_HEADERS, "x-configured", buf);
    }
    return maybe_pause(ctx, PH_RESP_HEADERS);
}


static px_action_t
on_response_body(uint32_t ctx, uint32_t size, bool eos)
{
    if (trace_on) {
        px_logf(PX_LOG_INFO, "ngxtest: trace response_body size=%u eos=%d",
                size, (int) eos);
    }
    if (resp_op.on) {
        return body(&resp_op, PX_BUFFER_HTTP_RESPONSE_BODY, "response", size,
                    eos);
    }
    return maybe_pause(ctx, PH_RESP_BODY);
}


static void
on_delete(uint32_t ctx)
{
    int i;

    for (i = 0; i < ndone; i++) {
        if (done_ctx[i] == ctx) {
            done_ctx[i] = done_ctx[--ndone];
            break;
        }
    }
    for (i = 0; i < npending; i++) {
        if (pending[i] == ctx) {
            pending[i] = pending[npending - 1];
            pending_phase[i] = pending_phase[npending - 1];
            pending_since[i] = pending_since[npending - 1];
            npending--;
            break;
        }
    }
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_tick = on_tick,
    .on_request_headers = on_request_headers,
    .on_request_body = on_request_body,
    .on_response_headers = on_response_headers,
    .on_response_body = on_response_body,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
