/*
 * The wasm2c runtime of proxy-wasm-c: wasm-rt.h's functions, compiled into
 * every plugin object the w2c backend builds (as text, after w2c_abi.h and
 * wasm2c's header for the plugin, before the glue written for it). All of
 * it is hidden in the object: each plugin has its own copy and state.
 *
 * Memory is bounds-checked by the generated code (no guard pages, so no
 * SIGSEGV handler in the proxy), the call stack by a depth count. A trap
 * jumps back to the innermost call into this object.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PW_RT_PAGE 65536u
/* size is a uint32_t: 65536 pages would not fit */
#define PW_RT_PAGES_MAX 65535u

uint32_t wasm_rt_call_stack_depth;

static pw_w2c_state_t pw_rt_state;
static const char *pw_rt_msg;
static volatile int pw_rt_code;
static uint32_t pw_rt_max_pages = PW_RT_PAGES_MAX;

typedef struct {
    uint32_t nparams;
    uint32_t nresults;
    const wasm_rt_type_t *types;
} pw_rt_functype_t;

/* static, so that nothing is left allocated when the object is closed */
#define PW_RT_TYPES_MAX 4096
#define PW_RT_TYPE_WORDS (16 * PW_RT_TYPES_MAX)
static pw_rt_functype_t pw_rt_types[PW_RT_TYPES_MAX];
static wasm_rt_type_t pw_rt_type_words[PW_RT_TYPE_WORDS];
static uint32_t pw_rt_ntypes, pw_rt_nwords;

/* __builtin_setjmp saves 3 words and no signal mask: a call costs less */
static __attribute__((noinline, noreturn)) void
pw_rt_unwind(int code, const char *msg)
{
    pw_rt_msg = msg;
    pw_rt_code = code;
    if (pw_rt_state.target == NULL) {
        abort();                /* no call into this object is running */
    }
    pw_rt_state.in_guest = 0;
    __builtin_longjmp(pw_rt_state.target, 1);
}

static void
pw_rt_interrupt(void)
{
    pw_rt_state.stop = 1;
    pw_rt_unwind(PW_W2C_INTERRUPTED, "interrupted");
}

void
wasm_rt_init(void)
{
}

bool
wasm_rt_is_initialized(void)
{
    return true;
}

void
wasm_rt_free(void)
{
}

const char *
wasm_rt_strerror(wasm_rt_trap_t trap)
{
    switch (trap) {
    case WASM_RT_TRAP_OOB:
        return "RuntimeError: memory access out of bounds";
    case WASM_RT_TRAP_INT_OVERFLOW:
        return "RuntimeError: integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO:
        return "RuntimeError: divide by zero";
    case WASM_RT_TRAP_INVALID_CONVERSION:
        return "RuntimeError: float unrepresentable in integer range";
    case WASM_RT_TRAP_UNREACHABLE:
        return "RuntimeError: unreachable";
    case WASM_RT_TRAP_CALL_INDIRECT:
        return "RuntimeError: null function or function signature mismatch";
    case WASM_RT_TRAP_EXHAUSTION:
        return "RangeError: Maximum call stack size exceeded";
    default:
        return "RuntimeError: trap";
    }
}

void
wasm_rt_trap(wasm_rt_trap_t trap)
{
    pw_rt_unwind(PW_W2C_TRAP, wasm_rt_strerror(trap));
}

static int
pw_rt_same_type(const pw_rt_functype_t *t, uint32_t nparams,
    uint32_t nresults, const wasm_rt_type_t *types)
{
    return t->nparams == nparams && t->nresults == nresults
           && memcmp(t->types, types,
                     (nparams + nresults) * sizeof(*types)) == 0;
}

uint32_t
wasm_rt_register_func_type(uint32_t nparams, uint32_t nresults, ...)
{
    wasm_rt_type_t types[64];
    uint32_t i, n;
    va_list ap;

    n = nparams + nresults;
    if (n > sizeof(types) / sizeof(types[0])) {
        pw_rt_unwind(PW_W2C_TRAP, "CompileError: function type too long");
    }
    va_start(ap, nresults);
    for (i = 0; i < n; i++) {
        types[i] = (wasm_rt_type_t) va_arg(ap, int);
    }
    va_end(ap);

    for (i = 0; i < pw_rt_ntypes; i++) {
        if (pw_rt_same_type(&pw_rt_types[i], nparams, nresults, types)) {
            return i + 1;
        }
    }
    if (pw_rt_ntypes == PW_RT_TYPES_MAX || n > PW_RT_TYPE_WORDS - pw_rt_nwords)
    {
        pw_rt_unwind(PW_W2C_NOMEM, "CompileError: too many function types");
    }
    memcpy(&pw_rt_type_words[pw_rt_nwords], types, n * sizeof(*types));
    pw_rt_types[pw_rt_ntypes].nparams = nparams;
    pw_rt_types[pw_rt_ntypes].nresults = nresults;
    pw_rt_types[pw_rt_ntypes].types = &pw_rt_type_words[pw_rt_nwords];
    pw_rt_nwords += n;
    return ++pw_rt_ntypes;
}

