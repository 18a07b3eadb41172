/*
 * proxy-wasm-c core internals. No nginx, no V8.
 */
#ifndef PW_CORE_H
#define PW_CORE_H

#include <pw/pw.h>

#define PW__ERR_MAX 256

/*
 * On every request's path (a stream's hooks, the shim's fast hostcalls):
 * GCC gathers these in .text.hot, so that the path spans fewer
 * instruction-cache lines than when spread among the rest.
 */
#define PW__HOT __attribute__((hot))

/* Freed streams a VM keeps for reuse (see pw_vm_s.spare_streams). */
#define PW__SPARE_STREAMS 32
#if defined(__SANITIZE_ADDRESS__)
#define PW__NO_SPARES 1
#endif

/* The callbacks (exports) the core knows, with the signatures it accepts. */
typedef enum {
    PW__CB_ON_MEMORY_ALLOCATE,
    PW__CB_MALLOC,
    PW__CB_ON_CONTEXT_CREATE,
    PW__CB_ON_DONE,
    PW__CB_ON_LOG,
    PW__CB_ON_DELETE,
    PW__CB_ON_VM_START,
    PW__CB_ON_CONFIGURE,
    PW__CB_VALIDATE_CONFIGURATION,
    PW__CB_ON_TICK,
    PW__CB_ON_NEW_CONNECTION,
    PW__CB_ON_DOWNSTREAM_DATA,
    PW__CB_ON_UPSTREAM_DATA,
    PW__CB_ON_DOWNSTREAM_CONNECTION_CLOSE,
    PW__CB_ON_UPSTREAM_CONNECTION_CLOSE,
    PW__CB_ON_REQUEST_HEADERS,
    PW__CB_ON_REQUEST_BODY,
    PW__CB_ON_REQUEST_TRAILERS,
    PW__CB_ON_RESPONSE_HEADERS,
    PW__CB_ON_RESPONSE_BODY,
    PW__CB_ON_RESPONSE_TRAILERS,
    PW__CB_ON_HTTP_CALL_RESPONSE,
    PW__CB_ON_GRPC_RECEIVE_INITIAL_METADATA,
    PW__CB_ON_GRPC_RECEIVE,
    PW__CB_ON_GRPC_RECEIVE_TRAILING_METADATA,
    PW__CB_ON_GRPC_CLOSE,
    PW__CB_ON_QUEUE_READY,
    PW__CB_ON_FOREIGN_FUNCTION,
    PW__CB_NOOPS,                 /* px_noop_callbacks (our C SDK) */
    PW__CB_INITIALIZE,
    PW__CB_START,
    PW__CB_MAIN,
    PW__CB_MAIN_VOID,
    PW__CB_MAX
} pw__cb_t;

typedef struct {
    const char *name;
    const char *sigs[3];          /* accepted signatures, NULL-terminated */
} pw__cb_info_t;

extern const pw__cb_info_t pw__cbs[PW__CB_MAX];

struct pw_module_s {
    const pw_engine_vt_t *vt;
    pw_engine_t *engine;
    uint8_t *bytes;
    size_t len;
    pw_wasm_info_t *info;
    pw_emodule_t *emod;
    pw_abi_t abi;
};

/* A context: the common head of plugins (root contexts) and streams. */
typedef struct pw__ctx_s {
    uint32_t id;
    pw_plugin_t *root;            /* the root context (itself for roots) */
    pw_stream_t *stream;          /* NULL for root contexts */
    struct pw__ctx_s *hnext;      /* in the VM's id table */
} pw__ctx_t;

typedef struct pw__callout_s pw__callout_t;
typedef struct pw__foreign_s pw__foreign_t;

struct pw_plugin_s {
    pw__ctx_t ctx;
    pw_vm_t *vm;
    char *name;
    size_t name_len;
    char *root_id;
    size_t root_id_len;
    char *config;
    size_t config_len;
    void *host_data;
    pw_stream_t *streams;         /* live streams, linked by next */
    pw_plugin_t *next;
    unsigned created:1;
    unsigned done_pending:1;
};

struct pw_stream_s {
    pw__ctx_t ctx;
    pw_plugin_t *plugin;
    pw_stream_kind_t kind;
    void *host_data;
    pw_stream_t *next;
    pw_stream_t *prev;
    unsigned created:1;
};

