/*
 * proxy-wasm-c SDK runtime: the module's exports (ABI callbacks, allocator,
 * version marker), the context table and the helpers of proxy_wasm.h.
 * Compiled into every plugin; see proxy_wasm.h.
 */
#include "proxy_wasm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_table.h"

#define PX__EXPORT(name)  __attribute__((export_name(#name)))

/* ---- ABI marker and allocator -------------------------------------------- */

#if PX_ABI_VERSION == PX_ABI_0_1_0
PX__EXPORT(proxy_abi_version_0_1_0) void
proxy_abi_version_0_1_0(void)
{
}
#elif PX_ABI_VERSION == PX_ABI_0_2_0
PX__EXPORT(proxy_abi_version_0_2_0) void
proxy_abi_version_0_2_0(void)
{
}
#else
PX__EXPORT(proxy_abi_version_0_2_1) void
proxy_abi_version_0_2_1(void)
{
}
#endif


/*
 * One spare byte so a host that writes exactly `size` bytes leaves room for
 * the NUL the helpers add; a zero-size request still gets a real block
 * because 0 means failure to the host.
 */
PX__EXPORT(proxy_on_memory_allocate) void *
proxy_on_memory_allocate(size_t size)
{
    if (size == SIZE_MAX) {
        return NULL;
    }

    return malloc(size + 1);
}


static px__ctxs_t px__contexts;       /* val = root id, ptr = user data */
static px__table_t px__http_calls;    /* val = issuing context */
static px__table_t px__grpc_calls;
static uint32_t px__current;


/* The context that issued callout `token`, or `root` if unknown. */
static uint32_t
px__call_owner(px__table_t *t, uint32_t token, uint32_t root, bool last)
{
    px__slot_t *s;
    uint32_t ctx;

    s = px__table_find(t, token);
    if (s == NULL) {
        return root;
    }

    ctx = s->val;
    if (last) {
        px__table_remove(t, s);
    }

    return px__ctxs_find(&px__contexts, ctx) ? ctx : root;
}


/* ---- contexts ------------------------------------------------------------ */

px_status_t
px_set_context_data(uint32_t ctx, void *data)
{
    px__slot_t *s;

    s = px__ctxs_find(&px__contexts, ctx);
    if (s == NULL) {
        return PX_NOT_FOUND;
    }

    s->ptr = data;
    return PX_OK;
}


void *
px_get_context_data(uint32_t ctx)
{
    px__slot_t *s;

    s = px__ctxs_find(&px__contexts, ctx);
    return s ? s->ptr : NULL;
}


uint32_t
px_root_of(uint32_t ctx)
{
    px__slot_t *s;

    s = px__ctxs_find(&px__contexts, ctx);
    return s ? s->val : 0;
}


uint32_t
px_current_context(void)
{
    return px__current;
}


/* ---- exported callbacks -------------------------------------------------- */

/* A host may skip on_context_create for a root context; know it anyway. */
static void
px__ensure_root(uint32_t root_id)
{
    px__slot_t *s;

    if (root_id == 0 || px__ctxs_find(&px__contexts, root_id) != NULL) {
        return;
    }

    s = px__ctxs_put(&px__contexts, root_id);
    if (s != NULL) {
        s->val = root_id;
    }
}


#define PX__PLUGIN_HAS(cb)  (px__plugin != NULL && px__plugin->cb != NULL)

/* Callbacks without a handler (see PX_NOOP_* in proxy_wasm.h). */
#define PX__NOOP(cb, bit)   (PX__PLUGIN_HAS(cb) ? 0u : (uint32_t) (bit))

