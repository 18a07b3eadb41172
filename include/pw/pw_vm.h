/*
 * proxy-wasm-c: the core API. Modules, VMs, plugins (root contexts) and
 * streams (HTTP stream or TCP connection contexts).
 *
 *   pw_module_t  a plugin's bytes, validated and compiled once per engine.
 *   pw_vm_t      one instance of a module (Envoy's "Wasm"/VM), with its
 *                context ids, effective context and failure state.
 *   pw_plugin_t  a root context: one configured plugin in a VM (root id,
 *                plugin name, plugin configuration). Several per VM.
 *   pw_stream_t  an HTTP request or TCP connection seen by one plugin.
 *
 * Ownership: a VM owns its plugins, a plugin its streams. Every _new has
 * one _free. Errors: pw_rc_t codes; messages in a caller buffer.
 *
 * Failure: a trap, an interrupted call or an out-of-memory in the plugin
 * marks the VM failed (pw_vm_failed() != 0); every later hook returns
 * PW_EFAILED without entering the plugin. The host replaces the VM.
 */
#ifndef PW_VM_H
#define PW_VM_H

#include <pw/pw_engine.h>
#include <pw/pw_host.h>
#include <pw/pw_store.h>
#include <pw/pw_wasm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_module_s pw_module_t;

/* ---- modules ---------------------------------------------------------- */

/*
 * Validate bytes without an engine: a wasm module, an ABI version marker
 * export, every import one the host provides with the same signature, and
 * every known callback export with an accepted signature. On success *abi
 * (may be NULL) gets the declared version. PW_EMALFORMED / PW_ELINK with
 * a one-line reason in err naming the cause ("missing import env.foo",
 * "bad signature for proxy_on_configure", "no proxy_abi_version marker").
 */
int pw_module_check(const uint8_t *bytes, size_t len, pw_abi_t *abi,
    char *err, size_t errlen);

/* Check, then compile with the engine. bytes are copied. */
int pw_module_load(const pw_engine_vt_t *vt, pw_engine_t *engine,
    const uint8_t *bytes, size_t len, pw_module_t **out,
    char *err, size_t errlen);
void pw_module_free(pw_module_t *mod);
pw_abi_t pw_module_abi(const pw_module_t *mod);
const pw_wasm_info_t *pw_module_info(const pw_module_t *mod);

/* ---- store routing ----------------------------------------------------- */

/*
 * Where shared data, queues and metrics live when a host has several
 * stores (nginx: one per shared memory zone). Indexes are into stores[].
 * A queue id the plugin sees is (index << PW_QUEUE_STORE_SHIFT) | the id
 * inside that store; the host composes the same value when it delivers
 * proxy_on_queue_ready. All callbacks are optional: a NULL one picks 0.
 */
#define PW_QUEUE_STORE_SHIFT 24

typedef struct pw_store_route_s {
    pw_store_t *const *stores;
    size_t nstores;
    /* the store of a shared-data key (the whole key is stored) */
    size_t (*kv)(void *data, pw_str_t key);
    /* the store of queue vm_id/name (register and resolve) */
    size_t (*queue)(void *data, pw_str_t vm_id, pw_str_t name);
    /* the store of metrics */
    size_t metrics;
    /* the owner recorded for a queue registered from context c (default:
     * the plugin pointer) */
    uint64_t (*owner)(void *data, const pw_hctx_t *c);
    void *data;
} pw_store_route_t;

/* ---- VMs ------------------------------------------------------------- */

typedef struct {
    const pw_host_t *host;
    void *host_data;
    pw_store_t *store;          /* shared data, queues, metrics */
    pw_str_t vm_id;             /* for queues and plugin_vm_id */
    pw_str_t vm_config;         /* VM_CONFIGURATION */
    /* WASI environment "K=V" strings and arguments given to the plugin */
    const pw_str_t *env;
    size_t nenv;
    const pw_str_t *args;
    size_t nargs;
    /* Interrupt a guest call running longer than this (0 = never). */
    uint32_t max_call_ms;
    /* Optional: several stores (nginx zones) instead of `store`. */
    const struct pw_store_route_s *route;
} pw_vm_conf_t;

/*
 * Instantiate mod, link every import, run the start section, then
 * _initialize (and main if exported) or _start. The conf's strings are
 * copied. A trap here fails with PW_ETRAP and the message in err.
 */
int pw_vm_new(pw_module_t *mod, const pw_vm_conf_t *conf, pw_vm_t **out,
    char *err, size_t errlen);
