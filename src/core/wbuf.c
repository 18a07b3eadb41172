/*
 * A small writer of wasm binaries: the modules the core makes itself (the
 * hostcall shim and binder, the batch) are written with it.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

const uint8_t pw__wasm_head[8] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00
};

void
pw__wb_bytes(pw__wbuf_t *w, const void *b, size_t n)
{
    uint8_t *np;
    size_t cap;

    if (w->oom) {
        return;
    }
    if (w->len + n > w->cap) {
        cap = w->cap ? w->cap * 2 : 256;
        while (cap < w->len + n) {
            cap *= 2;
        }
        np = realloc(w->p, cap);
        if (np == NULL) {
            w->oom = 1;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

void
pw__wb_byte(pw__wbuf_t *w, uint8_t b)
{
    pw__wb_bytes(w, &b, 1);
}

void
pw__wb_u32(pw__wbuf_t *w, uint32_t v)
{
    do {
        pw__wb_byte(w, (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}

void
pw__wb_op(pw__wbuf_t *w, uint8_t op, uint32_t idx)
{
    pw__wb_byte(w, op);
    pw__wb_u32(w, idx);
}

void
pw__wb_name(pw__wbuf_t *w, const char *s)
{
    pw__wb_u32(w, (uint32_t) strlen(s));
    pw__wb_bytes(w, s, strlen(s));
}

void
pw__wb_section(pw__wbuf_t *w, uint8_t id, pw__wbuf_t *sec)
{
    w->oom |= sec->oom;
    pw__wb_byte(w, id);
    pw__wb_u32(w, (uint32_t) sec->len);
    pw__wb_bytes(w, sec->p, sec->len);
    sec->len = 0;
}

static int
pw__wb_valtype(char k, uint8_t *t)
{
    switch (k) {
    case PW_I32: *t = 0x7f; return PW_OK;
    case PW_I64: *t = 0x7e; return PW_OK;
    case PW_F32: *t = 0x7d; return PW_OK;
    case PW_F64: *t = 0x7c; return PW_OK;
    default: return PW_EINVAL;
    }
}

int
pw__wb_functype(pw__wbuf_t *w, const char *sig, uint32_t *nparams)
{
    const char *colon = strchr(sig, ':');
    uint8_t t;
    size_t i;

    if (colon == NULL) {
        return PW_EINVAL;
    }
    pw__wb_byte(w, 0x60);
    pw__wb_u32(w, (uint32_t) (colon - sig));
    for (i = 0; sig + i < colon; i++) {
        if (pw__wb_valtype(sig[i], &t) != PW_OK) {
            return PW_EINVAL;
        }
        pw__wb_byte(w, t);
    }
    pw__wb_u32(w, (uint32_t) strlen(colon + 1));
    for (i = 1; colon[i] != '\0'; i++) {
        if (pw__wb_valtype(colon[i], &t) != PW_OK) {
            return PW_EINVAL;
        }
        pw__wb_byte(w, t);
    }
    *nparams = (uint32_t) (colon - sig);
    return PW_OK;
}

int
pw__wb_done(pw__wbuf_t *w, pw__wbuf_t *sec, uint8_t **out, size_t *len)
{
    free(sec->p);
    if (w->oom || sec->oom) {
        free(w->p);
        return PW_ENOMEM;
    }
    *out = w->p;
    *len = w->len;
    return PW_OK;
}
