/*
 * What the w2c backend and a plugin's shared object agree on.
 *
 * This header is compiled twice: into libpw (w2c_engine.c) and, as text,
 * into every plugin object the backend builds (with w2c_rt.c and the glue
 * it writes for that plugin). It must stand alone: C11 and libc only.
 * Bump PW_W2C_ABI whenever anything here changes; cached objects carry it
 * in their file name.
 */
#ifndef PW_W2C_ABI_H
#define PW_W2C_ABI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define PW_W2C_ABI 4

/* the layout of pw_val_t (checked in w2c_engine.c) */
typedef struct {
    int kind;
    union {
        int32_t i32;
        int64_t i64;
        float f32;
        double f64;
    } of;
} pw_w2c_val_t;

/* pw_host_fn_t, with the engine's instance as void * */
typedef int (*pw_w2c_host_fn_t)(void *fn_data, void *einst,
    const pw_w2c_val_t *args, pw_w2c_val_t *results, const char **trap_msg);

typedef struct {
    pw_w2c_host_fn_t fn;
    void *fn_data;
} pw_w2c_import_t;

/* what every import module's instance pointer points to */
typedef struct {
    void *einst;
    const pw_w2c_import_t *imports;     /* in the object's import order */
} pw_w2c_env_t;

/* runs one export with its arguments and results in pw_w2c_val_t */
typedef void (*pw_w2c_thunk_t)(void *minst, const pw_w2c_val_t *args,
    pw_w2c_val_t *results);

/*
 * runs one export whose parameters are all i32 and that returns nothing or
 * one i32 (every Proxy-Wasm callback): no pw_w2c_val_t to pack
 */
typedef void (*pw_w2c_thunk32_t)(void *minst, const uint32_t *args,
    uint32_t *result);

/* one call of a sequence (seq32): its arguments, by index into seq32's */
#define PW_W2C_SEQ_ARGS 8
typedef struct {
    pw_w2c_thunk32_t thunk;
    unsigned nargs;
    uint8_t argmap[PW_W2C_SEQ_ARGS];
} pw_w2c_call32_t;

/* pw_ecall_go_t */
typedef int (*pw_w2c_go_t)(void *data, unsigned next, uint32_t result);

/* a sequence's call: what it runs with, and what came of it */
typedef struct {
    const pw_w2c_call32_t *calls;
    unsigned n;
    void *minst;
    const uint32_t *args;
    pw_w2c_go_t go;             /* NULL: all of them */
    void *go_data;
    uint32_t result;            /* out: the last call's result */
    unsigned ran;               /* out: calls started */
    const char *msg;            /* out: on an error */
} pw_w2c_seq_call_t;

typedef struct {
    const char *name;
    const char *sig;
    pw_w2c_thunk_t thunk;
    pw_w2c_thunk32_t thunk32;   /* NULL unless the signature is as above */
} pw_w2c_export_t;

typedef struct {
    const char *module;
    const char *name;
    const char *sig;
} pw_w2c_import_decl_t;

/*
 * The object's running state, read by the backend's interrupt signal
 * handler: where a trap jumps to (a __builtin_setjmp buffer), whether
 * guest code (not a host function) is running, and a request to stop at
 * the next chance.
 */
typedef struct {
    void **volatile target;
    volatile sig_atomic_t in_guest;
    volatile sig_atomic_t stop;
    /* memory grown (any instance of the object): where a memory is and
     * its size stay as last read while this does not change */
    unsigned long grows;
} pw_w2c_state_t;

/* results of call and instantiate */
#define PW_W2C_OK 0
#define PW_W2C_TRAP 1           /* a wasm trap: *msg says which */
#define PW_W2C_HOST 2           /* a host function failed: *msg is its */
#define PW_W2C_INTERRUPTED 3
#define PW_W2C_NOMEM 4

typedef struct {
    unsigned abi;               /* PW_W2C_ABI */
    size_t inst_size;
    unsigned nimports;
    const pw_w2c_import_decl_t *imports;
    unsigned nexports;          /* functions only */
    const pw_w2c_export_t *exports;
    int has_memory;             /* exports "memory" */
    pw_w2c_state_t *state;
    int (*init_module)(const char **msg);
    int (*instantiate)(void *minst, pw_w2c_env_t *env, const char **msg);
    void (*free)(void *minst);
    void (*memory)(void *minst, uint8_t **base, size_t *size);
    int (*call)(pw_w2c_thunk_t thunk, void *minst, const pw_w2c_val_t *args,
        pw_w2c_val_t *results, const char **msg);
    int (*call32)(pw_w2c_thunk32_t thunk, void *minst, const uint32_t *args,
        uint32_t *result, const char **msg);
    /* the engine interface's call_seq, in one call of the object */
    int (*seq32)(pw_w2c_seq_call_t *sc);
    void (*set_max_pages)(uint32_t pages);
    /* jumps to the innermost call with PW_W2C_INTERRUPTED (signal-safe) */
    void (*interrupt)(void);
} pw_w2c_module_t;

#define PW_W2C_SYMBOL "pw_w2c_module"

#endif /* PW_W2C_ABI_H */