PX__EXPORT(px_noop_callbacks) uint32_t
px_noop_callbacks(void)
{
    return PX__NOOP(on_request_headers, PX_NOOP_REQUEST_HEADERS)
           | PX__NOOP(on_request_body, PX_NOOP_REQUEST_BODY)
           | PX__NOOP(on_request_trailers, PX_NOOP_REQUEST_TRAILERS)
           | PX__NOOP(on_response_headers, PX_NOOP_RESPONSE_HEADERS)
           | PX__NOOP(on_response_body, PX_NOOP_RESPONSE_BODY)
           | PX__NOOP(on_response_trailers, PX_NOOP_RESPONSE_TRAILERS)
           | PX__NOOP(on_log, PX_NOOP_LOG)
           | PX__NOOP(on_done, PX_NOOP_DONE)
           | PX__NOOP(on_new_connection, PX_NOOP_NEW_CONNECTION)
           | PX__NOOP(on_downstream_data, PX_NOOP_DOWNSTREAM_DATA)
           | PX__NOOP(on_upstream_data, PX_NOOP_UPSTREAM_DATA)
           | PX__NOOP(on_downstream_connection_close,
                      PX_NOOP_DOWNSTREAM_CLOSE)
           | PX__NOOP(on_upstream_connection_close, PX_NOOP_UPSTREAM_CLOSE)
           | PX__NOOP(on_tick, PX_NOOP_TICK)
           | PX__NOOP(on_queue_ready, PX_NOOP_QUEUE_READY)
           | PX__NOOP(on_foreign_function, PX_NOOP_FOREIGN_FUNCTION)
           | PX__NOOP(on_context_create, PX_LAZY_CONTEXT_CREATE)
           | PX__NOOP(on_delete, PX_QUIET_DELETE);
}


PX__EXPORT(proxy_on_vm_start) uint32_t
proxy_on_vm_start(uint32_t root_id, uint32_t vm_config_size)
{
    px__current = root_id;
    px__ensure_root(root_id);
    if (!PX__PLUGIN_HAS(on_vm_start)) {
        return 1;
    }
    return px__plugin->on_vm_start(root_id, vm_config_size);
}


PX__EXPORT(proxy_on_configure) uint32_t
proxy_on_configure(uint32_t root_id, uint32_t plugin_config_size)
{
    px__current = root_id;
    px__ensure_root(root_id);
    if (!PX__PLUGIN_HAS(on_configure)) {
        return 1;
    }
    return px__plugin->on_configure(root_id, plugin_config_size);
}


PX__EXPORT(proxy_on_tick) void
proxy_on_tick(uint32_t root_id)
{
    px__current = root_id;
    if (PX__PLUGIN_HAS(on_tick)) {
        px__plugin->on_tick(root_id);
    }
}


PX__EXPORT(proxy_on_context_create) void
proxy_on_context_create(uint32_t ctx, uint32_t parent)
{
    px__slot_t *s;

    px__current = ctx;

    /* Remember it even if out of memory: the plugin still gets called. */
    s = px__ctxs_put(&px__contexts, ctx);
    if (s != NULL) {
        s->val = parent ? parent : ctx;
    }

    if (PX__PLUGIN_HAS(on_context_create)) {
        px__plugin->on_context_create(ctx, parent);
    }
}


#if PX_ABI_VERSION == PX_ABI_0_1_0

PX__EXPORT(proxy_on_request_headers) uint32_t
proxy_on_request_headers(uint32_t ctx, uint32_t nheaders)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_request_headers)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_request_headers(ctx, nheaders, false);
}


PX__EXPORT(proxy_on_response_headers) uint32_t
proxy_on_response_headers(uint32_t ctx, uint32_t nheaders)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_response_headers)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_response_headers(ctx, nheaders, false);
}

#else

PX__EXPORT(proxy_on_request_headers) uint32_t
proxy_on_request_headers(uint32_t ctx, uint32_t nheaders, uint32_t eos)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_request_headers)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_request_headers(ctx, nheaders, eos != 0);
}


PX__EXPORT(proxy_on_response_headers) uint32_t
proxy_on_response_headers(uint32_t ctx, uint32_t nheaders, uint32_t eos)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_response_headers)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_response_headers(ctx, nheaders, eos != 0);
}

#endif


PX__EXPORT(proxy_on_request_body) uint32_t
proxy_on_request_body(uint32_t ctx, uint32_t size, uint32_t eos)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_request_body)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_request_body(ctx, size, eos != 0);
}


PX__EXPORT(proxy_on_request_trailers) uint32_t
proxy_on_request_trailers(uint32_t ctx, uint32_t ntrailers)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_request_trailers)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_request_trailers(ctx, ntrailers);
}


PX__EXPORT(proxy_on_response_body) uint32_t
proxy_on_response_body(uint32_t ctx, uint32_t size, uint32_t eos)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_response_body)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_response_body(ctx, size, eos != 0);
}


PX__EXPORT(proxy_on_response_trailers) uint32_t
proxy_on_response_trailers(uint32_t ctx, uint32_t ntrailers)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_response_trailers)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_response_trailers(ctx, ntrailers);
}


PX__EXPORT(proxy_on_new_connection) uint32_t
proxy_on_new_connection(uint32_t ctx)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_new_connection)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_new_connection(ctx);
}


