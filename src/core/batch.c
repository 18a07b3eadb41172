/*
 * The batch: callbacks the host always makes back to back, in one entry
 * into the engine.
 *
 * Each entry into the engine costs far more than a call inside wasm (in
 * V8: handle and try-catch scopes, the JS entry frame, the JS-to-wasm
 * wrapper). A request always starts with proxy_on_context_create and then
 * proxy_on_request_headers (or proxy_on_new_connection), and always ends
 * with proxy_on_done, proxy_on_log and proxy_on_delete, with nothing
 * for the host to do in between. So once the plugin is instantiated we
 * make a small module that imports those callbacks from it and exports
 * one function per sequence; calls from it into the plugin are wasm to
 * wasm. In wasm text, the opening sequence of an HTTP stream is:
 *
 *   (func (param $ctx i32) (param $root i32) (param $n i32) (param $eos i32)
 *         (result i32)
 *     (global.set $step (i32.const 1))
 *     (call $on_context_create (local.get $ctx) (local.get $root))
 *     (global.set $step (i32.const 2))
 *     (call $on_request_headers (local.get $ctx) (local.get $n)
 *                               (local.get $eos)))
 *
 * $step says which callback was running when the sequence trapped, so the
 * failure names it as an unbatched call would; the exported function
 * "step" reads it. A callback the plugin does not export is left out; a
 * sequence of fewer than two is not made, and its callers call one by one.
 * The plugin sees exactly the calls, arguments and order it would
 * otherwise; only the number of engine entries changes.
 *
 * A conditional sequence (the response's headers, then its first body
 * data) goes on to the next callback only when the one before returned 0
 * (CONTINUE) and the host says so: it imports "h" "go" (i32) -> i32, a
 * PW_IMPORT_FAST host function given the next step, which asks the
 * host's go callback (vm->batch_go) and records the step reached in
 * vm->batch_at; otherwise it returns the last result at once:
 *
 *   (func (param $ctx $n $heos $size $beos i32) (result i32)
 *         (local $r i32)
 *     (block
 *       (global.set $step (i32.const 1))
 *       (local.set $r (call $on_response_headers ...))
 *       (br_if 0 (local.get $r))
 *       (br_if 0 (i32.eqz (call $go (i32.const 2))))
 *       (global.set $step (i32.const 2))
 *       (return (call $on_response_body ...)))
 *     (local.get $r))
 *
 * An engine that makes such sequences itself (vt->call_seq: w2c, where a
 * plugin is a shared object with no wasm-to-wasm links) gets the same
 * plan, the same arguments and the same "go" rule, and no module is made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

typedef struct {
    const char *export;
    uint8_t nparams;              /* of the batch function */
    uint8_t cond;                 /* each step but the first asks "go" */
    uint8_t len;                  /* callbacks in cbs */
    pw__cb_t cbs[PW__BATCH_LEN];
    uint8_t map[PW__BATCH_LEN][3]; /* each callback's arguments: params */
    uint8_t when;                 /* PW__SEQ_*: when the sequence is made */
} pw__batch_seq_t;

#define PW__SEQ_LAZY   1          /* only for a lazy create (PX_LAZY_...) */
#define PW__SEQ_QUIET  2          /* only for a quiet on_delete, which no
                                     sequence without this flag holds */
#define PW__SEQ_WHOLE  4          /* all its callbacks, or not made */

/* each sequence, and each callback's arguments, fit vt->seq_prepare */
_Static_assert(PW__BATCH_LEN <= PW_ECALL_SEQ_MAX, "PW_ECALL_SEQ_MAX");
_Static_assert(sizeof(((pw__batch_seq_t *) 0)->map[0]) <= PW_ECALL_ARGS_MAX,
               "PW_ECALL_ARGS_MAX");

