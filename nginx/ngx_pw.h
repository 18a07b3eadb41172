/*
 * proxy-wasm-c nginx module: shared declarations.
 *
 * ngx_pw_core_module    the wasm{} block: modules, per-worker engine,
 *                       instances (a VM and its root contexts), ticks,
 *                       failure back-off.
 * ngx_http_pw_module    proxy_wasm: the HTTP filter chain.
 */
#ifndef NGX_PW_H
#define NGX_PW_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <pw/pw.h>

/* On every request's path: gathered in .text.hot (see PW__HOT). */
#define NGX_PW_HOT  __attribute__((hot))

typedef struct ngx_pw_module_s      ngx_pw_module_t;
typedef struct ngx_pw_plugin_conf_s ngx_pw_plugin_conf_t;
typedef struct ngx_pw_instance_s    ngx_pw_instance_t;
typedef struct ngx_pw_root_s        ngx_pw_root_t;

/* A distinct (module, root id, configuration): one root context in every
 * instance of its module. */
struct ngx_pw_plugin_conf_s {
    ngx_pw_module_t            *module;      /* NULL until resolved */
    ngx_str_t                   module_name;
    u_char                     *file;        /* where first used */
    ngx_uint_t                  line;
    ngx_str_t                   root_id;
    ngx_str_t                   config;
    ngx_uint_t                  index;       /* in module->plugins */
};

/* One `module NAME PATH [VM_CONFIG]`. */
struct ngx_pw_module_s {
    ngx_str_t                   name;
    ngx_str_t                   path;
    ngx_str_t                   vm_config;
    u_char                     *bytes;       /* read by the master */
    size_t                      len;
    ngx_array_t                 plugins;     /* ngx_pw_plugin_conf_t * */

    /* per worker */
    pw_module_t                *compiled;
    ngx_pw_instance_t          *current;     /* isolation none */
    ngx_msec_t                  backoff;     /* 0, or the current delay */
    ngx_msec_t                  next_start;  /* no start before this */
    ngx_msec_t                  last_failure;
    ngx_msec_t                  last_log;
    ngx_uint_t                  unlogged;    /* failures not logged */
    ngx_uint_t                  failures;    /* counters */
    ngx_uint_t                  restarts;
};

/* A root context of an instance: what host callbacks get as plugin_data. */
struct ngx_pw_root_s {
    ngx_pw_instance_t          *inst;
    ngx_pw_plugin_conf_t       *conf;
    pw_plugin_t                *plugin;
    ngx_event_t                 tick;
    ngx_msec_t                  tick_period;
};

struct ngx_pw_instance_s {
    ngx_pw_module_t            *module;
    pw_vm_t                    *vm;
    ngx_pw_root_t              *roots;       /* module->plugins.nelts */
    ngx_uint_t                  nroots;
    ngx_uint_t                  refs;
    uint64_t                    hostcall_errors;  /* counted so far */
    const uint64_t             *events;      /* pw_vm_events() */
    uint64_t                    events_seen;
    ngx_log_t                  *log;
    unsigned                    failed:1;
    unsigned                    per_request:1;
};

/* A shared memory zone declared in wasm{} (shm_kv, shm_queue,
 * shm_metrics): one store, attached by every worker. */
#define NGX_PW_ZONE_KV       0
#define NGX_PW_ZONE_QUEUE    1
#define NGX_PW_ZONE_METRICS  2

/* v8_threads: more helper threads than this gains nothing per worker */
#define NGX_PW_V8_THREADS_MAX  16

typedef struct {
    ngx_str_t                   name;        /* "*": the default kv zone */
    ngx_uint_t                  kind;
    ngx_uint_t                  eviction;    /* PW_STORE_EVICT_* */
    ngx_shm_zone_t             *shm;
    ngx_uint_t                  index;       /* in the route's stores */
    pw_store_t                 *store;       /* per worker */
} ngx_pw_zone_t;

typedef struct {
    ngx_array_t                 modules;     /* ngx_pw_module_t */
    ngx_array_t                 zones;       /* ngx_pw_zone_t */
    ngx_uint_t                  kv_default;  /* zone index */
    ngx_uint_t                  metrics_zone;
    int                        *wakeup_fds;  /* eventfd per worker slot */
    ngx_uint_t                  nworkers;
    ngx_connection_t           *wakeup;      /* this worker's */
    ngx_event_t                 wakeup_local;
    pw_store_t                **stores;      /* per worker, by index */
    pw_store_route_t            route;
    ngx_array_t                 plugins;     /* ngx_pw_plugin_conf_t * */
    ngx_msec_t                  max_call_time;
    ngx_int_t                   v8_threads;  /* V8's helper threads */
    const pw_engine_vt_t       *engine_vt;   /* engine v8|w2c */
    ngx_str_t                   engine_cache;
    char                       *w2c_tools[3]; /* $PW_W2C_WASM2C, _CC,
                                                 _CFLAGS in the master */
    ngx_uint_t                  enabled;
    void                       *tls;         /* ngx_pw_tls.c's settings */

    /* per worker */
    pw_engine_t                *engine;
    ngx_cycle_t                *cycle;
} ngx_pw_core_conf_t;