PX__EXPORT(proxy_on_downstream_data) uint32_t
proxy_on_downstream_data(uint32_t ctx, uint32_t size, uint32_t eos)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_downstream_data)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_downstream_data(ctx, size, eos != 0);
}


PX__EXPORT(proxy_on_upstream_data) uint32_t
proxy_on_upstream_data(uint32_t ctx, uint32_t size, uint32_t eos)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_upstream_data)) {
        return PX_CONTINUE;
    }
    return px__plugin->on_upstream_data(ctx, size, eos != 0);
}


PX__EXPORT(proxy_on_downstream_connection_close) void
proxy_on_downstream_connection_close(uint32_t ctx, uint32_t peer)
{
    px__current = ctx;
    if (PX__PLUGIN_HAS(on_downstream_connection_close)) {
        px__plugin->on_downstream_connection_close(ctx,
                                                   (px_peer_type_t) peer);
    }
}


PX__EXPORT(proxy_on_upstream_connection_close) void
proxy_on_upstream_connection_close(uint32_t ctx, uint32_t peer)
{
    px__current = ctx;
    if (PX__PLUGIN_HAS(on_upstream_connection_close)) {
        px__plugin->on_upstream_connection_close(ctx, (px_peer_type_t) peer);
    }
}


PX__EXPORT(proxy_on_http_call_response) void
proxy_on_http_call_response(uint32_t root_id, uint32_t token,
    uint32_t nheaders, uint32_t body_size, uint32_t ntrailers)
{
    uint32_t ctx;

    px__current = root_id;
    ctx = px__call_owner(&px__http_calls, token, root_id, true);
    if (PX__PLUGIN_HAS(on_http_call_response)) {
        px__plugin->on_http_call_response(ctx, token, nheaders, body_size,
                                          ntrailers);
    }
}


PX__EXPORT(proxy_on_grpc_receive_initial_metadata) void
proxy_on_grpc_receive_initial_metadata(uint32_t root_id, uint32_t token,
    uint32_t nheaders)
{
    uint32_t ctx;

    px__current = root_id;
    ctx = px__call_owner(&px__grpc_calls, token, root_id, false);
    if (PX__PLUGIN_HAS(on_grpc_receive_initial_metadata)) {
        px__plugin->on_grpc_receive_initial_metadata(ctx, token, nheaders);
    }
}


PX__EXPORT(proxy_on_grpc_receive) void
proxy_on_grpc_receive(uint32_t root_id, uint32_t token, uint32_t size)
{
    uint32_t ctx;

    px__current = root_id;
    ctx = px__call_owner(&px__grpc_calls, token, root_id, false);
    if (PX__PLUGIN_HAS(on_grpc_receive)) {
        px__plugin->on_grpc_receive(ctx, token, size);
    }
}


PX__EXPORT(proxy_on_grpc_receive_trailing_metadata) void
proxy_on_grpc_receive_trailing_metadata(uint32_t root_id, uint32_t token,
    uint32_t ntrailers)
{
    uint32_t ctx;

    px__current = root_id;
    ctx = px__call_owner(&px__grpc_calls, token, root_id, false);
    if (PX__PLUGIN_HAS(on_grpc_receive_trailing_metadata)) {
        px__plugin->on_grpc_receive_trailing_metadata(ctx, token, ntrailers);
    }
}


PX__EXPORT(proxy_on_grpc_close) void
proxy_on_grpc_close(uint32_t root_id, uint32_t token, uint32_t status)
{
    uint32_t ctx;

    px__current = root_id;
    ctx = px__call_owner(&px__grpc_calls, token, root_id, true);
    if (PX__PLUGIN_HAS(on_grpc_close)) {
        px__plugin->on_grpc_close(ctx, token, status);
    }
}


PX__EXPORT(proxy_on_queue_ready) void
proxy_on_queue_ready(uint32_t root_id, uint32_t qid)
{
    px__current = root_id;
    if (PX__PLUGIN_HAS(on_queue_ready)) {
        px__plugin->on_queue_ready(root_id, qid);
    }
}


#if PX_ABI_VERSION >= PX_ABI_0_2_0
PX__EXPORT(proxy_on_foreign_function) void
proxy_on_foreign_function(uint32_t root_id, uint32_t function_id,
    uint32_t args_size)
{
    px__current = root_id;
    if (PX__PLUGIN_HAS(on_foreign_function)) {
        px__plugin->on_foreign_function(root_id, function_id, args_size);
    }
}
#endif


