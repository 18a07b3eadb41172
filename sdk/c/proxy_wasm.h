/*
 * proxy-wasm-c SDK: write Proxy-Wasm plugins in C.
 *
 * Build a plugin with clang for wasm32-wasi as a reactor, compiling this
 * SDK's runtime (proxy_wasm.c) together with the plugin:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -Isdk/c \
 *         -o plugin.wasm plugin.c sdk/c/proxy_wasm.c
 *
 * A plugin fills a px_plugin_t with the callbacks it cares about and
 * registers it once with PX_PLUGIN():
 *
 *     static px_action_t
 *     on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
 *     {
 *         px_add_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-hello", "world");
 *         return PX_CONTINUE;
 *     }
 *
 *     static const px_plugin_t plugin = {
 *         .on_request_headers = on_request_headers,
 *     };
 *     PX_PLUGIN(plugin);
 *
 * The runtime exports every proxy_on_* callback of the chosen ABI version,
 * `proxy_on_memory_allocate` and the ABI marker, and calls the plugin's
 * function when it is set; otherwise it answers the default (CONTINUE for
 * actions, true for on_vm_start / on_configure / on_done).
 *
 * ABI version: define PX_ABI_VERSION to PX_ABI_0_1_0, PX_ABI_0_2_0 or
 * PX_ABI_0_2_1 (the default) when compiling both the plugin and
 * proxy_wasm.c. It selects the marker export, the arity of the headers
 * callbacks (2 parameters under 0.1.0) and which host functions exist.
 *
 * Memory ownership: every helper that hands back bytes (char **out) hands
 * back a block allocated with malloc() (by the host through
 * proxy_on_memory_allocate, or by the helper). The CALLER FREES IT with
 * free(). Such blocks are always NUL-terminated one byte past the returned
 * length (the NUL is not counted), so text can be used as a C string. On
 * failure the output pointer is set to NULL and the length to 0.
 *
 * Status: helpers return the host's px_status_t (PX_OK = 0). A helper for a
 * host function that does not exist in the selected ABI version returns
 * PX_UNIMPLEMENTED without calling the host. Helpers that must allocate
 * return PX_INTERNAL_FAILURE when malloc fails.
 */
#ifndef PROXY_WASM_H
#define PROXY_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ABI version --------------------------------------------------------- */

#define PX_ABI_0_1_0  100
#define PX_ABI_0_2_0  200
#define PX_ABI_0_2_1  201

#ifndef PX_ABI_VERSION
#define PX_ABI_VERSION  PX_ABI_0_2_1
#endif

#if PX_ABI_VERSION != PX_ABI_0_1_0 && PX_ABI_VERSION != PX_ABI_0_2_0 \
    && PX_ABI_VERSION != PX_ABI_0_2_1
#error "PX_ABI_VERSION must be PX_ABI_0_1_0, PX_ABI_0_2_0 or PX_ABI_0_2_1"
#endif

/* ---- enums (values are the ABI's) ---------------------------------------- */

typedef enum {
    PX_OK = 0,
    PX_NOT_FOUND = 1,
    PX_BAD_ARGUMENT = 2,
    PX_SERIALIZATION_FAILURE = 3,
    PX_PARSE_FAILURE = 4,
    PX_BAD_EXPRESSION = 5,
    PX_INVALID_MEMORY_ACCESS = 6,
    PX_EMPTY = 7,
    PX_CAS_MISMATCH = 8,
    PX_RESULT_MISMATCH = 9,
    PX_INTERNAL_FAILURE = 10,
    PX_BROKEN_CONNECTION = 11,
    PX_UNIMPLEMENTED = 12
} px_status_t;

typedef enum {
    PX_LOG_TRACE = 0,
    PX_LOG_DEBUG = 1,
    PX_LOG_INFO = 2,
    PX_LOG_WARN = 3,
    PX_LOG_ERROR = 4,
    PX_LOG_CRITICAL = 5
} px_log_level_t;

/*
 * What a stream callback tells the host. The raw u32 is passed through
 * unchanged, so a plugin may return Envoy's wider values (2..4) by casting.
 */
typedef enum {
    PX_CONTINUE = 0,
    PX_PAUSE = 1
} px_action_t;

