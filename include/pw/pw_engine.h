/*
 * proxy-wasm-c: the engine interface.
 *
 * A small table of functions over opaque handles. The core uses only this;
 * backend types never appear outside src/engine/<name>/.
 *
 * Signatures are strings: parameter type letters, ':' then result letters.
 *   'i' = i32, 'I' = i64, 'f' = f32, 'F' = f64.
 *   "ii:i" is (i32, i32) -> i32; ":" is () -> ().
 *
 * Threads: an engine, its modules and instances are used from the thread
 * that created the engine, except pw_engine_vt_t.interrupt, which may be
 * called from any thread.
 */
#ifndef PW_ENGINE_H
#define PW_ENGINE_H

#include <signal.h>

#include <pw/pw_types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PW_SIG_MAX 32          /* longest signature string, with NUL */
#define PW_TRAP_MSG_MAX 256
#define PW_TRAP_BT_MAX 2048

typedef enum {
    PW_I32 = 'i',
    PW_I64 = 'I',
    PW_F32 = 'f',
    PW_F64 = 'F'
} pw_valkind_t;

typedef struct {
    pw_valkind_t kind;
    union {
        int32_t i32;
        int64_t i64;
        float f32;
        double f64;
    } of;
} pw_val_t;

typedef struct pw_engine_s pw_engine_t;       /* one per process/thread */
typedef struct pw_emodule_s pw_emodule_t;     /* compiled module */
typedef struct pw_einstance_s pw_einstance_t; /* instance of a module */
typedef struct pw_efunc_s pw_efunc_t;         /* an exported function */

/* What a trapped or interrupted call reports. */
typedef struct {
    char message[PW_TRAP_MSG_MAX];    /* e.g. "RuntimeError: unreachable" */
    char backtrace[PW_TRAP_BT_MAX];   /* one frame per line, names from the
                                         name section where present */
} pw_trap_t;

/*
 * A host function given to an instance as an import.
 *
 * args has as many values as the import's signature has parameters, with
 * their kinds; the function writes each result (kind preset by the engine).
 * Return PW_OK, or PW_ETRAP to abort the running guest call: *trap_msg then
 * names the reason (static string) and the engine reports it as a trap.
 * `inst` is the instance that called; host code reaches its memory through
 * the engine's memory function.
 */
typedef int (*pw_host_fn_t)(void *fn_data, pw_einstance_t *inst,
    const pw_val_t *args, pw_val_t *results, const char **trap_msg);

typedef struct {
    const char *module;   /* "env", "wasi_snapshot_preview1", ... */
    const char *name;
    const char *sig;      /* as declared by the module (checked by the core) */
    pw_host_fn_t fn;      /* NULL with fn_data set: see pw_import_link_t */
    void *fn_data;
    unsigned flags;       /* PW_IMPORT_*; 0 for a plain host function */
} pw_import_t;

/*
 * PW_IMPORT_FAST: a promise about fn that lets an engine call it through a
 * cheaper path (V8: a fast API call). fn never calls into the engine (no
 * call, instantiate, ...; the memory function is fine), never blocks for
 * long, and does not fail: a PW_ETRAP from it still aborts the guest call,
 * but only once the guest reaches its next call or loop (its trap message
 * is kept). Its signature has only i32 parameters (PW_IMPORT_FAST_ARGS at
 * most) and one i32 result. Optional: an engine may ignore the flag and
 * call fn as any host function; fn behaves the same either way.
 */
#define PW_IMPORT_FAST 0x1
#define PW_IMPORT_FAST_ARGS 8

/*
 * Linking an import to an export of another instance, wasm to wasm with no
 * host code in between: give the import fn = NULL and fn_data pointing to
 * a pw_import_link_t (read during instantiate only). Any kind of import
 * may be linked so: a function (its signature must equal the export's),
 * a table, a memory, a global. `from` must come from the same engine and
 * outlive the importing instance.
 *
 * Optional: an engine without it refuses such an import with PW_ELINK
 * (as any import without fn), so callers can fall back to host functions.
 * The V8 backend supports it.
 */