PX__EXPORT(proxy_on_done) uint32_t
proxy_on_done(uint32_t ctx)
{
    px__current = ctx;
    if (!PX__PLUGIN_HAS(on_done)) {
        return 1;
    }
    return px__plugin->on_done(ctx);
}


PX__EXPORT(proxy_on_log) void
proxy_on_log(uint32_t ctx)
{
    px__current = ctx;
    if (PX__PLUGIN_HAS(on_log)) {
        px__plugin->on_log(ctx);
    }
}


PX__EXPORT(proxy_on_delete) void
proxy_on_delete(uint32_t ctx)
{
    px__current = ctx;
    if (PX__PLUGIN_HAS(on_delete)) {
        px__plugin->on_delete(ctx);
    }

    px__ctxs_del(&px__contexts, ctx);
    px__table_del_val(&px__http_calls, ctx);
    px__table_del_val(&px__grpc_calls, ctx);
}


/* ---- internal helpers ---------------------------------------------------- */

/*
 * Take over a block the host returned: NUL-terminate it, substitute ""
 * for an empty answer. Frees `p` and fails on allocation failure.
 */
static px_status_t
px__own(char *p, size_t n, char **out, size_t *len)
{
    char *q;

    if (p == NULL || n == 0) {
        free(p);
        q = malloc(1);
        n = 0;
    } else if (n == SIZE_MAX) {
        free(p);
        q = NULL;
    } else {
        q = realloc(p, n + 1);
        if (q == NULL) {
            free(p);
        }
    }

    if (q == NULL) {
        *out = NULL;
        *len = 0;
        return PX_INTERNAL_FAILURE;
    }

    q[n] = '\0';
    *out = q;
    *len = n;
    return PX_OK;
}


/* Finish a getter: own the data on success, clear the outputs otherwise. */
static px_status_t
px__result(uint32_t rc, char *p, size_t n, char **out, size_t *len)
{
    if (rc != PX_OK) {
        free(p);
        *out = NULL;
        *len = 0;
        return (px_status_t) rc;
    }

    return px__own(p, n, out, len);
}


static size_t
px__strlen(const char *s)
{
    return s ? strlen(s) : 0;
}


/* ---- logging ------------------------------------------------------------- */

px_status_t
px_log_n(px_log_level_t level, const char *msg, size_t len)
{
    return (px_status_t) proxy_log(level, msg, len);
}


px_status_t
px_logf(px_log_level_t level, const char *fmt, ...)
{
    int n;
    char buf[256], *p;
    va_list ap;
    px_status_t rc;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (n < 0) {
        return PX_INTERNAL_FAILURE;
    }

    if ((size_t) n < sizeof(buf)) {
        return (px_status_t) proxy_log(level, buf, (size_t) n);
    }

    p = malloc((size_t) n + 1);
    if (p == NULL) {
        return PX_INTERNAL_FAILURE;
    }

    va_start(ap, fmt);
    vsnprintf(p, (size_t) n + 1, fmt, ap);
    va_end(ap);

    rc = (px_status_t) proxy_log(level, p, (size_t) n);
    free(p);

    return rc;
}


px_status_t
px_get_log_level(px_log_level_t *level)
{
#if PX_ABI_VERSION >= PX_ABI_0_2_1
    uint32_t l = 0;
    uint32_t rc;

    rc = proxy_get_log_level(&l);
    *level = (px_log_level_t) l;
    return (px_status_t) rc;
#else
    (void) level;
    return PX_UNIMPLEMENTED;
#endif
}


const char *
px_status_name(uint32_t status)
{
    static const char *const names[] = {
        "ok", "not_found", "bad_argument", "serialization_failure",
        "parse_failure", "bad_expression", "invalid_memory_access",
        "empty", "cas_mismatch", "result_mismatch", "internal_failure",
        "broken_connection", "unimplemented"
    };

    if (status < sizeof(names) / sizeof(names[0])) {
        return names[status];
    }

    return "unknown";
}


/* ---- time ---------------------------------------------------------------- */

px_status_t
px_set_tick_period(uint32_t ms)
{
    return (px_status_t) proxy_set_tick_period_milliseconds(ms);
}


px_status_t
px_get_current_time_ns(uint64_t *ns)
{
    return (px_status_t) proxy_get_current_time_nanoseconds(ns);
}


