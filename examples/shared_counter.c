/*
 * shared_counter: shared data with compare-and-swap. Every request
 * increments the counter "request_count" shared by all VMs and workers:
 * read it with its CAS token, write the new value with that token, and
 * retry when another writer got there first. The response carries the
 * value this request produced in x-request-count.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "proxy_wasm.h"

#define COUNTER_KEY  "request_count"
#define MAX_TRIES    16

/* The incremented counter, or 0 if it could not be updated. */
static unsigned long
increment_counter(void)
{
    char *value, buf[24];
    size_t len;
    uint32_t cas;
    unsigned long n;
    int i, blen;
    px_status_t rc;

    for (i = 0; i < MAX_TRIES; i++) {
        rc = px_get_shared_data(COUNTER_KEY, &value, &len, &cas);
        if (rc == PX_OK) {
            n = strtoul(value, NULL, 10) + 1;
            free(value);
        } else if (rc == PX_NOT_FOUND) {
            n = 1;
            cas = 0;        /* first writer; a race just retries below */
        } else {
            return 0;
        }

        blen = snprintf(buf, sizeof(buf), "%lu", n);
        rc = px_set_shared_data(COUNTER_KEY, buf, (size_t) blen, cas);
        if (rc == PX_OK) {
            return n;
        }
        if (rc != PX_CAS_MISMATCH) {
            return 0;
        }
    }

    px_log(PX_LOG_WARN, "shared_counter: too much contention, giving up");
    return 0;
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    unsigned long n;

    n = increment_counter();
    px_set_context_data(ctx, (void *) (uintptr_t) n);
    return PX_CONTINUE;
}


static px_action_t
on_response_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    char buf[24];
    unsigned long n;

    n = (unsigned long) (uintptr_t) px_get_context_data(ctx);
    if (n != 0) {
        snprintf(buf, sizeof(buf), "%lu", n);
        px_replace_header(PX_MAP_HTTP_RESPONSE_HEADERS, "x-request-count",
                          buf);
    }
    return PX_CONTINUE;
}


static const px_plugin_t plugin = {
    .on_request_headers = on_request_headers,
    .on_response_headers = on_response_headers,
};

PX_PLUGIN(plugin);
