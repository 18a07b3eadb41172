/*
 * Modules: validation without an engine, ABI version detection, export
 * signature checks, compilation. Also pw_strerror and the checked guest
 * memory helpers of the engine interface.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

const char *
pw_strerror(int rc)
{
    switch (rc) {
#define PW__RC_STR(name, val, msg) case val: return msg;
    PW_RC_MAP(PW__RC_STR)
#undef PW__RC_STR
    }
    return "unknown error";
}

/* The one checked path from a guest (ptr, len) to host bytes. */
static int
pw__engine_span(const pw_engine_vt_t *vt, pw_einstance_t *inst,
    uint32_t ptr, uint32_t len, uint8_t **p)
{
    uint8_t *base;
    size_t size;

    if (vt->memory(inst, &base, &size) != PW_OK) {
        return PW_ENOTFOUND;
    }
    if ((uint64_t) ptr + len > size) {
        return PW_EBOUNDS;
    }
    *p = base + ptr;
    return PW_OK;
}

int
pw_engine_read(const pw_engine_vt_t *vt, pw_einstance_t *inst, uint32_t ptr,
    uint32_t len, void *dst)
{
    uint8_t *p;
    int rc;

    rc = pw__engine_span(vt, inst, ptr, len, &p);
    if (rc == PW_OK && len) {
        memcpy(dst, p, len);
    }
    return rc;
}

int
pw_engine_write(const pw_engine_vt_t *vt, pw_einstance_t *inst, uint32_t ptr,
    const void *src, uint32_t len)
{
    uint8_t *p;
    int rc;

    rc = pw__engine_span(vt, inst, ptr, len, &p);
    if (rc == PW_OK && len) {
        memcpy(p, src, len);
    }
    return rc;
}

const pw__cb_info_t pw__cbs[PW__CB_MAX] = {
    [PW__CB_ON_MEMORY_ALLOCATE] = { "proxy_on_memory_allocate", { "i:i" } },
    [PW__CB_MALLOC] = { "malloc", { "i:i" } },
    [PW__CB_ON_CONTEXT_CREATE] = { "proxy_on_context_create", { "ii:" } },
    [PW__CB_ON_DONE] = { "proxy_on_done", { "i:i" } },
    [PW__CB_ON_LOG] = { "proxy_on_log", { "i:" } },
    [PW__CB_ON_DELETE] = { "proxy_on_delete", { "i:" } },
    [PW__CB_ON_VM_START] = { "proxy_on_vm_start", { "ii:i" } },
    [PW__CB_ON_CONFIGURE] = { "proxy_on_configure", { "ii:i" } },
    [PW__CB_VALIDATE_CONFIGURATION] =
        { "proxy_validate_configuration", { "ii:i" } },
    [PW__CB_ON_TICK] = { "proxy_on_tick", { "i:" } },
    [PW__CB_ON_NEW_CONNECTION] = { "proxy_on_new_connection", { "i:i" } },
    [PW__CB_ON_DOWNSTREAM_DATA] = { "proxy_on_downstream_data", { "iii:i" } },
    [PW__CB_ON_UPSTREAM_DATA] = { "proxy_on_upstream_data", { "iii:i" } },
    [PW__CB_ON_DOWNSTREAM_CONNECTION_CLOSE] =
        { "proxy_on_downstream_connection_close", { "ii:" } },
    [PW__CB_ON_UPSTREAM_CONNECTION_CLOSE] =
        { "proxy_on_upstream_connection_close", { "ii:" } },
    [PW__CB_ON_REQUEST_HEADERS] =
        { "proxy_on_request_headers", { "iii:i", "ii:i" } },
    [PW__CB_ON_REQUEST_BODY] = { "proxy_on_request_body", { "iii:i" } },
    [PW__CB_ON_REQUEST_TRAILERS] = { "proxy_on_request_trailers", { "ii:i" } },
    [PW__CB_ON_RESPONSE_HEADERS] =
        { "proxy_on_response_headers", { "iii:i", "ii:i" } },
    [PW__CB_ON_RESPONSE_BODY] = { "proxy_on_response_body", { "iii:i" } },
    [PW__CB_ON_RESPONSE_TRAILERS] =
        { "proxy_on_response_trailers", { "ii:i" } },
    [PW__CB_ON_HTTP_CALL_RESPONSE] =
        { "proxy_on_http_call_response", { "iiiii:" } },
    [PW__CB_ON_GRPC_RECEIVE_INITIAL_METADATA] =
        { "proxy_on_grpc_receive_initial_metadata", { "iii:" } },
    [PW__CB_ON_GRPC_RECEIVE] = { "proxy_on_grpc_receive", { "iii:" } },
    [PW__CB_ON_GRPC_RECEIVE_TRAILING_METADATA] =
        { "proxy_on_grpc_receive_trailing_metadata", { "iii:" } },
    [PW__CB_ON_GRPC_CLOSE] = { "proxy_on_grpc_close", { "iii:" } },
    [PW__CB_ON_QUEUE_READY] = { "proxy_on_queue_ready", { "ii:" } },
    [PW__CB_ON_FOREIGN_FUNCTION] =
        { "proxy_on_foreign_function", { "iii:" } },
    [PW__CB_NOOPS] = { "px_noop_callbacks", { ":i" } },
    [PW__CB_INITIALIZE] = { "_initialize", { ":" } },
    [PW__CB_START] = { "_start", { ":" } },
    [PW__CB_MAIN] = { "main", { "ii:i", ":i" } },
    [PW__CB_MAIN_VOID] = { "__main_void", { ":i" } },
};

