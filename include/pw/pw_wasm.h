/*
 * proxy-wasm-c: a small reader of the WebAssembly binary format.
 *
 * Reads the type, import, function, export, start and name sections, enough
 * to validate a plugin without an engine (nginx -t in the master process)
 * and to give the core the real signatures of imports and exports.
 * Never trusts the input: every length is checked against the end of the
 * section and of the module.
 */
#ifndef PW_WASM_H
#define PW_WASM_H

#include <pw/pw_engine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PW_EXTERN_FUNC = 0,
    PW_EXTERN_TABLE = 1,
    PW_EXTERN_MEMORY = 2,
    PW_EXTERN_GLOBAL = 3
} pw_extern_kind_t;

typedef struct {
    char *module;               /* NUL-terminated copies */
    char *name;
    pw_extern_kind_t kind;
    char sig[PW_SIG_MAX];       /* functions only, e.g. "ii:i" */
} pw_wasm_import_t;

typedef struct {
    char *name;
    pw_extern_kind_t kind;
    uint32_t index;             /* in its index space */
    char sig[PW_SIG_MAX];       /* functions only */
} pw_wasm_export_t;

typedef struct {
    pw_wasm_import_t *imports;
    size_t nimports;
    pw_wasm_export_t *exports;
    size_t nexports;
    size_t nfuncs;              /* imported + defined functions */
    char **func_names;          /* nfuncs entries, NULL where unnamed */
    int has_start;              /* a start section is present */
} pw_wasm_info_t;

/*
 * Parse bytes. On failure returns PW_EMALFORMED with a one-line reason in
 * err (e.g. "not a wasm module (bad magic)", "import section truncated").
 * Signatures with more than PW_SIG_MAX - 2 value types or types other than
 * i32/i64/f32/f64 (e.g. v128, externref) are rendered with '?' for the
 * unknown letters.
 */
int pw_wasm_parse(const uint8_t *bytes, size_t len, pw_wasm_info_t **out,
    char *err, size_t errlen);
void pw_wasm_info_free(pw_wasm_info_t *info);

/* The function export of that name, or NULL. */
const pw_wasm_export_t *pw_wasm_find_export(const pw_wasm_info_t *info,
    const char *name);

#ifdef __cplusplus
}
#endif

#endif /* PW_WASM_H */