static const pw__batch_seq_t pw__batch_seqs[PW__BATCH_MAX] = {
    [PW__BATCH_OPEN_HTTP] = {
        "open_http", 4, 0, 2,
        { PW__CB_ON_CONTEXT_CREATE, PW__CB_ON_REQUEST_HEADERS },
        { { 0, 1 }, { 0, 2, 3 } } },
    [PW__BATCH_OPEN_TCP] = {
        "open_tcp", 2, 0, 2,
        { PW__CB_ON_CONTEXT_CREATE, PW__CB_ON_NEW_CONNECTION },
        { { 0, 1 }, { 0 } } },
    [PW__BATCH_CLOSE] = {
        "close", 1, 0, 3,
        { PW__CB_ON_DONE, PW__CB_ON_LOG, PW__CB_ON_DELETE },
        { { 0 }, { 0 }, { 0 } } },
    [PW__BATCH_RESP_HTTP] = {
        "resp_http", 5, 1, 2,
        { PW__CB_ON_RESPONSE_HEADERS, PW__CB_ON_RESPONSE_BODY },
        { { 0, 1, 2 }, { 0, 3, 4 } }, PW__SEQ_WHOLE },
    [PW__BATCH_OPEN_RESP] = {
        "open_resp", 4, 0, 2,
        { PW__CB_ON_CONTEXT_CREATE, PW__CB_ON_RESPONSE_HEADERS },
        { { 0, 1 }, { 0, 2, 3 } }, PW__SEQ_LAZY },
    [PW__BATCH_DELETES] = {
        "deletes", PW__BATCH_LEN, 0, PW__BATCH_LEN,
        { PW__CB_ON_DELETE, PW__CB_ON_DELETE, PW__CB_ON_DELETE,
          PW__CB_ON_DELETE, PW__CB_ON_DELETE, PW__CB_ON_DELETE,
          PW__CB_ON_DELETE, PW__CB_ON_DELETE },
        { { 0 }, { 1 }, { 2 }, { 3 }, { 4 }, { 5 }, { 6 }, { 7 } },
        PW__SEQ_QUIET | PW__SEQ_WHOLE },
    /* the oldest deferred on_delete rides on the next stream's opening */
    [PW__BATCH_OPEN_HTTP_D] = {
        "open_http_d", 5, 0, 3,
        { PW__CB_ON_DELETE, PW__CB_ON_CONTEXT_CREATE,
          PW__CB_ON_REQUEST_HEADERS },
        { { 0 }, { 1, 2 }, { 1, 3, 4 } }, PW__SEQ_QUIET | PW__SEQ_WHOLE },
    [PW__BATCH_OPEN_RESP_D] = {
        "open_resp_d", 5, 0, 3,
        { PW__CB_ON_DELETE, PW__CB_ON_CONTEXT_CREATE,
          PW__CB_ON_RESPONSE_HEADERS },
        { { 0 }, { 1, 2 }, { 1, 3, 4 } },
        PW__SEQ_LAZY | PW__SEQ_QUIET | PW__SEQ_WHOLE },
};
_Static_assert(PW__BATCH_LEN == 8, "the deletes sequence lists 8");

/* Whether a conditional sequence goes on to its step (from 1) `step`. */
static int
pw__batch_may_go(pw_vm_t *vm, uint32_t step)
{
    int go;

    go = !vm->failed && vm->batch_go != NULL
         && vm->batch_go(vm->batch_go_data);
    if (go) {
        vm->batch_at = step;
    }
    return go;
}

/* The "go" import of conditional sequences (PW_IMPORT_FAST). */
static int
pw__batch_go(void *fn_data, pw_einstance_t *inst, const pw_val_t *args,
    pw_val_t *results, const char **trap_msg)
{
    (void) inst;
    (void) trap_msg;
    results[0].of.i32 = pw__batch_may_go(fn_data, (uint32_t) args[0].of.i32);
    return PW_OK;
}

/* The same for vt->call_seq: on only after a CONTINUE (0), as above. */
static int
pw__batch_seq_go(void *data, unsigned next, uint32_t result)
{
    return result == 0 && pw__batch_may_go(data, next + 1);
}