void
wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial,
    uint32_t max)
{
    if (max > pw_rt_max_pages) {
        max = pw_rt_max_pages;
    }
    mem->data = NULL;
    mem->pages = 0;
    mem->max_pages = max;
    mem->size = 0;
    if (initial > max) {
        pw_rt_unwind(PW_W2C_NOMEM, "RangeError: WebAssembly.Instance(): "
                     "memory larger than the limit");
    }
    /* calloc maps large zeroed blocks lazily */
    mem->data = calloc((size_t) initial * PW_RT_PAGE + 1, 1);
    if (mem->data == NULL) {
        pw_rt_unwind(PW_W2C_NOMEM, "out of memory");
    }
    mem->pages = initial;
    mem->size = initial * PW_RT_PAGE;
    pw_rt_state.grows++;
}

uint32_t
wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint32_t delta)
{
    uint32_t old, pages;
    uint8_t *data;
    sig_atomic_t in;

    old = mem->pages;
    if (delta == 0) {
        return old;
    }
    if (delta > mem->max_pages - old) {
        return (uint32_t) -1;
    }
    pages = old + delta;
    /* not guest code while in the allocator: an interrupt waits */
    in = pw_rt_state.in_guest;
    pw_rt_state.in_guest = 0;
    data = realloc(mem->data, (size_t) pages * PW_RT_PAGE + 1);
    pw_rt_state.in_guest = in;
    if (data == NULL) {
        return (uint32_t) -1;
    }
    memset(data + (size_t) old * PW_RT_PAGE, 0, (size_t) delta * PW_RT_PAGE);
    mem->data = data;
    mem->pages = pages;
    mem->size = pages * PW_RT_PAGE;
    pw_rt_state.grows++;
    if (pw_rt_state.stop && in) {
        pw_rt_unwind(PW_W2C_INTERRUPTED, "interrupted");
    }
    return old;
}

void
wasm_rt_free_memory(wasm_rt_memory_t *mem)
{
    free(mem->data);
    mem->data = NULL;
    mem->size = 0;
    mem->pages = 0;
}

/* the funcref and externref tables: the same code for two element types */
#define PW_RT_TABLE(kind, elem_t)                                            \
void                                                                         \
wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t *t, uint32_t n,     \
    uint32_t max)                                                            \
{                                                                            \
    t->size = n;                                                             \
    t->max_size = max;                                                       \
    t->data = calloc(n ? n : 1, sizeof(*t->data));                           \
    if (t->data == NULL) {                                                   \
        pw_rt_unwind(PW_W2C_NOMEM, "out of memory");                         \
    }                                                                        \
}                                                                            \
                                                                             \
void                                                                         \
wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t *t)                     \
{                                                                            \
    free(t->data);                                                           \
    t->data = NULL;                                                          \
    t->size = 0;                                                             \
}                                                                            \
                                                                             \
uint32_t                                                                     \
wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t *t, uint32_t delta,     \
    elem_t init)                                                             \
{                                                                            \
    elem_t *data;                                                            \
    uint32_t old, i;                                                         \
                                                                             \
    old = t->size;                                                           \
    if (delta == 0) {                                                        \
        return old;                                                          \
    }                                                                        \
    if (delta > t->max_size - old || old + delta > (1u << 24)) {            \
        return (uint32_t) -1;                                                \
    }                                                                        \
    data = realloc(t->data, (size_t) (old + delta) * sizeof(*data));         \
    if (data == NULL) {                                                      \
        return (uint32_t) -1;                                                \
    }                                                                        \
    for (i = old; i < old + delta; i++) {                                    \
        data[i] = init;                                                      \
    }                                                                        \
    t->data = data;                                                          \
    t->size = old + delta;                                                   \
    return old;                                                              \
}

PW_RT_TABLE(funcref, wasm_rt_funcref_t)
PW_RT_TABLE(externref, wasm_rt_externref_t)

/* ---- calls between the proxy and the plugin ---------------------------- */