/* ---- buffers ------------------------------------------------------------- */

px_status_t
px_get_buffer(px_buffer_type_t type, uint32_t start, uint32_t max,
    char **data, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_get_buffer_bytes(type, start, max, &p, &n);
    return px__result(rc, p, n, data, len);
}


px_status_t
px_set_buffer(px_buffer_type_t type, uint32_t start, uint32_t size,
    const char *data, size_t len)
{
    return (px_status_t) proxy_set_buffer_bytes(type, start, size, data,
                                                 len);
}


px_status_t
px_replace_buffer(px_buffer_type_t type, const char *data, size_t len)
{
    size_t cur = 0;
    uint32_t flags = 0;
    px_status_t rc;

    rc = px_get_buffer_status(type, &cur, &flags);
    if (rc != PX_OK) {
        return rc;
    }

    return px_set_buffer(type, 0, (uint32_t) cur, data, len);
}


px_status_t
px_get_buffer_status(px_buffer_type_t type, size_t *len, uint32_t *flags)
{
    return (px_status_t) proxy_get_buffer_status(type, len, flags);
}


px_status_t
px_get_configuration(char **data, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

#if PX_ABI_VERSION == PX_ABI_0_1_0
    rc = proxy_get_configuration(&p, &n);
#else
    rc = proxy_get_buffer_bytes(PX_BUFFER_PLUGIN_CONFIGURATION, 0,
                                UINT32_MAX, &p, &n);
#endif

    /* Some hosts say NOT_FOUND for an empty configuration. */
    if (rc == PX_NOT_FOUND) {
        rc = PX_OK;
        n = 0;
    }

    return px__result(rc, p, n, data, len);
}


px_status_t
px_get_vm_configuration(char **data, size_t *len)
{
#if PX_ABI_VERSION == PX_ABI_0_1_0
    *data = NULL;
    *len = 0;
    return PX_UNIMPLEMENTED;
#else
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_get_buffer_bytes(PX_BUFFER_VM_CONFIGURATION, 0, UINT32_MAX,
                                &p, &n);
    if (rc == PX_NOT_FOUND) {
        rc = PX_OK;
        n = 0;
    }

    return px__result(rc, p, n, data, len);
#endif
}


/* ---- header maps --------------------------------------------------------- */

px_status_t
px_get_header(px_map_type_t map, const char *name, char **value,
    size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_get_header_map_value(map, name, px__strlen(name), &p, &n);
    return px__result(rc, p, n, value, len);
}


px_status_t
px_get_header_map_size(px_map_type_t map, size_t *bytes)
{
    return (px_status_t) proxy_get_header_map_size(map, bytes);
}


static uint32_t
px__le32(const char *p)
{
    const unsigned char *u = (const unsigned char *) p;

    return (uint32_t) u[0] | (uint32_t) u[1] << 8 | (uint32_t) u[2] << 16
           | (uint32_t) u[3] << 24;
}


static void
px__put_le32(char *p, uint32_t v)
{
    p[0] = (char) (v & 0xff);
    p[1] = (char) (v >> 8 & 0xff);
    p[2] = (char) (v >> 16 & 0xff);
    p[3] = (char) (v >> 24 & 0xff);
}


px_status_t
px_parse_headers(char *data, size_t len, px_headers_t *out)
{
    size_t i, n, off, kl, vl;
    px_header_pair_t *pairs;

    out->count = 0;
    out->pairs = NULL;
    out->data = NULL;

    if (len < 4) {
        /* an empty map: nothing, or a lone NUL as the spec allows */
        for (i = 0; i < len; i++) {
            if (data[i] != '\0') {
                return PX_SERIALIZATION_FAILURE;
            }
        }
        out->data = data;
        return PX_OK;
    }

    n = px__le32(data);
    if (n > (len - 4) / 8) {
        return PX_SERIALIZATION_FAILURE;
    }

    pairs = n ? calloc(n, sizeof(px_header_pair_t)) : NULL;
    if (n && pairs == NULL) {
        return PX_INTERNAL_FAILURE;
    }

    off = 4 + n * 8;
    for (i = 0; i < n; i++) {
        kl = px__le32(data + 4 + i * 8);
        vl = px__le32(data + 8 + i * 8);

        if (kl >= len - off || len - off - kl - 1 <= vl
            || data[off + kl] != '\0' || data[off + kl + 1 + vl] != '\0')
        {
            free(pairs);
            return PX_SERIALIZATION_FAILURE;
        }

        pairs[i].name = data + off;
        pairs[i].name_len = kl;
        pairs[i].value = data + off + kl + 1;
        pairs[i].value_len = vl;
        off += kl + vl + 2;
    }

    out->count = n;
    out->pairs = pairs;
    out->data = data;

    return PX_OK;
}