/* Whether any sequence made is conditional (the module imports "go"). */
static int
pw__batch_has_cond(const pw_vm_t *vm)
{
    int k;

    for (k = 0; k < PW__BATCH_MAX; k++) {
        if (vm->batch_n[k] && pw__batch_seqs[k].cond) {
            return 1;
        }
    }
    return 0;
}

/* The plugin's real signature of callback cb (it exports it). */
static const char *
pw__batch_sig(pw_vm_t *vm, pw__cb_t cb)
{
    const pw_wasm_export_t *exp;

    exp = pw_wasm_find_export(vm->mod->info, pw__cbs[cb].name);
    return exp ? exp->sig : NULL;
}

static int
pw__batch_nres(const char *sig)
{
    return (int) strlen(strchr(sig, ':') + 1);
}

/* Which callbacks of each sequence the plugin has; 0 when under two. */
static int
pw__batch_plan(pw_vm_t *vm)
{
    const pw__batch_seq_t *q;
    const char *sig;
    int k, j, n, made = 0;

    for (k = 0; k < PW__BATCH_MAX; k++) {
        q = &pw__batch_seqs[k];
        n = 0;
        if (((q->when & PW__SEQ_LAZY) && !vm->lazy_create)
            || ((q->when & PW__SEQ_QUIET) && !vm->quiet_delete))
        {
            vm->batch_n[k] = 0;             /* never called */
            continue;
        }
        for (j = 0; j < q->len; j++) {
            if (vm->cb[q->cbs[j]] == NULL
                || (q->cbs[j] == PW__CB_ON_DELETE && vm->quiet_delete
                    && !(q->when & PW__SEQ_QUIET)))
            {
                continue;               /* none, or deferred */
            }
            sig = pw__batch_sig(vm, q->cbs[j]);
            /* every argument from the map, and all of them i32 */
            if (sig == NULL
                || (strcmp(strchr(sig, ':'), ":") != 0
                    && strcmp(strchr(sig, ':'), ":i") != 0)
                || vm->cb_nparams[q->cbs[j]] > 3
                || (vm->cb_nparams[q->cbs[j]] > 1
                    && q->map[j][vm->cb_nparams[q->cbs[j]] - 1] == 0)
                || strspn(sig, "i") != vm->cb_nparams[q->cbs[j]])
            {
                n = 0;
                break;
            }
            if (q->cond && strcmp(strchr(sig, ':'), ":i") != 0) {
                n = 0;
                break;
            }
            vm->batch_cbs[k][n++] = q->cbs[j];
            vm->batch_map[k][n - 1] = (uint8_t) j;
        }
        if ((q->when & PW__SEQ_WHOLE) && n != j) {
            n = 0;                      /* all of them, or one by one */
        }
        vm->batch_n[k] = n >= 2 ? (uint8_t) n : 0;
        made += vm->batch_n[k] != 0;
    }
    return made;
}

/* Import index of cb in imps[0..nimps), or nimps when it is not there. */
static uint32_t
pw__batch_import(const pw__cb_t *imps, uint32_t nimps, pw__cb_t cb)
{
    uint32_t i;

    for (i = 0; i < nimps && imps[i] != cb; i++) {
        /* void */
    }
    return i;
}

