/*
 * The Proxy-Wasm host functions and the one table that drives their
 * registration, ABI version gating and docs/ABI_SUPPORT.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hostcall.h"

#define V01 PW_ABI_0_1_0
#define V02 (PW_ABI_0_2_0 | PW_ABI_0_2_1)
#define VALL PW_ABI_ALL

#define PW__MAX_PATH_SEGMENTS 32

/* ---- guest memory ---- */

int
pw__hc_mem(pw__hc_t *hc)
{
    /* no instance yet: a shimmed call from the plugin's start section */
    if (hc->inst == NULL
        || hc->vm->vt->memory(hc->inst, &hc->base, &hc->size) != PW_OK)
    {
        hc->base = NULL;
        hc->size = 0;
        return PW_ENOTFOUND;
    }
    return PW_OK;
}

/* The statuses for library codes, at the hostcall boundary only. */
static int
pw__status(int rc)
{
    switch (rc) {
    case PW_OK: return PW_STATUS_OK;
    case PW_ENOTFOUND: return PW_STATUS_NOT_FOUND;
    case PW_EINVAL:
    case PW_ELIMIT:
    case PW_EMALFORMED: return PW_STATUS_BAD_ARGUMENT;
    case PW_EBOUNDS: return PW_STATUS_INVALID_MEMORY_ACCESS;
    case PW_EEMPTY: return PW_STATUS_EMPTY;
    case PW_ECAS: return PW_STATUS_CAS_MISMATCH;
    case PW_EUNIMPLEMENTED: return PW_STATUS_UNIMPLEMENTED;
    case PW_EFAILED: return PW__HC_TRAP;
    default: return PW_STATUS_INTERNAL_FAILURE;
    }
}

#define PW__STACK_COPY 256
#define PW__STASH_KEEP (64 * 1024)   /* larger stashes are freed after use */

/* Write the (ptr, size) outs, then the post out (cas) if any. */
static int
pw__hc_outs(pw__hc_t *hc, uint32_t ptr_out, uint32_t gptr, uint32_t size_out,
    uint32_t len, int post, uint32_t post_ptr, uint32_t post_val)
{
    if (pw__hc_put_u32(hc, ptr_out, gptr) != PW_OK
        || pw__hc_put_u32(hc, size_out, len) != PW_OK
        || (post && pw__hc_put_u32(hc, post_ptr, post_val) != PW_OK))
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    return PW_STATUS_OK;
}

/* Stash len bytes for phase 2 of a shimmed call (see pw__pending_t). */
static int
pw__hc_defer(pw__hc_t *hc, const void *data, size_t len, uint32_t ptr_out,
    uint32_t size_out, int stable)
{
    pw__pending_t *pd = &hc->vm->pending;
    uint8_t *nb;

    if (!stable) {
        if (pd->cap < len) {
            nb = realloc(pd->buf, len);
            if (nb == NULL) {
                return PW_STATUS_INTERNAL_FAILURE;
            }
            pd->buf = nb;
            pd->cap = len;
        }
        memcpy(pd->buf, data, len);
        data = pd->buf;
    }
    pd->data = data;
    pd->len = (uint32_t) len;
    pd->ptr_out = ptr_out;
    pd->size_out = size_out;
    pd->has_post = hc->post;
    pd->post_ptr = hc->post_ptr;
    pd->post_val = hc->post_val;
    pd->depth = hc->vm->depth;
    pd->active = 1;
    return PW__HC_DEFER;
}

/*
 * Give len host bytes to the plugin in memory from its allocator and write
 * (ptr, size) out, then the post out if hc->post. stable: data stays valid
 * and unchanged until the hostcall returns (configurations, the host's
 * buffers), so it need not be copied; else it is copied before the plugin
 * runs (its allocator may change what data points to). data must not
 * point into guest memory.
 */