/* Stops every plugin (pw_plugin_free) and frees the instance. */
void pw_vm_free(pw_vm_t *vm);
/* Non-zero once the VM failed; the reason stays readable. */
int pw_vm_failed(const pw_vm_t *vm);
const char *pw_vm_fail_reason(const pw_vm_t *vm);
/* Host calls of vm's plugins answered with an error status so far
 * (BAD_ARGUMENT, PARSE_FAILURE, INVALID_MEMORY_ACCESS, INTERNAL_FAILURE,
 * UNIMPLEMENTED), for host metrics. */
uint64_t pw_vm_hostcall_errors(const pw_vm_t *vm);
/*
 * A counter that moves whenever one of the two above does (the VM fails,
 * a host call is answered with an error status). The pointer is good for
 * the VM's life: a host that keeps it and the value it last saw knows
 * after each call, without calling in, whether to look at them.
 */
const uint64_t *pw_vm_events(const pw_vm_t *vm);
/* The last trap (message and backtrace) or NULL. */
const pw_trap_t *pw_vm_last_trap(const pw_vm_t *vm);

/* Offer a foreign function to the plugins of vm (copied name). */
int pw_vm_register_foreign(pw_vm_t *vm, pw_str_t name, pw_foreign_fn_t fn,
    void *data);

/* ---- plugins (root contexts) ----------------------------------------- */

typedef struct {
    pw_str_t name;              /* plugin_name */
    pw_str_t root_id;           /* plugin_root_id ("" allowed) */
    pw_str_t config;            /* PLUGIN_CONFIGURATION */
    void *host_data;            /* handed back in pw_hctx_t.plugin_data */
} pw_plugin_conf_t;

/*
 * Create a root context: proxy_on_context_create(root, 0),
 * proxy_on_vm_start(root, vm_config_size), proxy_on_configure(root,
 * config_size). PW_EFAILED with the reason in err when the plugin returns
 * false from either or traps (a trap also fails the VM).
 */
int pw_plugin_new(pw_vm_t *vm, const pw_plugin_conf_t *conf,
    pw_plugin_t **out, char *err, size_t errlen);
/* proxy_on_done (root), then proxy_on_delete; frees its streams first. */
void pw_plugin_free(pw_plugin_t *p);
uint32_t pw_plugin_id(const pw_plugin_t *p);
pw_vm_t *pw_plugin_vm(const pw_plugin_t *p);
/* Non-zero while the plugin asked to stop later (on_done returned false)
 * and has not called proxy_done yet. */
int pw_plugin_done_pending(const pw_plugin_t *p);

/* Deliveries on the root context (the host calls these). */
int pw_plugin_tick(pw_plugin_t *p);
int pw_plugin_queue_ready(pw_plugin_t *p, uint32_t qid);
/*
 * The answer to an http_call. headers NULL or empty means failure (the
 * plugin sees 0 headers, as in Envoy). Unknown token: PW_ENOTFOUND.
 */
int pw_plugin_http_response(pw_plugin_t *p, uint32_t token,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers);
int pw_plugin_grpc_initial_metadata(pw_plugin_t *p, uint32_t token,
    const pw_pairs_t *md);
int pw_plugin_grpc_message(pw_plugin_t *p, uint32_t token, pw_str_t msg);
int pw_plugin_grpc_trailing_metadata(pw_plugin_t *p, uint32_t token,
    const pw_pairs_t *md);
/* Ends the call: status and message readable with proxy_get_status. */
int pw_plugin_grpc_close(pw_plugin_t *p, uint32_t token, uint32_t status,
    pw_str_t message);
/* Calls proxy_on_foreign_function(root, function_id, args size). */
int pw_plugin_foreign_function(pw_plugin_t *p, uint32_t function_id,
    pw_str_t args);

/* ---- streams --------------------------------------------------------- */

typedef enum {
    PW_STREAM_HTTP = 0,
    PW_STREAM_TCP = 1
} pw_stream_kind_t;

/*
 * A stream context of plugin p. The plugin's proxy_on_context_create runs
 * lazily before the first hook. host_data is handed back in
 * pw_hctx_t.stream_data.
 */
int pw_stream_new(pw_plugin_t *p, pw_stream_kind_t kind, void *host_data,
    pw_stream_t **out);
