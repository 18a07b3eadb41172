/*
 * For tests on real V8 that compare the core's linked paths (the hostcall
 * shim, the batch) with the plain path: V8's instantiate, refusing imports
 * linked to other instances, as an engine without links would. The core
 * then falls back on plain host functions and one call per callback.
 */
#ifndef PWTEST_V8_H
#define PWTEST_V8_H

#include <stdio.h>

#include "pw/pw_engine.h"
#include "pw/pw_types.h"

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

#endif /* PWTEST_V8_H */