/* Back in guest code after host code: stops here if interrupted. */
static inline void
pw_rt_back_in_guest(void)
{
    if (pw_rt_state.stop) {
        pw_rt_unwind(PW_W2C_INTERRUPTED, "interrupted");
    }
    pw_rt_state.in_guest = 1;
}

static void
pw_rt_hostcall(pw_w2c_env_t *env, unsigned i, const pw_w2c_val_t *args,
    pw_w2c_val_t *results)
{
    const pw_w2c_import_t *im = &env->imports[i];
    const char *msg;
    int rc;

    msg = NULL;
    pw_rt_state.in_guest = 0;
    rc = im->fn(im->fn_data, env->einst, args, results, &msg);
    if (rc != 0) {
        pw_rt_unwind(PW_W2C_HOST, msg ? msg : "host function failed");
    }
    pw_rt_back_in_guest();
}

/*
 * Runs `stmt` (guest code) as one call into this object: a trap, a failing
 * host function or an interrupt jumps back here, rc gets 0 or its PW_W2C_*
 * code and *(msgp) its message. A macro because a function calling
 * __builtin_setjmp is never inlined: each entry below has it in its own
 * frame.
 */
#define PW_RT_GUARD(rc, msgp, stmt)                                         \
    do {                                                                    \
        void *pw_jb[5];                                                     \
        void **volatile pw_prev = pw_rt_state.target;                       \
        volatile uint32_t pw_depth = wasm_rt_call_stack_depth;              \
        volatile sig_atomic_t pw_was_in = pw_rt_state.in_guest;             \
                                                                            \
        if (pw_prev == NULL) {                                              \
            pw_rt_state.stop = 0;                                           \
        }                                                                   \
        pw_rt_state.target = pw_jb;                                         \
        if (__builtin_setjmp(pw_jb) == 0) {                                 \
            pw_rt_state.in_guest = 1;                                       \
            stmt;                                                           \
            (rc) = 0;                                                       \
        } else {                                                            \
            (rc) = pw_rt_code;                                              \
            *(msgp) = pw_rt_msg;                                            \
        }                                                                   \
        pw_rt_state.in_guest = 0;                                           \
        pw_rt_state.target = pw_prev;                                       \
        wasm_rt_call_stack_depth = pw_depth;                                \
        pw_rt_state.in_guest = pw_was_in;                                   \
    } while (0)

/* run(a, b) as a call into this object (start, instantiate) */
static int
pw_rt_enter(void (*run)(void *, void *), void *a, void *b, const char **msg)
{
    int rc;

    PW_RT_GUARD(rc, msg, run(a, b));
    return rc;
}

static int
pw_rt_call(pw_w2c_thunk_t thunk, void *minst, const pw_w2c_val_t *args,
    pw_w2c_val_t *results, const char **msg)
{
    int rc;

    PW_RT_GUARD(rc, msg, thunk(minst, args, results));
    return rc;
}

static int
pw_rt_call32(pw_w2c_thunk32_t thunk, void *minst, const uint32_t *args,
    uint32_t *result, const char **msg)
{
    int rc;

    PW_RT_GUARD(rc, msg, thunk(minst, args, result));
    return rc;
}

/*
 * The calls of a sequence, asking go between them (pw_w2c_seq_call_t).
 * Not inlined: in the frame of a __builtin_setjmp every local lives on
 * the stack, here they stay in registers.
 */
static __attribute__((noinline)) void
pw_rt_run_seq(pw_w2c_seq_call_t *sc)
{
    const pw_w2c_call32_t *c;
    uint32_t x[PW_W2C_SEQ_ARGS];
    unsigned j, a;
    int go;

    for (j = 0; j < sc->n; j++) {
        if (j > 0 && sc->go != NULL) {
            pw_rt_state.in_guest = 0;       /* the host's code */
            go = sc->go(sc->go_data, j, sc->result);
            pw_rt_back_in_guest();
            if (!go) {
                return;
            }
        }
        c = &sc->calls[j];
        for (a = 0; a < c->nargs; a++) {
            x[a] = sc->args[c->argmap[a]];
        }
        sc->ran = j + 1;
        sc->result = 0;
        c->thunk(sc->minst, x, &sc->result);
    }
}

static int
pw_rt_seq32(pw_w2c_seq_call_t *sc)
{
    int rc;

    sc->ran = 0;
    sc->result = 0;
    PW_RT_GUARD(rc, &sc->msg, pw_rt_run_seq(sc));
    return rc;
}

static void
pw_rt_set_max_pages(uint32_t pages)
{
    pw_rt_max_pages = pages < PW_RT_PAGES_MAX ? pages : PW_RT_PAGES_MAX;
}