px_status_t
px_get_headers(px_map_type_t map, px_headers_t *out)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    out->count = 0;
    out->pairs = NULL;
    out->data = NULL;

    rc = proxy_get_header_map_pairs(map, &p, &n);
    if (rc != PX_OK) {
        free(p);
        return (px_status_t) rc;
    }

    if (p == NULL && n != 0) {
        return PX_SERIALIZATION_FAILURE;
    }

    rc = px_parse_headers(p, n, out);
    if (rc != PX_OK) {
        free(p);
    }

    return (px_status_t) rc;
}


px_status_t
px_serialize_headers(const px_header_t *headers, size_t n, char **out,
    size_t *len)
{
    size_t i, size, kl, vl, off;
    char *p;

    *out = NULL;
    *len = 0;

    if (n > (SIZE_MAX / 2 - 4) / 8) {
        return PX_BAD_ARGUMENT;
    }

    size = 4 + n * 8;
    for (i = 0; i < n; i++) {
        kl = px__strlen(headers[i].name);
        vl = px__strlen(headers[i].value);
        if (kl > UINT32_MAX - 2 || vl > UINT32_MAX - 2 - kl
            || kl + vl + 2 > SIZE_MAX - size)
        {
            return PX_BAD_ARGUMENT;
        }
        size += kl + vl + 2;
    }

    p = malloc(size);
    if (p == NULL) {
        return PX_INTERNAL_FAILURE;
    }

    px__put_le32(p, (uint32_t) n);
    off = 4 + n * 8;
    for (i = 0; i < n; i++) {
        kl = px__strlen(headers[i].name);
        vl = px__strlen(headers[i].value);
        px__put_le32(p + 4 + i * 8, (uint32_t) kl);
        px__put_le32(p + 8 + i * 8, (uint32_t) vl);
        memcpy(p + off, headers[i].name, kl);
        p[off + kl] = '\0';
        memcpy(p + off + kl + 1, headers[i].value, vl);
        p[off + kl + 1 + vl] = '\0';
        off += kl + vl + 2;
    }

    *out = p;
    *len = size;

    return PX_OK;
}


px_status_t
px_set_headers(px_map_type_t map, const px_header_t *headers, size_t n)
{
    char *p;
    size_t len;
    px_status_t rc;

    rc = px_serialize_headers(headers, n, &p, &len);
    if (rc != PX_OK) {
        return rc;
    }

    rc = (px_status_t) proxy_set_header_map_pairs(map, p, len);
    free(p);

    return rc;
}


void
px_headers_free(px_headers_t *h)
{
    free(h->pairs);
    free(h->data);
    h->pairs = NULL;
    h->data = NULL;
    h->count = 0;
}


/* ---- streams ------------------------------------------------------------- */

px_status_t
px_continue_stream(px_stream_type_t stream)
{
#if PX_ABI_VERSION == PX_ABI_0_1_0
    switch (stream) {
    case PX_STREAM_HTTP_REQUEST:
        return (px_status_t) proxy_continue_request();
    case PX_STREAM_HTTP_RESPONSE:
        return (px_status_t) proxy_continue_response();
    default:
        return PX_UNIMPLEMENTED;
    }
#else
    return (px_status_t) proxy_continue_stream(stream);
#endif
}


px_status_t
px_close_stream(px_stream_type_t stream)
{
#if PX_ABI_VERSION == PX_ABI_0_1_0
    (void) stream;
    return PX_UNIMPLEMENTED;
#else
    return (px_status_t) proxy_close_stream(stream);
#endif
}


px_status_t
px_continue_request(void)
{
    return px_continue_stream(PX_STREAM_HTTP_REQUEST);
}


px_status_t
px_continue_response(void)
{
    return px_continue_stream(PX_STREAM_HTTP_RESPONSE);
}


