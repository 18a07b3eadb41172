/*
 * http_headers: reading and changing HTTP headers, and answering locally.
 * On the request it logs every header, sets x-wasm-filter (replacing any
 * value the client sent) and strips x-internal-token; a request for /hello
 * is answered by the plugin itself with 200 "hello from wasm". Every
 * response that passes gets x-hello: world.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    size_t i, len;
    char *path;
    px_headers_t h;
    static const px_header_t hello_headers[] = {
        { "content-type", "text/plain" },
    };

    if (px_get_headers(PX_MAP_HTTP_REQUEST_HEADERS, &h) == PX_OK) {
        for (i = 0; i < h.count; i++) {
            px_logf(PX_LOG_INFO, "http_headers: request %s: %s",
                    h.pairs[i].name, h.pairs[i].value);
        }
        px_headers_free(&h);
    }

    px_replace_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-wasm-filter",
                      "http_headers");
    px_remove_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-internal-token");

    if (px_get_header(PX_MAP_HTTP_REQUEST_HEADERS, ":path", &path, &len)
        == PX_OK)
    {
        if (strcmp(path, "/hello") == 0) {
            free(path);
            px_respond(200, "hello from wasm\n", hello_headers, 1);
            return PX_PAUSE;
        }
        free(path);
    }

    return PX_CONTINUE;
}


static px_action_t
on_response_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    px_add_header(PX_MAP_HTTP_RESPONSE_HEADERS, "x-hello", "world");
    return PX_CONTINUE;
}


static const px_plugin_t plugin = {
    .on_request_headers = on_request_headers,
    .on_response_headers = on_response_headers,
};

PX_PLUGIN(plugin);