static void
pw__batch_body(pw_vm_t *vm, pw__wbuf_t *sec, pw__wbuf_t *body, int k,
    const pw__cb_t *imps, uint32_t nimps)
{
    const pw__batch_seq_t *q = &pw__batch_seqs[k];
    const char *sig;
    pw__cb_t cb;
    uint32_t a, np, r;
    int j, last;

    r = q->nparams;                             /* $r, of cond sequences */
    body->len = 0;
    if (q->cond) {
        pw__wb_bytes(body, "\x01\x01\x7f", 3);  /* one local i32 */
        pw__wb_bytes(body, "\x02\x40", 2);       /* block */
    } else {
        pw__wb_byte(body, 0x00);                /* no locals */
    }
    for (j = 0; j < vm->batch_n[k]; j++) {
        cb = vm->batch_cbs[k][j];
        last = j == vm->batch_n[k] - 1;
        pw__wb_op(body, 0x41, (uint32_t) j + 1); /* step = j + 1 */
        pw__wb_op(body, 0x24, 0);
        np = vm->cb_nparams[cb];
        for (a = 0; a < np; a++) {
            pw__wb_op(body, 0x20, q->map[vm->batch_map[k][j]][a]);
        }
        pw__wb_op(body, 0x10, pw__batch_import(imps, nimps, cb));
        sig = pw__batch_sig(vm, cb);
        if (last) {
            if (q->cond) {
                pw__wb_byte(body, 0x0f);        /* return */
            }
        } else if (q->cond) {
            pw__wb_op(body, 0x21, r);           /* local.set $r */
            pw__wb_op(body, 0x20, r);
            pw__wb_op(body, 0x0d, 0);           /* br_if 0 */
            pw__wb_op(body, 0x41, (uint32_t) j + 2);
            pw__wb_op(body, 0x10, nimps);       /* call $go */
            pw__wb_byte(body, 0x45);            /* i32.eqz */
            pw__wb_op(body, 0x0d, 0);
        } else if (pw__batch_nres(sig) == 1) {
            pw__wb_byte(body, 0x1a);            /* drop */
        }
    }
    if (q->cond) {
        pw__wb_byte(body, 0x0b);                /* end of block */
        pw__wb_op(body, 0x20, r);
    }
    pw__wb_byte(body, 0x0b);
    sec->oom |= body->oom;
    pw__wb_u32(sec, (uint32_t) body->len);
    pw__wb_bytes(sec, body->p, body->len);
}

/* The batch function's signature: its params, the last callback's result */
static void
pw__batch_type(pw_vm_t *vm, int k, char *sig)
{
    const char *last;
    int n;

    n = pw__batch_seqs[k].nparams;
    memset(sig, PW_I32, (size_t) n);
    sig[n] = ':';
    last = pw__batch_sig(vm, vm->batch_cbs[k][vm->batch_n[k] - 1]);
    strcpy(sig + n + 1, strchr(last, ':') + 1);
}

static int
pw__batch_build(pw_vm_t *vm, pw__cb_t *imps, uint32_t *nimps, uint8_t **out,
    size_t *len)
{
    pw__wbuf_t w = { 0 }, sec = { 0 }, body = { 0 };
    char sig[PW_SIG_MAX + 2];
    uint32_t i, np, nfn, fi, go, nty;
    int k, j, rc = PW_OK;

    *nimps = 0;
    nfn = 0;
    for (k = 0; k < PW__BATCH_MAX; k++) {
        for (j = 0; j < vm->batch_n[k]; j++) {
            if (pw__batch_import(imps, *nimps, vm->batch_cbs[k][j])
                == *nimps)
            {
                imps[(*nimps)++] = vm->batch_cbs[k][j];
            }
        }
        nfn += vm->batch_n[k] != 0;
    }
    go = (uint32_t) pw__batch_has_cond(vm);     /* "go" is import nimps */

    pw__wb_bytes(&w, pw__wasm_head, sizeof(pw__wasm_head));

    /* types: 0 step, 1.. the imports', go's, then the batch functions' */
    nty = 1 + *nimps + go;
    pw__wb_u32(&sec, nty + nfn);
    rc = pw__wb_functype(&sec, ":i", &np);
    for (i = 0; i < *nimps && rc == PW_OK; i++) {
        rc = pw__wb_functype(&sec, pw__batch_sig(vm, imps[i]), &np);
    }
    if (go && rc == PW_OK) {
        rc = pw__wb_functype(&sec, "i:i", &np);
    }
    for (k = 0; k < PW__BATCH_MAX && rc == PW_OK; k++) {
        if (vm->batch_n[k]) {
            pw__batch_type(vm, k, sig);
            rc = pw__wb_functype(&sec, sig, &np);
        }
    }
    pw__wb_section(&w, 1, &sec);

    pw__wb_u32(&sec, *nimps + go);              /* imports */
    for (i = 0; i < *nimps; i++) {
        pw__wb_name(&sec, "p");
        pw__wb_name(&sec, pw__cbs[imps[i]].name);
        pw__wb_op(&sec, 0x00, 1 + i);
    }
    if (go) {
        pw__wb_name(&sec, "h");
        pw__wb_name(&sec, "go");
        pw__wb_op(&sec, 0x00, 1 + *nimps);
    }
    pw__wb_section(&w, 2, &sec);

    pw__wb_u32(&sec, nfn + 1);                  /* functions */
    for (i = 0; i < nfn; i++) {
        pw__wb_u32(&sec, nty + i);
    }
    pw__wb_u32(&sec, 0);
    pw__wb_section(&w, 3, &sec);

    pw__wb_bytes(&sec, "\x01\x7f\x01\x41\x00\x0b", 6); /* mut i32 $step */
    pw__wb_section(&w, 6, &sec);

    pw__wb_u32(&sec, nfn + 1);                  /* exports */
    fi = *nimps + go;
    for (k = 0; k < PW__BATCH_MAX; k++) {
        if (vm->batch_n[k]) {
            pw__wb_name(&sec, pw__batch_seqs[k].export);
            pw__wb_op(&sec, 0x00, fi++);
        }
    }
    pw__wb_name(&sec, "step");
    pw__wb_op(&sec, 0x00, fi);
    pw__wb_section(&w, 7, &sec);

    pw__wb_u32(&sec, nfn + 1);                  /* code */
    for (k = 0; k < PW__BATCH_MAX; k++) {
        if (vm->batch_n[k]) {
            pw__batch_body(vm, &sec, &body, k, imps, *nimps);
        }
    }
    pw__wb_bytes(&sec, "\x04\x00\x23\x00\x0b", 5); /* global.get $step */
    pw__wb_section(&w, 10, &sec);

    free(body.p);
    if (rc != PW_OK) {
        free(sec.p);
        free(w.p);
        return rc;
    }
    return pw__wb_done(&w, &sec, out, len);
}