typedef enum {
    PX_BUFFER_HTTP_REQUEST_BODY = 0,
    PX_BUFFER_HTTP_RESPONSE_BODY = 1,
    PX_BUFFER_DOWNSTREAM_DATA = 2,
    PX_BUFFER_UPSTREAM_DATA = 3,
    PX_BUFFER_HTTP_CALL_RESPONSE_BODY = 4,
    PX_BUFFER_GRPC_CALL_MESSAGE = 5,
    PX_BUFFER_VM_CONFIGURATION = 6,          /* 0.2.0 and later */
    PX_BUFFER_PLUGIN_CONFIGURATION = 7,      /* 0.2.0 and later */
    PX_BUFFER_FOREIGN_FUNCTION_ARGUMENTS = 8 /* 0.2.0 and later */
} px_buffer_type_t;

#define PX_BUFFER_END_OF_STREAM  1u         /* flag of px_get_buffer_status */

typedef enum {
    PX_MAP_HTTP_REQUEST_HEADERS = 0,
    PX_MAP_HTTP_REQUEST_TRAILERS = 1,
    PX_MAP_HTTP_RESPONSE_HEADERS = 2,
    PX_MAP_HTTP_RESPONSE_TRAILERS = 3,
    PX_MAP_GRPC_CALL_INITIAL_METADATA = 4,
    PX_MAP_GRPC_CALL_TRAILING_METADATA = 5,
    PX_MAP_HTTP_CALL_RESPONSE_HEADERS = 6,
    PX_MAP_HTTP_CALL_RESPONSE_TRAILERS = 7
} px_map_type_t;

typedef enum {
    PX_PEER_UNKNOWN = 0,
    PX_PEER_LOCAL = 1,
    PX_PEER_REMOTE = 2
} px_peer_type_t;

typedef enum {
    PX_STREAM_HTTP_REQUEST = 0,
    PX_STREAM_HTTP_RESPONSE = 1,
    PX_STREAM_DOWNSTREAM = 2,
    PX_STREAM_UPSTREAM = 3
} px_stream_type_t;

typedef enum {
    PX_METRIC_COUNTER = 0,
    PX_METRIC_GAUGE = 1,
    PX_METRIC_HISTOGRAM = 2
} px_metric_type_t;

/* "No gRPC status" for px_send_local_response(). */
#define PX_GRPC_STATUS_NONE  (-1)

/* ---- the plugin definition ----------------------------------------------- */

/*
 * Callbacks a plugin may provide; leave the others NULL. `ctx` is the
 * context id the host passed; `root_id` is a root (plugin) context id.
 * Sizes are the host's u32 values.
 *
 * For on_http_call_response and the on_grpc_* callbacks the runtime passes
 * as `ctx` the context that issued the call through px_http_call() /
 * px_grpc_call() / px_grpc_stream() (still alive), otherwise the root
 * context id the host passed. The host's effective context is still the
 * root context: call px_set_effective_context(ctx) before touching the
 * stream (headers, px_continue_stream, local responses).
 */