typedef struct {
    pw_einstance_t *from;
    const char *name;     /* an export of `from` */
} pw_import_link_t;

typedef struct {
    /*
     * V8: size of V8's worker thread pool; 0 (or less): no threads, V8's
     * background work (tier-up compilation, mostly) waits until the engine
     * runs it on the calling thread between calls, so a single-threaded
     * process stays so. V8 is set up once per process: the first engine's
     * setting holds for all.
     */
    int threads;
    /* Backend-specific flags string (V8: V8 command line flags) or NULL. */
    const char *flags;
    /*
     * w2c: the directory where compiled plugins are kept between runs,
     * keyed by their bytes; NULL compiles each module afresh.
     */
    const char *cache_dir;
    /*
     * w2c: the tools and flags that build a module; NULL takes
     * $PW_W2C_WASM2C, $PW_W2C_CC, $PW_W2C_CFLAGS as they are when the
     * engine starts, else "wasm2c", "cc", "-O2". The flags are part of an
     * object's key: processes that share a cache must agree on them (a
     * proxy whose workers lose the master's environment passes them here).
     */
    const char *wasm2c;
    const char *cc;
    const char *cflags;
} pw_engine_conf_t;

/*
 * One call of a sequence (seq_prepare): fn, as for call_i32, given as its
 * arguments those of the sequence's numbered by argmap[0..nargs).
 */
typedef struct {
    pw_efunc_t *fn;
    const uint8_t *argmap;
    size_t nargs;
} pw_ecall_t;

#define PW_ECALL_SEQ_MAX 8      /* calls in a sequence */
#define PW_ECALL_ARGS_MAX 8     /* arguments of each */

typedef struct pw_eseq_s pw_eseq_t;    /* a prepared sequence */

/*
 * Asked by call_seq before each call but the first, with the index of the
 * next call and the result of the one before (0 if it returns nothing):
 * whether to make it. Host code, under the rules of a host function
 * (pw_host_fn_t): it may not call into the engine.
 */
typedef int (*pw_ecall_go_t)(void *data, unsigned next, uint32_t result);