/*
 * End the stream: proxy_on_done, proxy_on_log, proxy_on_delete, exactly
 * once each (none if the context was never created or the VM failed), then
 * free it. Callouts it made are forgotten (their answers are dropped).
 * Never call it (nor pw_plugin_free) from inside a host interface callback
 * of the same VM: the plugin may still be running on that context. A host
 * that finishes a request from such a callback (a local response) defers
 * the free to its event loop.
 */
void pw_stream_free(pw_stream_t *s);
uint32_t pw_stream_id(const pw_stream_t *s);

/* Hooks. Each returns PW_OK and the plugin's action, or PW_EFAILED. A
 * missing export answers PW_OK with CONTINUE. */
int pw_http_request_headers(pw_stream_t *s, uint32_t nheaders, int eos,
    pw_action_t *action);
int pw_http_request_body(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action);
int pw_http_request_trailers(pw_stream_t *s, uint32_t ntrailers,
    pw_action_t *action);
int pw_http_response_headers(pw_stream_t *s, uint32_t nheaders, int eos,
    pw_action_t *action);
int pw_http_response_body(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action);
/*
 * on_response_headers, then on_response_body with the first body data,
 * in one entry into the engine: for a host that has both at hand (the
 * body ready when the headers go through). The body callback runs only
 * when the headers callback returned CONTINUE and then go(go_data) says
 * so; go runs between the two, inside the engine call: it must only look
 * at host state (no hostcalls, no engine calls), and is where the host
 * makes the body visible to the plugin (it must not be before). The
 * plugin sees the same calls, arguments and order as with
 * pw_http_response_headers and then pw_http_response_body.
 *
 * PW_OK: *haction is the headers callback's action; *body_ran says
 * whether on_response_body ran, and then *baction is its action.
 * PW_ENOTFOUND: nothing ran (no such batch for this plugin, or the stream
 * has not started): call the two hooks one by one. PW_EFAILED as the
 * hooks (the failure names the callback that failed).
 */
int pw_http_response_headers_body(pw_stream_t *s, uint32_t nheaders,
    int heos, uint32_t size, int beos, int (*go)(void *data), void *go_data,
    pw_action_t *haction, pw_action_t *baction, int *body_ran);
/* Whether pw_http_response_headers_body can run both in one entry. */
int pw_stream_batches_response(const pw_stream_t *s);

/*
 * The HTTP hooks that reach the plugin: a PW_HOOK_* bit per callback it
 * exports, less those it declares to do nothing (px_noop_callbacks, see
 * docs/ARCHITECTURE.md). A hook without its bit is a no-op returning
 * CONTINUE, so a host need not gather what only it would see (a body
 * no callback reads can go by untouched). The bits are those of the C
 * SDK's PX_NOOP_* for the same callbacks.
 */
#define PW_HOOK_REQUEST_HEADERS    0x01u
#define PW_HOOK_REQUEST_BODY       0x02u
#define PW_HOOK_REQUEST_TRAILERS   0x04u
#define PW_HOOK_RESPONSE_HEADERS   0x08u
#define PW_HOOK_RESPONSE_BODY      0x10u
#define PW_HOOK_RESPONSE_TRAILERS  0x20u
unsigned pw_stream_hooks(const pw_stream_t *s);
/*
 * Whether calling the hook `hook` (one PW_HOOK_* bit) now would reach
 * nothing in the plugin: no callback, and no on_context_create to run
 * first (the stream has started, or it starts lazily). Such a call
 * answers PW_OK with CONTINUE; a host may skip it and what it would do
 * around it.
 */
int pw_stream_skips(const pw_stream_t *s, unsigned hook);
int pw_http_response_trailers(pw_stream_t *s, uint32_t ntrailers,
    pw_action_t *action);

int pw_tcp_new_connection(pw_stream_t *s, pw_action_t *action);
int pw_tcp_downstream_data(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action);
int pw_tcp_upstream_data(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action);
int pw_tcp_downstream_close(pw_stream_t *s, pw_peer_type_t peer);
int pw_tcp_upstream_close(pw_stream_t *s, pw_peer_type_t peer);

/* ---- the hostcall table (for docs and tooling) ----------------------- */

typedef struct {
    const char *module;         /* "env", "wasi_snapshot_preview1", ... */
    const char *name;
    const char *sig;
    unsigned abi;               /* pw_abi_t bits it exists in */
    int implemented;            /* 0: an explicit UNIMPLEMENTED stub */
    const char *note;
} pw_hostcall_info_t;

/* The table; *n gets its length. */
const pw_hostcall_info_t *pw_hostcalls(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* PW_VM_H */