px_status_t
px_send_local_response(uint32_t status_code, const char *details,
    const char *body, size_t body_len, const px_header_t *headers, size_t n,
    int32_t grpc_status)
{
    char *h;
    size_t hlen;
    px_status_t rc;

    rc = px_serialize_headers(headers, n, &h, &hlen);
    if (rc != PX_OK) {
        return rc;
    }

    rc = (px_status_t) proxy_send_local_response(status_code,
        details ? details : "", px__strlen(details), body ? body : "",
        body_len, h, hlen, grpc_status);
    free(h);

    return rc;
}


px_status_t
px_respond(uint32_t status_code, const char *body,
    const px_header_t *headers, size_t n)
{
    return px_send_local_response(status_code, NULL, body, px__strlen(body),
                                  headers, n, PX_GRPC_STATUS_NONE);
}


px_status_t
px_done(void)
{
    return (px_status_t) proxy_done();
}


px_status_t
px_set_effective_context(uint32_t ctx)
{
    uint32_t rc;

    rc = proxy_set_effective_context(ctx);
    if (rc == PX_OK) {
        px__current = ctx;
    }

    return (px_status_t) rc;
}


px_status_t
px_get_status(uint32_t *code, char **msg, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_get_status(code, &p, &n);
    if (msg == NULL) {
        free(p);
        return (px_status_t) rc;
    }

    return px__result(rc, p, n, msg, len);
}


/* ---- callouts ------------------------------------------------------------ */

static void
px__track_call(px__table_t *t, uint32_t token)
{
    px__slot_t *s;

    /* Out of memory only loses the mapping: answers then go to the root. */
    s = px__table_put(t, token);
    if (s != NULL) {
        s->val = px__current;
    }
}


px_status_t
px_http_call(const char *upstream, const px_header_t *headers, size_t n,
    const char *body, size_t body_len, const px_header_t *trailers,
    size_t nt, uint32_t timeout_ms, uint32_t *token)
{
    char *h, *t;
    size_t hlen, tlen;
    uint32_t tok = 0;
    px_status_t rc;

    rc = px_serialize_headers(headers, n, &h, &hlen);
    if (rc != PX_OK) {
        return rc;
    }

    rc = px_serialize_headers(trailers, nt, &t, &tlen);
    if (rc != PX_OK) {
        free(h);
        return rc;
    }

    rc = (px_status_t) proxy_http_call(upstream, px__strlen(upstream), h,
        hlen, body ? body : "", body_len, t, tlen, timeout_ms, &tok);
    free(h);
    free(t);

    if (rc == PX_OK) {
        px__track_call(&px__http_calls, tok);
    }
    if (token != NULL) {
        *token = tok;
    }

    return rc;
}


px_status_t
px_grpc_call(const char *upstream, const char *service, const char *method,
    const px_header_t *metadata, size_t n, const char *msg, size_t msg_len,
    uint32_t timeout_ms, uint32_t *token)
{
    char *m;
    size_t mlen;
    uint32_t tok = 0;
    px_status_t rc;

    rc = px_serialize_headers(metadata, n, &m, &mlen);
    if (rc != PX_OK) {
        return rc;
    }

    rc = (px_status_t) proxy_grpc_call(upstream, px__strlen(upstream),
        service, px__strlen(service), method, px__strlen(method), m, mlen,
        msg ? msg : "", msg_len, timeout_ms, &tok);
    free(m);

    if (rc == PX_OK) {
        px__track_call(&px__grpc_calls, tok);
    }
    if (token != NULL) {
        *token = tok;
    }

    return rc;
}


px_status_t
px_grpc_stream(const char *upstream, const char *service,
    const char *method, const px_header_t *metadata, size_t n,
    uint32_t *token)
{
    char *m;
    size_t mlen;
    uint32_t tok = 0;
    px_status_t rc;

    rc = px_serialize_headers(metadata, n, &m, &mlen);
    if (rc != PX_OK) {
        return rc;
    }

    rc = (px_status_t) proxy_grpc_stream(upstream, px__strlen(upstream),
        service, px__strlen(service), method, px__strlen(method), m, mlen,
        &tok);
    free(m);

    if (rc == PX_OK) {
        px__track_call(&px__grpc_calls, tok);
    }
    if (token != NULL) {
        *token = tok;
    }

    return rc;
}


px_status_t
px_grpc_send(uint32_t token, const char *msg, size_t len, bool end_stream)
{
    return (px_status_t) proxy_grpc_send(token, msg ? msg : "", len,
                                         end_stream);
}


px_status_t
px_grpc_cancel(uint32_t token)
{
    uint32_t rc;

    rc = proxy_grpc_cancel(token);
    px__table_del(&px__grpc_calls, token);

    return (px_status_t) rc;
}