extern ngx_module_t  ngx_pw_core_module;
extern ngx_module_t  ngx_http_pw_module;

#define ngx_pw_core_conf(cycle)                                              \
    ((ngx_pw_core_conf_t *) ngx_get_conf((cycle)->conf_ctx,                  \
                                         ngx_pw_core_module))

/* Configuration time: the plugin conf for (name, root id, config), created
 * on first use, NULL on allocation failure. Module names resolve when the
 * whole configuration has been read (a wasm{} block may follow http{}):
 * until then the conf's module is NULL; an unknown name fails then. */
ngx_pw_plugin_conf_t *ngx_pw_plugin_conf(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *root_id, ngx_str_t *config);

/*
 * Worker: an instance of pc's module in which pc's root context runs.
 * per_request: a fresh instance (proxy_wasm_isolation stream), else the
 * worker's shared one. The caller holds a reference: release it with
 * ngx_pw_instance_release(). NULL when the module cannot start now (it
 * failed and is backing off); the reason was logged.
 */
ngx_pw_instance_t *ngx_pw_instance_acquire(ngx_pw_module_t *m,
    ngx_uint_t per_request, ngx_log_t *log);
void ngx_pw_instance_release(ngx_pw_instance_t *inst);

/* A reference on inst when it is its module's running instance (a call
 * made while inst was starting takes its reference later this way);
 * NGX_DECLINED when inst is not (or no longer) running. */
ngx_int_t ngx_pw_instance_take_ref(ngx_pw_instance_t *inst);

/*
 * After any call into inst's VM: when the VM failed, retire the instance
 * (the next acquire starts a new one), count and log the failure, rate
 * limited, and arm the back-off; count new host-call errors. Returns 1
 * when the VM failed. Inline is only the test whether anything changed
 * (pw_vm_events), which nearly always says no.
 */
ngx_uint_t ngx_pw_instance_look(ngx_pw_instance_t *inst, ngx_log_t *log);

static ngx_inline ngx_uint_t
ngx_pw_instance_check(ngx_pw_instance_t *inst, ngx_log_t *log)
{
    if (*inst->events == inst->events_seen) {
        return inst->failed;
    }

    return ngx_pw_instance_look(inst, log);
}

/* The worker's metrics store (NULL before init or without V8). */
pw_store_t *ngx_pw_metrics_store(ngx_cycle_t *cycle);

/*
 * Host metrics (ngx_http_pw_metrics.c), kept in the metrics zone so every
 * worker adds to one value; proxy_wasm_metrics shows them with labels.
 * what:
 *   "plugin_failures"     counter, per module: a VM failed (trap, time
 *                         limit, failed start)
 *   "instance_restarts"   counter, per module: an instance replaced one
 *                         that failed
 *   "instances"           gauge, per module: +1 started, -1 destroyed
 *   "callouts_in_flight"  gauge (module NULL): +1 sent, -1 answered/gone
 * module is the module's name (NULL for callouts_in_flight). Negative
 * deltas of counters are ignored; an unknown what is logged at alert.
 * Cheap after the first call per (what, module) in a worker (cached id);
 * nothing happens before the worker attached the zone or without one.
 */
void ngx_pw_host_metric(ngx_cycle_t *cycle, const char *what,
    ngx_str_t *module, int64_t delta);

/* Log a plugin failure of module m, at most once per second. */
__attribute__((cold))
void ngx_pw_failure_log(ngx_pw_module_t *m, ngx_log_t *log,
    const char *what, const char *reason);


/* ---- HTTP ---- */

/* One `proxy_wasm NAME [CONFIG] [options]`. */
typedef struct {
    ngx_pw_plugin_conf_t       *plugin;
    ngx_uint_t                  fail_open;
    ngx_uint_t                  error_status;
} ngx_http_pw_filter_t;

typedef struct {
    ngx_array_t                *filters;     /* ngx_http_pw_filter_t */
    ngx_uint_t                  isolation;
} ngx_http_pw_loc_conf_t;

#define NGX_HTTP_PW_ISOLATION_NONE    0
#define NGX_HTTP_PW_ISOLATION_STREAM  1

typedef struct ngx_http_pw_ctx_s  ngx_http_pw_ctx_t;

/* A growable byte buffer (malloc'd). */
typedef struct {
    u_char                     *data;
    size_t                      len;
    size_t                      cap;
} ngx_http_pw_buf_t;

/*
 * ngx_http_pw_buf.c: grow makes room for size bytes in all, add appends
 * (NGX_ERROR when out of memory); release frees and empties. A limit on
 * the size is the caller's check, before add.
 */
ngx_int_t ngx_http_pw_buf_grow(ngx_http_pw_buf_t *b, size_t size);
ngx_int_t ngx_http_pw_buf_add(ngx_http_pw_buf_t *b, const void *data,
    size_t len);
