/*
 * VMs, contexts and the calls into the plugin.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/hostcall.h"

#define PW__DEFAULT_STORE_SIZE (4 * 1024 * 1024)

static int
pw__strdup(pw_str_t s, char **out, size_t *len)
{
    char *p;

    p = malloc(s.len + 1);
    if (p == NULL) {
        return PW_ENOMEM;
    }
    if (s.len) {
        memcpy(p, s.data, s.len);
    }
    p[s.len] = '\0';
    *out = p;
    if (len) {
        *len = s.len;
    }
    return PW_OK;
}

static void
pw__free_strv(char **v, size_t n)
{
    size_t i;

    for (i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static int
pw__strv_dup(const pw_str_t *src, size_t n, char ***out)
{
    char **v;
    size_t i;

    *out = NULL;
    if (n == 0) {
        return PW_OK;
    }
    v = calloc(n, sizeof(char *));
    if (v == NULL) {
        return PW_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        if (pw__strdup(src[i], &v[i], NULL) != PW_OK) {
            pw__free_strv(v, n);
            return PW_ENOMEM;
        }
    }
    *out = v;
    return PW_OK;
}

/* ---- logging and failure ---- */

void
pw__log(pw_vm_t *vm, pw_log_level_t level, const char *fmt, ...)
{
    char buf[PW_TRAP_BT_MAX + 512];
    pw_hctx_t c;
    va_list ap;
    int n;

    if (vm->host == NULL || vm->host->log == NULL) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t) n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    pw__hctx(vm, vm->effective ? vm->effective
                               : (vm->plugins ? &vm->plugins->ctx : NULL),
             &c);
    vm->host->log(&c, level, (pw_str_t){ buf, (size_t) n });
}

void
pw__vm_fail(pw_vm_t *vm, const char *fmt, ...)
{
    va_list ap;

    if (vm->failed) {
        return;
    }
    vm->failed = 1;
    vm->events++;
    va_start(ap, fmt);
    vsnprintf(vm->fail_reason, sizeof(vm->fail_reason), fmt, ap);
    va_end(ap);
    if (vm->has_trap && vm->trap.backtrace[0]) {
        pw__log(vm, PW_LOG_ERROR, "plugin failed: %s\n%s", vm->fail_reason,
                vm->trap.backtrace);
    } else {
        pw__log(vm, PW_LOG_ERROR, "plugin failed: %s", vm->fail_reason);
    }
}

int
pw_vm_failed(const pw_vm_t *vm)
{
    return vm->failed;
}

uint64_t
pw_vm_hostcall_errors(const pw_vm_t *vm)
{
    return vm->hostcall_errors;
}

const uint64_t *
pw_vm_events(const pw_vm_t *vm)
{
    return &vm->events;
}

const char *
pw_vm_fail_reason(const pw_vm_t *vm)
{
    return vm->failed ? vm->fail_reason : NULL;
}

const pw_trap_t *
pw_vm_last_trap(const pw_vm_t *vm)
{
    return vm->has_trap ? &vm->trap : NULL;
}

/* ---- the context id table ---- */

/* Whether id waits in vm->deferred for its on_delete. */
static int
pw__deferred_has(const pw_vm_t *vm, uint32_t id)
{
    unsigned i;

    for (i = 0; i < vm->ndeferred; i++) {
        if (vm->deferred[i] == id) {
            return 1;
        }
    }
    return 0;
}

static uint32_t
pw__ctx_bucket(const pw_vm_t *vm, uint32_t id)
{
    return (id * 2654435761u) & (vm->ctxs_cap - 1);
}

PW__HOT static int
pw__ctx_add(pw_vm_t *vm, pw__ctx_t *ctx)
{
    pw__ctx_t **nt, *c, *next;
    uint32_t i, cap, b;

    if (vm->nctxs + 1 > vm->ctxs_cap) {
        cap = vm->ctxs_cap ? vm->ctxs_cap * 2 : 64;
        nt = calloc(cap, sizeof(pw__ctx_t *));
        if (nt == NULL) {
            return PW_ENOMEM;
        }
        for (i = 0; i < vm->ctxs_cap; i++) {
            for (c = vm->ctxs[i]; c; c = next) {
                next = c->hnext;
                b = (c->id * 2654435761u) & (cap - 1);
                c->hnext = nt[b];
                nt[b] = c;
            }
        }
        free(vm->ctxs);
        vm->ctxs = nt;
        vm->ctxs_cap = cap;
    }

    /* ids are never 0 and never reused while live, nor while a deferred
     * on_delete still has to name them: until they wrap around, each is
     * new */
    for (;;) {
        ctx->id = vm->next_id++;
        if (ctx->id == 0) {
            vm->ids_wrapped = 1;
            continue;
        }
        if (!vm->ids_wrapped
            || (pw__ctx_find(vm, ctx->id) == NULL
                && !pw__deferred_has(vm, ctx->id)))
        {
            break;
        }
    }

    b = pw__ctx_bucket(vm, ctx->id);
    ctx->hnext = vm->ctxs[b];
    vm->ctxs[b] = ctx;
    vm->nctxs++;
    return PW_OK;
}

