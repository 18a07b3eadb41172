/*
 * queue_producer: the sending half of a shared queue. For every request
 * the plugin enqueues the request path into the queue "events", which
 * queue_consumer registers. The plugin configuration names the VM that
 * owns the queue (the consumer's vm_id; empty means the default VM). The
 * queue is looked up lazily, so the consumer may start later.
 */
#include <stdlib.h>

#include "proxy_wasm.h"

#define QUEUE_NAME  "events"

static char *vm_id;
static uint32_t queue_id;
static bool queue_found;


static bool
on_configure(uint32_t root_id, uint32_t config_size)
{
    size_t len;

    free(vm_id);
    queue_found = false;
    return px_get_configuration(&vm_id, &len) == PX_OK;
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    char *path;
    size_t len;
    px_status_t rc;

    if (!queue_found) {
        rc = px_resolve_queue(vm_id ? vm_id : "", QUEUE_NAME, &queue_id);
        if (rc != PX_OK) {
            px_logf(PX_LOG_WARN, "queue_producer: no queue \"%s\" in vm "
                    "\"%s\": %s", QUEUE_NAME, vm_id ? vm_id : "",
                    px_status_name(rc));
            return PX_CONTINUE;
        }
        queue_found = true;
    }

    if (px_get_header(PX_MAP_HTTP_REQUEST_HEADERS, ":path", &path, &len)
        == PX_OK)
    {
        rc = px_enqueue(queue_id, path, len);
        if (rc != PX_OK) {
            px_logf(PX_LOG_WARN, "queue_producer: enqueue failed: %s",
                    px_status_name(rc));
        }
        free(path);
    }

    return PX_CONTINUE;
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_request_headers = on_request_headers,
};

PX_PLUGIN(plugin);
