/*
 * Internals of the V8 backend, shared by its .cc files only.
 */
#ifndef PW_V8_INTERNAL_H
#define PW_V8_INTERNAL_H

#include <pw/pw_engine.h>
#include <pw/pw_wasm.h>

/*
 * Signatures of a module's imports and exports (the subset of
 * pw_wasm_info_t the engine needs: no function names).
 */
int pw__v8_info_parse(const uint8_t *bytes, size_t len, pw_wasm_info_t **out,
    char *err, size_t errlen);
void pw__v8_info_free(pw_wasm_info_t *info);

#endif /* PW_V8_INTERNAL_H */
