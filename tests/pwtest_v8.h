/*
 * For tests on real V8 that compare the core's linked paths (the hostcall
 * shim, the batch) with the plain path: V8's instantiate, refusing imports
 * linked to other instances, as an engine without links would. The core
 * then falls back on plain host functions and one call per callback.
 */
#ifndef PWTEST_V8_H
#define PWTEST_V8_H

#include <stdio.h>
#include <stdlib.h>

#include "pw/pw.h"

static inline int
pw_test_refuse_links(pw_emodule_t *m, const pw_import_t *im, size_t n,
    pw_einstance_t **out, char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (im[i].fn == NULL) {
            snprintf(err, errlen, "links refused");
            return PW_ELINK;
        }
    }
    return pw_engine_v8.instantiate(m, im, n, out, err, errlen);
}

/* A VM of the module `wasm` (beside the test binary) on a store of its own. */
typedef struct {
    pw_module_t *mod;
    pw_vm_t *vm;
    pw_store_t *store;
} pw_test_vm_t;

static inline void
pw_test_vm_start(pw_test_vm_t *t, const pw_engine_vt_t *vt, pw_engine_t *e,
    const char *wasm, pw_vm_conf_t vc)
{
    char err[256] = "";
    uint8_t *bytes;
    size_t len;

    memset(t, 0, sizeof(*t));
    PW_CHECK_EQ_INT(pw_store_new(1024 * 1024, NULL, &t->store), PW_OK);
    vc.store = t->store;
    bytes = pw_test_read_beside(wasm, &len);
    PW_CHECK_EQ_INT(pw_module_load(vt, e, bytes, len, &t->mod, err,
                                   sizeof(err)), PW_OK);
    free(bytes);
    if (pw_vm_new(t->mod, &vc, &t->vm, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "  vm: %s\n", err);
        PW_CHECK(0);
    }
}

static inline void
pw_test_vm_stop(pw_test_vm_t *t)
{
    pw_vm_free(t->vm);
    pw_module_free(t->mod);
    pw_store_free(t->store);
}

#endif /* PWTEST_V8_H */