void
pw__batch_free(pw_vm_t *vm)
{
    if (vm->batch_inst) {
        vm->vt->instance_free(vm->batch_inst);
    }
    if (vm->batch_mod) {
        vm->vt->module_free(vm->batch_mod);
    }
    vm->batch_inst = NULL;
    vm->batch_mod = NULL;
    memset(vm->batch, 0, sizeof(vm->batch));
    memset(vm->batch_seq, 0, sizeof(vm->batch_seq));    /* inst's */
    memset(vm->batch_n, 0, sizeof(vm->batch_n));
    vm->batch_step = NULL;
}

/* Each sequence planned, prepared by the engine (or one by one). */
static void
pw__batch_prepare(pw_vm_t *vm)
{
    const pw__batch_seq_t *q;
    pw_ecall_t calls[PW__BATCH_LEN];
    pw__cb_t cb;
    int k, j;

    for (k = 0; k < PW__BATCH_MAX; k++) {
        q = &pw__batch_seqs[k];
        for (j = 0; j < vm->batch_n[k]; j++) {
            cb = vm->batch_cbs[k][j];
            calls[j] = (pw_ecall_t){ vm->cb[cb],
                                     q->map[vm->batch_map[k][j]],
                                     vm->cb_nparams[cb] };
        }
        if (vm->batch_n[k]
            && vm->vt->seq_prepare(vm->inst, calls, vm->batch_n[k],
                                   &vm->batch_seq[k]) != PW_OK)
        {
            vm->batch_seq[k] = NULL;
            vm->batch_n[k] = 0;
        }
    }
}

