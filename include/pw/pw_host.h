/*
 * proxy-wasm-c: the host interface. What a proxy gives the core.
 *
 * The core never calls the proxy any other way. Every function receives a
 * pw_hctx_t saying on whose behalf it runs: the VM's host data, the plugin
 * (root context) and, for stream operations, the stream and its host data.
 *
 * Return values are pw_rc_t codes; the core turns them into Proxy-Wasm
 * statuses at the hostcall boundary:
 *   PW_OK -> OK, PW_ENOTFOUND -> NOT_FOUND, PW_EINVAL -> BAD_ARGUMENT,
 *   PW_EUNIMPLEMENTED -> UNIMPLEMENTED, PW_ELIMIT -> BAD_ARGUMENT,
 *   anything else -> INTERNAL_FAILURE.
 * Any function pointer may be NULL: the hostcall then answers
 * UNIMPLEMENTED (logged once per VM).
 *
 * Borrowed results (pw_str_t, pw_pairs_t) stay valid until the next call
 * into the host interface for the same stream or plugin.
 */
#ifndef PW_HOST_H
#define PW_HOST_H

#include <pw/pw_map.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_vm_s pw_vm_t;
typedef struct pw_plugin_s pw_plugin_t;
typedef struct pw_stream_s pw_stream_t;

typedef struct {
    void *host;               /* pw_vm_conf_t.host_data */
    pw_plugin_t *plugin;      /* the root context (plugin) concerned */
    void *plugin_data;        /* pw_plugin_conf_t.host_data */
    pw_stream_t *stream;      /* NULL when the effective context is a root */
    void *stream_data;        /* pw_stream_new's host_data */
} pw_hctx_t;

typedef struct pw_host_s {
    /* ---- logging and time ---- */
    void (*log)(const pw_hctx_t *c, pw_log_level_t level, pw_str_t msg);
    /* Current log level (proxy_get_log_level); NULL answers INFO. */
    pw_log_level_t (*log_level)(const pw_hctx_t *c);
    /* Wall clock (monotonic=0) or monotonic clock in ns; NULL uses the
     * system clocks. */
    uint64_t (*clock_ns)(const pw_hctx_t *c, int monotonic);

    /* ---- header maps of the stream ----
     * Maps 0..3 (request/response headers/trailers). PW_ENOTFOUND when the
     * map does not exist (yet) in this stream. */
    int (*map_pairs)(const pw_hctx_t *c, pw_map_type_t t, pw_pairs_t *out);
    /* Value of key, several values joined with ","; PW_ENOTFOUND. */
    int (*map_get)(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
        pw_str_t *value);
    int (*map_set_pairs)(const pw_hctx_t *c, pw_map_type_t t,
        const pw_pairs_t *p);
    int (*map_add)(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
        pw_str_t value);
    /* Add or replace. */
    int (*map_replace)(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key,
        pw_str_t value);
    /* PW_OK even when absent. */
    int (*map_remove)(const pw_hctx_t *c, pw_map_type_t t, pw_str_t key);

    /* ---- stream buffers ----
     * HTTP request/response body, downstream/upstream data: the bytes the
     * current callback sees. PW_ENOTFOUND when there is none. */
    int (*buffer_get)(const pw_hctx_t *c, pw_buffer_type_t t,
        pw_str_t *out);
    /* Replace [start, start+size) with value; start=0,size=0 prepends;
     * start >= length appends (the core normalises start/size first). */
    int (*buffer_set)(const pw_hctx_t *c, pw_buffer_type_t t,
        uint32_t start, uint32_t size, pw_str_t value);

    /* ---- stream control ---- */
    int (*send_local_response)(const pw_hctx_t *c, uint32_t status,
        pw_str_t details, pw_str_t body, const pw_pairs_t *headers,
        int32_t grpc_status);       /* -1: none */
    int (*continue_stream)(const pw_hctx_t *c, pw_stream_type_t t);
    int (*close_stream)(const pw_hctx_t *c, pw_stream_type_t t);
    int (*clear_route_cache)(const pw_hctx_t *c);

    /* ---- properties the proxy owns (request.*, source.*, ...) ----
     * path: segments already split on NUL. stream may be NULL. */
    int (*get_property)(const pw_hctx_t *c, const pw_str_t *path,
        size_t nseg, pw_str_t *out);
    int (*set_property)(const pw_hctx_t *c, const pw_str_t *path,
        size_t nseg, pw_str_t value);

    /* ---- callouts ----
     * The core picks the token; the host later delivers the answer with
     * pw_plugin_http_response() etc. with that token. PW_ENOTFOUND for an
     * unknown upstream (-> BAD_ARGUMENT). */
    int (*http_call)(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
        const pw_pairs_t *headers, pw_str_t body,
        const pw_pairs_t *trailers, uint32_t timeout_ms);
    int (*grpc_call)(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
        pw_str_t service, pw_str_t method, const pw_pairs_t *metadata,
        pw_str_t message, uint32_t timeout_ms);
    int (*grpc_stream)(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
        pw_str_t service, pw_str_t method, const pw_pairs_t *metadata);
    int (*grpc_send)(const pw_hctx_t *c, uint32_t token, pw_str_t message,
        int end_stream);
    int (*grpc_cancel)(const pw_hctx_t *c, uint32_t token);
    int (*grpc_close)(const pw_hctx_t *c, uint32_t token);

    /* ---- timers ----
     * Arm (ms > 0) or disarm (0) the plugin's tick; the host then calls
     * pw_plugin_tick() every ms. */
    int (*set_tick_period)(const pw_hctx_t *c, uint32_t ms);

    /* ---- WASI ---- fill buf with random bytes; NULL uses getrandom. */
    int (*random)(const pw_hctx_t *c, uint8_t *buf, size_t len);
} pw_host_t;

/*
 * A foreign function the host offers to plugins
 * (proxy_call_foreign_function). Returns a pw_rc_t; on success *result is
 * malloc'd (or NULL with *rlen 0) and the core frees it.
 */
typedef int (*pw_foreign_fn_t)(void *data, const pw_hctx_t *c,
    pw_str_t args, uint8_t **result, size_t *rlen);

#ifdef __cplusplus
}
#endif

#endif /* PW_HOST_H */
