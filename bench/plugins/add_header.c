/*
 * bench_add_header: adds "x-bench: 1" to every response, the same header
 * bench/nginx_bench.sh has nginx's add_header, Lua and njs add, so the
 * comparison measures the filter machinery and nothing else.
 */
#include "proxy_wasm.h"


static px_action_t
on_response_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    px_add_header(PX_MAP_HTTP_RESPONSE_HEADERS, "x-bench", "1");
    return PX_CONTINUE;
}


static const px_plugin_t plugin = {
    .on_response_headers = on_response_headers,
};

PX_PLUGIN(plugin);
