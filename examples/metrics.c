/*
 * metrics: counters, gauges and histograms. The plugin defines
 * requests_total (counter), in_flight (gauge) and body_size (histogram of
 * request body bytes) when it starts. Each request increments
 * requests_total and in_flight; when the request ends (on_log) in_flight
 * goes down and its body size is recorded.
 */
#include <stdlib.h>

#include "proxy_wasm.h"

typedef struct {
    uint64_t body_bytes;
} request_t;

static uint32_t requests_total, in_flight, body_size;
static bool defined;


static bool
on_configure(uint32_t root_id, uint32_t config_size)
{
    if (defined) {
        return true;
    }

    if (px_define_metric(PX_METRIC_COUNTER, "requests_total",
                         &requests_total) != PX_OK
        || px_define_metric(PX_METRIC_GAUGE, "in_flight", &in_flight)
           != PX_OK
        || px_define_metric(PX_METRIC_HISTOGRAM, "body_size", &body_size)
           != PX_OK)
    {
        px_log(PX_LOG_ERROR, "metrics: cannot define metrics");
        return false;
    }

    defined = true;
    return true;
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    request_t *r;

    if (px_get_context_data(ctx) != NULL) {
        return PX_CONTINUE;
    }

    r = calloc(1, sizeof(request_t));
    if (r == NULL || px_set_context_data(ctx, r) != PX_OK) {
        free(r);
        return PX_CONTINUE;
    }

    px_increment_metric(requests_total, 1);
    px_increment_metric(in_flight, 1);
    return PX_CONTINUE;
}


static px_action_t
on_request_body(uint32_t ctx, uint32_t size, bool eos)
{
    request_t *r;

    r = px_get_context_data(ctx);
    if (r != NULL) {
        r->body_bytes += size;
    }
    return PX_CONTINUE;
}


/* The request ended: count it out and record its body size, once. */
static void
finish(uint32_t ctx)
{
    request_t *r;

    r = px_get_context_data(ctx);
    if (r == NULL) {
        return;
    }

    px_increment_metric(in_flight, -1);
    px_record_metric(body_size, r->body_bytes);
    px_set_context_data(ctx, NULL);
    free(r);
}


static void
on_log(uint32_t ctx)
{
    finish(ctx);
}


static void
on_delete(uint32_t ctx)
{
    /* a request that never reached on_log must not leak nor stay in flight */
    finish(ctx);
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_request_headers = on_request_headers,
    .on_request_body = on_request_body,
    .on_log = on_log,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