/* What a callout answer shows the plugin while it is being delivered. */
typedef struct {
    const pw_pairs_t *headers;    /* HTTP_CALL_RESPONSE_HEADERS / gRPC md */
    const pw_pairs_t *trailers;
    pw_str_t body;                /* HTTP_CALL_RESPONSE_BODY / gRPC msg */
    unsigned active:1;
} pw__delivery_t;

/* One binding of a hostcall to a VM: what the engine hands back. */
typedef struct pw__binding_s {
    pw_vm_t *vm;
    const void *entry;            /* pw__hostcall_t */
    uint8_t nres;                 /* results of the hostcall (0 or 1) */
    uint8_t shim;                 /* phase 1, called by the shim */
} pw__binding_t;

/*
 * The shim: a wasm module made per VM and instantiated before the plugin.
 * The plugin's imports of the hostcalls that return bytes are linked to
 * its exports. Each one calls the hostcall (phase 1); where the host would
 * call the plugin's allocator, it stashes the bytes here and answers
 * -size; the shim calls the allocator itself, wasm to wasm through its
 * table, then "pw.done" (phase 2) copies the bytes and writes the outs.
 * That saves the nested host->wasm call of the plain path.
 *
 * Both phases are imported twice: from "pw.fast" as PW_IMPORT_FAST host
 * functions (engine fast path; they never call the guest nor trap), and
 * from "pw" as plain ones. The shim calls the fast one first; when it
 * answers PW__SHIM_SLOW (nothing done: not armed, a nested shimmed call,
 * memory not known), the plain one. Each phase gets the plugin's memory
 * size in pages first: memory only grows, so an unchanged size means the
 * base and size cached below by the plain path are still right, and the
 * fast path needs no engine call at all.
 *
 * Hostcalls that return a status only and never reach the guest (header
 * edits, logs, set_shared_data...) go through the shim too, for the fast
 * path alone: phase 1 answers the status and there is no phase 2.
 *
 * The bodies that do this live in a second module, the binder, made once
 * the plugin is: it imports the plugin's memory and allocator, so it
 * reads the size with memory.size and calls the allocator directly. The
 * shim's exports only jump to them through its table; until the binder
 * fills it (or when it cannot be made), they call plain phase 1 with -1
 * pages, which does the whole hostcall itself.
 */
#define PW__SHIM_SLOW INT32_MIN
typedef struct {
    uint8_t *buf;                 /* stash for copied bytes, reused */
    size_t cap;
    const uint8_t *data;          /* buf, or the host's own stable bytes */
    uint32_t len;
    uint32_t ptr_out;
    uint32_t size_out;
    uint32_t post_ptr;            /* one more u32 out (cas), when has_post */
    uint32_t post_val;
    int depth;                    /* vm->depth when stashed */
    unsigned active:1;
    unsigned has_post:1;
    unsigned mem_ok:1;            /* the plugin's memory, when it had ... */
    uint32_t mem_pages;           /* ... this many pages */
    uint8_t *mem_base;
    size_t mem_size;
} pw__pending_t;

/* The batch (batch.c): callbacks made back to back in one engine entry. */
typedef enum {
    PW__BATCH_OPEN_HTTP,          /* on_context_create, on_request_headers */
    PW__BATCH_OPEN_TCP,           /* on_context_create, on_new_connection */
    PW__BATCH_CLOSE,              /* on_done, on_log, on_delete */
    PW__BATCH_RESP_HTTP,          /* on_response_headers, on_response_body
                                     if the host lets it go on */
    PW__BATCH_OPEN_RESP,          /* on_context_create, on_response_headers
                                     (a lazy create, see vm->lazy_create) */
    PW__BATCH_DELETES,            /* on_delete of PW__BATCH_LEN contexts
                                     (deferred, see vm->quiet_delete) */
    PW__BATCH_OPEN_HTTP_D,        /* a deferred on_delete, then OPEN_HTTP */
    PW__BATCH_OPEN_RESP_D,        /* a deferred on_delete, then OPEN_RESP */
    PW__BATCH_MAX
} pw__batch_kind_t;

/* the most callbacks in one sequence */
#define PW__BATCH_LEN 8

struct pw_vm_s {
    pw_module_t *mod;
    const pw_engine_vt_t *vt;
    pw_einstance_t *inst;
    const pw_host_t *host;
    void *host_data;
    pw_store_t *store;
    pw_store_t *own_store;        /* when the caller gave none */
    const pw_store_route_t *route; /* or NULL: everything in store */
    uint64_t hostcall_errors;     /* see pw_vm_hostcall_errors() */
    uint64_t events;              /* see pw_vm_events() */