static const struct {
    const char *name;
    pw_abi_t abi;
} pw__markers[] = {
    { "proxy_abi_version_0_1_0", PW_ABI_0_1_0 },
    { "proxy_abi_version_0_2_0", PW_ABI_0_2_0 },
    { "proxy_abi_version_0_2_1", PW_ABI_0_2_1 },
    /* vNEXT equals 0.2.1 at the spec snapshot we implement */
    { "proxy_abi_version_0_x_x", PW_ABI_0_2_1 },
};

pw_abi_t
pw__abi_from_info(const pw_wasm_info_t *info)
{
    pw_abi_t abi = PW_ABI_UNKNOWN;
    size_t i, j;

    /* several markers: the newest wins */
    for (i = 0; i < info->nexports; i++) {
        for (j = 0; j < sizeof(pw__markers) / sizeof(pw__markers[0]); j++) {
            if (strcmp(info->exports[i].name, pw__markers[j].name) == 0
                && pw__markers[j].abi > abi)
            {
                abi = pw__markers[j].abi;
            }
        }
    }
    return abi;
}

static const char *
pw__abi_name(pw_abi_t abi)
{
    switch (abi) {
    case PW_ABI_0_1_0: return "0.1.0";
    case PW_ABI_0_2_0: return "0.2.0";
    case PW_ABI_0_2_1: return "0.2.1";
    default: return "unknown";
    }
}