void
pw__batch_setup(pw_vm_t *vm)
{
    pw__cb_t imps[PW__CB_MAX];
    pw_import_link_t links[PW__CB_MAX];
    pw_import_t imports[PW__CB_MAX + 1];
    char err[PW__ERR_MAX];
    uint8_t *bytes = NULL;
    uint32_t i, nimps;
    size_t len;
    int k, rc;

    if (getenv("PW_NO_BATCH") != NULL || pw__batch_plan(vm) == 0) {
        memset(vm->batch_n, 0, sizeof(vm->batch_n));
        return;
    }
    if (vm->vt->call_seq != NULL) {
        pw__batch_prepare(vm);  /* the engine makes the sequences */
        return;
    }
    rc = pw__batch_build(vm, imps, &nimps, &bytes, &len);
    if (rc == PW_OK) {
        rc = vm->vt->compile(vm->mod->engine, bytes, len, &vm->batch_mod,
                             err, sizeof(err));
        free(bytes);
    }
    if (rc == PW_OK) {
        for (i = 0; i < nimps; i++) {
            links[i] = (pw_import_link_t){ vm->inst, pw__cbs[imps[i]].name };
            imports[i] = (pw_import_t){ "p", pw__cbs[imps[i]].name, NULL,
                                        NULL, &links[i], 0 };
        }
        if (pw__batch_has_cond(vm)) {
            imports[nimps++] = (pw_import_t){ "h", "go", "i:i", pw__batch_go,
                                              vm, PW_IMPORT_FAST };
        }
        rc = vm->vt->instantiate(vm->batch_mod, imports, nimps,
                                 &vm->batch_inst, err, sizeof(err));
    }
    for (k = 0; k < PW__BATCH_MAX && rc == PW_OK; k++) {
        if (vm->batch_n[k]) {
            rc = vm->vt->lookup(vm->batch_inst, pw__batch_seqs[k].export,
                                &vm->batch[k], NULL);
            vm->batch_nres[k] = (uint8_t) pw__batch_nres(
                pw__batch_sig(vm, vm->batch_cbs[k][vm->batch_n[k] - 1]));
        }
    }
    if (rc == PW_OK) {
        rc = vm->vt->lookup(vm->batch_inst, "step", &vm->batch_step, NULL);
    }
    if (rc != PW_OK) {
        /* one by one, as without the batch */
        pw__batch_free(vm);
    }
}

/* Sequence k made by the engine (vt->call_seq), as pw__enter would. */
int
pw__batch_call_seq(pw_vm_t *vm, pw__ctx_t *ctx, pw__batch_kind_t k,
    const uint32_t *args, uint32_t *res)
{
    pw__ctx_t *saved;
    uint32_t r32;
    size_t ran;
    int rc, in_alloc;

    if (vm->failed) {
        return PW_EFAILED;
    }
    saved = pw__enter_begin(vm, ctx, vm->inst);
    r32 = 0;
    ran = 0;
    rc = vm->vt->call_seq(vm->inst, vm->batch_seq[k], args,
                          pw__batch_seqs[k].cond ? pw__batch_seq_go : NULL,
                          vm, &r32, &ran, &vm->trap);
    in_alloc = pw__enter_end(vm, saved);
    if (rc == PW_OK) {
        if (res) {
            *res = r32;
        }
        return PW_OK;
    }
    return pw__call_failed(vm, rc, vm->batch_cbs[k][ran > 0 ? ran - 1 : 0],
                           in_alloc, res);
}

/* Sequence k of the linked batch module (engines with wasm-to-wasm links). */
PW__HOT int
pw__batch_call_linked(pw_vm_t *vm, pw__ctx_t *ctx, pw__batch_kind_t k,
    const uint32_t *args, uint32_t *res)
{
    pw_val_t r;
    uint32_t step;
    int rc, in_alloc;

    rc = pw__enter(vm, ctx, vm->batch_inst, vm->batch[k], args,
                   pw__batch_seqs[k].nparams, vm->batch_nres[k], res,
                   &in_alloc);
    if (rc == PW_OK) {
        return PW_OK;
    }
    /* which callback it was in */
    step = 1;
    r.kind = PW_I32;
    if (vm->vt->call(vm->batch_inst, vm->batch_step, NULL, 0, &r, 1, NULL)
        == PW_OK && r.of.i32 >= 1 && r.of.i32 <= vm->batch_n[k])
    {
        step = (uint32_t) r.of.i32;
    }
    return pw__call_failed(vm, rc, vm->batch_cbs[k][step - 1], in_alloc,
                           res);
}