    char *vm_id;
    size_t vm_id_len;
    char *vm_config;
    size_t vm_config_len;
    char **env;                   /* "K=V" NUL-terminated */
    size_t nenv;
    char **args;
    size_t nargs;
    uint32_t max_call_ms;

    pw_efunc_t *cb[PW__CB_MAX];
    uint8_t cb_nparams[PW__CB_MAX];
    uint8_t cb_nres[PW__CB_MAX];
    unsigned hooks;               /* pw_stream_hooks(), once cb[] is final */
    /* a stream's on_context_create waits for its first other callback (the
     * C SDK's PX_LAZY_CONTEXT_CREATE) */
    int lazy_create;
    /* a stream's on_delete runs no plugin code (the C SDK's
     * PX_QUIET_DELETE): the ids wait in deferred[] and go in one entry
     * (PW__BATCH_DELETES) when there are PW__BATCH_LEN of them */
    int quiet_delete;
    uint32_t deferred[PW__BATCH_LEN];
    unsigned ndeferred;
    unsigned ids_wrapped:1;       /* next_id went past 2^32 - 1 */
    pw_efunc_t *alloc;
    pw__cb_t alloc_cb;

    /* the shim (see pw__pending_t); all NULL/0 on the plain path */
    pw_emodule_t *shim_mod;
    pw_einstance_t *shim_inst;
    pw_emodule_t *binder_mod;     /* kept: it owns the fast imports */
    pw_einstance_t *binder_inst;
    const struct pw__hostcall_s **shim_hs; /* shimmed, in order */
    size_t shim_n;
    pw__binding_t *shim_bindings;
    pw__binding_t shim_done;
    unsigned shim_armed:1;        /* its table holds the binder's bodies */
    pw__pending_t pending;

    pw__binding_t *bindings;
    size_t nbindings;

    /* the batch; batch_n[k] 0: call sequence k one callback at a time.
       The engine makes each sequence itself (vt->call_seq), or calls
       batch[k] of batch_inst, linked to the plugin's callbacks */
    pw_emodule_t *batch_mod;
    pw_einstance_t *batch_inst;
    pw_efunc_t *batch[PW__BATCH_MAX];
    pw_eseq_t *batch_seq[PW__BATCH_MAX];  /* the instance's */
    pw_efunc_t *batch_step;
    /* a conditional sequence: the step the host let it reach, and what
     * the host asks whether to go on (pw_http_response_headers_body) */
    uint32_t batch_at;
    int (*batch_go)(void *data);
    void *batch_go_data;
    uint8_t batch_n[PW__BATCH_MAX];
    uint8_t batch_nres[PW__BATCH_MAX];
    pw__cb_t batch_cbs[PW__BATCH_MAX][PW__BATCH_LEN];
    uint8_t batch_map[PW__BATCH_MAX][PW__BATCH_LEN];

    /* contexts by id: open addressing, power-of-two size */
    pw__ctx_t **ctxs;
    uint32_t ctxs_cap;
    uint32_t nctxs;
    uint32_t next_id;

    pw__ctx_t *effective;         /* while a callback runs */
    int depth;                    /* nesting of calls into the guest */
    unsigned in_vm_start:1;

    pw_plugin_t *plugins;
    /* freed streams kept for the next ones (a malloc and free less per
       request); not under AddressSanitizer, which should see every free */
    pw_stream_t *spare_streams;
    uint32_t nspare_streams;

    pw__callout_t *callouts;
    uint32_t next_token;

    pw__delivery_t delivery;
    pw_str_t foreign_args;
    uint32_t status_code;
    char *status_msg;
    size_t status_msg_len;

    pw__foreign_t *foreign;

    int exited;                   /* proc_exit was called */
    int exit_code;

    int failed;
    char fail_reason[PW__ERR_MAX];
    pw_trap_t trap;
    int has_trap;

    uint64_t unimplemented_logged[2];

    /* watchdog for max_call_ms */
    void *watchdog;
};

struct pw__callout_s {
    uint32_t token;
    pw_plugin_t *plugin;
    pw_stream_t *stream;          /* NULL when made by a root context */
    int grpc;                     /* 0 HTTP, PW__CALLOUT_GRPC_STREAM or
                                     PW__CALLOUT_GRPC_UNARY */
    pw__callout_t *next;
};

struct pw__foreign_s {
    char *name;
    size_t len;
    pw_foreign_fn_t fn;
    void *data;
    pw__foreign_t *next;
};

