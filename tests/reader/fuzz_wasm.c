/*
 * libFuzzer target of the wasm binary reader: any input either parses into
 * a consistent pw_wasm_info_t or fails with PW_EMALFORMED and a one-line
 * message; never a crash, overread, leak or undefined behaviour.
 *
 *   make fuzz && build/fuzz/fuzz_wasm build/fuzz/seeds_wasm
 */
#include <stdlib.h>
#include <string.h>

#include <pw/pw_wasm.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void
check_sig(const char *sig)
{
    size_t len = strnlen(sig, PW_SIG_MAX);

    check(len < PW_SIG_MAX);
    check(strchr(sig, ':') != NULL);
    check(strspn(sig, "iIfF?:") == len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pw_wasm_export_t *ex;
    pw_wasm_info_t *info;
    char err[160];
    size_t i, funcs;
    int rc;

    info = (pw_wasm_info_t *) &err;
    rc = pw_wasm_parse(data, size, &info, err, sizeof(err));
    if (rc != PW_OK) {
        check(rc == PW_EMALFORMED);
        check(info == NULL);
        check(err[0] != '\0' && strchr(err, '\n') == NULL);
        return 0;
    }

    funcs = 0;
    for (i = 0; i < info->nimports; i++) {
        check(info->imports[i].module != NULL);
        check(info->imports[i].name != NULL);
        check(info->imports[i].kind <= PW_EXTERN_GLOBAL);
        if (info->imports[i].kind == PW_EXTERN_FUNC) {
            check_sig(info->imports[i].sig);
            funcs++;
        } else {
            check(info->imports[i].sig[0] == '\0');
        }
    }
    check(funcs <= info->nfuncs);
    for (i = 0; i < info->nexports; i++) {
        check(info->exports[i].name != NULL);
        check(info->exports[i].kind <= PW_EXTERN_GLOBAL);
        if (info->exports[i].kind != PW_EXTERN_FUNC) {
            continue;
        }
        check(info->exports[i].index < info->nfuncs);
        check_sig(info->exports[i].sig);
        ex = pw_wasm_find_export(info, info->exports[i].name);
        check(ex != NULL && ex->kind == PW_EXTERN_FUNC);
        check(strcmp(ex->name, info->exports[i].name) == 0);
    }
    if (info->func_names != NULL) {
        for (i = 0; i < info->nfuncs; i++) {
            if (info->func_names[i] != NULL) {
                check(strlen(info->func_names[i]) <= size);
            }
        }
    }
    pw_wasm_info_free(info);
    return 0;
}