void ngx_http_pw_buf_free(ngx_http_pw_buf_t *b);

/* inline: most requests release buffers they never used */
static ngx_inline void
ngx_http_pw_buf_release(ngx_http_pw_buf_t *b)
{
    if (b->data != NULL) {
        ngx_http_pw_buf_free(b);
    }
}

/* The state of one filter of the chain in one request. */
typedef struct {
    ngx_http_pw_ctx_t          *ctx;
    ngx_http_pw_filter_t       *filter;
    ngx_pw_instance_t          *inst;
    ngx_pw_root_t              *root;
    pw_stream_t                *stream;

    /* the body the current body callback sees: view, or own copy */
    u_char                     *body;
    size_t                      body_len;
    ngx_uint_t                  body_type;   /* pw_buffer_type_t, or -1 */
    ngx_http_pw_buf_t           own;         /* when body points here */
    ngx_http_pw_buf_t           acc;         /* held while paused */
    /* its HTTP and gRPC calls still in the workers' lists: the end of the
     * request walks those lists only when there are some */
    ngx_uint_t                  ncallouts;
    unsigned                    body_modified:1;
    unsigned                    dead:1;      /* failed open: skipped */
} ngx_http_pw_fctx_t;

/* Phases a request waits in for proxy_continue_stream. */
#define NGX_HTTP_PW_WAIT_NONE          0
#define NGX_HTTP_PW_WAIT_REQ_HEADERS   1
#define NGX_HTTP_PW_WAIT_REQ_BODY      2
#define NGX_HTTP_PW_WAIT_RESP_HEADERS  3
#define NGX_HTTP_PW_WAIT_RESP_BODY     4

struct ngx_http_pw_ctx_s {
    ngx_http_request_t         *r;
    ngx_http_pw_fctx_t         *f;
    ngx_uint_t                  nf;

    ngx_uint_t                  req_state;
    ngx_uint_t                  next;        /* filter to run on resume */
    ngx_uint_t                  waiting;     /* NGX_HTTP_PW_WAIT_* */
    ngx_uint_t                  fail_status;
    ngx_event_t                 resume;
    ngx_event_t                 hold;        /* keeps a draining worker
                                                while a plugin pauses */

    /* local response asked by a plugin */
    ngx_uint_t                  lr_status;
    ngx_str_t                   lr_body;
    ngx_str_t                   lr_details;
    ngx_array_t                *lr_headers;  /* ngx_keyval_t */
    ngx_int_t                   lr_grpc_status;
    ngx_str_t                   code_details;

    /* response side */
    ngx_chain_t                *held;        /* body held, headers paused */
    ngx_http_pw_buf_t           resp_body;   /* body held while paused */
    ngx_uint_t                  resp_next;   /* body filter to resume at */
    ngx_uint_t                  pre_action;  /* pw_action_t, see pre_body */

    unsigned                    lr_pending:1;
    unsigned                    lr_sent:1;
    unsigned                    close_pending:1;
    unsigned                    resume_pending:1;
    unsigned                    body_read:1;
    unsigned                    req_body_eos_held:1;
    unsigned                    resp_started:1;
    unsigned                    resp_headers_held:1;
    unsigned                    resp_headers_done:1;
    unsigned                    resp_headers_deferred:1;
    unsigned                    resp_eos_seen:1;
    unsigned                    resp_done:1;
    unsigned                    resp_discard:1;
    /* some live filter has a response body or trailers callback: without
     * one, the body passes by the module untouched (length, ranges and
     * sendfile kept) */
    unsigned                    resp_body_hooks:1;
    /* on_response_headers not run yet: it runs with the first body data,
     * in one entry into the engine with on_response_body, or alone from
     * the resume event when nginx goes on waiting first */
    unsigned                    resp_hdr_pending:1;
    /* on_response_body already ran on the data run_body is given (in
     * that entry), with this action */
    unsigned                    pre_body:1;
    unsigned                    in_call:1;
    unsigned                    freed:1;
};

/* The filter state of a host callback's stream (NULL for roots). */
#define ngx_http_pw_hctx_fctx(c)  ((ngx_http_pw_fctx_t *) (c)->stream_data)

/* Schedule a resume/close of the request outside the current call. */
void ngx_http_pw_post_resume(ngx_http_pw_ctx_t *ctx);

/*
 * Replace [start, start + size) of the body f's callback sees with value,
 * making the body f's own copy first. NGX_OK, NGX_DECLINED over the body
 * limit, NGX_ERROR.
 */
ngx_int_t ngx_http_pw_body_splice(ngx_http_pw_fctx_t *f, size_t start,
    size_t size, const u_char *value, size_t vlen);

/* Response trailers that are not deleted. */
ngx_uint_t ngx_http_pw_trailers_count(ngx_http_request_t *r);

/* The host table shared by the nginx module's VMs (ngx_http_pw_host.c). */
extern const pw_host_t  ngx_http_pw_host;

#endif /* NGX_PW_H */