typedef struct {
    /* VM and root context lifecycle */
    bool (*on_vm_start)(uint32_t root_id, uint32_t vm_config_size);
    bool (*on_configure)(uint32_t root_id, uint32_t plugin_config_size);
    void (*on_tick)(uint32_t root_id);
    void (*on_context_create)(uint32_t ctx, uint32_t parent_ctx);

    /* HTTP streams; eos is always false under ABI 0.1.0 headers callbacks */
    px_action_t (*on_request_headers)(uint32_t ctx, uint32_t nheaders,
                                      bool eos);
    px_action_t (*on_request_body)(uint32_t ctx, uint32_t size, bool eos);
    px_action_t (*on_request_trailers)(uint32_t ctx, uint32_t ntrailers);
    px_action_t (*on_response_headers)(uint32_t ctx, uint32_t nheaders,
                                       bool eos);
    px_action_t (*on_response_body)(uint32_t ctx, uint32_t size, bool eos);
    px_action_t (*on_response_trailers)(uint32_t ctx, uint32_t ntrailers);

    /* TCP streams */
    px_action_t (*on_new_connection)(uint32_t ctx);
    px_action_t (*on_downstream_data)(uint32_t ctx, uint32_t size, bool eos);
    px_action_t (*on_upstream_data)(uint32_t ctx, uint32_t size, bool eos);
    void (*on_downstream_connection_close)(uint32_t ctx, px_peer_type_t peer);
    void (*on_upstream_connection_close)(uint32_t ctx, px_peer_type_t peer);

    /* callouts (see above for ctx); nheaders == 0 means the call failed */
    void (*on_http_call_response)(uint32_t ctx, uint32_t token,
                                  uint32_t nheaders, uint32_t body_size,
                                  uint32_t ntrailers);
    void (*on_grpc_receive_initial_metadata)(uint32_t ctx, uint32_t token,
                                             uint32_t nheaders);
    void (*on_grpc_receive)(uint32_t ctx, uint32_t token, uint32_t size);
    void (*on_grpc_receive_trailing_metadata)(uint32_t ctx, uint32_t token,
                                              uint32_t ntrailers);
    void (*on_grpc_close)(uint32_t ctx, uint32_t token, uint32_t status);

    /* root context events */
    void (*on_queue_ready)(uint32_t root_id, uint32_t queue_id);
    void (*on_foreign_function)(uint32_t root_id, uint32_t function_id,
                                uint32_t args_size); /* 0.2.0 and later */

    /* end of any context: done (false = will call px_done later), log,
     * delete (the runtime forgets the context's data after it) */
    bool (*on_done)(uint32_t ctx);
    void (*on_log)(uint32_t ctx);
    void (*on_delete)(uint32_t ctx);
} px_plugin_t;

/*
 * The runtime exports px_noop_callbacks(), which proxy-wasm-c's hosts call
 * once per instance: each of bits 0-15 set names a callback the plugin has
 * no handler for, whose export only returns its default (Continue, done,
 * or nothing), so the host may skip calling it. PX_LAZY_CONTEXT_CREATE
 * says on_context_create has no handler either (the export only records
 * the context): the host may run it later, just before the context's
 * first other callback, and not at all when none comes. PX_QUIET_DELETE
 * says on_delete has no handler (the export only forgets what the runtime
 * kept for the context): the host may run it any time after the context's
 * last other callback, several contexts' in one go. Other hosts never
 * call it and get the same behaviour from the exports. The numbering is a
 * contract with the host (src/core/vm.c): never renumber, only add.
 */
enum {
    PX_NOOP_REQUEST_HEADERS = 1u << 0,
    PX_NOOP_REQUEST_BODY = 1u << 1,
    PX_NOOP_REQUEST_TRAILERS = 1u << 2,
    PX_NOOP_RESPONSE_HEADERS = 1u << 3,
    PX_NOOP_RESPONSE_BODY = 1u << 4,
    PX_NOOP_RESPONSE_TRAILERS = 1u << 5,
    PX_NOOP_LOG = 1u << 6,
    PX_NOOP_DONE = 1u << 7,
    PX_NOOP_NEW_CONNECTION = 1u << 8,
    PX_NOOP_DOWNSTREAM_DATA = 1u << 9,
    PX_NOOP_UPSTREAM_DATA = 1u << 10,
    PX_NOOP_DOWNSTREAM_CLOSE = 1u << 11,
    PX_NOOP_UPSTREAM_CLOSE = 1u << 12,
    PX_NOOP_TICK = 1u << 13,
    PX_NOOP_QUEUE_READY = 1u << 14,
    PX_NOOP_FOREIGN_FUNCTION = 1u << 15,
    PX_LAZY_CONTEXT_CREATE = 1u << 16,
    PX_QUIET_DELETE = 1u << 17
};

/* The registered definition; defined by PX_PLUGIN(). */
extern const px_plugin_t *const px__plugin;

/* Register `def` (a px_plugin_t object) as this module's plugin. Use once. */
#define PX_PLUGIN(def)  const px_plugin_t *const px__plugin = &(def)

/* ---- contexts ------------------------------------------------------------ */

/*
 * Attach plugin data to a context. The runtime only stores the pointer; the
 * plugin frees what it points to (typically in on_delete). Returns PX_OK,
 * PX_NOT_FOUND if the runtime never saw the context created, or
 * PX_INTERNAL_FAILURE.
 */
