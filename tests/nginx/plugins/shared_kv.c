/*
 * shared_kv: drives shared data and shared queues from a request, for the
 * nginx tests of the shared zones (test_shared.py). The request header
 * "x-kv" holds commands separated by ";", words separated by blanks; the
 * request is answered locally (200) with one line per command:
 *
 *   get KEY                  "get KEY = VALUE cas=C" or "get KEY status=S"
 *   set KEY VALUE [CAS]      "set KEY status=S"
 *   fill PREFIX FROM TO SIZE set PREFIX<i> for FROM <= i < TO to a value
 *                            of SIZE bytes ("PREFIX<i>=" then 'v's),
 *                            stopping at the first failure:
 *                            "fill ok=N fail=I status=S" (fail=-1: none)
 *   probe PREFIX FROM TO     "probe " then one character per key: 1 found
 *                            with the value fill gave it, 0 not found, E
 *                            other value or status
 *   inc KEY N [SPIN]         N increments of the decimal value of KEY,
 *                            each a get + CAS set retried until it holds,
 *                            with SPIN turns of a busy loop between them
 *                            (a wider window for other writers):
 *                            "inc KEY = V retries=R" (V the last value
 *                            written) or "inc KEY status=S"
 *   enq QUEUE FROM TO SIZE   register QUEUE and enqueue items "<i>:" padded
 *                            with 'q' to SIZE bytes, stopping at the first
 *                            failure: "enq ok=N fail=I status=S"
 *   deq QUEUE                register QUEUE and dequeue until it is empty:
 *                            "deq I,J,K status=S" (the item numbers)
 *
 * S is the proxy_status_t number.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define MAX_RETRIES  1000000

typedef struct {
    char    *data;
    size_t   len;
    size_t   size;
    int      oom;
} out_t;


static void
out_add(out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_add(out_t *o, const char *fmt, ...)
{
    int      n;
    char    *p;
    size_t   need;
    va_list  ap;

    if (o->oom) {
        return;
    }

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);

    if (n < 0) {
        return;
    }

    need = o->len + (size_t) n + 1;
    if (need > o->size) {
        need = need * 2;
        p = realloc(o->data, need);
        if (p == NULL) {
            o->oom = 1;
            return;
        }
        o->data = p;
        o->size = need;
    }

    va_start(ap, fmt);
    vsnprintf(o->data + o->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    o->len += (size_t) n;
}


static char *
fill_value(const char *key, size_t size)
{
    char    *v;
    size_t   klen;

    v = malloc(size + 1);
    if (v == NULL) {
        return NULL;
    }

    memset(v, 'v', size);
    v[size] = '\0';

    klen = strlen(key);
    if (klen + 1 <= size) {
        memcpy(v, key, klen);
        v[klen] = '=';
    }

    return v;
}


static void
cmd_fill(out_t *o, const char *prefix, long from, long to, size_t size)
{
    long         i, ok;
    char         key[256], *v;
    px_status_t  rc;

    rc = PX_OK;
    ok = 0;

    for (i = from; i < to; i++) {
        snprintf(key, sizeof(key), "%s%ld", prefix, i);
        v = fill_value(key, size);
        if (v == NULL) {
            rc = PX_INTERNAL_FAILURE;
            break;
        }
        rc = px_set_shared_data(key, v, size, 0);
        free(v);
        if (rc != PX_OK) {
            break;
        }
        ok++;
    }

    out_add(o, "fill ok=%ld fail=%ld status=%d\n", ok,
            rc == PX_OK ? -1L : i, (int) rc);
}


static void
cmd_probe(out_t *o, const char *prefix, long from, long to)
{
    long         i;
    char         key[256], *v;
    size_t       len, klen;
    px_status_t  rc;

    out_add(o, "probe ");

    for (i = from; i < to; i++) {
        snprintf(key, sizeof(key), "%s%ld", prefix, i);
        rc = px_get_shared_data(key, &v, &len, NULL);
        if (rc == PX_NOT_FOUND) {
            out_add(o, "0");
            continue;
        }
        if (rc != PX_OK) {
            out_add(o, "E");
            continue;
        }
        klen = strlen(key);
        out_add(o, "%s", len > klen && memcmp(v, key, klen) == 0
                         && v[klen] == '=' ? "1" : "E");
        free(v);
    }

    out_add(o, "\n");
}


static void
cmd_inc(out_t *o, const char *key, long n, long spin)
{
    long          i, j, retries;
    volatile long sink;
    char         *v, buf[32];
    size_t        len;
    uint32_t      cas;
    unsigned long value;
    px_status_t   rc;

    retries = 0;
    value = 0;
    sink = 0;

    for (i = 0; i < n; i++) {
        for ( ;; ) {
            rc = px_get_shared_data(key, &v, &len, &cas);
            if (rc == PX_OK) {
                snprintf(buf, sizeof(buf), "%.*s",
                         (int) (len < 31 ? len : 31), v);
                free(v);
                value = strtoul(buf, NULL, 10) + 1;

            } else {
                /* the tests seed the key: absent is an error here */
                out_add(o, "inc %s status=%d\n", key, (int) rc);
                return;
            }

            for (j = 0; j < spin; j++) {
                sink = sink + j;
            }

            snprintf(buf, sizeof(buf), "%lu", value);
            rc = px_set_shared_data(key, buf, strlen(buf), cas);
            if (rc == PX_OK) {
                break;
            }
            if (rc != PX_CAS_MISMATCH || ++retries > MAX_RETRIES) {
                out_add(o, "inc %s status=%d\n", key, (int) rc);
                return;
            }
        }
    }

    out_add(o, "inc %s = %lu retries=%ld\n", key, value, retries);
}