typedef struct pw_engine_vt_s {
    const char *name;

    /*
     * Start the engine in this process. V8 is started at most once per
     * process (in nginx: in each worker, after fork). err gets a message.
     */
    int (*init)(const pw_engine_conf_t *conf, pw_engine_t **out,
        char *err, size_t errlen);
    /* Dispose of everything; modules and instances must be freed first. */
    void (*destroy)(pw_engine_t *engine);

    /* Compile once; instantiate many times. */
    int (*compile)(pw_engine_t *engine, const uint8_t *bytes, size_t len,
        pw_emodule_t **out, char *err, size_t errlen);
    void (*module_free)(pw_emodule_t *mod);

    /*
     * Instantiate with the given imports. The caller passes exactly the
     * imports the module declares (matched by module and name); the
     * engine may refuse with PW_ELINK naming the one missing (or one it
     * cannot link, e.g. a pw_import_link_t it does not support). A trap in
     * the wasm start section fails with PW_ETRAP and the message in err.
     */
    int (*instantiate)(pw_emodule_t *mod, const pw_import_t *imports,
        size_t nimports, pw_einstance_t **out, char *err, size_t errlen);
    void (*instance_free)(pw_einstance_t *inst);

    /*
     * Look up an exported function. *fn stays valid as long as the
     * instance; sig (PW_SIG_MAX bytes, or NULL) receives its real
     * signature.
     * PW_ENOTFOUND if there is no function export of that name.
     */
    int (*lookup)(pw_einstance_t *inst, const char *name, pw_efunc_t **fn,
        char *sig);

    /*
     * Call fn. args carry their kinds; results must have their kinds set by
     * the caller (from the signature) and are written on success.
     * PW_ETRAP or PW_EINTERRUPTED fill *trap when trap is not NULL.
     * The instance remains usable after a trap.
     */
    int (*call)(pw_einstance_t *inst, pw_efunc_t *fn, const pw_val_t *args,
        size_t nargs, pw_val_t *results, size_t nresults, pw_trap_t *trap);

    /*
     * The instance's exported memory ("memory"): base and size in bytes.
     * Both may change after any call into the guest; re-read them.
     * PW_ENOTFOUND when the module exports no memory.
     */
    int (*memory)(pw_einstance_t *inst, uint8_t **base, size_t *size);

    /*
     * A number that identifies the current (or next) call of inst; pass it
     * to interrupt. Safe from any thread.
     */
    uint64_t (*call_generation)(pw_einstance_t *inst);
    /*
     * Stop the call of inst numbered `generation` if it is still running;
     * a no-op otherwise (never kills a later call). Safe from any thread.
     */
    void (*interrupt)(pw_einstance_t *inst, uint64_t generation);

    /*
     * Optional (NULL: use call): call for a function whose parameters are
     * all i32 and that returns nothing (result NULL) or one i32 (result
     * not NULL), as every Proxy-Wasm callback does, with no pw_val_t to
     * pack. PW_EINVAL when fn is not such a function; otherwise as call.
     */
    int (*call_i32)(pw_einstance_t *inst, pw_efunc_t *fn,
        const uint32_t *args, size_t nargs, uint32_t *result,
        pw_trap_t *trap);

    /*
     * Optional, both or neither (NULL: make the calls one by one).
     * seq_prepare makes a sequence of n calls (at most PW_ECALL_SEQ_MAX,
     * of PW_ECALL_ARGS_MAX arguments each) of inst's functions, PW_EINVAL
     * otherwise; it lives as long as inst (calls and argmap are copied). call_seq makes its calls in order in one entry into the
     * engine, each as call_i32 would, with arguments taken from args.
     * Before each call but the first, go (unless NULL) decides whether to
     * go on. *result gets the result of the last call made (0 if it
     * returns nothing), *ran how many calls were started: on an error,
     * call *ran - 1 is the one that failed.
     */
    int (*seq_prepare)(pw_einstance_t *inst, const pw_ecall_t *calls,
        size_t n, pw_eseq_t **out);
    int (*call_seq)(pw_einstance_t *inst, const pw_eseq_t *seq,
        const uint32_t *args, pw_ecall_go_t go, void *go_data,
        uint32_t *result, size_t *ran, pw_trap_t *trap);
} pw_engine_vt_t;

/* The V8 backend (src/engine/v8). */
extern const pw_engine_vt_t pw_engine_v8;

/*
 * The w2c backend (src/engine/w2c): ahead-of-time compiled plugins. compile
 * turns the module into C with wasm2c, builds it with the C compiler into a
 * shared object and loads it, so calls into the guest and back are plain C
 * calls. Needs wasm2c (Debian's wabt) and cc where modules are compiled;
 * $PW_W2C_WASM2C and $PW_W2C_CC name others, $PW_W2C_CFLAGS replaces -O2.
 * Memory is bounds-checked in the generated code; max_call_time stops a
 * call with a signal (PW_W2C_SIGNAL) to the engine's thread.
 */
extern const pw_engine_vt_t pw_engine_w2c;
#define PW_W2C_SIGNAL (SIGRTMIN + 5)

/* A backend by name ("v8", "w2c"), or NULL. */
const pw_engine_vt_t *pw_engine_find(const char *name);

/* Checked guest memory access through the engine (one helper for all). */
int pw_engine_read(const pw_engine_vt_t *vt, pw_einstance_t *inst,
    uint32_t ptr, uint32_t len, void *dst);
int pw_engine_write(const pw_engine_vt_t *vt, pw_einstance_t *inst,
    uint32_t ptr, const void *src, uint32_t len);

#ifdef __cplusplus
}
#endif

#endif /* PW_ENGINE_H */
