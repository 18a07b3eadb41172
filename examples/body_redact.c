/*
 * body_redact: rewriting a response body. The plugin pauses on every body
 * chunk so the host buffers the whole body, and at end of stream replaces
 * each occurrence of a word (the plugin configuration, default "secret")
 * with "******". Content-Length is dropped from the response headers since
 * the length can change.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define MASK  "******"

static bool
on_configure(uint32_t root_id, uint32_t config_size)
{
    char *config;
    size_t len;

    if (px_get_configuration(&config, &len) != PX_OK) {
        return false;
    }

    free(px_get_context_data(root_id));

    if (len == 0) {
        free(config);
        config = strdup("secret");
        if (config == NULL) {
            return false;
        }
    }

    px_set_context_data(root_id, config);
    px_logf(PX_LOG_INFO, "body_redact: redacting \"%s\"", config);
    return true;
}


static px_action_t
on_response_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    px_remove_header(PX_MAP_HTTP_RESPONSE_HEADERS, "content-length");
    return PX_CONTINUE;
}


/* `body` with every `word` replaced by MASK; NULL if out of memory. */
static char *
redact(const char *body, size_t len, const char *word, size_t *out_len)
{
    size_t wl, ml, n, i, o;
    char *out;

    wl = strlen(word);
    ml = sizeof(MASK) - 1;

    n = 0;
    for (i = 0; wl != 0 && i + wl <= len; i++) {
        if (memcmp(body + i, word, wl) == 0) {
            n++;
            i += wl - 1;
        }
    }

    out = malloc(len - n * wl + n * ml + 1);
    if (out == NULL) {
        return NULL;
    }

    for (i = 0, o = 0; i < len; ) {
        if (wl != 0 && i + wl <= len && memcmp(body + i, word, wl) == 0) {
            memcpy(out + o, MASK, ml);
            o += ml;
            i += wl;
        } else {
            out[o++] = body[i++];
        }
    }

    *out_len = o;
    return out;
}


static px_action_t
on_response_body(uint32_t ctx, uint32_t size, bool eos)
{
    char *body, *out;
    const char *word;
    size_t len, out_len;

    if (!eos) {
        return PX_PAUSE;            /* let the host buffer until the end */
    }

    word = px_get_context_data(px_root_of(ctx));
    if (word == NULL || size == 0) {
        return PX_CONTINUE;
    }

    if (px_get_buffer(PX_BUFFER_HTTP_RESPONSE_BODY, 0, size, &body, &len)
        != PX_OK)
    {
        return PX_CONTINUE;
    }

    out = redact(body, len, word, &out_len);
    if (out != NULL) {
        px_set_buffer(PX_BUFFER_HTTP_RESPONSE_BODY, 0, (uint32_t) len, out,
                      out_len);
        free(out);
    }
    free(body);

    return PX_CONTINUE;
}


static void
on_delete(uint32_t ctx)
{
    if (px_root_of(ctx) == ctx) {
        free(px_get_context_data(ctx));
    }
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_response_headers = on_response_headers,
    .on_response_body = on_response_body,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