px_status_t
px_grpc_close(uint32_t token)
{
    return (px_status_t) proxy_grpc_close(token);
}


/* ---- shared data and queues ---------------------------------------------- */

px_status_t
px_get_shared_data(const char *key, char **value, size_t *len,
    uint32_t *cas)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t c = 0, rc;

    rc = proxy_get_shared_data(key, px__strlen(key), &p, &n, &c);
    if (cas != NULL) {
        *cas = (rc == PX_OK) ? c : 0;
    }

    return px__result(rc, p, n, value, len);
}


px_status_t
px_set_shared_data(const char *key, const char *value, size_t len,
    uint32_t cas)
{
    return (px_status_t) proxy_set_shared_data(key, px__strlen(key), value,
                                               len, cas);
}


px_status_t
px_register_queue(const char *name, uint32_t *qid)
{
    return (px_status_t) proxy_register_shared_queue(name, px__strlen(name),
                                                     qid);
}


px_status_t
px_resolve_queue(const char *vm_id, const char *name, uint32_t *qid)
{
    return (px_status_t) proxy_resolve_shared_queue(vm_id,
        px__strlen(vm_id), name, px__strlen(name), qid);
}


px_status_t
px_enqueue(uint32_t qid, const char *data, size_t len)
{
    return (px_status_t) proxy_enqueue_shared_queue(qid, data ? data : "",
                                                    len);
}


px_status_t
px_dequeue(uint32_t qid, char **data, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_dequeue_shared_queue(qid, &p, &n);
    return px__result(rc, p, n, data, len);
}


/* ---- metrics ------------------------------------------------------------- */

px_status_t
px_define_metric(px_metric_type_t type, const char *name, uint32_t *id)
{
    return (px_status_t) proxy_define_metric(type, name, px__strlen(name),
                                             id);
}


px_status_t
px_increment_metric(uint32_t id, int64_t delta)
{
    return (px_status_t) proxy_increment_metric(id, delta);
}


px_status_t
px_record_metric(uint32_t id, uint64_t value)
{
    return (px_status_t) proxy_record_metric(id, value);
}


px_status_t
px_get_metric(uint32_t id, uint64_t *value)
{
    return (px_status_t) proxy_get_metric(id, value);
}


/* ---- properties ---------------------------------------------------------- */

/* Segments joined by NUL, no trailing NUL (Envoy accepts both forms). */
static px_status_t
px__join_path(const char *const *path, char **out, size_t *len)
{
    size_t i, n, l;
    char *p;

    n = 0;
    for (i = 0; path[i] != NULL; i++) {
        l = strlen(path[i]);
        if (l > SIZE_MAX / 2 - n) {
            return PX_BAD_ARGUMENT;
        }
        n += l + 1;
    }

    p = malloc(n ? n : 1);
    if (p == NULL) {
        return PX_INTERNAL_FAILURE;
    }

    n = 0;
    for (i = 0; path[i] != NULL; i++) {
        l = strlen(path[i]);
        memcpy(p + n, path[i], l);
        n += l;
        p[n++] = '\0';
    }

    *out = p;
    *len = n ? n - 1 : 0;

    return PX_OK;
}


px_status_t
px_get_property(const char *const *path, char **value, size_t *len)
{
    char *k, *p = NULL;
    size_t klen, n = 0;
    uint32_t rc;

    *value = NULL;
    *len = 0;

    rc = px__join_path(path, &k, &klen);
    if (rc != PX_OK) {
        return (px_status_t) rc;
    }

    rc = proxy_get_property(k, klen, &p, &n);
    free(k);

    return px__result(rc, p, n, value, len);
}


px_status_t
px_set_property(const char *const *path, const char *value, size_t len)
{
    char *k;
    size_t klen;
    px_status_t rc;

    rc = px__join_path(path, &k, &klen);
    if (rc != PX_OK) {
        return rc;
    }

    rc = (px_status_t) proxy_set_property(k, klen, value ? value : "", len);
    free(k);

    return rc;
}


/* ---- foreign functions --------------------------------------------------- */

px_status_t
px_call_foreign_function(const char *name, const char *args,
    size_t args_len, char **result, size_t *result_len)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_call_foreign_function(name, px__strlen(name),
        args ? args : "", args_len, &p, &n);
    return px__result(rc, p, n, result, result_len);
}