px_status_t px_set_context_data(uint32_t ctx, void *data);

/* The pointer set by px_set_context_data(), or NULL. */
void *px_get_context_data(uint32_t ctx);

/*
 * The root context a context belongs to: its parent for a stream context,
 * itself for a root context, 0 if unknown.
 */
uint32_t px_root_of(uint32_t ctx);

/*
 * The context the host is currently calling into (the effective context,
 * as last set by a callback or by px_set_effective_context()).
 */
uint32_t px_current_context(void);

/* ---- logging ------------------------------------------------------------- */

/* Log a C string at `level`. Returns the host's status. */
static inline px_status_t px_log(px_log_level_t level, const char *msg);

/* Log `len` bytes at `level`. Returns the host's status. */
px_status_t px_log_n(px_log_level_t level, const char *msg, size_t len);

/*
 * Log a printf-style formatted message at `level`. Long messages are
 * formatted into a heap buffer. Returns the host's status, or
 * PX_INTERNAL_FAILURE if formatting or allocation failed.
 */
px_status_t px_logf(px_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The host's current log level (ABI 0.2.1 only; else PX_UNIMPLEMENTED). */
px_status_t px_get_log_level(px_log_level_t *level);

/* Lowercase name of a status ("ok", "not_found", ...; "unknown" else). */
const char *px_status_name(uint32_t status);

/* ---- time and timers ----------------------------------------------------- */

/*
 * Ask for on_tick every `ms` milliseconds on the current root context;
 * 0 stops it. Returns the host's status.
 */
px_status_t px_set_tick_period(uint32_t ms);

/* Wall-clock time in nanoseconds since the epoch (deprecated in the ABI in
 * favour of WASI clock_time_get, still provided by hosts). */
px_status_t px_get_current_time_ns(uint64_t *ns);

/* ---- buffers ------------------------------------------------------------- */

/*
 * Copy up to `max` bytes from `start` of buffer `type`. On PX_OK, *data is a
 * malloc'd NUL-terminated block of *len bytes; the caller frees it.
 * Returns NOT_FOUND when the buffer is absent in this callback.
 */
px_status_t px_get_buffer(px_buffer_type_t type, uint32_t start,
    uint32_t max, char **data, size_t *len);

/*
 * Change buffer `type`: replace `size` bytes at `start` with `len` bytes of
 * `data` (start = 0, size = 0 prepends; start >= buffer length appends).
 */
px_status_t px_set_buffer(px_buffer_type_t type, uint32_t start,
    uint32_t size, const char *data, size_t len);

/* Replace the whole content of buffer `type` with `len` bytes of `data`. */
px_status_t px_replace_buffer(px_buffer_type_t type, const char *data,
    size_t len);

/* Current length and flags (PX_BUFFER_END_OF_STREAM) of buffer `type`. */
px_status_t px_get_buffer_status(px_buffer_type_t type, size_t *len,
    uint32_t *flags);

/*
 * The plugin configuration of the current root context (call from
 * on_configure). Works under every ABI version (0.1.0 uses
 * proxy_get_configuration). *data is malloc'd; the caller frees it.
 * An empty configuration gives PX_OK with *len == 0 and *data == "".
 */
px_status_t px_get_configuration(char **data, size_t *len);

/* The VM configuration (call from on_vm_start). 0.2.0+; caller frees. */
px_status_t px_get_vm_configuration(char **data, size_t *len);

/* ---- header maps --------------------------------------------------------- */

/* A header given by the plugin: two NUL-terminated strings. */
typedef struct {
    const char *name;
    const char *value;
} px_header_t;

/* A header decoded from the host; name and value are NUL-terminated. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} px_header_pair_t;

/* All headers of a map, as returned by px_get_headers(). */
typedef struct {
    size_t count;
    px_header_pair_t *pairs;   /* `count` entries */
    char *data;                /* the serialized map the pairs point into */
} px_headers_t;

/*
 * Value of header `name` in `map`. On PX_OK *value is malloc'd and
 * NUL-terminated (caller frees). A missing header is PX_NOT_FOUND under
 * 0.2.x; under 0.1.0 hosts answer PX_OK with an empty value.
 */
px_status_t px_get_header(px_map_type_t map, const char *name, char **value,
    size_t *len);

/* Add a header (keeps existing ones of the same name). */
static inline px_status_t px_add_header(px_map_type_t map,
    const char *name, const char *value);

/* Set a header, replacing all of the same name (adds it if absent). */
static inline px_status_t px_replace_header(px_map_type_t map,
    const char *name, const char *value);

/* Remove every header of that name (PX_OK even if absent). */
static inline px_status_t px_remove_header(px_map_type_t map,
    const char *name);

/*
 * Size in bytes of `map` in serialized form (what px_get_headers() would
 * transfer), not the number of headers: the spec's
 * proxy_get_header_map_size.
 */
px_status_t px_get_header_map_size(px_map_type_t map, size_t *bytes);

/*
 * All headers of `map`, decoded. On PX_OK the caller releases `out` with
 * px_headers_free(). A malformed answer from the host gives
 * PX_SERIALIZATION_FAILURE.
 */
px_status_t px_get_headers(px_map_type_t map, px_headers_t *out);

/* Replace the whole map with `n` headers. */
px_status_t px_set_headers(px_map_type_t map, const px_header_t *headers,
    size_t n);

/* Free what px_get_headers() returned; `h` itself is not freed. */
void px_headers_free(px_headers_t *h);

/*
 * Serialize `n` headers into the ABI's map format. On PX_OK *out is
 * malloc'd (caller frees) and *len is its size. n == 0 gives a 4-byte map.
 */
px_status_t px_serialize_headers(const px_header_t *headers, size_t n,
    char **out, size_t *len);

/*
 * Decode a serialized map of `len` bytes at `data` in place (the NULs must
 * be present). On PX_OK out->pairs is malloc'd and out->data = data, so
 * px_headers_free() frees both. PX_SERIALIZATION_FAILURE if malformed
 * (then `data` is not taken over).
 */
px_status_t px_parse_headers(char *data, size_t len, px_headers_t *out);

/* ---- streams ------------------------------------------------------------- */

/*
 * Resume a paused stream of the effective context. Under 0.1.0 the HTTP
 * request/response map to proxy_continue_request/_response and the TCP ones
 * give PX_UNIMPLEMENTED.
 */
px_status_t px_continue_stream(px_stream_type_t stream);

/* Close a stream (0.2.0+; PX_UNIMPLEMENTED under 0.1.0). */
px_status_t px_close_stream(px_stream_type_t stream);

/* Shorthand for px_continue_stream(PX_STREAM_HTTP_REQUEST). */
px_status_t px_continue_request(void);

/* Shorthand for px_continue_stream(PX_STREAM_HTTP_RESPONSE). */
px_status_t px_continue_response(void);

/*
 * Answer the current HTTP request locally. `details` may be NULL (empty),
 * `body` is `body_len` bytes (NULL if 0), `headers` an array of `n`
 * (may be NULL if 0). grpc_status: PX_GRPC_STATUS_NONE or a gRPC code.
 */
px_status_t px_send_local_response(uint32_t status_code, const char *details,
    const char *body, size_t body_len, const px_header_t *headers, size_t n,
    int32_t grpc_status);

/* px_send_local_response() with a C-string body, no details, no gRPC. */
px_status_t px_respond(uint32_t status_code, const char *body,
    const px_header_t *headers, size_t n);

/*
 * Tell the host that the effective context, whose on_done returned false,
 * is now done. PX_NOT_FOUND if it was not pending.
 */
px_status_t px_done(void);

/*
 * Make `ctx` the effective context for the following host calls (e.g. a
 * stream from on_http_call_response). PX_BAD_ARGUMENT if unknown.
 */
px_status_t px_set_effective_context(uint32_t ctx);

/*
 * Status of the callout whose answer is being delivered (in
 * on_http_call_response / on_grpc_*): its code and message. *msg is
 * malloc'd (caller frees); msg may be NULL to skip it.
 */
px_status_t px_get_status(uint32_t *code, char **msg, size_t *len);

/* ---- HTTP and gRPC callouts ---------------------------------------------- */

/*
 * Send an HTTP request to `upstream`. `headers` must include :method,
 * :path and :authority. `body` may be NULL if body_len is 0, trailers
 * NULL if nt is 0. On PX_OK *token identifies the answer in
 * on_http_call_response, which the runtime delivers with the current
 * context as `ctx`.
 */
px_status_t px_http_call(const char *upstream, const px_header_t *headers,
    size_t n, const char *body, size_t body_len, const px_header_t *trailers,
    size_t nt, uint32_t timeout_ms, uint32_t *token);

/* A unary gRPC call; the answer comes through the on_grpc_* callbacks. */
px_status_t px_grpc_call(const char *upstream, const char *service,
    const char *method, const px_header_t *metadata, size_t n,
    const char *msg, size_t msg_len, uint32_t timeout_ms, uint32_t *token);

/* Open a gRPC stream; send with px_grpc_send(). */
px_status_t px_grpc_stream(const char *upstream, const char *service,
    const char *method, const px_header_t *metadata, size_t n,
    uint32_t *token);

/* Send a message on a gRPC stream; end_stream closes the sending side. */
px_status_t px_grpc_send(uint32_t token, const char *msg, size_t len,
    bool end_stream);

/* Cancel a gRPC call or stream (no on_grpc_close follows). */
px_status_t px_grpc_cancel(uint32_t token);

/* Close a gRPC call or stream gracefully. */
px_status_t px_grpc_close(uint32_t token);

/* ---- shared data and queues ---------------------------------------------- */

/*
 * Read shared value `key`. On PX_OK *value is malloc'd (caller frees) and
 * *cas is its compare-and-swap token (cas may be NULL). PX_NOT_FOUND if
 * the key is absent.
 */
px_status_t px_get_shared_data(const char *key, char **value, size_t *len,
    uint32_t *cas);

/*
 * Write shared value `key`. cas = 0 writes unconditionally; otherwise the
 * write happens only if the value's token is still `cas`, else
 * PX_CAS_MISMATCH.
 */
px_status_t px_set_shared_data(const char *key, const char *value,
    size_t len, uint32_t cas);

/* Register (or open) queue `name` of this VM; on_queue_ready gets *qid. */
px_status_t px_register_queue(const char *name, uint32_t *qid);

/* Find queue `name` registered by VM `vm_id`. PX_NOT_FOUND if absent. */
px_status_t px_resolve_queue(const char *vm_id, const char *name,
    uint32_t *qid);

/* Append `len` bytes to queue `qid`. */
px_status_t px_enqueue(uint32_t qid, const char *data, size_t len);

/* Take the oldest item of `qid`: *data malloc'd (caller frees); PX_EMPTY. */
px_status_t px_dequeue(uint32_t qid, char **data, size_t *len);

/* ---- metrics ------------------------------------------------------------- */

/* Define (or find) metric `name` of `type`; *id names it later. */
px_status_t px_define_metric(px_metric_type_t type, const char *name,
    uint32_t *id);

/* Add `delta` to a counter or gauge (a negative counter delta is refused). */
px_status_t px_increment_metric(uint32_t id, int64_t delta);

/* Set a gauge or record a histogram sample. */
px_status_t px_record_metric(uint32_t id, uint64_t value);

/* Current value of a metric. */
px_status_t px_get_metric(uint32_t id, uint64_t *value);

/* ---- properties ---------------------------------------------------------- */

/* A NULL-terminated property path: PX_PATH("request", "path"). */
#define PX_PATH(...)  ((const char *const []){ __VA_ARGS__, NULL })

/*
 * Read property `path` (NULL-terminated array of segments, sent joined by
 * NULs). On PX_OK *value is malloc'd (caller frees); its bytes are the
 * host's encoding (strings raw; Envoy sends integers as 8 bytes LE).
 */
px_status_t px_get_property(const char *const *path, char **value,
    size_t *len);

/* Set property `path` to `len` bytes of `value`. */
px_status_t px_set_property(const char *const *path, const char *value,
    size_t len);

/* ---- foreign functions --------------------------------------------------- */

/*
 * Call the host's foreign function `name` with `args_len` bytes. On PX_OK
 * *result is malloc'd (caller frees; may be empty). PX_NOT_FOUND if the
 * host has no such function.
 */
px_status_t px_call_foreign_function(const char *name, const char *args,
    size_t args_len, char **result, size_t *result_len);

/* ---- raw host functions ("env" imports) -----------------------------------
 *
 * The ABI as declared by the host, for plugins (and tests) that need it
 * unfiltered. Pointers are guest addresses; every function returns a
 * px_status_t as u32.
 */

#define PX__IMPORT(name)                                                    \
    __attribute__((import_module("env"), import_name(#name)))

PX__IMPORT(proxy_log) uint32_t proxy_log(uint32_t level, const char *msg,
    size_t len);
#if PX_ABI_VERSION >= PX_ABI_0_2_1
PX__IMPORT(proxy_get_log_level) uint32_t proxy_get_log_level(
    uint32_t *level);
#endif
PX__IMPORT(proxy_get_current_time_nanoseconds)
uint32_t proxy_get_current_time_nanoseconds(uint64_t *ns);
PX__IMPORT(proxy_set_tick_period_milliseconds)
uint32_t proxy_set_tick_period_milliseconds(uint32_t ms);
#if PX_ABI_VERSION == PX_ABI_0_1_0
PX__IMPORT(proxy_get_configuration) uint32_t proxy_get_configuration(
    char **data, size_t *len);
PX__IMPORT(proxy_continue_request) uint32_t proxy_continue_request(void);
PX__IMPORT(proxy_continue_response) uint32_t proxy_continue_response(void);
PX__IMPORT(proxy_clear_route_cache) uint32_t proxy_clear_route_cache(void);
#else
PX__IMPORT(proxy_continue_stream) uint32_t proxy_continue_stream(
    uint32_t stream);
PX__IMPORT(proxy_close_stream) uint32_t proxy_close_stream(uint32_t stream);
#endif
PX__IMPORT(proxy_done) uint32_t proxy_done(void);
PX__IMPORT(proxy_set_effective_context)
uint32_t proxy_set_effective_context(uint32_t ctx);
PX__IMPORT(proxy_get_buffer_bytes) uint32_t proxy_get_buffer_bytes(
    uint32_t type, uint32_t start, uint32_t max, char **data, size_t *len);
PX__IMPORT(proxy_set_buffer_bytes) uint32_t proxy_set_buffer_bytes(
    uint32_t type, uint32_t start, uint32_t size, const char *data,
    size_t len);
PX__IMPORT(proxy_get_buffer_status) uint32_t proxy_get_buffer_status(
    uint32_t type, size_t *len, uint32_t *flags);
PX__IMPORT(proxy_get_header_map_size) uint32_t proxy_get_header_map_size(
    uint32_t map, size_t *size);
PX__IMPORT(proxy_get_header_map_pairs) uint32_t proxy_get_header_map_pairs(
    uint32_t map, char **data, size_t *len);
PX__IMPORT(proxy_set_header_map_pairs) uint32_t proxy_set_header_map_pairs(
    uint32_t map, const char *data, size_t len);
PX__IMPORT(proxy_get_header_map_value) uint32_t proxy_get_header_map_value(
    uint32_t map, const char *key, size_t key_len, char **value,
    size_t *value_len);
PX__IMPORT(proxy_add_header_map_value) uint32_t proxy_add_header_map_value(
    uint32_t map, const char *key, size_t key_len, const char *value,
    size_t value_len);
PX__IMPORT(proxy_replace_header_map_value)
uint32_t proxy_replace_header_map_value(uint32_t map, const char *key,
    size_t key_len, const char *value, size_t value_len);
PX__IMPORT(proxy_remove_header_map_value)
uint32_t proxy_remove_header_map_value(uint32_t map, const char *key,
    size_t key_len);
PX__IMPORT(proxy_get_status) uint32_t proxy_get_status(uint32_t *code,
    char **msg, size_t *len);
PX__IMPORT(proxy_send_local_response) uint32_t proxy_send_local_response(
    uint32_t code, const char *details, size_t details_len,
    const char *body, size_t body_len, const char *headers,
    size_t headers_len, int32_t grpc_status);
PX__IMPORT(proxy_http_call) uint32_t proxy_http_call(const char *upstream,
    size_t upstream_len, const char *headers, size_t headers_len,
    const char *body, size_t body_len, const char *trailers,
    size_t trailers_len, uint32_t timeout_ms, uint32_t *token);
PX__IMPORT(proxy_grpc_call) uint32_t proxy_grpc_call(const char *upstream,
    size_t upstream_len, const char *service, size_t service_len,
    const char *method, size_t method_len, const char *metadata,
    size_t metadata_len, const char *msg, size_t msg_len,
    uint32_t timeout_ms, uint32_t *token);
PX__IMPORT(proxy_grpc_stream) uint32_t proxy_grpc_stream(
    const char *upstream, size_t upstream_len, const char *service,
    size_t service_len, const char *method, size_t method_len,
    const char *metadata, size_t metadata_len, uint32_t *token);
PX__IMPORT(proxy_grpc_send) uint32_t proxy_grpc_send(uint32_t token,
    const char *msg, size_t len, uint32_t end_stream);
PX__IMPORT(proxy_grpc_cancel) uint32_t proxy_grpc_cancel(uint32_t token);
PX__IMPORT(proxy_grpc_close) uint32_t proxy_grpc_close(uint32_t token);
PX__IMPORT(proxy_get_shared_data) uint32_t proxy_get_shared_data(
    const char *key, size_t key_len, char **value, size_t *value_len,
    uint32_t *cas);
PX__IMPORT(proxy_set_shared_data) uint32_t proxy_set_shared_data(
    const char *key, size_t key_len, const char *value, size_t value_len,
    uint32_t cas);
PX__IMPORT(proxy_register_shared_queue)
uint32_t proxy_register_shared_queue(const char *name, size_t name_len,
    uint32_t *qid);
PX__IMPORT(proxy_resolve_shared_queue)
uint32_t proxy_resolve_shared_queue(const char *vm_id, size_t vm_id_len,
    const char *name, size_t name_len, uint32_t *qid);
PX__IMPORT(proxy_enqueue_shared_queue)
uint32_t proxy_enqueue_shared_queue(uint32_t qid, const char *data,
    size_t len);
PX__IMPORT(proxy_dequeue_shared_queue)
uint32_t proxy_dequeue_shared_queue(uint32_t qid, char **data, size_t *len);
PX__IMPORT(proxy_define_metric) uint32_t proxy_define_metric(uint32_t type,
    const char *name, size_t name_len, uint32_t *id);
PX__IMPORT(proxy_increment_metric) uint32_t proxy_increment_metric(
    uint32_t id, int64_t delta);
PX__IMPORT(proxy_record_metric) uint32_t proxy_record_metric(uint32_t id,
    uint64_t value);
PX__IMPORT(proxy_get_metric) uint32_t proxy_get_metric(uint32_t id,
    uint64_t *value);
PX__IMPORT(proxy_get_property) uint32_t proxy_get_property(const char *path,
    size_t path_len, char **value, size_t *value_len);
PX__IMPORT(proxy_set_property) uint32_t proxy_set_property(const char *path,
    size_t path_len, const char *value, size_t value_len);
PX__IMPORT(proxy_call_foreign_function)
uint32_t proxy_call_foreign_function(const char *name, size_t name_len,
    const char *args, size_t args_len, char **result, size_t *result_len);

/*
 * The helpers that take C strings are inline: a literal's length is then
 * known when the plugin is compiled, and no strlen runs per call.
 */
#define PX__STRLEN(s)  ((s) != NULL ? __builtin_strlen(s) : 0)

static inline px_status_t
px_log(px_log_level_t level, const char *msg)
{
    return (px_status_t) proxy_log(level, msg, PX__STRLEN(msg));
}

static inline px_status_t
px_add_header(px_map_type_t map, const char *name, const char *value)
{
    return (px_status_t) proxy_add_header_map_value(map, name,
        PX__STRLEN(name), value, PX__STRLEN(value));
}

static inline px_status_t
px_replace_header(px_map_type_t map, const char *name, const char *value)
{
    return (px_status_t) proxy_replace_header_map_value(map, name,
        PX__STRLEN(name), value, PX__STRLEN(value));
}

static inline px_status_t
px_remove_header(px_map_type_t map, const char *name)
{
    return (px_status_t) proxy_remove_header_map_value(map, name,
                                                       PX__STRLEN(name));
}

#ifdef __cplusplus
}
#endif

#endif /* PROXY_WASM_H */
