/*
 * config_header: a plugin driven by its configuration. The configuration
 * "name: value" (e.g. "x-team: platform") is parsed once in on_configure
 * into per-root-context data; every response then gets that header.
 * A configuration without a colon is refused (on_configure returns false).
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

typedef struct {
    char *name;
    char *value;
} header_conf_t;


static char *
trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'
                     || e[-1] == '\r'))
    {
        *--e = '\0';
    }
    return s;
}


static bool
on_configure(uint32_t root_id, uint32_t config_size)
{
    char *config, *colon, *name, *value;
    size_t len;
    header_conf_t *conf, *old;

    if (px_get_configuration(&config, &len) != PX_OK) {
        return false;
    }

    colon = strchr(config, ':');
    if (colon == NULL || colon == config) {
        px_logf(PX_LOG_ERROR, "config_header: expected \"name: value\", "
                "got \"%s\"", config);
        free(config);
        return false;
    }

    *colon = '\0';
    name = trim(config);
    value = trim(colon + 1);

    conf = malloc(sizeof(header_conf_t));
    if (conf == NULL) {
        free(config);
        return false;
    }
    conf->name = strdup(name);
    conf->value = strdup(value);
    free(config);

    if (conf->name == NULL || conf->value == NULL || *conf->name == '\0') {
        free(conf->name);
        free(conf->value);
        free(conf);
        return false;
    }

    /* a reconfiguration replaces the previous header */
    old = px_get_context_data(root_id);
    if (old != NULL) {
        free(old->name);
        free(old->value);
        free(old);
    }
    px_set_context_data(root_id, conf);

    px_logf(PX_LOG_INFO, "config_header: adding \"%s: %s\"", conf->name,
            conf->value);
    return true;
}


static px_action_t
on_response_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    header_conf_t *conf;

    conf = px_get_context_data(px_root_of(ctx));
    if (conf != NULL) {
        px_add_header(PX_MAP_HTTP_RESPONSE_HEADERS, conf->name, conf->value);
    }

    return PX_CONTINUE;
}


static void
on_delete(uint32_t ctx)
{
    header_conf_t *conf;

    if (px_root_of(ctx) != ctx) {
        return;
    }

    conf = px_get_context_data(ctx);
    if (conf != NULL) {
        free(conf->name);
        free(conf->value);
        free(conf);
    }
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_response_headers = on_response_headers,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