static int
pw__fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int
pw__check_info(const pw_wasm_info_t *info, pw_abi_t *abi_out, char *err,
    size_t errlen)
{
    const pw__hostcall_t *h;
    const pw_wasm_export_t *e;
    const pw_wasm_import_t *im;
    pw_abi_t abi;
    size_t i;
    int k, ok, has_memory;

    abi = pw__abi_from_info(info);
    if (abi == PW_ABI_UNKNOWN) {
        return pw__fail(err, errlen, PW_EMALFORMED,
                        "no proxy_abi_version marker export (not a "
                        "Proxy-Wasm plugin, or an unsupported ABI version)");
    }

    for (i = 0; i < info->nimports; i++) {
        im = &info->imports[i];
        if (im->kind != PW_EXTERN_FUNC) {
            return pw__fail(err, errlen, PW_ELINK,
                            "unsupported import %s.%s (only functions "
                            "can be imported)", im->module, im->name);
        }
        h = pw__hostcall_find(im->module, im->name);
        if (h == NULL) {
            return pw__fail(err, errlen, PW_ELINK, "missing import %s.%s",
                            im->module, im->name);
        }
        if (!(pw__hostcall_abi(h) & abi)) {
            return pw__fail(err, errlen, PW_ELINK,
                            "import %s.%s is not part of ABI %s",
                            im->module, im->name, pw__abi_name(abi));
        }
        if (strcmp(pw__hostcall_sig(h), im->sig) != 0) {
            return pw__fail(err, errlen, PW_ELINK,
                            "bad signature for import %s.%s (%s, expected "
                            "%s)", im->module, im->name, im->sig,
                            pw__hostcall_sig(h));
        }
    }

    has_memory = 0;
    for (i = 0; i < info->nexports; i++) {
        if (info->exports[i].kind == PW_EXTERN_MEMORY
            && strcmp(info->exports[i].name, "memory") == 0)
        {
            has_memory = 1;
        }
    }
    if (!has_memory) {
        return pw__fail(err, errlen, PW_ELINK, "no memory export");
    }

    for (k = 0; k < PW__CB_MAX; k++) {
        e = pw_wasm_find_export(info, pw__cbs[k].name);
        if (e == NULL) {
            continue;
        }
        ok = 0;
        for (i = 0; i < 3 && pw__cbs[k].sigs[i]; i++) {
            if (strcmp(pw__cbs[k].sigs[i], e->sig) == 0) {
                ok = 1;
            }
        }
        if (!ok) {
            return pw__fail(err, errlen, PW_ELINK,
                            "bad signature for %s (%s)", e->name, e->sig);
        }
    }

    if (pw_wasm_find_export(info, "malloc") == NULL
        && pw_wasm_find_export(info, "proxy_on_memory_allocate") == NULL)
    {
        return pw__fail(err, errlen, PW_ELINK,
                        "no proxy_on_memory_allocate or malloc export");
    }

    if (abi_out) {
        *abi_out = abi;
    }
    return PW_OK;
}

int
pw_module_check(const uint8_t *bytes, size_t len, pw_abi_t *abi, char *err,
    size_t errlen)
{
    pw_wasm_info_t *info;
    int rc;

    rc = pw_wasm_parse(bytes, len, &info, err, errlen);
    if (rc != PW_OK) {
        return rc;
    }
    rc = pw__check_info(info, abi, err, errlen);
    pw_wasm_info_free(info);
    return rc;
}

int
pw_module_load(const pw_engine_vt_t *vt, pw_engine_t *engine,
    const uint8_t *bytes, size_t len, pw_module_t **out, char *err,
    size_t errlen)
{
    pw_module_t *mod;
    int rc;

    mod = calloc(1, sizeof(*mod));
    if (mod == NULL) {
        return pw__fail(err, errlen, PW_ENOMEM, "out of memory");
    }
    mod->vt = vt;
    mod->engine = engine;
    mod->len = len;
    mod->bytes = malloc(len ? len : 1);
    if (mod->bytes == NULL) {
        free(mod);
        return pw__fail(err, errlen, PW_ENOMEM, "out of memory");
    }
    memcpy(mod->bytes, bytes, len);

    rc = pw_wasm_parse(mod->bytes, len, &mod->info, err, errlen);
    if (rc == PW_OK) {
        rc = pw__check_info(mod->info, &mod->abi, err, errlen);
    }
    if (rc == PW_OK) {
        rc = vt->compile(engine, mod->bytes, len, &mod->emod, err, errlen);
    }
    if (rc != PW_OK) {
        pw_module_free(mod);
        return rc;
    }
    *out = mod;
    return PW_OK;
}

void
pw_module_free(pw_module_t *mod)
{
    if (mod == NULL) {
        return;
    }
    if (mod->emod) {
        mod->vt->module_free(mod->emod);
    }
    pw_wasm_info_free(mod->info);
    free(mod->bytes);
    free(mod);
}

pw_abi_t
pw_module_abi(const pw_module_t *mod)
{
    return mod->abi;
}

const pw_wasm_info_t *
pw_module_info(const pw_module_t *mod)
{
    return mod->info;
}