static int
pw__hc_give(pw__hc_t *hc, const void *data, size_t len, uint32_t ptr_out,
    uint32_t size_out, int stable)
{
    uint8_t stack[PW__STACK_COPY], *copy = NULL, *p;
    uint32_t gptr = 0;
    int rc, st;

    if (len > UINT32_MAX) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    /* check the out pointers first: no allocation to leak if they are bad */
    if (pw__hc_span(hc, ptr_out, 4, &p) != PW_OK
        || pw__hc_span(hc, size_out, 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (len == 0) {
        return pw__hc_outs(hc, ptr_out, 0, size_out, 0, hc->post,
                           hc->post_ptr, hc->post_val);
    }
    /* the shim passes sizes as negative i32 */
    if (hc->defer && len <= INT32_MAX) {
        return pw__hc_defer(hc, data, len, ptr_out, size_out, stable);
    }
    if (hc->fast) {
        /* the fast path must not call the guest; > 2 GiB fails anyway */
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (!stable) {
        copy = len <= sizeof(stack) ? stack : malloc(len);
        if (copy == NULL) {
            return PW_STATUS_INTERNAL_FAILURE;
        }
        memcpy(copy, data, len);
        data = copy;
    }
    rc = pw__guest_alloc(hc->vm, (uint32_t) len, &gptr);
    if (rc == PW_EFAILED) {
        hc->trap = "plugin failed while allocating memory";
        st = PW__HC_TRAP;
        goto done;
    }
    pw__hc_mem(hc);
    if (rc != PW_OK || pw__hc_span(hc, gptr, (uint32_t) len, &p) != PW_OK) {
        st = PW_STATUS_INVALID_MEMORY_ACCESS;
        goto done;
    }
    memcpy(p, data, len);
    st = pw__hc_outs(hc, ptr_out, gptr, size_out, (uint32_t) len, hc->post,
                     hc->post_ptr, hc->post_val);
done:
    if (copy != stack) {
        free(copy);
    }
    return st;
}

static void
pw__free_copy(uint8_t *p, uint8_t *stack)
{
    if (p != stack) {
        free(p);
    }
}

/* Copy host bytes into fresh guest memory and write (ptr, size) out. */
static int
pw__hc_return(pw__hc_t *hc, const void *data, size_t len, uint32_t ptr_out,
    uint32_t size_out)
{
    return pw__hc_give(hc, data, len, ptr_out, size_out, 0);
}

static int
pw__hc_return_pairs(pw__hc_t *hc, const pw_pairs_t *pairs, uint32_t ptr_out,
    uint32_t size_out)
{
    pw_pairs_t none = { NULL, 0 };
    uint8_t stack[PW__STACK_COPY], *buf;
    size_t size;
    int st;

    if (pairs == NULL) {
        pairs = &none;
    }
    if (pw_pairs_size(pairs, &size) != PW_OK) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    buf = size <= sizeof(stack) ? stack : malloc(size);
    if (buf == NULL) {
        return PW_STATUS_INTERNAL_FAILURE;
    }
    pw_pairs_serialize(pairs, buf);
    st = pw__hc_return(hc, buf, size, ptr_out, size_out);
    if (buf != stack) {
        free(buf);
    }
    return st;
}

int
pw__hc_unimplemented(pw__hc_t *hc)
{
    const pw_hostcall_info_t *h;
    uint64_t bit;
    size_t n;

    bit = 1ull << (hc->index % 64);
    if (!(hc->vm->unimplemented_logged[hc->index / 64 % 2] & bit)) {
        hc->vm->unimplemented_logged[hc->index / 64 % 2] |= bit;
        /* the public view: same order as the table, its own layout */
        h = pw_hostcalls(&n);
        pw__log(hc->vm, PW_LOG_WARN, "%s is not implemented by this host",
                hc->index < n ? h[hc->index].name : "a hostcall");
    }
    return PW_STATUS_UNIMPLEMENTED;
}

#define PW__HOST(hc, fn) ((hc)->vm->host ? (hc)->vm->host->fn : NULL)
#define PW__NEED_HOST(hc, fn)                                               \
    if (PW__HOST(hc, fn) == NULL) {                                         \
        return pw__hc_unimplemented(hc);                                    \
    }

/* ---- logging, time, configuration, contexts ---- */

static int
pw__hc_log(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t level = PW__U32(a[0]), len = PW__U32(a[2]);
    pw_str_t msg;

    if (level > PW_LOG_CRITICAL) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    /* check the whole range the plugin named, then cap what is logged */
    if (pw__hc_str(hc, PW__U32(a[1]), len, &msg) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (msg.len > PW_MAX_LOG_BYTES) {
        msg.len = PW_MAX_LOG_BYTES;
    }
    PW__NEED_HOST(hc, log);
    hc->vm->host->log(&hc->c, (pw_log_level_t) level, msg);
    return PW_STATUS_OK;
}

static int
pw__hc_get_log_level(pw__hc_t *hc, const pw_val_t *a)
{
    pw_log_level_t level = PW_LOG_INFO;

    if (PW__HOST(hc, log_level)) {
        level = hc->vm->host->log_level(&hc->c);
    }
    return pw__status(pw__hc_put_u32(hc, PW__U32(a[0]), level));
}

static uint64_t
pw__clock(pw__hc_t *hc, int monotonic)
{
    struct timespec ts;

    if (PW__HOST(hc, clock_ns)) {
        return hc->vm->host->clock_ns(&hc->c, monotonic);
    }
    clock_gettime(monotonic ? CLOCK_MONOTONIC : CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

uint64_t
pw__hc_clock(pw__hc_t *hc, int monotonic)
{
    return pw__clock(hc, monotonic);
}

static int
pw__hc_get_current_time(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__status(pw__hc_put_u64(hc, PW__U32(a[0]), pw__clock(hc, 0)));
}

static int
pw__hc_set_tick_period(pw__hc_t *hc, const pw_val_t *a)
{
    if (hc->c.plugin == NULL) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    PW__NEED_HOST(hc, set_tick_period);
    return pw__status(hc->vm->host->set_tick_period(&hc->c, PW__U32(a[0])));
}

static int
pw__hc_get_configuration(pw__hc_t *hc, const pw_val_t *a)
{
    pw_plugin_t *p = hc->c.plugin;
    pw_vm_t *vm = hc->vm;

    /* 0.1.0: the VM configuration during on_vm_start, else the plugin's */
    if (vm->in_vm_start || p == NULL) {
        return pw__hc_give(hc, vm->vm_config, vm->vm_config_len,
                           PW__U32(a[0]), PW__U32(a[1]), 1);
    }
    return pw__hc_give(hc, p->config, p->config_len, PW__U32(a[0]),
                       PW__U32(a[1]), 1);
}

static int
pw__hc_done(pw__hc_t *hc, const pw_val_t *a)
{
    pw__ctx_t *ctx = hc->vm->effective;

    if (ctx == NULL || ctx->stream != NULL || !ctx->root->done_pending) {
        return PW_STATUS_NOT_FOUND;
    }
    ctx->root->done_pending = 0;
    return PW_STATUS_OK;
}

static int
pw__hc_set_effective_context(pw__hc_t *hc, const pw_val_t *a)
{
    pw__ctx_t *ctx;

    ctx = pw__ctx_find(hc->vm, PW__U32(a[0]));
    if (ctx == NULL) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    /* pw__call restores the caller's context when the callback returns */
    hc->vm->effective = ctx;
    return PW_STATUS_OK;
}

/* ---- buffers ---- */

/* The bytes of buffer t as the effective context sees them. */
static int
pw__buffer(pw__hc_t *hc, uint32_t t, pw_str_t *out)
{
    pw_vm_t *vm = hc->vm;

    switch (t) {
    case PW_BUFFER_HTTP_REQUEST_BODY:
    case PW_BUFFER_HTTP_RESPONSE_BODY:
    case PW_BUFFER_DOWNSTREAM_DATA:
    case PW_BUFFER_UPSTREAM_DATA:
        if (hc->c.stream == NULL) {
            return PW_ENOTFOUND;
        }
        if (PW__HOST(hc, buffer_get) == NULL) {
            return PW_EUNIMPLEMENTED;
        }
        return vm->host->buffer_get(&hc->c, (pw_buffer_type_t) t, out);
    case PW_BUFFER_HTTP_CALL_RESPONSE_BODY:
    case PW_BUFFER_GRPC_CALL_MESSAGE:
        if (!vm->delivery.active) {
            return PW_ENOTFOUND;
        }
        *out = vm->delivery.body;
        return PW_OK;
    case PW_BUFFER_VM_CONFIGURATION:
        *out = (pw_str_t){ vm->vm_config, vm->vm_config_len };
        return PW_OK;
    case PW_BUFFER_PLUGIN_CONFIGURATION:
        if (hc->c.plugin == NULL) {
            return PW_ENOTFOUND;
        }
        *out = (pw_str_t){ hc->c.plugin->config, hc->c.plugin->config_len };
        return PW_OK;
    case PW_BUFFER_FOREIGN_FUNCTION_ARGUMENTS:
        if (vm->foreign_args.data == NULL) {
            return PW_ENOTFOUND;
        }
        *out = vm->foreign_args;
        return PW_OK;
    default:
        return PW_EINVAL;
    }
}

static int
pw__hc_get_buffer_bytes(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t start = PW__U32(a[1]), max = PW__U32(a[2]);
    pw_str_t b;
    size_t n;
    int rc;

    rc = pw__buffer(hc, PW__U32(a[0]), &b);
    if (rc == PW_EUNIMPLEMENTED) {
        return pw__hc_unimplemented(hc);
    }
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    if (start > b.len) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    n = b.len - start;
    if (n > max) {
        n = max;
    }
    if (n > PW_MAX_BUFFER_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    /* the host's buffer, or one the core holds, lives through the call */
    return pw__hc_give(hc, b.data + start, n, PW__U32(a[3]), PW__U32(a[4]),
                       1);
}

static int
pw__hc_set_buffer_bytes(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t t = PW__U32(a[0]), start = PW__U32(a[1]), size = PW__U32(a[2]);
    pw_str_t cur, val;
    int rc;

    if (t > PW_BUFFER_MAX) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (pw__hc_str(hc, PW__U32(a[3]), PW__U32(a[4]), &val) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (t > PW_BUFFER_UPSTREAM_DATA) {
        /* configurations and callout answers are read-only */
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (hc->c.stream == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    PW__NEED_HOST(hc, buffer_set);
    rc = PW__HOST(hc, buffer_get)
         ? hc->vm->host->buffer_get(&hc->c, (pw_buffer_type_t) t, &cur)
         : PW_ENOTFOUND;
    if (rc != PW_OK) {
        cur.len = 0;
    }
    if (start > cur.len) {
        start = (uint32_t) cur.len;
    }
    if (size > cur.len - start) {
        size = (uint32_t) (cur.len - start);
    }
    if ((uint64_t) cur.len - size + val.len > PW_MAX_BUFFER_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    return pw__status(hc->vm->host->buffer_set(&hc->c, (pw_buffer_type_t) t,
                                               start, size, val));
}

static int
pw__hc_get_buffer_status(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t b;
    int rc;

    rc = pw__buffer(hc, PW__U32(a[0]), &b);
    if (rc == PW_EUNIMPLEMENTED) {
        return pw__hc_unimplemented(hc);
    }
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    if (pw__hc_put_u32(hc, PW__U32(a[1]), (uint32_t) b.len) != PW_OK
        || pw__hc_put_u32(hc, PW__U32(a[2]), 0) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    return PW_STATUS_OK;
}

/* ---- header maps ---- */

static int
pw__is_stream_map(uint32_t t)
{
    return t <= PW_MAP_HTTP_RESPONSE_TRAILERS;
}

/* Pairs of a map the core holds during a callout delivery. */
static int
pw__delivery_map(pw__hc_t *hc, uint32_t t, const pw_pairs_t **out)
{
    pw__delivery_t *d = &hc->vm->delivery;

    if (t > PW_MAP_MAX) {
        return PW_EINVAL;
    }
    if (!d->active) {
        return PW_ENOTFOUND;
    }
    switch (t) {
    case PW_MAP_GRPC_CALL_INITIAL_METADATA:
    case PW_MAP_HTTP_CALL_RESPONSE_HEADERS:
        *out = d->headers;
        break;
    default:
        *out = d->trailers;
    }
    return *out ? PW_OK : PW_ENOTFOUND;
}

/* All pairs of map t; *rc_out has the library code on failure. */
static int
pw__map_pairs(pw__hc_t *hc, uint32_t t, pw_pairs_t *out)
{
    const pw_pairs_t *d;
    int rc;

    if (pw__is_stream_map(t)) {
        if (hc->c.stream == NULL) {
            return PW_ENOTFOUND;
        }
        if (PW__HOST(hc, map_pairs) == NULL) {
            return PW_EUNIMPLEMENTED;
        }
        return hc->vm->host->map_pairs(&hc->c, (pw_map_type_t) t, out);
    }
    rc = pw__delivery_map(hc, t, &d);
    if (rc == PW_OK) {
        *out = *d;
    }
    return rc;
}

static int
pw__hc_get_header_map_pairs(pw__hc_t *hc, const pw_val_t *a)
{
    pw_pairs_t p;
    int rc;

    rc = pw__map_pairs(hc, PW__U32(a[0]), &p);
    if (rc == PW_EUNIMPLEMENTED) {
        return pw__hc_unimplemented(hc);
    }
    if (rc == PW_ENOTFOUND) {
        /* a map that does not exist yet reads as empty, as in Envoy */
        p.pairs = NULL;
        p.n = 0;
    } else if (rc != PW_OK) {
        return pw__status(rc);
    }
    return pw__hc_return_pairs(hc, &p, PW__U32(a[1]), PW__U32(a[2]));
}

static int
pw__hc_get_header_map_size(pw__hc_t *hc, const pw_val_t *a)
{
    pw_pairs_t p;
    size_t size;
    int rc;

    rc = pw__map_pairs(hc, PW__U32(a[0]), &p);
    if (rc == PW_EUNIMPLEMENTED) {
        return pw__hc_unimplemented(hc);
    }
    if (rc == PW_ENOTFOUND) {
        p.pairs = NULL;
        p.n = 0;
    } else if (rc != PW_OK) {
        return pw__status(rc);
    }
    if (pw_pairs_size(&p, &size) != PW_OK) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    return pw__status(pw__hc_put_u32(hc, PW__U32(a[1]), (uint32_t) size));
}

static int
pw__pairs_get(const pw_pairs_t *p, pw_str_t key, pw_str_t *val)
{
    size_t i, j;

    for (i = 0; i < p->n; i++) {
        if (p->pairs[i].key.len != key.len) {
            continue;
        }
        for (j = 0; j < key.len; j++) {
            char x = p->pairs[i].key.data[j], y = key.data[j];
            if (x >= 'A' && x <= 'Z') {
                x = (char) (x - 'A' + 'a');
            }
            if (y >= 'A' && y <= 'Z') {
                y = (char) (y - 'A' + 'a');
            }
            if (x != y) {
                break;
            }
        }
        if (j == key.len) {
            *val = p->pairs[i].value;
            return PW_OK;
        }
    }
    return PW_ENOTFOUND;
}

static int
pw__hc_get_header_map_value(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t t = PW__U32(a[0]);
    const pw_pairs_t *d;
    pw_str_t key, val;
    int rc;

    if (t > PW_MAP_MAX) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (pw__hc_str(hc, PW__U32(a[1]), PW__U32(a[2]), &key) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (pw__is_stream_map(t)) {
        if (hc->c.stream == NULL) {
            rc = PW_ENOTFOUND;
        } else if (PW__HOST(hc, map_get) == NULL) {
            return pw__hc_unimplemented(hc);
        } else {
            rc = hc->vm->host->map_get(&hc->c, (pw_map_type_t) t, key, &val);
        }
    } else {
        rc = pw__delivery_map(hc, t, &d);
        if (rc == PW_OK) {
            rc = pw__pairs_get(d, key, &val);
        }
    }
    if (rc == PW_ENOTFOUND && (hc->vm->mod->abi & PW_ABI_0_1_0)) {
        /* 0.1.0 answered a missing key with OK and an empty value */
        val.data = NULL;
        val.len = 0;
        rc = PW_OK;
    }
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    /* the host's value may live anywhere: pw__hc_return copies it */
    return pw__hc_return(hc, val.data, val.len, PW__U32(a[3]),
                         PW__U32(a[4]));
}

/* Common checks of the map-changing calls; key (and value) decoded. */
static int
pw__map_write_args(pw__hc_t *hc, const pw_val_t *a, int has_value,
    pw_str_t *key, pw_str_t *val)
{
    uint32_t t = PW__U32(a[0]);

    if (t > PW_MAP_MAX) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (pw__hc_str(hc, PW__U32(a[1]), PW__U32(a[2]), key) != PW_OK
        || (has_value
            && pw__hc_str(hc, PW__U32(a[3]), PW__U32(a[4]), val) != PW_OK))
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (!pw__is_stream_map(t)) {
        return PW_STATUS_BAD_ARGUMENT;      /* callout answers: read-only */
    }
    if (hc->c.stream == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    if (key->len > PW_MAX_MAP_BYTES
        || (has_value && val->len > PW_MAX_MAP_BYTES))
    {
        return PW_STATUS_BAD_ARGUMENT;
    }
    return PW_STATUS_OK;
}

PW__HOT static int
pw__hc_add_header_map_value(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t key, val;
    int st;

    st = pw__map_write_args(hc, a, 1, &key, &val);
    if (st != PW_STATUS_OK) {
        return st;
    }
    PW__NEED_HOST(hc, map_add);
    return pw__status(hc->vm->host->map_add(&hc->c,
                                            (pw_map_type_t) PW__U32(a[0]),
                                            key, val));
}

static int
pw__hc_replace_header_map_value(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t key, val;
    int st;

    st = pw__map_write_args(hc, a, 1, &key, &val);
    if (st != PW_STATUS_OK) {
        return st;
    }
    PW__NEED_HOST(hc, map_replace);
    return pw__status(hc->vm->host->map_replace(&hc->c,
                                                (pw_map_type_t) PW__U32(a[0]),
                                                key, val));
}

static int
pw__hc_remove_header_map_value(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t key;
    int st;

    st = pw__map_write_args(hc, a, 0, &key, NULL);
    if (st != PW_STATUS_OK) {
        return st;
    }
    PW__NEED_HOST(hc, map_remove);
    return pw__status(hc->vm->host->map_remove(&hc->c,
                                               (pw_map_type_t) PW__U32(a[0]),
                                               key));
}

/* Decode serialized pairs from guest memory into a host copy. */
static int
pw__hc_pairs(pw__hc_t *hc, uint32_t ptr, uint32_t len, uint8_t **copy,
    pw_pairs_t *out)
{
    pw_str_t s;
    int rc;

    *copy = NULL;
    out->pairs = NULL;
    out->n = 0;
    if (pw__hc_str(hc, ptr, len, &s) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (len > PW_MAX_MAP_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (len == 0) {
        return PW_STATUS_OK;
    }
    *copy = malloc(len);
    if (*copy == NULL) {
        return PW_STATUS_INTERNAL_FAILURE;
    }
    memcpy(*copy, s.data, len);
    rc = pw_pairs_deserialize(*copy, len, out);
    if (rc != PW_OK) {
        free(*copy);
        *copy = NULL;
        return PW_STATUS_BAD_ARGUMENT;
    }
    return PW_STATUS_OK;
}

static void
pw__pairs_release(uint8_t *copy, pw_pairs_t *p)
{
    free((void *) p->pairs);
    free(copy);
}

static int
pw__hc_set_header_map_pairs(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t t = PW__U32(a[0]);
    pw_pairs_t p;
    uint8_t *copy;
    int st;

    if (t > PW_MAP_MAX) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    st = pw__hc_pairs(hc, PW__U32(a[1]), PW__U32(a[2]), &copy, &p);
    if (st != PW_STATUS_OK) {
        return st;
    }
    if (!pw__is_stream_map(t)) {
        st = PW_STATUS_BAD_ARGUMENT;
    } else if (hc->c.stream == NULL) {
        st = PW_STATUS_NOT_FOUND;
    } else if (PW__HOST(hc, map_set_pairs) == NULL) {
        st = pw__hc_unimplemented(hc);
    } else {
        st = pw__status(hc->vm->host->map_set_pairs(&hc->c,
                                                    (pw_map_type_t) t, &p));
    }
    pw__pairs_release(copy, &p);
    return st;
}

/* ---- stream control ---- */

static int
pw__stream_ctl(pw__hc_t *hc, uint32_t t, int close)
{
    int (*fn)(const pw_hctx_t *, pw_stream_type_t);

    if (t > PW_STREAM_UPSTREAM) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    if (hc->c.stream == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    fn = close ? PW__HOST(hc, close_stream) : PW__HOST(hc, continue_stream);
    if (fn == NULL) {
        return pw__hc_unimplemented(hc);
    }
    return pw__status(fn(&hc->c, (pw_stream_type_t) t));
}

static int
pw__hc_continue_stream(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__stream_ctl(hc, PW__U32(a[0]), 0);
}

static int
pw__hc_close_stream(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__stream_ctl(hc, PW__U32(a[0]), 1);
}

static int
pw__hc_continue_request(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__stream_ctl(hc, PW_STREAM_HTTP_REQUEST, 0);
}

static int
pw__hc_continue_response(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__stream_ctl(hc, PW_STREAM_HTTP_RESPONSE, 0);
}

static int
pw__hc_clear_route_cache(pw__hc_t *hc, const pw_val_t *a)
{
    if (hc->c.stream == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    PW__NEED_HOST(hc, clear_route_cache);
    return pw__status(hc->vm->host->clear_route_cache(&hc->c));
}

static int
pw__hc_send_local_response(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t details, body;
    pw_pairs_t headers;
    uint8_t *copy;
    int st;

    if (pw__hc_str(hc, PW__U32(a[1]), PW__U32(a[2]), &details) != PW_OK
        || pw__hc_str(hc, PW__U32(a[3]), PW__U32(a[4]), &body) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (body.len > PW_MAX_BUFFER_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    st = pw__hc_pairs(hc, PW__U32(a[5]), PW__U32(a[6]), &copy, &headers);
    if (st != PW_STATUS_OK) {
        return st;
    }
    if (hc->c.stream == NULL) {
        st = PW_STATUS_NOT_FOUND;
    } else if (PW__HOST(hc, send_local_response) == NULL) {
        st = pw__hc_unimplemented(hc);
    } else {
        st = pw__status(hc->vm->host->send_local_response(
                 &hc->c, PW__U32(a[0]), details, body, &headers,
                 a[7].of.i32));
    }
    pw__pairs_release(copy, &headers);
    return st;
}

static int
pw__hc_get_status(pw__hc_t *hc, const pw_val_t *a)
{
    pw_vm_t *vm = hc->vm;

    if (pw__hc_put_u32(hc, PW__U32(a[0]), vm->status_code) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    /* copied: a nested delivery may replace the message */
    return pw__hc_return(hc, vm->status_msg, vm->status_msg_len,
                         PW__U32(a[1]), PW__U32(a[2]));
}

/* ---- callouts ---- */

static int
pw__has_pseudo(const pw_pairs_t *p, const char *name)
{
    pw_str_t v;

    return pw__pairs_get(p, (pw_str_t){ name, strlen(name) }, &v) == PW_OK
           && v.len > 0;
}

static int
pw__hc_http_call(pw__hc_t *hc, const pw_val_t *a)
{
    pw_pairs_t headers, trailers;
    uint8_t *hcopy = NULL, *tcopy = NULL;
    pw_str_t upstream, body;
    pw__callout_t *co;
    uint8_t *p;
    int st, rc;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &upstream) != PW_OK
        || pw__hc_str(hc, PW__U32(a[4]), PW__U32(a[5]), &body) != PW_OK
        || pw__hc_span(hc, PW__U32(a[9]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    st = pw__hc_pairs(hc, PW__U32(a[2]), PW__U32(a[3]), &hcopy, &headers);
    if (st == PW_STATUS_OK) {
        st = pw__hc_pairs(hc, PW__U32(a[6]), PW__U32(a[7]), &tcopy,
                          &trailers);
    } else {
        trailers.pairs = NULL;
    }
    if (st != PW_STATUS_OK) {
        goto done;
    }
    if (!pw__has_pseudo(&headers, ":method")
        || !pw__has_pseudo(&headers, ":path")
        || !pw__has_pseudo(&headers, ":authority")
        || hc->vm->effective == NULL)
    {
        st = PW_STATUS_BAD_ARGUMENT;
        goto done;
    }
    if (PW__HOST(hc, http_call) == NULL) {
        st = pw__hc_unimplemented(hc);
        goto done;
    }
    co = pw__callout_add(hc->vm, hc->vm->effective, 0);
    if (co == NULL) {
        st = PW_STATUS_INTERNAL_FAILURE;
        goto done;
    }
    rc = hc->vm->host->http_call(&hc->c, co->token, upstream, &headers, body,
                                 &trailers, PW__U32(a[8]));
    if (rc != PW_OK) {
        pw__callout_remove(hc->vm, co);
        st = rc == PW_ENOTFOUND ? PW_STATUS_BAD_ARGUMENT : pw__status(rc);
        goto done;
    }
    st = pw__status(pw__hc_put_u32(hc, PW__U32(a[9]), co->token));

done:
    pw__pairs_release(hcopy, &headers);
    if (tcopy || trailers.pairs) {
        pw__pairs_release(tcopy, &trailers);
    }
    return st;
}

static int
pw__grpc_start(pw__hc_t *hc, const pw_val_t *a, int unary)
{
    pw_str_t upstream, service, method, msg = { NULL, 0 };
    uint32_t token_out;
    pw__callout_t *co;
    pw_pairs_t md;
    uint8_t *copy, *p;
    int st, rc;

    token_out = PW__U32(a[unary ? 11 : 8]);
    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &upstream) != PW_OK
        || pw__hc_str(hc, PW__U32(a[2]), PW__U32(a[3]), &service) != PW_OK
        || pw__hc_str(hc, PW__U32(a[4]), PW__U32(a[5]), &method) != PW_OK
        || (unary
            && pw__hc_str(hc, PW__U32(a[8]), PW__U32(a[9]), &msg) != PW_OK)
        || pw__hc_span(hc, token_out, 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    st = pw__hc_pairs(hc, PW__U32(a[6]), PW__U32(a[7]), &copy, &md);
    if (st != PW_STATUS_OK) {
        return st;
    }
    if (hc->vm->effective == NULL) {
        st = PW_STATUS_BAD_ARGUMENT;
        goto done;
    }
    if ((unary ? (void *) PW__HOST(hc, grpc_call)
               : (void *) PW__HOST(hc, grpc_stream)) == NULL)
    {
        st = pw__hc_unimplemented(hc);
        goto done;
    }
    co = pw__callout_add(hc->vm, hc->vm->effective,
                         unary ? PW__CALLOUT_GRPC_UNARY
                               : PW__CALLOUT_GRPC_STREAM);
    if (co == NULL) {
        st = PW_STATUS_INTERNAL_FAILURE;
        goto done;
    }
    rc = unary ? hc->vm->host->grpc_call(&hc->c, co->token, upstream, service,
                                         method, &md, msg, PW__U32(a[10]))
               : hc->vm->host->grpc_stream(&hc->c, co->token, upstream,
                                           service, method, &md);
    if (rc != PW_OK) {
        pw__callout_remove(hc->vm, co);
        /* an upstream the host cannot parse or find, as Envoy answers */
        st = rc == PW_ENOTFOUND ? PW_STATUS_PARSE_FAILURE : pw__status(rc);
        goto done;
    }
    st = pw__status(pw__hc_put_u32(hc, token_out, co->token));

done:
    pw__pairs_release(copy, &md);
    return st;
}

static int
pw__hc_grpc_call(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__grpc_start(hc, a, 1);
}

static int
pw__hc_grpc_stream(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__grpc_start(hc, a, 0);
}

static pw__callout_t *
pw__grpc_of(pw__hc_t *hc, uint32_t token)
{
    pw__callout_t *co;

    co = pw__callout_find(hc->vm, token);
    if (co == NULL || !co->grpc || hc->c.plugin == NULL
        || co->plugin != hc->c.plugin)
    {
        return NULL;
    }
    return co;
}

static int
pw__hc_grpc_send(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t msg;

    if (pw__hc_str(hc, PW__U32(a[1]), PW__U32(a[2]), &msg) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (pw__grpc_of(hc, PW__U32(a[0])) == NULL) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    PW__NEED_HOST(hc, grpc_send);
    return pw__status(hc->vm->host->grpc_send(&hc->c, PW__U32(a[0]), msg,
                                              PW__U32(a[3]) != 0));
}

static int
pw__hc_grpc_cancel(pw__hc_t *hc, const pw_val_t *a)
{
    pw__callout_t *co;
    int rc;

    co = pw__grpc_of(hc, PW__U32(a[0]));
    if (co == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    PW__NEED_HOST(hc, grpc_cancel);
    rc = hc->vm->host->grpc_cancel(&hc->c, co->token);
    /* a cancelled call delivers nothing more */
    pw__callout_remove(hc->vm, co);
    return pw__status(rc);
}

static int
pw__hc_grpc_close(pw__hc_t *hc, const pw_val_t *a)
{
    pw__callout_t *co;

    co = pw__grpc_of(hc, PW__U32(a[0]));
    if (co == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    PW__NEED_HOST(hc, grpc_close);
    return pw__status(hc->vm->host->grpc_close(&hc->c, co->token));
}

/* ---- shared data and queues ---- */

/* ---- shared data and queues: which store (pw_store_route_t) ---- */

static pw_store_t *
pw__kv_store(pw_vm_t *vm, pw_str_t key)
{
    const pw_store_route_t *r = vm->route;
    size_t i;

    if (r == NULL) {
        return vm->store;
    }
    i = r->kv ? r->kv(r->data, key) : 0;
    return r->stores[i < r->nstores ? i : 0];
}

/* The store of queue id qid, and the id inside it; NULL when the id
 * names no store. */
static pw_store_t *
pw__queue_store_of(pw_vm_t *vm, uint32_t qid, uint32_t *local)
{
    const pw_store_route_t *r = vm->route;
    size_t i;

    if (r == NULL) {
        *local = qid;
        return vm->store;
    }
    i = qid >> PW_QUEUE_STORE_SHIFT;
    *local = qid & ((1u << PW_QUEUE_STORE_SHIFT) - 1);
    return i < r->nstores ? r->stores[i] : NULL;
}

/* The store for queue vm_id/name and its index. */
static pw_store_t *
pw__queue_store_for(pw_vm_t *vm, pw_str_t vm_id, pw_str_t name, size_t *idx)
{
    const pw_store_route_t *r = vm->route;

    if (r == NULL) {
        *idx = 0;
        return vm->store;
    }
    *idx = r->queue ? r->queue(r->data, vm_id, name) : 0;
    if (*idx >= r->nstores) {
        *idx = 0;
    }
    return r->stores[*idx];
}

/* A queue id inside a store, as the plugin sees it. */
static int
pw__queue_id(size_t idx, uint32_t local, uint32_t *qid)
{
    if (local >> PW_QUEUE_STORE_SHIFT) {
        return PW_ELIMIT;
    }
    *qid = ((uint32_t) idx << PW_QUEUE_STORE_SHIFT) | local;
    return PW_OK;
}

/* Statuses that say the plugin asked something wrong of the host (not
 * NOT_FOUND, EMPTY or CAS_MISMATCH, which are answers). */
static int
pw__status_is_error(int32_t st)
{
    switch (st) {
    case PW_STATUS_BAD_ARGUMENT:
    case PW_STATUS_PARSE_FAILURE:
    case PW_STATUS_INVALID_MEMORY_ACCESS:
    case PW_STATUS_INTERNAL_FAILURE:
    case PW_STATUS_UNIMPLEMENTED:
        return 1;
    default:
        return 0;
    }
}

static int
pw__hc_get_shared_data(pw__hc_t *hc, const pw_val_t *a)
{
    uint8_t *val = NULL, *p;
    pw_str_t key;
    size_t vlen;
    uint32_t cas;
    int rc, st;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &key) != PW_OK
        || pw__hc_span(hc, PW__U32(a[4]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (key.len > PW_MAX_KEY_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    rc = pw_kv_get(pw__kv_store(hc->vm, key), key.data, key.len, &val,
                   &vlen, &cas);
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    /* cas is written last, once the value is out */
    hc->post = 1;
    hc->post_ptr = PW__U32(a[4]);
    hc->post_val = cas;
    st = pw__hc_return(hc, val, vlen, PW__U32(a[2]), PW__U32(a[3]));
    free(val);
    return st;
}

static int
pw__hc_set_shared_data(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t key, val;
    int rc;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &key) != PW_OK
        || pw__hc_str(hc, PW__U32(a[2]), PW__U32(a[3]), &val) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (key.len == 0 || key.len > PW_MAX_KEY_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    rc = pw_kv_set(pw__kv_store(hc->vm, key), key.data, key.len, val.data,
                   val.len, PW__U32(a[4]));
    return pw__status(rc);
}

static int
pw__hc_register_shared_queue(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t name, vm_id;
    pw_store_t *st;
    uint64_t owner;
    uint32_t qid;
    uint8_t *p;
    size_t idx;
    int rc;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &name) != PW_OK
        || pw__hc_span(hc, PW__U32(a[2]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (hc->c.plugin == NULL || name.len > PW_MAX_KEY_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    vm_id = (pw_str_t){ hc->vm->vm_id, hc->vm->vm_id_len };
    st = pw__queue_store_for(hc->vm, vm_id, name, &idx);
    /* on_queue_ready goes to the root context that registered the queue */
    owner = (hc->vm->route && hc->vm->route->owner)
            ? hc->vm->route->owner(hc->vm->route->data, &hc->c)
            : (uint64_t) (uintptr_t) hc->c.plugin;
    rc = pw_queue_register(st, vm_id, name, owner, &qid);
    if (rc == PW_OK) {
        rc = pw__queue_id(idx, qid, &qid);
    }
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    return pw__status(pw__hc_put_u32(hc, PW__U32(a[2]), qid));
}

static int
pw__hc_resolve_shared_queue(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t vm_id, name;
    uint32_t qid;
    uint8_t *p;
    size_t idx;
    int rc;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &vm_id) != PW_OK
        || pw__hc_str(hc, PW__U32(a[2]), PW__U32(a[3]), &name) != PW_OK
        || pw__hc_span(hc, PW__U32(a[4]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (vm_id.len > PW_MAX_KEY_BYTES || name.len > PW_MAX_KEY_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    rc = pw_queue_resolve(pw__queue_store_for(hc->vm, vm_id, name, &idx),
                          vm_id, name, &qid);
    if (rc == PW_OK) {
        rc = pw__queue_id(idx, qid, &qid);
    }
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    return pw__status(pw__hc_put_u32(hc, PW__U32(a[4]), qid));
}

static int
pw__hc_enqueue_shared_queue(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t val;
    pw_store_t *st;
    uint32_t local;

    if (pw__hc_str(hc, PW__U32(a[1]), PW__U32(a[2]), &val) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    st = pw__queue_store_of(hc->vm, PW__U32(a[0]), &local);
    if (st == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    return pw__status(pw_queue_enqueue(st, local, val.data, val.len));
}

static int
pw__hc_dequeue_shared_queue(pw__hc_t *hc, const pw_val_t *a)
{
    uint8_t *val = NULL, *p;
    pw_store_t *qs;
    uint32_t local;
    size_t len;
    int rc, st;

    /* a refused call must not take the item out of the queue */
    if (pw__hc_span(hc, PW__U32(a[1]), 4, &p) != PW_OK
        || pw__hc_span(hc, PW__U32(a[2]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    qs = pw__queue_store_of(hc->vm, PW__U32(a[0]), &local);
    if (qs == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    rc = pw_queue_dequeue(qs, local, &val, &len);
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    st = pw__hc_return(hc, val, len, PW__U32(a[1]), PW__U32(a[2]));
    free(val);
    return st;
}

/* ---- metrics ---- */

static int
pw__hc_define_metric(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t name;
    uint32_t id;
    uint8_t *p;
    int rc;

    if (pw__hc_str(hc, PW__U32(a[1]), PW__U32(a[2]), &name) != PW_OK
        || pw__hc_span(hc, PW__U32(a[3]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (PW__U32(a[0]) > PW_METRIC_HISTOGRAM || name.len == 0
        || name.len > PW_MAX_KEY_BYTES)
    {
        return PW_STATUS_BAD_ARGUMENT;
    }
    rc = pw_metric_define(hc->vm->store, (pw_metric_type_t) PW__U32(a[0]),
                          name, &id);
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    return pw__status(pw__hc_put_u32(hc, PW__U32(a[3]), id));
}

static int
pw__hc_record_metric(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__status(pw_metric_record(hc->vm->store, PW__U32(a[0]),
                                       a[1].of.i64));
}

static int
pw__hc_increment_metric(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__status(pw_metric_increment(hc->vm->store, PW__U32(a[0]),
                                          a[1].of.i64));
}

static int
pw__hc_get_metric(pw__hc_t *hc, const pw_val_t *a)
{
    int64_t v;
    uint8_t *p;
    int rc;

    if (pw__hc_span(hc, PW__U32(a[1]), 8, &p) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    rc = pw_metric_get(hc->vm->store, PW__U32(a[0]), &v);
    if (rc != PW_OK) {
        return pw__status(rc);
    }
    return pw__status(pw__hc_put_u64(hc, PW__U32(a[1]), (uint64_t) v));
}

/* ---- properties ---- */

/* Split a NUL-separated path; one trailing NUL (C++ SDK) is allowed. */
static int
pw__split_path(pw_str_t path, pw_str_t *seg, size_t *nseg)
{
    size_t i, start = 0, n = 0;

    if (path.len && path.data[path.len - 1] == '\0') {
        path.len--;
    }
    if (path.len == 0) {
        return PW_EINVAL;
    }
    for (i = 0; i <= path.len; i++) {
        if (i == path.len || path.data[i] == '\0') {
            if (n == PW__MAX_PATH_SEGMENTS) {
                return PW_ELIMIT;
            }
            seg[n].data = path.data + start;
            seg[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    *nseg = n;
    return PW_OK;
}

static int
pw__seg_is(pw_str_t s, const char *name)
{
    return s.len == strlen(name) && memcmp(s.data, name, s.len) == 0;
}

static int
pw__hc_get_property(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t path, seg[PW__MAX_PATH_SEGMENTS], val;
    pw_plugin_t *p = hc->c.plugin;
    uint8_t stack[PW__STACK_COPY], *pathcopy;
    size_t n;
    int rc, st;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &path) != PW_OK) {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (path.len > PW_MAX_PROPERTY_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    /* the path lives in guest memory; copy it before anything else */
    pathcopy = path.len <= sizeof(stack) ? stack : malloc(path.len);
    if (pathcopy == NULL) {
        return PW_STATUS_INTERNAL_FAILURE;
    }
    memcpy(pathcopy, path.data, path.len);
    path.data = (const char *) pathcopy;

    rc = pw__split_path(path, seg, &n);
    if (rc != PW_OK) {
        pw__free_copy(pathcopy, stack);
        return rc == PW_ELIMIT ? PW_STATUS_BAD_ARGUMENT
                               : PW_STATUS_NOT_FOUND;
    }
    if (n == 1 && p && pw__seg_is(seg[0], "plugin_name")) {
        val = (pw_str_t){ p->name, p->name_len };
    } else if (n == 1 && p && pw__seg_is(seg[0], "plugin_root_id")) {
        val = (pw_str_t){ p->root_id, p->root_id_len };
    } else if (n == 1 && pw__seg_is(seg[0], "plugin_vm_id")) {
        val = (pw_str_t){ hc->vm->vm_id, hc->vm->vm_id_len };
    } else if (PW__HOST(hc, get_property) == NULL) {
        pw__free_copy(pathcopy, stack);
        return PW_STATUS_NOT_FOUND;
    } else {
        rc = hc->vm->host->get_property(&hc->c, seg, n, &val);
        if (rc == PW_OK && val.len > PW_MAX_PROPERTY_BYTES) {
            rc = PW_ELIMIT;
        }
        if (rc != PW_OK) {
            pw__free_copy(pathcopy, stack);
            return rc == PW_ELIMIT ? PW_STATUS_SERIALIZATION_FAILURE
                                   : pw__status(rc);
        }
    }
    st = pw__hc_return(hc, val.data, val.len, PW__U32(a[2]), PW__U32(a[3]));
    pw__free_copy(pathcopy, stack);
    return st;
}

static int
pw__hc_set_property(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t path, seg[PW__MAX_PATH_SEGMENTS], val;
    size_t n;
    int rc;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &path) != PW_OK
        || pw__hc_str(hc, PW__U32(a[2]), PW__U32(a[3]), &val) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    if (path.len > PW_MAX_PROPERTY_BYTES || val.len > PW_MAX_PROPERTY_BYTES) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    rc = pw__split_path(path, seg, &n);
    if (rc != PW_OK) {
        return PW_STATUS_BAD_ARGUMENT;
    }
    PW__NEED_HOST(hc, set_property);
    return pw__status(hc->vm->host->set_property(&hc->c, seg, n, val));
}

/* ---- foreign functions ---- */

static int
pw__hc_call_foreign_function(pw__hc_t *hc, const pw_val_t *a)
{
    pw_str_t name, args;
    pw__foreign_t *f;
    uint8_t *res = NULL, *acopy, *p;
    size_t rlen = 0;
    int rc, st;

    if (pw__hc_str(hc, PW__U32(a[0]), PW__U32(a[1]), &name) != PW_OK
        || pw__hc_str(hc, PW__U32(a[2]), PW__U32(a[3]), &args) != PW_OK
        || pw__hc_span(hc, PW__U32(a[4]), 4, &p) != PW_OK
        || pw__hc_span(hc, PW__U32(a[5]), 4, &p) != PW_OK)
    {
        return PW_STATUS_INVALID_MEMORY_ACCESS;
    }
    for (f = hc->vm->foreign; f; f = f->next) {
        if (f->len == name.len && memcmp(f->name, name.data, name.len) == 0) {
            break;
        }
    }
    if (f == NULL) {
        return PW_STATUS_NOT_FOUND;
    }
    acopy = malloc(args.len ? args.len : 1);
    if (acopy == NULL) {
        return PW_STATUS_INTERNAL_FAILURE;
    }
    memcpy(acopy, args.data, args.len);
    rc = f->fn(f->data, &hc->c, (pw_str_t){ (char *) acopy, args.len }, &res,
               &rlen);
    free(acopy);
    if (rc != PW_OK) {
        free(res);
        return pw__status(rc);
    }
    st = pw__hc_return(hc, res, rlen, PW__U32(a[4]), PW__U32(a[5]));
    free(res);
    return st;
}

/* ---- emscripten runtime imports ---- */

static int
pw__hc_emscripten_notify_memory_growth(pw__hc_t *hc, const pw_val_t *a)
{
    return PW_STATUS_OK;
}

static int
pw__hc_pthread_equal(pw__hc_t *hc, const pw_val_t *a)
{
    return a[0].of.i32 == a[1].of.i32;
}

/* ---- the table ---- */

#define ENV(name, sig, abi, fn, note) { "env", name, sig, abi, fn, note, 0 }
/* returns bytes through the plugin's allocator: linked through the shim */
#define ENVB(name, sig, abi, fn, note) { "env", name, sig, abi, fn, note, 1 }
/* the same, never on the fast path: the host's code may do anything */
#define ENVS(name, sig, abi, fn, note) { "env", name, sig, abi, fn, note, 2 }
/*
 * Returns a status only, and neither the core nor the host's callback
 * behind it ever calls into the guest: linked through the shim too, so
 * the engine's fast path serves it.
 */
#define ENVF(name, sig, abi, fn, note) { "env", name, sig, abi, fn, note, 3 }
#define WASI(name, sig, fn, note) { "wasi", name, sig, VALL, fn, note, 0 }

static const pw__hostcall_t pw__hostcall_table[] = {
    ENVF("proxy_log", "iii:i", VALL, pw__hc_log,
        "to the host log with the plugin's name; BAD_ARGUMENT for an "
        "unknown level"),
    ENVF("proxy_get_log_level", "i:i", PW_ABI_0_2_1, pw__hc_get_log_level,
        "the host's current level"),
    ENVF("proxy_get_current_time_nanoseconds", "i:i", VALL,
        pw__hc_get_current_time, "wall clock"),
    ENVF("proxy_set_tick_period_milliseconds", "i:i", VALL,
        pw__hc_set_tick_period, "per root context; 0 disables"),
    ENVB("proxy_get_configuration", "ii:i", V01, pw__hc_get_configuration,
        "VM configuration in on_vm_start, else the plugin configuration"),
    ENV("proxy_done", ":i", VALL, pw__hc_done,
        "NOT_FOUND unless the root context's on_done returned false"),
    ENV("proxy_set_effective_context", "i:i", VALL,
        pw__hc_set_effective_context, "BAD_ARGUMENT for an unknown id; "
        "lasts until the current callback returns"),
    ENVB("proxy_get_buffer_bytes", "iiiii:i", VALL, pw__hc_get_buffer_bytes,
        "all buffer types 0-8; start beyond the end: BAD_ARGUMENT"),
    ENVF("proxy_set_buffer_bytes", "iiiii:i", VALL, pw__hc_set_buffer_bytes,
        "bodies and TCP data; start=0,size=0 prepends, start>=length "
        "appends"),
    ENVF("proxy_get_buffer_status", "iii:i", VALL, pw__hc_get_buffer_status,
        "flags are always 0, as in Envoy"),
    ENVF("proxy_get_header_map_size", "ii:i", VALL,
        pw__hc_get_header_map_size, "serialized size in bytes"),
    ENVB("proxy_get_header_map_pairs", "iii:i", VALL,
        pw__hc_get_header_map_pairs, "all map types 0-7"),
    ENVF("proxy_set_header_map_pairs", "iii:i", VALL,
        pw__hc_set_header_map_pairs, "stream maps 0-3"),
    ENVB("proxy_get_header_map_value", "iiiii:i", VALL,
        pw__hc_get_header_map_value,
        "missing key: OK and empty under 0.1.0, NOT_FOUND from 0.2.0"),
    ENVF("proxy_add_header_map_value", "iiiii:i", VALL,
        pw__hc_add_header_map_value, "stream maps 0-3"),
    ENVF("proxy_replace_header_map_value", "iiiii:i", VALL,
        pw__hc_replace_header_map_value, "add or replace"),
    ENVF("proxy_remove_header_map_value", "iii:i", VALL,
        pw__hc_remove_header_map_value, "OK even if absent"),
    ENV("proxy_continue_request", ":i", V01, pw__hc_continue_request,
        "0.1.0 form of continue_stream(HTTP_REQUEST)"),
    ENV("proxy_continue_response", ":i", V01, pw__hc_continue_response,
        "0.1.0 form of continue_stream(HTTP_RESPONSE)"),
    ENV("proxy_clear_route_cache", ":i", V01, pw__hc_clear_route_cache,
        "passed to the host"),
    ENV("proxy_continue_stream", "i:i", V02, pw__hc_continue_stream,
        "stream types 0-3"),
    ENV("proxy_close_stream", "i:i", V02, pw__hc_close_stream,
        "stream types 0-3"),
    ENVB("proxy_get_status", "iii:i", VALL, pw__hc_get_status,
        "HTTP status of a call answer, or gRPC status and message"),
    ENV("proxy_send_local_response", "iiiiiiii:i", VALL,
        pw__hc_send_local_response, "grpc_status -1 means none"),
    ENV("proxy_http_call", "iiiiiiiiii:i", VALL, pw__hc_http_call,
        "answer on the root context id; BAD_ARGUMENT without :method, "
        ":path, :authority or for an unknown upstream"),
    ENV("proxy_grpc_call", "iiiiiiiiiiii:i", VALL, pw__hc_grpc_call,
        "PARSE_FAILURE for an unknown upstream"),
    ENV("proxy_grpc_stream", "iiiiiiiii:i", VALL, pw__hc_grpc_stream,
        "PARSE_FAILURE for an unknown upstream"),
    ENV("proxy_grpc_send", "iiii:i", VALL, pw__hc_grpc_send,
        "BAD_ARGUMENT for an unknown token"),
    ENV("proxy_grpc_cancel", "i:i", VALL, pw__hc_grpc_cancel,
        "no callbacks follow"),
    ENV("proxy_grpc_close", "i:i", VALL, pw__hc_grpc_close, "half-close"),
    ENVB("proxy_get_shared_data", "iiiii:i", VALL, pw__hc_get_shared_data,
        "NOT_FOUND when absent"),
    ENVF("proxy_set_shared_data", "iiiii:i", VALL, pw__hc_set_shared_data,
        "cas 0: unconditional; CAS_MISMATCH; empty value deletes"),
    ENV("proxy_register_shared_queue", "iii:i", VALL,
        pw__hc_register_shared_queue, "opens the queue if it exists"),
    ENV("proxy_resolve_shared_queue", "iiiii:i", VALL,
        pw__hc_resolve_shared_queue, "by vm id and name"),
    ENV("proxy_enqueue_shared_queue", "iii:i", VALL,
        pw__hc_enqueue_shared_queue, "wakes the registering root context"),
    ENVB("proxy_dequeue_shared_queue", "iii:i", VALL,
        pw__hc_dequeue_shared_queue, "EMPTY when empty"),
    ENVF("proxy_define_metric", "iiii:i", VALL, pw__hc_define_metric,
        "counter, gauge, histogram"),
    ENV("proxy_record_metric", "iI:i", VALL, pw__hc_record_metric,
        "histogram: one observation"),
    ENV("proxy_increment_metric", "iI:i", VALL, pw__hc_increment_metric,
        "BAD_ARGUMENT for a negative counter delta"),
    ENVF("proxy_get_metric", "ii:i", VALL, pw__hc_get_metric,
        "histogram: the number of observations"),
    ENVB("proxy_get_property", "iiii:i", VALL, pw__hc_get_property,
        "plugin_name, plugin_root_id, plugin_vm_id from the core; the rest "
        "from the host"),
    ENVF("proxy_set_property", "iiii:i", VALL, pw__hc_set_property,
        "passed to the host"),
    ENVS("proxy_call_foreign_function", "iiiiii:i", VALL,
        pw__hc_call_foreign_function, "NOT_FOUND if not registered"),
    ENV("emscripten_notify_memory_growth", "i:", VALL,
        pw__hc_emscripten_notify_memory_growth,
        "emscripten runtime import; does nothing"),
    ENV("pthread_equal", "ii:i", VALL, pw__hc_pthread_equal,
        "emscripten runtime import; compares the two ids"),

    WASI("args_get", "ii:i", pw__wasi_args_get, "the VM's configured args"),
    WASI("args_sizes_get", "ii:i", pw__wasi_args_sizes_get,
         "0, 0 unless args are configured"),
    WASI("environ_get", "ii:i", pw__wasi_environ_get,
         "the VM's configured environment, not the host's"),
    WASI("environ_sizes_get", "ii:i", pw__wasi_environ_sizes_get, ""),
    WASI("clock_res_get", "ii:i", pw__wasi_clock_res_get, "1 ns"),
    WASI("clock_time_get", "iIi:i", pw__wasi_clock_time_get,
         "REALTIME and MONOTONIC; others NOTSUP"),
    WASI("fd_advise", "iIIi:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_allocate", "iII:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_close", "i:i", pw__wasi_fd_close, "stdio: SUCCESS; else BADF"),
    WASI("fd_datasync", "i:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_fdstat_get", "ii:i", pw__wasi_fd_fdstat_get,
         "stdio as character devices; else BADF"),
    WASI("fd_fdstat_set_flags", "ii:i", pw__wasi_nosys, "NOSYS"),
    WASI("fd_fdstat_set_rights", "iII:i", pw__wasi_nosys, "NOSYS"),
    WASI("fd_filestat_get", "ii:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_filestat_set_size", "iI:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_filestat_set_times", "iIIi:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_pread", "iiiIi:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_prestat_get", "ii:i", pw__wasi_fd_badf,
         "BADF: no preopened directories"),
    WASI("fd_prestat_dir_name", "iii:i", pw__wasi_fd_badf,
         "BADF"),
    WASI("fd_pwrite", "iiiIi:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_read", "iiii:i", pw__wasi_nosys, "NOSYS, as Envoy"),
    WASI("fd_readdir", "iiiIi:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_renumber", "ii:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_seek", "iIii:i", pw__wasi_fd_noseek, "stdio: SPIPE; else BADF"),
    WASI("fd_sync", "i:i", pw__wasi_fd_badf, "BADF"),
    WASI("fd_tell", "ii:i", pw__wasi_fd_noseek, "stdio: SPIPE; else BADF"),
    WASI("fd_write", "iiii:i", pw__wasi_fd_write,
         "fd 1 logged at INFO, fd 2 at ERROR; others BADF"),
    WASI("path_create_directory", "iii:i", pw__wasi_notcapable,
         "NOTCAPABLE"),
    WASI("path_filestat_get", "iiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("path_filestat_set_times", "iiiiIIi:i", pw__wasi_notcapable,
         "NOTCAPABLE"),
    WASI("path_link", "iiiiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("path_open", "iiiiiIIii:i", pw__wasi_path_open, "NOENT, as Envoy"),
    WASI("path_readlink", "iiiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("path_remove_directory", "iii:i", pw__wasi_notcapable,
         "NOTCAPABLE"),
    WASI("path_rename", "iiiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("path_symlink", "iiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("path_unlink_file", "iii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("poll_oneoff", "iiii:i", pw__wasi_poll_oneoff,
         "SUCCESS with 0 events, as Envoy (the Go runtime needs it)"),
    WASI("proc_exit", "i:", pw__wasi_proc_exit,
         "stops the running call; the plugin fails unless _start exits 0"),
    WASI("proc_raise", "i:i", pw__wasi_nosys, "NOSYS"),
    WASI("sched_yield", ":i", pw__wasi_sched_yield, "SUCCESS"),
    WASI("random_get", "ii:i", pw__wasi_random_get,
         "up to 64 KiB per call, else INVAL"),
    WASI("sock_accept", "iii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("sock_recv", "iiiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("sock_send", "iiiii:i", pw__wasi_notcapable, "NOTCAPABLE"),
    WASI("sock_shutdown", "ii:i", pw__wasi_notcapable, "NOTCAPABLE"),
};

#define PW__NHOSTCALLS                                                      \
    (sizeof(pw__hostcall_table) / sizeof(pw__hostcall_table[0]))

/* The public view of the table (same first fields, different types). */
static pw_hostcall_info_t pw__hostcall_infos[PW__NHOSTCALLS];

const pw_hostcall_info_t *
pw_hostcalls(size_t *n)
{
    size_t i;

    /* filled on first use; the table is constant so races write the same */
    if (pw__hostcall_infos[0].name == NULL) {
        for (i = 0; i < PW__NHOSTCALLS; i++) {
            pw__hostcall_infos[i].module = pw__hostcall_table[i].module;
            pw__hostcall_infos[i].name = pw__hostcall_table[i].name;
            pw__hostcall_infos[i].sig = pw__hostcall_table[i].sig;
            pw__hostcall_infos[i].abi = pw__hostcall_table[i].abi;
            pw__hostcall_infos[i].implemented =
                pw__hostcall_table[i].fn != NULL;
            pw__hostcall_infos[i].note = pw__hostcall_table[i].note;
        }
    }
    *n = PW__NHOSTCALLS;
    return pw__hostcall_infos;
}

const pw__hostcall_t *
pw__hostcall_find(const char *module, const char *name)
{
    const char *m;
    size_t i;

    if (strcmp(module, "wasi_snapshot_preview1") == 0
        || strcmp(module, "wasi_unstable") == 0)
    {
        m = "wasi";
    } else if (strcmp(module, "env") == 0) {
        m = "env";
    } else {
        return NULL;
    }
    for (i = 0; i < PW__NHOSTCALLS; i++) {
        if (strcmp(pw__hostcall_table[i].module, m) == 0
            && strcmp(pw__hostcall_table[i].name, name) == 0)
        {
            return &pw__hostcall_table[i];
        }
    }
    return NULL;
}

const char *
pw__hostcall_sig(const pw__hostcall_t *h)
{
    return h->sig;
}

unsigned
pw__hostcall_abi(const pw__hostcall_t *h)
{
    return h->abi;
}

int
pw__hostcall_shimmed(const pw__hostcall_t *h)
{
    return h->shim;
}

/*
 * Remember the plugin's memory as the plain path found it (hc) with the
 * size in pages the shim saw (-1 before it is armed), for the fast path.
 */
static void
pw__shim_cache(pw__pending_t *pd, const pw_val_t *pages, const pw__hc_t *hc)
{
    pd->mem_ok = pages->of.i32 >= 0 && hc->base != NULL
                 && hc->size == (size_t) PW__U32(*pages) * 65536;
    pd->mem_pages = PW__U32(*pages);
    pd->mem_base = hc->base;
    pd->mem_size = hc->size;
}

int
pw__hostcall_trampoline(void *fn_data, pw_einstance_t *inst,
    const pw_val_t *args, pw_val_t *results, const char **trap_msg)
{
    pw__binding_t *b = fn_data;
    const pw__hostcall_t *h = b->entry;
    pw__hc_t hc;
    int st;

    hc.vm = b->vm;
    /* the shim calls phase 1; the memory is the plugin's */
    hc.inst = b->shim ? hc.vm->inst : inst;
    hc.trap = NULL;
    hc.index = (unsigned) (h - pw__hostcall_table);
    /* one stash: an allocator calling a shimmed hostcall goes plain */
    hc.defer = b->shim && hc.vm->shim_armed && !hc.vm->pending.active;
    hc.fast = 0;
    hc.post = 0;
    pw__hctx(hc.vm, hc.vm->effective, &hc.c);
    pw__hc_mem(&hc);

    if (b->shim) {
        /* the shim passes the memory size in pages first */
        pw__shim_cache(&hc.vm->pending, &args[0], &hc);
        args++;
    }

    st = h->fn ? h->fn(&hc, args) : pw__hc_unimplemented(&hc);
    if (st == PW__HC_TRAP) {
        *trap_msg = hc.trap ? hc.trap : "hostcall failed";
        return PW_ETRAP;
    }
    if (st == PW__HC_DEFER) {
        /* the shim allocates -st bytes, then calls pw.done */
        st = -(int32_t) hc.vm->pending.len;
    } else if (h->module[0] == 'e' && pw__status_is_error(st)) {
        hc.vm->hostcall_errors++;
        hc.vm->events++;
    }
    if (b->nres) {
        results[0].kind = PW_I32;
        results[0].of.i32 = st;
    }
    return PW_OK;
}

/* ---- the shim (see pw__pending_t in core.h) ---- */

/* Whether the memory the shim sees (pages) is the one cached. */
static int
pw__shim_mem(pw__pending_t *pd, const pw_val_t *pages, pw__hc_t *hc)
{
    if (!pd->mem_ok || PW__U32(*pages) != pd->mem_pages) {
        return 0;
    }
    hc->base = pd->mem_base;
    hc->size = pd->mem_size;
    return 1;
}

PW__HOT int
pw__shim_fast(void *fn_data, pw_einstance_t *inst, const pw_val_t *args,
    pw_val_t *results, const char **trap_msg)
{
    pw__binding_t *b = fn_data;
    const pw__hostcall_t *h = b->entry;
    pw__pending_t *pd = &b->vm->pending;
    pw__hc_t hc;
    int st;

    results[0].kind = PW_I32;
    results[0].of.i32 = PW__SHIM_SLOW;
    /* decided before anything is done: the plain path starts afresh */
    if (!b->vm->shim_armed || pd->active || h->shim == 2 || h->fn == NULL
        || !pw__shim_mem(pd, &args[0], &hc))
    {
        return PW_OK;
    }
    hc.vm = b->vm;
    hc.inst = b->vm->inst;
    hc.trap = NULL;
    hc.index = (unsigned) (h - pw__hostcall_table);
    hc.defer = 1;
    hc.fast = 1;
    hc.post = 0;
    pw__hctx(hc.vm, hc.vm->effective, &hc.c);

    st = h->fn(&hc, args + 1);
    if (st == PW__HC_TRAP) {
        *trap_msg = hc.trap ? hc.trap : "hostcall failed";
        return PW_ETRAP;
    }
    if (st == PW__HC_DEFER) {
        st = -(int32_t) pd->len;
    } else if (pw__status_is_error(st)) {
        b->vm->hostcall_errors++;
        b->vm->events++;
    }
    results[0].of.i32 = st;
    return PW_OK;
}

/* Phase 2: the plugin's allocator gave gptr; copy, write the outs. */
static int
pw__shim_finish(pw__hc_t *hc, pw__pending_t *pd, uint32_t gptr)
{
    uint8_t *p;
    int st;

    pd->active = 0;
    /* as the plain path: 0 from the allocator is a failure */
    if (gptr == 0 || pw__hc_span(hc, gptr, pd->len, &p) != PW_OK) {
        st = PW_STATUS_INVALID_MEMORY_ACCESS;
    } else {
        memcpy(p, pd->data, pd->len);
        st = pw__hc_outs(hc, pd->ptr_out, gptr, pd->size_out, pd->len,
                         pd->has_post, pd->post_ptr, pd->post_val);
    }
    pd->data = NULL;
    if (pd->cap > PW__STASH_KEEP) {
        free(pd->buf);
        pd->buf = NULL;
        pd->cap = 0;
    }
    return st;
}

int
pw__shim_done_fast(void *fn_data, pw_einstance_t *inst,
    const pw_val_t *args, pw_val_t *results, const char **trap_msg)
{
    pw__binding_t *b = fn_data;
    pw__pending_t *pd = &b->vm->pending;
    pw__hc_t hc;

    results[0].kind = PW_I32;
    /* out of order: the plain one traps */
    if (!pd->active || !pw__shim_mem(pd, &args[0], &hc)) {
        results[0].of.i32 = PW__SHIM_SLOW;
        return PW_OK;
    }
    results[0].of.i32 = pw__shim_finish(&hc, pd, PW__U32(args[1]));
    return PW_OK;
}

int
pw__shim_done(void *fn_data, pw_einstance_t *inst, const pw_val_t *args,
    pw_val_t *results, const char **trap_msg)
{
    pw__binding_t *b = fn_data;
    pw__pending_t *pd = &b->vm->pending;
    pw__hc_t hc;

    if (!pd->active) {
        *trap_msg = "shim called out of order";
        return PW_ETRAP;
    }
    hc.vm = b->vm;
    hc.inst = b->vm->inst;
    pw__hc_mem(&hc);
    pw__shim_cache(pd, &args[0], &hc);
    results[0].kind = PW_I32;
    results[0].of.i32 = pw__shim_finish(&hc, pd, PW__U32(args[1]));
    return PW_OK;
}

/*
 * The shim (made before the plugin) exports one stub per hostcall that
 * jumps through its table: slot k first holds a function calling plain
 * phase 1 with -1 pages (the whole hostcall on the plain path). The
 * binder (made after the plugin, so it imports the plugin's memory and
 * allocator) puts in slot k the body below, in wasm text ($S is
 * PW__SHIM_SLOW):
 *
 *   (func (param ...) (result i32) (local $r i32) (local $m i32)
 *     (local $t i32)
 *     (local.set $m (memory.size))
 *     (local.set $r (call $fast_k (local.get $m) (local.get 0) ...))
 *     (if (i32.eq (local.get $r) $S) (then
 *       (local.set $r (call $plain_k (local.get $m) (local.get 0) ...))))
 *     (if (i32.ge_s (local.get $r) (i32.const 0))
 *       (then (return (local.get $r))))
 *     (local.set $r (call $alloc (i32.sub (i32.const 0) (local.get $r))))
 *     (local.set $m (memory.size))
 *     (local.set $t (call $fast_done (local.get $m) (local.get $r)))
 *     (if (i32.eq (local.get $t) $S) (then
 *       (local.set $t (call $plain_done (local.get $m) (local.get $r)))))
 *     (local.get $t))
 *
 * Memory size and allocator are then plain instructions and a direct
 * call, not calls into another instance through the shim's table.
 *
 * Types (both modules): 0..n-1 the hostcalls', n..2n-1 the same with the
 * pages first, then in the binder 2n (i32) -> i32 (alloc), 2n+1
 * (i32, i32) -> i32 (done).
 * Shim functions: 0..n-1 import plain phase 1, n+k the stubs, 2n+k the
 * plain ones. Binder functions: 0..n-1 import plain phase 1, n..2n-1 fast
 * phase 1, 2n plain done, 2n+1 fast done, 2n+2 alloc, 2n+3+k the bodies.
 */
static const uint8_t pw__shim_slow_leb[5] = { 0x80, 0x80, 0x80, 0x80, 0x78 };

static void
pw__shim_args(pw__wbuf_t *body, uint32_t m, uint32_t nparams)
{
    uint32_t i;

    pw__wb_byte(body, 0x20);                    /* local.get $m */
    pw__wb_u32(body, m);
    for (i = 0; i < nparams; i++) {
        pw__wb_byte(body, 0x20);                /* local.get i */
        pw__wb_u32(body, i);
    }
}

/* local.get x, i32.const $S, i32.eq, if */
static void
pw__shim_if_slow(pw__wbuf_t *body, uint32_t x)
{
    pw__wb_byte(body, 0x20);
    pw__wb_u32(body, x);
    pw__wb_byte(body, 0x41);
    pw__wb_bytes(body, pw__shim_slow_leb, sizeof(pw__shim_slow_leb));
    pw__wb_bytes(body, "\x46\x04\x40", 3);
}

static void
pw__shim_code(pw__wbuf_t *sec, pw__wbuf_t *body)
{
    pw__wb_byte(body, 0x0b);
    sec->oom |= body->oom;
    pw__wb_u32(sec, (uint32_t) body->len);
    pw__wb_bytes(sec, body->p, body->len);
}

/* The binder's body k. */
static void
pw__shim_body(pw__wbuf_t *sec, pw__wbuf_t *body, uint32_t k, uint32_t n,
    uint32_t nparams)
{
    uint32_t r = nparams, m = nparams + 1, t = nparams + 2;

    body->len = 0;
    pw__wb_bytes(body, "\x01\x03\x7f", 3);      /* three i32 locals */

    pw__wb_bytes(body, "\x3f\x00", 2);          /* pages */
    pw__wb_op(body, 0x21, m);

    pw__shim_args(body, m, nparams);            /* fast phase 1 */
    pw__wb_op(body, 0x10, n + k);
    pw__wb_op(body, 0x21, r);
    pw__shim_if_slow(body, r);
    pw__shim_args(body, m, nparams);            /* plain phase 1 */
    pw__wb_op(body, 0x10, k);
    pw__wb_op(body, 0x21, r);
    pw__wb_byte(body, 0x0b);

    pw__wb_op(body, 0x20, r);             /* a status: done */
    pw__wb_bytes(body, "\x41\x00\x4e\x04\x40", 5);
    pw__wb_op(body, 0x20, r);
    pw__wb_bytes(body, "\x0f\x0b", 2);

    pw__wb_bytes(body, "\x41\x00", 2);          /* alloc(-r) */
    pw__wb_op(body, 0x20, r);
    pw__wb_byte(body, 0x6b);
    pw__wb_op(body, 0x10, 2 * n + 2);
    pw__wb_op(body, 0x21, r);

    pw__wb_bytes(body, "\x3f\x00", 2);          /* pages again */
    pw__wb_op(body, 0x21, m);

    pw__wb_op(body, 0x20, m);             /* fast done */
    pw__wb_op(body, 0x20, r);
    pw__wb_op(body, 0x10, 2 * n + 1);
    pw__wb_op(body, 0x21, t);
    pw__shim_if_slow(body, t);
    pw__wb_op(body, 0x20, m);             /* plain done */
    pw__wb_op(body, 0x20, r);
    pw__wb_op(body, 0x10, 2 * n);
    pw__wb_op(body, 0x21, t);
    pw__wb_byte(body, 0x0b);

    pw__wb_op(body, 0x20, t);
    pw__shim_code(sec, body);
}

/* The phase 1 type: the hostcall's with the pages first. */
static int
pw__wb_phase1_type(pw__wbuf_t *w, const char *sig)
{
    char psig[PW_SIG_MAX + 1];
    uint32_t np;

    if (strlen(sig) + 1 >= sizeof(psig)) {
        return PW_EINVAL;
    }
    psig[0] = PW_I32;
    memcpy(psig + 1, sig, strlen(sig) + 1);
    return pw__wb_functype(w, psig, &np);
}

/* Types 0..2n-1 of both modules (see above), the binder's two more. */
static int
pw__shim_types(pw__wbuf_t *w, pw__wbuf_t *sec, const pw__hostcall_t *const *h,
    uint32_t n, uint32_t *nparams, int binder)
{
    uint32_t k;
    int rc = PW_OK;

    pw__wb_u32(sec, 2 * n + (binder ? 2 : 0));
    for (k = 0; k < n && rc == PW_OK; k++) {
        /* the bodies (pw__shim_body) pass on one i32 status */
        rc = strcmp(strchr(h[k]->sig, ':'), ":i") == 0
             ? pw__wb_functype(sec, h[k]->sig, &nparams[k]) : PW_EINVAL;
    }
    for (k = 0; k < n && rc == PW_OK; k++) {
        rc = pw__wb_phase1_type(sec, h[k]->sig);
    }
    if (binder) {
        pw__wb_bytes(sec, "\x60\x01\x7f\x01\x7f", 5);
        pw__wb_bytes(sec, "\x60\x02\x7f\x7f\x01\x7f", 6);
    }
    pw__wb_section(w, 1, sec);
    return rc;
}

/* A funcref table of exactly n slots. */
static void
pw__shim_table(pw__wbuf_t *w, uint32_t n)
{
    pw__wb_bytes(w, "\x70\x01", 2);
    pw__wb_u32(w, n);
    pw__wb_u32(w, n);
}

/* Slots 0..n-1 get functions first..first+n-1. */
static void
pw__shim_elem(pw__wbuf_t *w, pw__wbuf_t *sec, uint32_t n, uint32_t first)
{
    uint32_t k;

    pw__wb_bytes(sec, "\x01\x00\x41\x00\x0b", 5);
    pw__wb_u32(sec, n);
    for (k = 0; k < n; k++) {
        pw__wb_u32(sec, first + k);
    }
    pw__wb_section(w, 9, sec);
}

static int
pw__shim_end(pw__wbuf_t *w, pw__wbuf_t *sec, pw__wbuf_t *body,
    uint32_t *nparams, int rc, uint8_t **out, size_t *len)
{
    free(body->p);
    free(nparams);
    if (rc != PW_OK) {
        free(sec->p);
        free(w->p);
        return rc;
    }
    return pw__wb_done(w, sec, out, len);
}

int
pw__shim_build(const pw__hostcall_t *const *h, size_t n, uint8_t **out,
    size_t *len)
{
    pw__wbuf_t w = { 0 }, sec = { 0 }, body = { 0 };
    uint32_t k, i, nn = (uint32_t) n, *nparams;
    int rc;

    nparams = calloc(n ? n : 1, sizeof(uint32_t));
    if (nparams == NULL) {
        return PW_ENOMEM;
    }
    pw__wb_bytes(&w, pw__wasm_head, sizeof(pw__wasm_head));
    rc = pw__shim_types(&w, &sec, h, nn, nparams, 0);

    pw__wb_u32(&sec, nn);                       /* imports */
    for (k = 0; k < nn; k++) {
        pw__wb_name(&sec, "pw");
        pw__wb_name(&sec, h[k]->name);
        pw__wb_byte(&sec, 0x00);
        pw__wb_u32(&sec, nn + k);
    }
    pw__wb_section(&w, 2, &sec);

    pw__wb_u32(&sec, 2 * nn);                   /* functions */
    for (k = 0; k < 2 * nn; k++) {
        pw__wb_u32(&sec, k % nn);
    }
    pw__wb_section(&w, 3, &sec);

    pw__wb_byte(&sec, 0x01);                    /* table */
    pw__shim_table(&sec, nn);
    pw__wb_section(&w, 4, &sec);

    pw__wb_u32(&sec, nn + 1);                   /* exports */
    for (k = 0; k < nn; k++) {
        pw__wb_name(&sec, h[k]->name);
        pw__wb_byte(&sec, 0x00);
        pw__wb_u32(&sec, nn + k);
    }
    pw__wb_name(&sec, "table");
    pw__wb_byte(&sec, 0x01);
    pw__wb_byte(&sec, 0x00);
    pw__wb_section(&w, 7, &sec);

    pw__shim_elem(&w, &sec, nn, 2 * nn);

    pw__wb_u32(&sec, 2 * nn);                   /* code */
    for (k = 0; k < nn; k++) {                  /* stubs */
        body.len = 0;
        pw__wb_byte(&body, 0x00);
        for (i = 0; i < nparams[k]; i++) {
            pw__wb_op(&body, 0x20, i);
        }
        pw__wb_byte(&body, 0x41);               /* i32.const k */
        pw__wb_u32(&body, k);
        if (!body.oom && (body.p[body.len - 1] & 0x40)) {
            body.p[body.len - 1] |= 0x80;       /* signed LEB: sign 0 */
            pw__wb_byte(&body, 0x00);
        }
        pw__wb_op(&body, 0x11, k);
        pw__wb_byte(&body, 0x00);
        pw__shim_code(&sec, &body);
    }
    for (k = 0; k < nn; k++) {                  /* plain: -1 pages */
        body.len = 0;
        pw__wb_bytes(&body, "\x00\x41\x7f", 3);
        for (i = 0; i < nparams[k]; i++) {
            pw__wb_op(&body, 0x20, i);
        }
        pw__wb_op(&body, 0x10, k);
        pw__shim_code(&sec, &body);
    }
    pw__wb_section(&w, 10, &sec);

    return pw__shim_end(&w, &sec, &body, nparams, rc, out, len);
}

int
pw__shim_binder(const pw__hostcall_t *const *h, size_t n, uint8_t **out,
    size_t *len)
{
    pw__wbuf_t w = { 0 }, sec = { 0 }, body = { 0 };
    uint32_t k, nn = (uint32_t) n, *nparams;
    int rc;

    nparams = calloc(n ? n : 1, sizeof(uint32_t));
    if (nparams == NULL) {
        return PW_ENOMEM;
    }
    pw__wb_bytes(&w, pw__wasm_head, sizeof(pw__wasm_head));
    rc = pw__shim_types(&w, &sec, h, nn, nparams, 1);

    pw__wb_u32(&sec, 2 * nn + 5);               /* imports */
    pw__wb_name(&sec, "s");
    pw__wb_name(&sec, "table");
    pw__wb_byte(&sec, 0x01);
    pw__shim_table(&sec, nn);
    for (k = 0; k < 2 * nn; k++) {
        pw__wb_name(&sec, k < nn ? "pw" : "pw.fast");
        pw__wb_name(&sec, h[k % nn]->name);
        pw__wb_byte(&sec, 0x00);
        pw__wb_u32(&sec, nn + k % nn);
    }
    for (k = 0; k < 2; k++) {
        pw__wb_name(&sec, k == 0 ? "pw" : "pw.fast");
        pw__wb_name(&sec, "pw.done");
        pw__wb_byte(&sec, 0x00);
        pw__wb_u32(&sec, 2 * nn + 1);
    }
    pw__wb_name(&sec, "p");
    pw__wb_name(&sec, "alloc");
    pw__wb_byte(&sec, 0x00);
    pw__wb_u32(&sec, 2 * nn);
    pw__wb_name(&sec, "p");
    pw__wb_name(&sec, "memory");
    pw__wb_bytes(&sec, "\x02\x00\x00", 3);
    pw__wb_section(&w, 2, &sec);

    pw__wb_u32(&sec, nn);                       /* functions */
    for (k = 0; k < nn; k++) {
        pw__wb_u32(&sec, k);
    }
    pw__wb_section(&w, 3, &sec);

    pw__shim_elem(&w, &sec, nn, 2 * nn + 3);

    pw__wb_u32(&sec, nn);                       /* code */
    for (k = 0; k < nn; k++) {
        pw__shim_body(&sec, &body, k, nn, nparams[k]);
    }
    pw__wb_section(&w, 10, &sec);

    return pw__shim_end(&w, &sec, &body, nparams, rc, out, len);
}
