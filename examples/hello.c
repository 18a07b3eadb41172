/*
 * hello: the smallest useful plugin. Shows the plugin lifecycle: it logs
 * when the VM starts and when the plugin is configured (with its
 * configuration), asks for a tick every second and logs on each tick.
 */
#include <stdlib.h>

#include "proxy_wasm.h"

static bool
on_vm_start(uint32_t root_id, uint32_t vm_config_size)
{
    px_logf(PX_LOG_INFO, "hello: vm started (vm configuration %u bytes)",
            vm_config_size);
    return true;
}


static bool
on_configure(uint32_t root_id, uint32_t config_size)
{
    char *config;
    size_t len;

    if (px_get_configuration(&config, &len) == PX_OK) {
        px_logf(PX_LOG_INFO, "hello: configured with \"%s\"", config);
        free(config);
    }

    px_set_tick_period(1000);
    return true;
}


static void
on_tick(uint32_t root_id)
{
    uint64_t now = 0;

    px_get_current_time_ns(&now);
    px_logf(PX_LOG_INFO, "hello: tick at %llu ms",
            (unsigned long long) (now / 1000000));
}


static const px_plugin_t plugin = {
    .on_vm_start = on_vm_start,
    .on_configure = on_configure,
    .on_tick = on_tick,
};

PX_PLUGIN(plugin);