/* ---- module.c ---- */
pw_abi_t pw__abi_from_info(const pw_wasm_info_t *info);

/* ---- vm.c ---- */
/*
 * Call a callback as context ctx: the effective context is ctx during the
 * call and restored after it (pw__enter_begin/end). res may be NULL.
 * Returns PW_OK, or PW_EFAILED after failing the VM.
 */
int pw__call(pw_vm_t *vm, pw__ctx_t *ctx, pw__cb_t cb, const uint32_t *args,
    size_t nargs, uint32_t *res);
/*
 * The two halves of pw__call, for calls of functions that are not the
 * plugin's own (the batch): one entry into the engine as ctx, returning
 * the engine's rc (nothing failed yet); then, on an error, fail the VM
 * naming callback cb, as pw__call does.
 */
int pw__enter(pw_vm_t *vm, pw__ctx_t *ctx, pw_einstance_t *inst,
    pw_efunc_t *fn, const uint32_t *args, size_t n, int nres, uint32_t *res,
    int *in_alloc);
__attribute__((cold))
int pw__call_failed(pw_vm_t *vm, int rc, pw__cb_t cb, int in_alloc,
    uint32_t *res);
void pw__vm_fail(pw_vm_t *vm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
pw__ctx_t *pw__ctx_find(pw_vm_t *vm, uint32_t id);

/* Who a host call runs for; inline, as every hostcall builds one. */
static inline void
pw__hctx(pw_vm_t *vm, pw__ctx_t *ctx, pw_hctx_t *c)
{
    c->host = vm->host_data;
    c->plugin = ctx ? ctx->root : NULL;
    c->plugin_data = ctx && ctx->root ? ctx->root->host_data : NULL;
    c->stream = ctx ? ctx->stream : NULL;
    c->stream_data = ctx && ctx->stream ? ctx->stream->host_data : NULL;
}

void pw__log(pw_vm_t *vm, pw_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define PW__CALLOUT_GRPC_STREAM 1
#define PW__CALLOUT_GRPC_UNARY 2
pw__callout_t *pw__callout_add(pw_vm_t *vm, pw__ctx_t *ctx, int grpc);
pw__callout_t *pw__callout_find(pw_vm_t *vm, uint32_t token);
void pw__callout_remove(pw_vm_t *vm, pw__callout_t *co);
/* Allocate len bytes in guest memory (nested call). 0 on failure. */
int pw__guest_alloc(pw_vm_t *vm, uint32_t len, uint32_t *ptr);
/* Free the shim and its stash (pw_vm_free, or a failed set-up). */
void pw__shim_free(pw_vm_t *vm);

/* ---- hostcalls.c ---- */
typedef struct pw__hostcall_s pw__hostcall_t;
/* Find a hostcall (env or WASI) by module and name; NULL if none. */
const pw__hostcall_t *pw__hostcall_find(const char *module,
    const char *name);
const char *pw__hostcall_sig(const pw__hostcall_t *h);
unsigned pw__hostcall_abi(const pw__hostcall_t *h);
int pw__hostcall_trampoline(void *fn_data, pw_einstance_t *inst,
    const pw_val_t *args, pw_val_t *results, const char **trap_msg);
/* Whether the hostcall is linked through the shim (see pw__pending_t). */
int pw__hostcall_shimmed(const pw__hostcall_t *h);
/*
 * The shim for the hostcalls h[0..n-1] (see pw__pending_t). Its imports:
 * "pw" <name> per hostcall, taking the memory size first; its exports:
 * <name> per hostcall, each a stub calling slot k of its table "table"
 * (n slots, filled with plain calls until the binder replaces them).
 */
int pw__shim_build(const pw__hostcall_t *const *h, size_t n, uint8_t **out,
    size_t *len);
/*
 * The binder for the same hostcalls: imports "s" "table", then "pw"
 * <name> and "pw.fast" <name> per hostcall (pages first), "pw" "pw.done"
 * and "pw.fast" "pw.done", (pages, ptr) -> status, "p" "alloc" and "p"
 * "memory"; puts the hostcall bodies in slots 0..n-1 of the table.
 */
int pw__shim_binder(const pw__hostcall_t *const *h, size_t n, uint8_t **out,
    size_t *len);
/* ---- batch.c ---- */
/* Make the batch for the instantiated plugin; on any failure, none. */
void pw__batch_setup(pw_vm_t *vm);
void pw__batch_free(pw_vm_t *vm);
/*
 * Sequence k with its arguments (see batch.c for each one's), as pw__call
 * would make its callbacks one by one; *res (may be NULL) gets the last
 * one's result. PW_ENOTFOUND, having called nothing, when there is no
 * batch for k.
 */
int pw__batch_call_seq(pw_vm_t *vm, pw__ctx_t *ctx, pw__batch_kind_t k,
    const uint32_t *args, uint32_t *res);
int pw__batch_call_linked(pw_vm_t *vm, pw__ctx_t *ctx, pw__batch_kind_t k,
    const uint32_t *args, uint32_t *res);

/* inline: the request path's engine entries skip one call */
static inline int
pw__batch_call(pw_vm_t *vm, pw__ctx_t *ctx, pw__batch_kind_t k,
    const uint32_t *args, uint32_t *res)
{
    if (vm->batch_seq[k] != NULL) {     /* made by the engine (batch_n > 0) */
        return pw__batch_call_seq(vm, ctx, k, args, res);
    }
    if (vm->batch_n[k] == 0) {
        return PW_ENOTFOUND;
    }
    return pw__batch_call_linked(vm, ctx, k, args, res);
}

/* ---- wbuf.c: writing wasm binaries ---- */
typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    int oom;                      /* a failed allocation: every write no-op */
} pw__wbuf_t;

extern const uint8_t pw__wasm_head[8];
void pw__wb_bytes(pw__wbuf_t *w, const void *b, size_t n);
void pw__wb_byte(pw__wbuf_t *w, uint8_t b);
void pw__wb_u32(pw__wbuf_t *w, uint32_t v);          /* unsigned LEB128 */
void pw__wb_op(pw__wbuf_t *w, uint8_t op, uint32_t idx);
void pw__wb_name(pw__wbuf_t *w, const char *s);
/* Append section id with the contents of sec, then empty sec. */
void pw__wb_section(pw__wbuf_t *w, uint8_t id, pw__wbuf_t *sec);
/* A function type from a signature string ("ii:i"). */
int pw__wb_functype(pw__wbuf_t *w, const char *sig, uint32_t *nparams);
/* Hand over w's bytes (or PW_ENOMEM); frees sec. */
int pw__wb_done(pw__wbuf_t *w, pw__wbuf_t *sec, uint8_t **out, size_t *len);

/* Phase 2 of a shimmed hostcall: fn_data is vm->shim_done. */
int pw__shim_done(void *fn_data, pw_einstance_t *inst, const pw_val_t *args,
    pw_val_t *results, const char **trap_msg);
/* The PW_IMPORT_FAST phase 1 (fn_data: the shim binding) and phase 2. */
int pw__shim_fast(void *fn_data, pw_einstance_t *inst, const pw_val_t *args,
    pw_val_t *results, const char **trap_msg);
int pw__shim_done_fast(void *fn_data, pw_einstance_t *inst,
    const pw_val_t *args, pw_val_t *results, const char **trap_msg);

/* ---- watchdog.c ---- */
int pw__watchdog_start(pw_vm_t *vm);
void pw__watchdog_stop(pw_vm_t *vm);
void pw__watchdog_arm(pw_vm_t *vm, pw_einstance_t *inst);
void pw__watchdog_disarm(pw_vm_t *vm);

/*
 * Around one entry into the engine (pw__enter, the batch): into it as ctx,
 * returning the context before; out of it, returning whether the call
 * ended inside the shim's allocation.
 */
static inline pw__ctx_t *
pw__enter_begin(pw_vm_t *vm, pw__ctx_t *ctx, pw_einstance_t *inst)
{
    pw__ctx_t *saved;

    saved = vm->effective;
    vm->effective = ctx;
    if (vm->depth++ == 0 && vm->watchdog) {
        pw__watchdog_arm(vm, inst);
    }
    return saved;
}

static inline int
pw__enter_end(pw_vm_t *vm, pw__ctx_t *saved)
{
    int in_alloc;

    if (--vm->depth == 0 && vm->watchdog) {
        pw__watchdog_disarm(vm);
    }
    vm->effective = saved;

    /* bytes still pending: the call ended inside the shim's allocation */
    in_alloc = vm->pending.active && vm->pending.depth > vm->depth;
    if (in_alloc) {
        vm->pending.active = 0;
        vm->pending.data = NULL;
    }
    return in_alloc;
}

#endif /* PW_CORE_H */
