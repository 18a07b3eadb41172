/*
 * A fake engine for unit tests of the core: a "module" is a C description
 * (imports, exports bound to C functions, a byte array as memory). The
 * core still parses real wasm bytes, so fake_wasm_encode() renders the
 * description as a valid wasm binary whose imports and exports match it;
 * the engine finds the description again through a custom section.
 *
 * Guest functions call their imports by name with fake_hc(), exactly as
 * wasm would: through the pw_import_t array given to instantiate. Traps
 * (from the guest or from a host function) unwind to the engine's call()
 * with longjmp, as a wasm trap unwinds the guest stack.
 */
#ifndef FAKE_ENGINE_H
#define FAKE_ENGINE_H

#include <pw/pw_engine.h>

typedef pw_einstance_t fake_inst_t;

/*
 * A guest function. name is the export being called, args/nargs as the
 * core passed them (the engine checked them against the signature), res
 * has the result kinds preset. Return PW_OK; trap with fake_trap().
 */
typedef int (*fake_fn_t)(fake_inst_t *fi, const char *name,
    const pw_val_t *args, size_t nargs, pw_val_t *res);

typedef struct {
    const char *module;
    const char *name;
    const char *sig;
} fake_import_t;

typedef struct {
    const char *name;
    const char *sig;
    fake_fn_t fn;               /* NULL: calling it traps */
} fake_export_t;

typedef struct {
    const fake_import_t *imports;
    size_t nimports;
    const fake_export_t *exports;
    size_t nexports;
    int no_memory;              /* export no "memory" */
    size_t mem_size;            /* initial memory bytes (0: 1 MiB) */
    fake_fn_t start;            /* a wasm start section calling this */
} fake_module_t;

/* Render m as wasm bytes (malloc'd); m must outlive every use of them. */
int fake_wasm_encode(const fake_module_t *m, uint8_t **out, size_t *len);

extern const pw_engine_vt_t fake_engine_vt;

/* Engine-wide counters, for assertions. */
typedef struct {
    int compiles;
    int instances;              /* live */
    int calls;                  /* calls into the guest, all depths */
    int hostcalls;              /* imports called by guests */
    _Atomic int interrupts;     /* interrupt() for the current call */
} fake_stats_t;

extern fake_stats_t fake_stats;

/* ---- for guest functions and tests ---- */

/* Call the import `name` (any module); arguments follow the import's
 * signature: uint32_t for 'i', int64_t for 'I'. Returns the i32 result (0
 * when none). A trap from the host unwinds the guest. */
int32_t fake_hc(fake_inst_t *fi, const char *name, ...);
/* The same with the arguments in an array (i32 ones truncated). */
int32_t fake_hc_arr(fake_inst_t *fi, const char *name, const uint64_t *args,
    size_t nargs);
/* Non-zero if the module imports name. */
int fake_has_import(fake_inst_t *fi, const char *name);

__attribute__((noreturn)) void fake_trap(fake_inst_t *fi, const char *msg);
/* Loop until the engine is interrupted (the watchdog), then unwind. */
__attribute__((noreturn)) void fake_spin(fake_inst_t *fi);

uint8_t *fake_mem(fake_inst_t *fi);
size_t fake_mem_size(fake_inst_t *fi);
/* Grow (always moving the bytes to a new address). */
int fake_mem_grow(fake_inst_t *fi, size_t new_size);

/* Copy bytes into the guest's static area; returns their guest address. */
uint32_t fake_put(fake_inst_t *fi, const void *data, size_t len);
uint32_t fake_put_str(fake_inst_t *fi, const char *s);
/* len zeroed bytes in the static area (out parameters). */
uint32_t fake_scratch(fake_inst_t *fi, size_t len);
uint32_t fake_rd32(fake_inst_t *fi, uint32_t ptr);
uint64_t fake_rd64(fake_inst_t *fi, uint32_t ptr);
void fake_wr32(fake_inst_t *fi, uint32_t ptr, uint32_t v);

/*
 * The guest allocator (export it as proxy_on_memory_allocate or malloc):
 * a bump allocator above the static area, growing memory when needed.
 */
int fake_guest_alloc(fake_inst_t *fi, const char *name, const pw_val_t *args,
    size_t nargs, pw_val_t *res);

typedef struct {
    int fail;                   /* answer 0 */
    int moves;                  /* move memory to a new address each time */
    int trap;                   /* trap in the allocator */
    int count;                  /* allocations made */
    uint32_t last_size;
} fake_alloc_ctl_t;

fake_alloc_ctl_t *fake_alloc_ctl(fake_inst_t *fi);

/* Test data attached to the instance. */
void fake_set_user(fake_inst_t *fi, void *user);
void *fake_user(fake_inst_t *fi);

#endif /* FAKE_ENGINE_H */
