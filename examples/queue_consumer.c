/*
 * queue_consumer: the receiving half of a shared queue. The plugin
 * registers the queue "events" when configured; whenever the host says
 * the queue has items (on_queue_ready) it drains it, logging each item.
 */
#include <stdlib.h>

#include "proxy_wasm.h"

#define QUEUE_NAME  "events"

static bool
on_configure(uint32_t root_id, uint32_t config_size)
{
    uint32_t qid;
    px_status_t rc;

    rc = px_register_queue(QUEUE_NAME, &qid);
    if (rc != PX_OK) {
        px_logf(PX_LOG_ERROR, "queue_consumer: cannot register \"%s\": %s",
                QUEUE_NAME, px_status_name(rc));
        return false;
    }

    px_logf(PX_LOG_INFO, "queue_consumer: registered \"%s\" as %u",
            QUEUE_NAME, qid);
    return true;
}


static void
on_queue_ready(uint32_t root_id, uint32_t qid)
{
    char *item;
    size_t len;

    while (px_dequeue(qid, &item, &len) == PX_OK) {
        px_logf(PX_LOG_INFO, "queue_consumer: event %.*s", (int) len, item);
        free(item);
    }
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_queue_ready = on_queue_ready,
};

PX_PLUGIN(plugin);