static void
cmd_enq(out_t *o, const char *name, long from, long to, size_t size)
{
    long         i, ok;
    char        *item;
    uint32_t     qid;
    px_status_t  rc;

    rc = px_register_queue(name, &qid);
    if (rc != PX_OK) {
        out_add(o, "enq register status=%d\n", (int) rc);
        return;
    }

    item = malloc(size + 32);
    if (item == NULL) {
        out_add(o, "enq oom\n");
        return;
    }

    ok = 0;
    for (i = from; i < to; i++) {
        memset(item, 'q', size + 32);
        snprintf(item, 32, "%ld:", i);
        item[strlen(item)] = 'q';
        rc = px_enqueue(qid, item, size > 24 ? size : 24);
        if (rc != PX_OK) {
            break;
        }
        ok++;
    }

    free(item);
    out_add(o, "enq ok=%ld fail=%ld status=%d\n", ok,
            rc == PX_OK ? -1L : i, (int) rc);
}


static void
cmd_deq(out_t *o, const char *name)
{
    int          first;
    char        *item;
    size_t       len;
    uint32_t     qid;
    px_status_t  rc;

    rc = px_register_queue(name, &qid);
    if (rc != PX_OK) {
        out_add(o, "deq register status=%d\n", (int) rc);
        return;
    }

    out_add(o, "deq ");
    first = 1;

    while ((rc = px_dequeue(qid, &item, &len)) == PX_OK) {
        out_add(o, "%s%ld", first ? "" : ",",
                len ? strtol(item, NULL, 10) : -1L);
        first = 0;
        free(item);
    }

    out_add(o, " status=%d\n", (int) rc);
}


static long
num(const char *s)
{
    return s ? strtol(s, NULL, 10) : 0;
}


static void
run(out_t *o, char *cmd)
{
    int    n;
    char  *w[6], *save;

    n = 0;
    for (w[n] = strtok_r(cmd, " \t", &save); w[n] != NULL && n < 5;
         w[++n] = strtok_r(NULL, " \t", &save))
    {
        /* split into words */
    }

    if (n == 0) {
        return;
    }

    while (n < 6) {
        w[n++] = NULL;
    }

    if (strcmp(w[0], "get") == 0 && w[1]) {
        char         *v;
        size_t        len;
        uint32_t      cas;
        px_status_t   rc;

        rc = px_get_shared_data(w[1], &v, &len, &cas);
        if (rc == PX_OK) {
            out_add(o, "get %s = %.*s cas=%u\n", w[1], (int) len, v, cas);
            free(v);
        } else {
            out_add(o, "get %s status=%d\n", w[1], (int) rc);
        }

    } else if (strcmp(w[0], "set") == 0 && w[2]) {
        out_add(o, "set %s status=%d\n", w[1],
                (int) px_set_shared_data(w[1], w[2], strlen(w[2]),
                                         (uint32_t) num(w[3])));

    } else if (strcmp(w[0], "fill") == 0 && w[4]) {
        cmd_fill(o, w[1], num(w[2]), num(w[3]), (size_t) num(w[4]));

    } else if (strcmp(w[0], "probe") == 0 && w[3]) {
        cmd_probe(o, w[1], num(w[2]), num(w[3]));

    } else if (strcmp(w[0], "inc") == 0 && w[2]) {
        cmd_inc(o, w[1], num(w[2]), num(w[3]));

    } else if (strcmp(w[0], "enq") == 0 && w[4]) {
        cmd_enq(o, w[1], num(w[2]), num(w[3]), (size_t) num(w[4]));

    } else if (strcmp(w[0], "deq") == 0 && w[1]) {
        cmd_deq(o, w[1]);

    } else {
        out_add(o, "bad command %s\n", w[0]);
    }
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    char    *hdr, *cmd, *save;
    size_t   len;
    out_t    o;

    if (px_get_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-kv", &hdr, &len)
        != PX_OK)
    {
        return PX_CONTINUE;
    }

    memset(&o, 0, sizeof(o));

    for (cmd = strtok_r(hdr, ";", &save); cmd != NULL;
         cmd = strtok_r(NULL, ";", &save))
    {
        run(&o, cmd);
    }

    free(hdr);

    if (o.oom) {
        px_respond(500, "shared_kv: out of memory\n", NULL, 0);
    } else {
        px_send_local_response(200, NULL, o.data ? o.data : "", o.len, NULL,
                               0, PX_GRPC_STATUS_NONE);
    }

    free(o.data);
    return PX_PAUSE;
}


static const px_plugin_t plugin = {
    .on_request_headers = on_request_headers,
};

PX_PLUGIN(plugin);