pw__ctx_t *
pw__ctx_find(pw_vm_t *vm, uint32_t id)
{
    pw__ctx_t *c;

    if (vm->ctxs_cap == 0) {
        return NULL;
    }
    for (c = vm->ctxs[pw__ctx_bucket(vm, id)]; c; c = c->hnext) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

static void
pw__ctx_remove(pw_vm_t *vm, pw__ctx_t *ctx)
{
    pw__ctx_t **pp;

    if (vm->ctxs_cap == 0) {
        return;
    }
    for (pp = &vm->ctxs[pw__ctx_bucket(vm, ctx->id)]; *pp;
         pp = &(*pp)->hnext)
    {
        if (*pp == ctx) {
            *pp = ctx->hnext;
            vm->nctxs--;
            return;
        }
    }
}

/* ---- calling the plugin ---- */

_Static_assert(PW__BATCH_LEN >= 5, "pw__enter_inline's a[]");

/* pw__enter's body, inline in pw__call (every callback's path) */
static inline __attribute__((always_inline)) int
pw__enter_inline(pw_vm_t *vm, pw__ctx_t *ctx, pw_einstance_t *inst,
    pw_efunc_t *fn, const uint32_t *args, size_t n, int nres, uint32_t *res,
    int *in_alloc)
{
    /* a callback's arguments (5 at most) or a batch function's */
    pw_val_t a[PW__BATCH_LEN], r[1];
    pw__ctx_t *saved;
    uint32_t r32;
    size_t i;
    int rc;

    if (vm->failed) {
        *in_alloc = 0;
        return PW_EFAILED;
    }
    saved = pw__enter_begin(vm, ctx, inst);

    r32 = 0;
    if (vm->vt->call_i32 != NULL) {
        rc = vm->vt->call_i32(inst, fn, args, n, nres ? &r32 : NULL,
                              &vm->trap);
    } else {
        for (i = 0; i < n; i++) {
            a[i].kind = PW_I32;
            a[i].of.i32 = (int32_t) args[i];
        }
        r[0].kind = PW_I32;
        r[0].of.i32 = 0;
        rc = vm->vt->call(inst, fn, a, n, r, nres ? 1 : 0, &vm->trap);
        r32 = (uint32_t) r[0].of.i32;
    }

    *in_alloc = pw__enter_end(vm, saved);
    if (rc == PW_OK && res) {
        *res = r32;
    }
    return rc;
}

PW__HOT int
pw__enter(pw_vm_t *vm, pw__ctx_t *ctx, pw_einstance_t *inst, pw_efunc_t *fn,
    const uint32_t *args, size_t n, int nres, uint32_t *res, int *in_alloc)
{
    return pw__enter_inline(vm, ctx, inst, fn, args, n, nres, res, in_alloc);
}

int
pw__call_failed(pw_vm_t *vm, int rc, pw__cb_t cb, int in_alloc,
    uint32_t *res)
{
    if (rc == PW_EFAILED) {
        return PW_EFAILED;
    }
    if (rc == PW_ETRAP || rc == PW_EINTERRUPTED) {
        vm->has_trap = 1;
        if (vm->exited && cb == PW__CB_START && vm->exit_code == 0) {
            /* _start ending with proc_exit(0) is a normal exit */
            vm->exited = 0;
            if (res) {
                *res = 0;
            }
            return PW_OK;
        }
        if (vm->exited) {
            /* the trap message is static; the code lives in the VM */
            snprintf(vm->trap.message, sizeof(vm->trap.message),
                     "proc_exit(%d)", vm->exit_code);
        }
        /* as the plain path reports a failed allocator */
        pw__vm_fail(vm, "%s in %s: %s",
                    rc == PW_ETRAP ? "trap" : "interrupted (took longer "
                    "than the call time limit)",
                    pw__cbs[in_alloc ? vm->alloc_cb : cb].name,
                    vm->trap.message);
        if (in_alloc && rc == PW_ETRAP) {
            snprintf(vm->trap.message, sizeof(vm->trap.message),
                     "plugin failed while allocating memory");
        }
    } else {
        pw__vm_fail(vm, "calling %s: %s", pw__cbs[cb].name,
                    pw_strerror(rc));
    }
    return PW_EFAILED;
}

int
pw__call(pw_vm_t *vm, pw__ctx_t *ctx, pw__cb_t cb, const uint32_t *args,
    size_t nargs, uint32_t *res)
{
    size_t n;
    int rc, in_alloc;

    n = vm->cb_nparams[cb];
    if (n > nargs) {
        n = nargs;
    }
    rc = pw__enter_inline(vm, ctx, vm->inst, vm->cb[cb], args, n,
                          vm->cb_nres[cb], res, &in_alloc);
    if (rc == PW_OK) {
        return PW_OK;
    }
    return pw__call_failed(vm, rc, cb, in_alloc, res);
}

int
pw__guest_alloc(pw_vm_t *vm, uint32_t len, uint32_t *ptr)
{
    uint32_t p;

    if (vm->alloc == NULL) {
        return PW_ENOMEM;
    }
    if (pw__call(vm, vm->effective, vm->alloc_cb, &len, 1, &p) != PW_OK) {
        return PW_EFAILED;
    }
    if (p == 0) {
        return PW_ENOMEM;
    }
    *ptr = p;
    return PW_OK;
}

/* ---- VMs ---- */

void
pw__shim_free(pw_vm_t *vm)
{
    /* the binder owns fast import slots; the plugin is gone by now */
    if (vm->binder_inst) {
        vm->vt->instance_free(vm->binder_inst);
    }
    if (vm->binder_mod) {
        vm->vt->module_free(vm->binder_mod);
    }
    if (vm->shim_inst) {
        vm->vt->instance_free(vm->shim_inst);
    }
    if (vm->shim_mod) {
        vm->vt->module_free(vm->shim_mod);
    }
    free(vm->shim_bindings);
    free(vm->shim_hs);
    free(vm->pending.buf);
    vm->binder_inst = NULL;
    vm->binder_mod = NULL;
    vm->shim_inst = NULL;
    vm->shim_mod = NULL;
    vm->shim_bindings = NULL;
    vm->shim_hs = NULL;
    vm->shim_n = 0;
    vm->shim_armed = 0;
    memset(&vm->pending, 0, sizeof(vm->pending));
}

/*
 * Make and instantiate the shim for the plugin's shimmed imports, and
 * point those imports at it (links[], one per import). Any failure leaves
 * the plain imports and the plain path.
 */
static int
pw__shim_setup(pw_vm_t *vm, pw_import_t *imports, pw_import_link_t *links)
{
    const pw_wasm_info_t *info = vm->mod->info;
    const pw__hostcall_t **hs, *h;
    pw_import_t *si;
    char err[PW__ERR_MAX];
    uint8_t *bytes = NULL;
    size_t i, n, len;
    int rc;

    hs = calloc(info->nimports ? info->nimports : 1, sizeof(*hs));
    si = calloc(info->nimports ? info->nimports : 1, sizeof(*si));
    vm->shim_bindings = calloc(info->nimports ? info->nimports : 1,
                               sizeof(pw__binding_t));
    if (hs == NULL || si == NULL || vm->shim_bindings == NULL) {
        rc = PW_ENOMEM;
        goto done;
    }
    n = 0;
    for (i = 0; i < info->nimports; i++) {
        h = vm->bindings[i].entry;
        if (!pw__hostcall_shimmed(h) || strcmp(pw__hostcall_sig(h),
                                               info->imports[i].sig) != 0)
        {
            continue;
        }
        hs[n] = h;
        vm->shim_bindings[n] = vm->bindings[i];
        vm->shim_bindings[n].shim = 1;
        si[n] = (pw_import_t){ "pw", info->imports[i].name, NULL,
                               pw__hostcall_trampoline,
                               &vm->shim_bindings[n], 0 };
        n++;
    }
    if (n == 0) {
        rc = PW_ENOTFOUND;
        goto done;
    }
    rc = pw__shim_build(hs, n, &bytes, &len);
    if (rc == PW_OK) {
        rc = vm->vt->compile(vm->mod->engine, bytes, len, &vm->shim_mod, err,
                             sizeof(err));
    }
    if (rc == PW_OK) {
        rc = vm->vt->instantiate(vm->shim_mod, si, n, &vm->shim_inst, err,
                                 sizeof(err));
    }
    if (rc != PW_OK) {
        goto done;
    }
    vm->shim_hs = hs;
    vm->shim_n = n;
    hs = NULL;
    for (i = 0; i < info->nimports; i++) {
        h = vm->bindings[i].entry;
        if (!pw__hostcall_shimmed(h) || strcmp(pw__hostcall_sig(h),
                                               info->imports[i].sig) != 0)
        {
            continue;
        }
        links[i].from = vm->shim_inst;
        links[i].name = info->imports[i].name;
        imports[i].fn = NULL;
        imports[i].fn_data = &links[i];
    }

done:
    if (rc != PW_OK) {
        pw__shim_free(vm);
    }
    free(bytes);
    free(si);
    free(hs);
    return rc;
}

/*
 * Make the binder (see pw__pending_t): it fills the shim's table with the
 * hostcall bodies, which import the plugin's memory and allocator.
 */
static void
pw__shim_arm(pw_vm_t *vm)
{
    pw_import_link_t links[3];
    pw_import_t *imports;
    char err[PW__ERR_MAX];
    uint8_t *bytes;
    size_t i, n, len;
    int rc;

    if (vm->shim_inst == NULL || vm->alloc == NULL) {
        return;
    }
    n = vm->shim_n;
    imports = calloc(2 * n + 5, sizeof(*imports));
    if (imports == NULL) {
        return;
    }
    links[0] = (pw_import_link_t){ vm->shim_inst, "table" };
    links[1] = (pw_import_link_t){ vm->inst, pw__cbs[vm->alloc_cb].name };
    links[2] = (pw_import_link_t){ vm->inst, "memory" };
    imports[0] = (pw_import_t){ "s", "table", NULL, NULL, &links[0], 0 };
    /* plain phase 1, fast phase 1, then the dones */
    for (i = 0; i < n; i++) {
        imports[1 + i] = (pw_import_t){ "pw", vm->shim_hs[i]->name, NULL,
                                        pw__hostcall_trampoline,
                                        &vm->shim_bindings[i], 0 };
        imports[1 + n + i] = (pw_import_t){ "pw.fast", vm->shim_hs[i]->name,
                                            NULL, pw__shim_fast,
                                            &vm->shim_bindings[i],
                                            PW_IMPORT_FAST };
    }
    vm->shim_done.vm = vm;
    vm->shim_done.nres = 1;
    imports[2 * n + 1] = (pw_import_t){ "pw", "pw.done", "ii:i",
                                        pw__shim_done, &vm->shim_done, 0 };
    imports[2 * n + 2] = (pw_import_t){ "pw.fast", "pw.done", "ii:i",
                                        pw__shim_done_fast, &vm->shim_done,
                                        PW_IMPORT_FAST };
    imports[2 * n + 3] = (pw_import_t){ "p", "alloc", "i:i", NULL,
                                        &links[1], 0 };
    imports[2 * n + 4] = (pw_import_t){ "p", "memory", NULL, NULL,
                                        &links[2], 0 };

    rc = pw__shim_binder(vm->shim_hs, n, &bytes, &len);
    if (rc == PW_OK) {
        rc = vm->vt->compile(vm->mod->engine, bytes, len, &vm->binder_mod,
                             err, sizeof(err));
        free(bytes);
    }
    if (rc == PW_OK) {
        rc = vm->vt->instantiate(vm->binder_mod, imports, 2 * n + 5,
                                 &vm->binder_inst, err, sizeof(err));
    }
    free(imports);
    vm->shim_armed = rc == PW_OK;
}

static int
pw__vm_link(pw_vm_t *vm, char *err, size_t errlen)
{
    const pw_wasm_info_t *info = vm->mod->info;
    const pw__hostcall_t *h;
    pw_import_link_t *links;
    pw_import_t *imports;
    size_t i, n;
    int rc;

    n = info->nimports ? info->nimports : 1;
    imports = calloc(n, sizeof(*imports));
    links = calloc(n, sizeof(*links));
    vm->bindings = calloc(n, sizeof(pw__binding_t));
    if (imports == NULL || links == NULL || vm->bindings == NULL) {
        free(imports);
        free(links);
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    vm->nbindings = info->nimports;
    for (i = 0; i < info->nimports; i++) {
        /* pw_module_load already checked every import exists */
        h = pw__hostcall_find(info->imports[i].module, info->imports[i].name);
        vm->bindings[i].vm = vm;
        vm->bindings[i].entry = h;
        vm->bindings[i].nres = strchr(pw__hostcall_sig(h), ':')[1] != '\0';
        imports[i].module = info->imports[i].module;
        imports[i].name = info->imports[i].name;
        imports[i].sig = info->imports[i].sig;
        imports[i].fn = pw__hostcall_trampoline;
        imports[i].fn_data = &vm->bindings[i];
    }
    if (pw__shim_setup(vm, imports, links) == PW_OK) {
        rc = vm->vt->instantiate(vm->mod->emod, imports, info->nimports,
                                 &vm->inst, err, errlen);
        if (rc != PW_ELINK) {
            goto done;
        }
        /* the engine cannot link to the shim: the plain path */
        pw__shim_free(vm);
        for (i = 0; i < info->nimports; i++) {
            imports[i].fn = pw__hostcall_trampoline;
            imports[i].fn_data = &vm->bindings[i];
        }
    }
    rc = vm->vt->instantiate(vm->mod->emod, imports, info->nimports,
                             &vm->inst, err, errlen);
done:
    free(imports);
    free(links);
    return rc;
}

static int
pw__vm_lookup(pw_vm_t *vm, char *err, size_t errlen)
{
    char sig[PW_SIG_MAX];
    const char *colon;
    int k;

    for (k = 0; k < PW__CB_MAX; k++) {
        if (pw_wasm_find_export(vm->mod->info, pw__cbs[k].name) == NULL) {
            continue;
        }
        if (vm->vt->lookup(vm->inst, pw__cbs[k].name, &vm->cb[k], sig)
            != PW_OK)
        {
            snprintf(err, errlen, "cannot find export %s", pw__cbs[k].name);
            return PW_ELINK;
        }
        colon = strchr(sig, ':');
        vm->cb_nparams[k] = colon ? (uint8_t) (colon - sig) : 0;
    }
    for (k = 0; k < PW__CB_MAX; k++) {
        vm->cb_nres[k] = strchr(pw__cbs[k].sigs[0], ':')[1] != '\0';
    }
    /* Envoy's order: malloc first */
    vm->alloc_cb = vm->cb[PW__CB_MALLOC] ? PW__CB_MALLOC
                                         : PW__CB_ON_MEMORY_ALLOCATE;
    vm->alloc = vm->cb[vm->alloc_cb];
    return PW_OK;
}

/*
 * px_noop_callbacks (exported by our C SDK, sdk/c/proxy_wasm.h): bit i set
 * says the callback pw__noop_cbs[i] only returns its default (Continue,
 * done, nothing); it is dropped as if not exported, which the calls and
 * the batch already treat as that default.
 * The order is the SDK's PX_NOOP_* numbering; bit 16 lets streams be
 * created lazily (vm->lazy_create). PW_NO_NOOPS=1 in the environment
 * ignores the export (to compare).
 */
static const pw__cb_t pw__noop_cbs[] = {
    PW__CB_ON_REQUEST_HEADERS, PW__CB_ON_REQUEST_BODY,
    PW__CB_ON_REQUEST_TRAILERS, PW__CB_ON_RESPONSE_HEADERS,
    PW__CB_ON_RESPONSE_BODY, PW__CB_ON_RESPONSE_TRAILERS, PW__CB_ON_LOG,
    PW__CB_ON_DONE, PW__CB_ON_NEW_CONNECTION, PW__CB_ON_DOWNSTREAM_DATA,
    PW__CB_ON_UPSTREAM_DATA, PW__CB_ON_DOWNSTREAM_CONNECTION_CLOSE,
    PW__CB_ON_UPSTREAM_CONNECTION_CLOSE, PW__CB_ON_TICK,
    PW__CB_ON_QUEUE_READY, PW__CB_ON_FOREIGN_FUNCTION
};

static int
pw__vm_noops(pw_vm_t *vm)
{
    uint32_t mask, i;
    int rc;

    if (vm->cb[PW__CB_NOOPS] == NULL || getenv("PW_NO_NOOPS") != NULL) {
        return PW_OK;
    }
    rc = pw__call(vm, NULL, PW__CB_NOOPS, NULL, 0, &mask);
    if (rc != PW_OK) {
        return rc;
    }
    for (i = 0; i < sizeof(pw__noop_cbs) / sizeof(pw__noop_cbs[0]); i++) {
        if (mask & (1u << i)) {
            vm->cb[pw__noop_cbs[i]] = NULL;
        }
    }
    /* PX_LAZY_CONTEXT_CREATE: see pw__stream_hook and pw_stream_free */
    vm->lazy_create = (mask >> 16) & 1;
    /* PX_QUIET_DELETE: see pw__stream_delete */
    vm->quiet_delete = (mask >> 17) & 1 && vm->cb[PW__CB_ON_DELETE] != NULL;
    return PW_OK;
}

/* vm->hooks: PW_HOOK_* bit i is pw__noop_cbs[i], i < 6 (the HTTP ones) */
static void
pw__vm_hooks(pw_vm_t *vm)
{
    unsigned i;

    vm->hooks = 0;
    for (i = 0; i < 6; i++) {
        if (vm->cb[pw__noop_cbs[i]] != NULL) {
            vm->hooks |= 1u << i;
        }
    }
}

/* Envoy's rule: _initialize then main (or __main_void); else _start. */
static int
pw__vm_entry(pw_vm_t *vm, char *err, size_t errlen)
{
    uint32_t zero[2] = { 0, 0 };
    int rc = PW_OK;

    if (vm->cb[PW__CB_INITIALIZE]) {
        rc = pw__call(vm, NULL, PW__CB_INITIALIZE, NULL, 0, NULL);
        if (rc == PW_OK && vm->cb[PW__CB_MAIN_VOID]) {
            rc = pw__call(vm, NULL, PW__CB_MAIN_VOID, NULL, 0, NULL);
        } else if (rc == PW_OK && vm->cb[PW__CB_MAIN]) {
            rc = pw__call(vm, NULL, PW__CB_MAIN, zero, 2, NULL);
        }
    } else if (vm->cb[PW__CB_START]) {
        rc = pw__call(vm, NULL, PW__CB_START, NULL, 0, NULL);
    }
    if (rc != PW_OK) {
        snprintf(err, errlen, "%s", vm->fail_reason);
        return PW_ETRAP;
    }
    return PW_OK;
}

int
pw_vm_new(pw_module_t *mod, const pw_vm_conf_t *conf, pw_vm_t **out,
    char *err, size_t errlen)
{
    pw_vm_t *vm;
    int rc;

    vm = calloc(1, sizeof(*vm));
    if (vm == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    vm->mod = mod;
    vm->vt = mod->vt;
    vm->host = conf->host;
    vm->host_data = conf->host_data;
    vm->store = conf->store;
    vm->route = (conf->route && conf->route->nstores) ? conf->route : NULL;
    if (vm->route && vm->store == NULL) {
        vm->store = vm->route->stores[vm->route->metrics
                                      < vm->route->nstores
                                      ? vm->route->metrics : 0];
    }
    vm->max_call_ms = conf->max_call_ms;
    vm->next_id = 1;
    vm->next_token = 1;

    rc = pw__strdup(conf->vm_id, &vm->vm_id, &vm->vm_id_len);
    if (rc == PW_OK) {
        rc = pw__strdup(conf->vm_config, &vm->vm_config, &vm->vm_config_len);
    }
    if (rc == PW_OK) {
        rc = pw__strv_dup(conf->env, conf->nenv, &vm->env);
        vm->nenv = vm->env ? conf->nenv : 0;
    }
    if (rc == PW_OK) {
        rc = pw__strv_dup(conf->args, conf->nargs, &vm->args);
        vm->nargs = vm->args ? conf->nargs : 0;
    }
    if (rc == PW_OK && vm->store == NULL) {
        rc = pw_store_new(PW__DEFAULT_STORE_SIZE, NULL, &vm->own_store);
        vm->store = vm->own_store;
    }
    if (rc != PW_OK) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    rc = pw__vm_link(vm, err, errlen);
    if (rc == PW_OK) {
        rc = pw__vm_lookup(vm, err, errlen);
    }
    if (rc == PW_OK) {
        pw__shim_arm(vm);
    }
    if (rc == PW_OK && vm->max_call_ms) {
        rc = pw__watchdog_start(vm);
        if (rc != PW_OK) {
            snprintf(err, errlen, "cannot start the call watchdog");
        }
    }
    if (rc == PW_OK) {
        rc = pw__vm_entry(vm, err, errlen);
    }
    if (rc == PW_OK) {
        /* after the entry: the SDK's answer may rest on its constructors */
        rc = pw__vm_noops(vm);
        if (rc != PW_OK) {
            snprintf(err, errlen, "%s", vm->fail_reason);
        }
    }
    if (rc == PW_OK) {
        pw__vm_hooks(vm);
        pw__batch_setup(vm);
    }
    if (rc != PW_OK) {
        goto failed;
    }
    *out = vm;
    return PW_OK;

failed:
    pw_vm_free(vm);
    return rc;
}

void
pw_vm_free(pw_vm_t *vm)
{
    pw__foreign_t *f, *fnext;
    pw_stream_t *s;

    if (vm == NULL) {
        return;
    }
    while (vm->plugins) {
        pw_plugin_free(vm->plugins);
    }
    pw__watchdog_stop(vm);
    while (vm->callouts) {
        pw__callout_remove(vm, vm->callouts);
    }
    for (f = vm->foreign; f; f = fnext) {
        fnext = f->next;
        free(f->name);
        free(f);
    }
    while (vm->spare_streams) {
        s = vm->spare_streams;
        vm->spare_streams = s->next;
        free(s);
    }
    pw__batch_free(vm);
    if (vm->inst) {
        vm->vt->instance_free(vm->inst);
    }
    pw__shim_free(vm);
    if (vm->own_store) {
        pw_store_free(vm->own_store);
    }
    free(vm->bindings);
    free(vm->ctxs);
    free(vm->vm_id);
    free(vm->vm_config);
    free(vm->status_msg);
    pw__free_strv(vm->env, vm->nenv);
    pw__free_strv(vm->args, vm->nargs);
    free(vm);
}

int
pw_vm_register_foreign(pw_vm_t *vm, pw_str_t name, pw_foreign_fn_t fn,
    void *data)
{
    pw__foreign_t *f;

    f = calloc(1, sizeof(*f));
    if (f == NULL || pw__strdup(name, &f->name, &f->len) != PW_OK) {
        free(f);
        return PW_ENOMEM;
    }
    f->fn = fn;
    f->data = data;
    f->next = vm->foreign;
    vm->foreign = f;
    return PW_OK;
}

/* ---- callouts ---- */

pw__callout_t *
pw__callout_add(pw_vm_t *vm, pw__ctx_t *ctx, int grpc)
{
    pw__callout_t *co;

    co = calloc(1, sizeof(*co));
    if (co == NULL) {
        return NULL;
    }
    do {
        co->token = vm->next_token++;
    } while (co->token == 0 || pw__callout_find(vm, co->token) != NULL);
    co->plugin = ctx->root;
    co->stream = ctx->stream;
    co->grpc = grpc;
    co->next = vm->callouts;
    vm->callouts = co;
    return co;
}

pw__callout_t *
pw__callout_find(pw_vm_t *vm, uint32_t token)
{
    pw__callout_t *co;

    for (co = vm->callouts; co; co = co->next) {
        if (co->token == token) {
            return co;
        }
    }
    return NULL;
}

void
pw__callout_remove(pw_vm_t *vm, pw__callout_t *co)
{
    pw__callout_t **pp;

    for (pp = &vm->callouts; *pp; pp = &(*pp)->next) {
        if (*pp == co) {
            *pp = co->next;
            free(co);
            return;
        }
    }
}

/* ---- plugins ---- */

int
pw_plugin_new(pw_vm_t *vm, const pw_plugin_conf_t *conf, pw_plugin_t **out,
    char *err, size_t errlen)
{
    pw_plugin_t *p;
    uint32_t args[2], res;
    int rc;

    if (vm->failed) {
        snprintf(err, errlen, "%s", vm->fail_reason);
        return PW_EFAILED;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL
        || pw__strdup(conf->name, &p->name, &p->name_len) != PW_OK
        || pw__strdup(conf->root_id, &p->root_id, &p->root_id_len) != PW_OK
        || pw__strdup(conf->config, &p->config, &p->config_len) != PW_OK
        || pw__ctx_add(vm, &p->ctx) != PW_OK)
    {
        if (p) {
            free(p->name);
            free(p->root_id);
            free(p->config);
            free(p);
        }
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    p->vm = vm;
    p->ctx.root = p;
    p->host_data = conf->host_data;
    p->next = vm->plugins;
    vm->plugins = p;

    args[0] = p->ctx.id;
    args[1] = 0;
    rc = PW_OK;
    if (vm->cb[PW__CB_ON_CONTEXT_CREATE]) {
        rc = pw__call(vm, &p->ctx, PW__CB_ON_CONTEXT_CREATE, args, 2, NULL);
    }
    p->created = rc == PW_OK;

    if (rc == PW_OK && vm->cb[PW__CB_ON_VM_START]) {
        args[1] = (uint32_t) vm->vm_config_len;
        vm->in_vm_start = 1;
        rc = pw__call(vm, &p->ctx, PW__CB_ON_VM_START, args, 2, &res);
        vm->in_vm_start = 0;
        if (rc == PW_OK && res == 0) {
            snprintf(err, errlen, "proxy_on_vm_start returned false");
            rc = PW_EFAILED;
            goto failed;
        }
    }
    if (rc == PW_OK && vm->cb[PW__CB_ON_CONFIGURE]) {
        args[1] = (uint32_t) p->config_len;
        rc = pw__call(vm, &p->ctx, PW__CB_ON_CONFIGURE, args, 2, &res);
        if (rc == PW_OK && res == 0) {
            snprintf(err, errlen, "proxy_on_configure returned false");
            rc = PW_EFAILED;
            goto failed;
        }
    }
    if (rc != PW_OK) {
        snprintf(err, errlen, "%s", vm->fail_reason);
        goto failed;
    }
    *out = p;
    return PW_OK;

failed:
    pw__log(vm, PW_LOG_ERROR, "plugin \"%s\" failed to start: %s", p->name,
            err);
    pw_plugin_free(p);
    return rc;
}

void
pw_plugin_free(pw_plugin_t *p)
{
    pw_vm_t *vm = p->vm;
    pw_plugin_t **pp;
    pw__callout_t *co, *next;
    uint32_t id = p->ctx.id, res;

    while (p->streams) {
        pw_stream_free(p->streams);
    }
    if (p->created && !vm->failed) {
        if (vm->cb[PW__CB_ON_DONE]
            && pw__call(vm, &p->ctx, PW__CB_ON_DONE, &id, 1, &res) == PW_OK
            && res == 0)
        {
            /* the plugin wants to finish later; we are tearing down */
            p->done_pending = 1;
        }
        if (vm->cb[PW__CB_ON_DELETE]) {
            pw__call(vm, &p->ctx, PW__CB_ON_DELETE, &id, 1, NULL);
        }
    }
    for (co = vm->callouts; co; co = next) {
        next = co->next;
        if (co->plugin == p) {
            pw__callout_remove(vm, co);
        }
    }
    for (pp = &vm->plugins; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pw__ctx_remove(vm, &p->ctx);
    free(p->name);
    free(p->root_id);
    free(p->config);
    free(p);
}

uint32_t
pw_plugin_id(const pw_plugin_t *p)
{
    return p->ctx.id;
}

pw_vm_t *
pw_plugin_vm(const pw_plugin_t *p)
{
    return p->vm;
}

int
pw_plugin_done_pending(const pw_plugin_t *p)
{
    return p->done_pending;
}

static int
pw__root_call(pw_plugin_t *p, pw__cb_t cb, const uint32_t *rest,
    size_t nrest)
{
    uint32_t args[5];
    size_t i;

    if (p->vm->failed) {
        return PW_EFAILED;
    }
    if (p->vm->cb[cb] == NULL) {
        return PW_OK;
    }
    args[0] = p->ctx.id;
    for (i = 0; i < nrest && i < 4; i++) {
        args[i + 1] = rest[i];
    }
    return pw__call(p->vm, &p->ctx, cb, args, nrest + 1, NULL);
}

int
pw_plugin_tick(pw_plugin_t *p)
{
    return pw__root_call(p, PW__CB_ON_TICK, NULL, 0);
}

int
pw_plugin_queue_ready(pw_plugin_t *p, uint32_t qid)
{
    return pw__root_call(p, PW__CB_ON_QUEUE_READY, &qid, 1);
}

static void
pw__set_status(pw_vm_t *vm, uint32_t code, pw_str_t msg)
{
    char *m;

    vm->status_code = code;
    if (pw__strdup(msg, &m, NULL) == PW_OK) {
        free(vm->status_msg);
        vm->status_msg = m;
        vm->status_msg_len = msg.len;
    }
}

/*
 * A host may answer one callout while the plugin is inside the callback of
 * another (synchronously, from a hostcall): the outer callback must go on
 * reading its own answer and status, so each delivery saves and restores
 * them.
 */
typedef struct {
    pw__delivery_t delivery;
    uint32_t code;
    char *msg;
    size_t msg_len;
} pw__saved_delivery_t;

static void
pw__delivery_save(pw_vm_t *vm, pw__saved_delivery_t *s)
{
    s->delivery = vm->delivery;
    s->code = vm->status_code;
    s->msg = vm->status_msg;
    s->msg_len = vm->status_msg_len;
    vm->status_msg = NULL;
    vm->status_msg_len = 0;
}

static void
pw__delivery_restore(pw_vm_t *vm, pw__saved_delivery_t *s)
{
    free(vm->status_msg);
    vm->delivery = s->delivery;
    vm->status_code = s->code;
    vm->status_msg = s->msg;
    vm->status_msg_len = s->msg_len;
}

static pw__callout_t *
pw__callout_of(pw_plugin_t *p, uint32_t token, int grpc)
{
    pw__callout_t *co;

    co = pw__callout_find(p->vm, token);
    if (co == NULL || co->plugin != p || (grpc ? !co->grpc : co->grpc)) {
        return NULL;
    }
    return co;
}

static uint32_t
pw__http_status(const pw_pairs_t *h)
{
    uint32_t code = 0;
    size_t i, j;

    for (i = 0; h && i < h->n; i++) {
        if (h->pairs[i].key.len == 7
            && memcmp(h->pairs[i].key.data, ":status", 7) == 0)
        {
            for (j = 0; j < h->pairs[i].value.len && j < 4; j++) {
                char ch = h->pairs[i].value.data[j];
                if (ch < '0' || ch > '9') {
                    break;
                }
                code = code * 10 + (uint32_t) (ch - '0');
            }
            break;
        }
    }
    return code;
}

int
pw_plugin_http_response(pw_plugin_t *p, uint32_t token,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers)
{
    pw_vm_t *vm = p->vm;
    pw__saved_delivery_t saved;
    pw__callout_t *co;
    uint32_t rest[4];
    int rc;

    co = pw__callout_of(p, token, 0);
    if (co == NULL) {
        return PW_ENOTFOUND;
    }
    pw__callout_remove(vm, co);
    if (headers == NULL || headers->n == 0) {
        headers = NULL;
        body = (pw_str_t){ NULL, 0 };
        trailers = NULL;
    }
    pw__delivery_save(vm, &saved);
    pw__set_status(vm, pw__http_status(headers), (pw_str_t){ NULL, 0 });

    vm->delivery.headers = headers;
    vm->delivery.trailers = trailers;
    vm->delivery.body = body;
    vm->delivery.active = 1;
    rest[0] = token;
    rest[1] = headers ? (uint32_t) headers->n : 0;
    rest[2] = (uint32_t) body.len;
    rest[3] = trailers ? (uint32_t) trailers->n : 0;
    rc = pw__root_call(p, PW__CB_ON_HTTP_CALL_RESPONSE, rest, 4);
    pw__delivery_restore(vm, &saved);
    return rc;
}

static int
pw__grpc_deliver(pw_plugin_t *p, uint32_t token, pw__cb_t cb,
    const pw_pairs_t *headers, const pw_pairs_t *trailers, pw_str_t body,
    uint32_t n)
{
    pw_vm_t *vm = p->vm;
    pw__delivery_t saved;
    uint32_t rest[2];
    int rc;

    if (pw__callout_of(p, token, 1) == NULL) {
        return PW_ENOTFOUND;
    }
    saved = vm->delivery;
    vm->delivery.headers = headers;
    vm->delivery.trailers = trailers;
    vm->delivery.body = body;
    vm->delivery.active = 1;
    rest[0] = token;
    rest[1] = n;
    rc = pw__root_call(p, cb, rest, 2);
    vm->delivery = saved;
    return rc;
}

int
pw_plugin_grpc_initial_metadata(pw_plugin_t *p, uint32_t token,
    const pw_pairs_t *md)
{
    return pw__grpc_deliver(p, token, PW__CB_ON_GRPC_RECEIVE_INITIAL_METADATA,
                            md, NULL, (pw_str_t){ NULL, 0 },
                            md ? (uint32_t) md->n : 0);
}

int
pw_plugin_grpc_message(pw_plugin_t *p, uint32_t token, pw_str_t msg)
{
    pw__callout_t *co;
    pw__saved_delivery_t saved;
    uint32_t rest[2];
    int rc;

    co = pw__callout_of(p, token, 1);
    if (co == NULL) {
        return PW_ENOTFOUND;
    }
    if (co->grpc != PW__CALLOUT_GRPC_UNARY) {
        return pw__grpc_deliver(p, token, PW__CB_ON_GRPC_RECEIVE, NULL, NULL,
                                msg, (uint32_t) msg.len);
    }

    /* a unary call ends with its answer (Envoy sends no close after it):
     * its record goes now, and proxy_get_status says OK */
    pw__callout_remove(p->vm, co);
    pw__delivery_save(p->vm, &saved);
    memset(&p->vm->delivery, 0, sizeof(p->vm->delivery));
    pw__set_status(p->vm, 0, (pw_str_t){ NULL, 0 });
    p->vm->delivery.body = msg;
    p->vm->delivery.active = 1;
    rest[0] = token;
    rest[1] = (uint32_t) msg.len;
    rc = pw__root_call(p, PW__CB_ON_GRPC_RECEIVE, rest, 2);
    pw__delivery_restore(p->vm, &saved);
    return rc;
}

int
pw_plugin_grpc_trailing_metadata(pw_plugin_t *p, uint32_t token,
    const pw_pairs_t *md)
{
    return pw__grpc_deliver(p, token,
                            PW__CB_ON_GRPC_RECEIVE_TRAILING_METADATA, NULL, md,
                            (pw_str_t){ NULL, 0 }, md ? (uint32_t) md->n : 0);
}

int
pw_plugin_grpc_close(pw_plugin_t *p, uint32_t token, uint32_t status,
    pw_str_t message)
{
    pw__saved_delivery_t saved;
    pw__callout_t *co;
    uint32_t rest[2];
    int rc;

    co = pw__callout_of(p, token, 1);
    if (co == NULL) {
        return PW_ENOTFOUND;
    }
    pw__callout_remove(p->vm, co);
    pw__delivery_save(p->vm, &saved);
    memset(&p->vm->delivery, 0, sizeof(p->vm->delivery));
    pw__set_status(p->vm, status, message);
    rest[0] = token;
    rest[1] = status;
    rc = pw__root_call(p, PW__CB_ON_GRPC_CLOSE, rest, 2);
    pw__delivery_restore(p->vm, &saved);
    return rc;
}

int
pw_plugin_foreign_function(pw_plugin_t *p, uint32_t function_id,
    pw_str_t args)
{
    uint32_t rest[2];
    int rc;

    p->vm->foreign_args = args;
    rest[0] = function_id;
    rest[1] = (uint32_t) args.len;
    rc = pw__root_call(p, PW__CB_ON_FOREIGN_FUNCTION, rest, 2);
    p->vm->foreign_args = (pw_str_t){ NULL, 0 };
    return rc;
}

/* ---- streams ---- */

PW__HOT int
pw_stream_new(pw_plugin_t *p, pw_stream_kind_t kind, void *host_data,
    pw_stream_t **out)
{
    pw_vm_t *vm = p->vm;
    pw_stream_t *s;

    s = vm->spare_streams;
    if (s != NULL) {
        vm->spare_streams = s->next;
        vm->nspare_streams--;
        memset(s, 0, sizeof(*s));
    } else {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return PW_ENOMEM;
        }
    }
    if (pw__ctx_add(p->vm, &s->ctx) != PW_OK) {
        free(s);
        return PW_ENOMEM;
    }
    s->ctx.root = p;
    s->ctx.stream = s;
    s->plugin = p;
    s->kind = kind;
    s->host_data = host_data;
    s->next = p->streams;
    if (p->streams) {
        p->streams->prev = s;
    }
    p->streams = s;
    *out = s;
    return PW_OK;
}

uint32_t
pw_stream_id(const pw_stream_t *s)
{
    return s->ctx.id;
}

static int
pw__stream_ensure(pw_stream_t *s)
{
    pw_vm_t *vm = s->plugin->vm;
    uint32_t args[2];

    if (vm->failed) {
        return PW_EFAILED;
    }
    if (s->created) {
        return PW_OK;
    }
    s->created = 1;
    if (vm->cb[PW__CB_ON_CONTEXT_CREATE] == NULL) {
        return PW_OK;
    }
    args[0] = s->ctx.id;
    args[1] = s->plugin->ctx.id;
    return pw__call(vm, &s->ctx, PW__CB_ON_CONTEXT_CREATE, args, 2, NULL);
}

/*
 * A stream's on_delete. A quiet one (PX_QUIET_DELETE: the SDK only forgets
 * its records of the context, no plugin code runs) waits with the next
 * ones, and PW__BATCH_LEN of them go in one entry; their ids stay unused
 * meanwhile (pw__ctx_add). Those still waiting when the VM ends or fails
 * are dropped with the instance, as is everything the SDK kept.
 */
PW__HOT static void
pw__stream_delete(pw_vm_t *vm, pw__ctx_t *ctx, uint32_t id)
{
    if (vm->batch_n[PW__BATCH_DELETES] == 0) {
        pw__call(vm, ctx, PW__CB_ON_DELETE, &id, 1, NULL);
        return;
    }
    vm->deferred[vm->ndeferred++] = id;
    if (vm->ndeferred == PW__BATCH_LEN) {
        vm->ndeferred = 0;
        (void) pw__batch_call(vm, NULL, PW__BATCH_DELETES, vm->deferred,
                              NULL);
    }
}

PW__HOT void
pw_stream_free(pw_stream_t *s)
{
    pw_plugin_t *p = s->plugin;
    pw_vm_t *vm = p->vm;
    pw__callout_t *co, *next;
    uint32_t id = s->ctx.id;
    int rc;

    if (!s->created && vm->lazy_create && !vm->failed
        && (vm->cb[PW__CB_ON_DONE] || vm->cb[PW__CB_ON_LOG]))
    {
        /* a lazy stream no callback reached yet: created for its end */
        (void) pw__stream_ensure(s);
    }
    if (s->created && !vm->failed) {
        rc = pw__batch_call(vm, &s->ctx, PW__BATCH_CLOSE, &id, NULL);
        if (rc == PW_ENOTFOUND) {
            if (vm->cb[PW__CB_ON_DONE]) {
                pw__call(vm, &s->ctx, PW__CB_ON_DONE, &id, 1, NULL);
            }
            if (vm->cb[PW__CB_ON_LOG]) {
                pw__call(vm, &s->ctx, PW__CB_ON_LOG, &id, 1, NULL);
            }
        }
        /* a quiet on_delete is never in the close sequence */
        if (vm->cb[PW__CB_ON_DELETE] && !vm->failed
            && (rc == PW_ENOTFOUND || vm->quiet_delete))
        {
            pw__stream_delete(vm, &s->ctx, id);
        }
    }
    for (co = vm->callouts; co; co = next) {
        next = co->next;
        if (co->stream == s) {
            pw__callout_remove(vm, co);
        }
    }
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        p->streams = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    pw__ctx_remove(vm, &s->ctx);
#ifndef PW__NO_SPARES
    if (vm->nspare_streams < PW__SPARE_STREAMS) {
        s->next = vm->spare_streams;
        vm->spare_streams = s;
        vm->nspare_streams++;
        return;
    }
#endif
    free(s);
}

/*
 * Whether a hook without a callback would run nothing else either: the
 * stream has started, or starts lazily (and the VM has not failed).
 */
PW__HOT static int
pw__stream_quiet(const pw_stream_t *s)
{
    const pw_vm_t *vm = s->plugin->vm;

    return !vm->failed && (s->created || vm->lazy_create);
}

/*
 * Opens a stream with batch sequence `kind` (args[1..] its arguments;
 * args[0] is free). When a quiet on_delete waits (pw__stream_delete), the
 * oldest rides along, first in the same entry (sequence kind + _D): as
 * each request ends with one and opens with the next, the deletes then
 * need no entry of their own. Its effective context is the new stream's
 * (a quiet on_delete runs no plugin code); a trap in it fails the VM,
 * naming proxy_on_delete, and so this opening.
 */
PW__HOT static int
pw__stream_open(pw_vm_t *vm, pw_stream_t *s, pw__batch_kind_t kind,
    uint32_t *args, uint32_t *res)
{
    pw__batch_kind_t dk;

    dk = kind == PW__BATCH_OPEN_HTTP ? PW__BATCH_OPEN_HTTP_D
         : kind == PW__BATCH_OPEN_RESP ? PW__BATCH_OPEN_RESP_D
         : PW__BATCH_MAX;
    if (vm->ndeferred == 0 || dk == PW__BATCH_MAX || vm->batch_n[dk] == 0) {
        return pw__batch_call(vm, &s->ctx, kind, args + 1, res);
    }
    args[0] = vm->deferred[0];
    if (--vm->ndeferred > 0) {
        memmove(&vm->deferred[0], &vm->deferred[1],
                vm->ndeferred * sizeof(vm->deferred[0]));
    }
    return pw__batch_call(vm, &s->ctx, dk, args, res);
}

PW__HOT static int
pw__stream_hook(pw_stream_t *s, pw__cb_t cb, const uint32_t *rest,
    size_t nrest, pw_action_t *action)
{
    pw_vm_t *vm = s->plugin->vm;
    uint32_t args[5], res = PW_ACTION_CONTINUE;
    pw__batch_kind_t kind;
    size_t i;
    int rc;

    if (vm->cb[cb] == NULL && pw__stream_quiet(s)) {
        /* nothing to call (a lazy create waits for a callback that is) */
        if (action) {
            *action = PW_ACTION_CONTINUE;
        }
        return PW_OK;
    }
    rc = PW_ENOTFOUND;
    if (!s->created && !vm->failed
        && (cb == PW__CB_ON_REQUEST_HEADERS || cb == PW__CB_ON_NEW_CONNECTION
            || cb == PW__CB_ON_RESPONSE_HEADERS))
    {
        /* the first callback: with on_context_create, in one entry */
        args[1] = s->ctx.id;
        args[2] = s->plugin->ctx.id;
        for (i = 0; i < nrest && i < 2; i++) {
            args[i + 3] = rest[i];
        }
        kind = cb == PW__CB_ON_REQUEST_HEADERS ? PW__BATCH_OPEN_HTTP
               : cb == PW__CB_ON_NEW_CONNECTION ? PW__BATCH_OPEN_TCP
               : PW__BATCH_OPEN_RESP;
        rc = pw__stream_open(vm, s, kind, args, &res);
        if (rc != PW_ENOTFOUND) {
            s->created = 1;
        }
    }
    if (rc == PW_ENOTFOUND) {
        /* no batch: on_context_create (once), then the callback */
        rc = pw__stream_ensure(s);
        if (rc == PW_OK && vm->cb[cb]) {
            args[0] = s->ctx.id;
            for (i = 0; i < nrest && i < 2; i++) {
                args[i + 1] = rest[i];
            }
            rc = pw__call(vm, &s->ctx, cb, args, nrest + 1, &res);
        }
    }
    if (rc == PW_OK && action) {
        /* wider Envoy values (2..4) pass through for the host to read */
        *action = (pw_action_t) res;
    }
    return rc;
}

PW__HOT int
pw_http_request_headers(pw_stream_t *s, uint32_t nheaders, int eos,
    pw_action_t *action)
{
    uint32_t a[2] = { nheaders, eos != 0 };
    return pw__stream_hook(s, PW__CB_ON_REQUEST_HEADERS, a, 2, action);
}

int
pw_http_request_body(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action)
{
    uint32_t a[2] = { size, eos != 0 };
    return pw__stream_hook(s, PW__CB_ON_REQUEST_BODY, a, 2, action);
}

int
pw_http_request_trailers(pw_stream_t *s, uint32_t ntrailers,
    pw_action_t *action)
{
    return pw__stream_hook(s, PW__CB_ON_REQUEST_TRAILERS, &ntrailers, 1,
                           action);
}

PW__HOT int
pw_http_response_headers(pw_stream_t *s, uint32_t nheaders, int eos,
    pw_action_t *action)
{
    uint32_t a[2] = { nheaders, eos != 0 };
    return pw__stream_hook(s, PW__CB_ON_RESPONSE_HEADERS, a, 2, action);
}

int
pw_http_response_body(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action)
{
    uint32_t a[2] = { size, eos != 0 };
    return pw__stream_hook(s, PW__CB_ON_RESPONSE_BODY, a, 2, action);
}

PW__HOT unsigned
pw_stream_hooks(const pw_stream_t *s)
{
    return s->plugin->vm->hooks;
}

PW__HOT int
pw_stream_skips(const pw_stream_t *s, unsigned hook)
{
    return !(s->plugin->vm->hooks & hook) && pw__stream_quiet(s);
}

int
pw_stream_batches_response(const pw_stream_t *s)
{
    const pw_vm_t *vm = s->plugin->vm;

    return s->created && !vm->failed
           && vm->batch_n[PW__BATCH_RESP_HTTP] != 0;
}

int
pw_http_response_headers_body(pw_stream_t *s, uint32_t nheaders, int heos,
    uint32_t size, int beos, int (*go)(void *data), void *go_data,
    pw_action_t *haction, pw_action_t *baction, int *body_ran)
{
    pw_vm_t *vm = s->plugin->vm;
    uint32_t args[5], res = PW_ACTION_CONTINUE, at;
    int (*saved_go)(void *data);
    void *saved_data;
    int rc;

    if (!pw_stream_batches_response(s)) {
        return PW_ENOTFOUND;
    }
    args[0] = s->ctx.id;
    args[1] = nheaders;
    args[2] = heos != 0;
    args[3] = size;
    args[4] = beos != 0;

    /* the host's callbacks could start another such call: keep theirs */
    at = vm->batch_at;
    saved_go = vm->batch_go;
    saved_data = vm->batch_go_data;
    vm->batch_at = 1;
    vm->batch_go = go;
    vm->batch_go_data = go_data;

    rc = pw__batch_call(vm, &s->ctx, PW__BATCH_RESP_HTTP, args, &res);

    *body_ran = vm->batch_at == 2;
    vm->batch_at = at;
    vm->batch_go = saved_go;
    vm->batch_go_data = saved_data;

    if (rc != PW_OK) {
        return rc;
    }
    if (*body_ran) {
        *haction = PW_ACTION_CONTINUE;
        *baction = (pw_action_t) res;
    } else {
        *haction = (pw_action_t) res;
    }
    return PW_OK;
}

int
pw_http_response_trailers(pw_stream_t *s, uint32_t ntrailers,
    pw_action_t *action)
{
    return pw__stream_hook(s, PW__CB_ON_RESPONSE_TRAILERS, &ntrailers, 1,
                           action);
}

int
pw_tcp_new_connection(pw_stream_t *s, pw_action_t *action)
{
    return pw__stream_hook(s, PW__CB_ON_NEW_CONNECTION, NULL, 0, action);
}

int
pw_tcp_downstream_data(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action)
{
    uint32_t a[2] = { size, eos != 0 };
    return pw__stream_hook(s, PW__CB_ON_DOWNSTREAM_DATA, a, 2, action);
}

int
pw_tcp_upstream_data(pw_stream_t *s, uint32_t size, int eos,
    pw_action_t *action)
{
    uint32_t a[2] = { size, eos != 0 };
    return pw__stream_hook(s, PW__CB_ON_UPSTREAM_DATA, a, 2, action);
}

int
pw_tcp_downstream_close(pw_stream_t *s, pw_peer_type_t peer)
{
    uint32_t a = peer;
    return pw__stream_hook(s, PW__CB_ON_DOWNSTREAM_CONNECTION_CLOSE, &a, 1,
                           NULL);
}

int
pw_tcp_upstream_close(pw_stream_t *s, pw_peer_type_t peer)
{
    uint32_t a = peer;
    return pw__stream_hook(s, PW__CB_ON_UPSTREAM_CONNECTION_CLOSE, &a, 1,
                           NULL);
}
