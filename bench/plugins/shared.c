/*
 * bench_shared: what bench/shared_bench.sh measures inside nginx workers.
 * The plugin configuration picks the role of each root context:
 *
 *   get N             each request: N proxy_get_shared_data of one small key
 *   set N             each request: N proxy_set_shared_data of that key
 *   clock N           each request: N proxy_get_current_time_nanoseconds
 *                     (a bare hostcall, the baseline the others compare to)
 *   none N            each request: an empty loop of N turns
 *   consume QUEUE     registers QUEUE in on_configure; on_queue_ready
 *                     logs how long each item took to arrive
 *   produce VM QUEUE  each request enqueues the current time and the
 *                     worker's pid to QUEUE of VM (resolved, never
 *                     registered, so the consumer stays the owner)
 *
 * The loops time themselves with the host's clock around the whole loop
 * and log "shared_bench: op=MODE n=N ns=TOTAL start=T0 fails=F" at warn
 * (T0 the wall clock at the start, so overlaps between workers show).
 * The consumer logs "shared_bench: wake ns=LATENCY from=PID" (the time
 * from just before the enqueue to just after the dequeue); the log line's
 * own pid is the consumer's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define BENCH_KEY    "shared_bench_key"
#define BENCH_VALUE  "0123456789abcdef"

typedef enum {
    MODE_NONE,
    MODE_CLOCK,
    MODE_GET,
    MODE_SET,
    MODE_CONSUME,
    MODE_PRODUCE
} bench_mode_t;

typedef struct {
    bench_mode_t   mode;
    uint32_t       n;
    uint32_t       qid;
    int            resolved;
    char           vm[64];
    char           queue[64];
} bench_conf_t;

static const char *const mode_names[] = {
    "none", "clock", "get", "set", "consume", "produce"
};


static uint64_t
now_ns(void)
{
    uint64_t  t = 0;

    (void) px_get_current_time_ns(&t);
    return t;
}


static bool
on_configure(uint32_t root_id, uint32_t size)
{
    int            k;
    char          *cfg, word[16];
    size_t         len;
    unsigned       n;
    bench_conf_t  *bc;

    if (px_get_configuration(&cfg, &len) != PX_OK) {
        return false;
    }

    bc = calloc(1, sizeof(bench_conf_t));
    if (bc == NULL) {
        free(cfg);
        return false;
    }

    n = 0;
    k = sscanf(cfg, "%15s", word);

    if (k == 1 && strcmp(word, "consume") == 0) {
        bc->mode = MODE_CONSUME;
        k = sscanf(cfg, "%*s %63s", bc->queue);

    } else if (k == 1 && strcmp(word, "produce") == 0) {
        bc->mode = MODE_PRODUCE;
        k = sscanf(cfg, "%*s %63s %63s", bc->vm, bc->queue) == 2;

    } else if (k == 1) {
        for (bc->mode = MODE_NONE; bc->mode <= MODE_SET; bc->mode++) {
            if (strcmp(word, mode_names[bc->mode]) == 0) {
                break;
            }
        }
        k = bc->mode <= MODE_SET && sscanf(cfg, "%*s %u", &n) == 1 && n;
        bc->n = n;
    }

    if (k != 1) {
        px_logf(PX_LOG_ERROR, "shared_bench: bad configuration \"%s\"", cfg);
        free(cfg);
        free(bc);
        return false;
    }

    free(cfg);

    if (bc->mode == MODE_CONSUME
        && px_register_queue(bc->queue, &bc->qid) != PX_OK)
    {
        px_logf(PX_LOG_ERROR, "shared_bench: cannot register %s", bc->queue);
        free(bc);
        return false;
    }

    if (bc->mode == MODE_GET
        && px_set_shared_data(BENCH_KEY, BENCH_VALUE,
                              sizeof(BENCH_VALUE) - 1, 0) != PX_OK)
    {
        px_log(PX_LOG_ERROR, "shared_bench: cannot set " BENCH_KEY);
        free(bc);
        return false;
    }

    if (px_set_context_data(root_id, bc) != PX_OK) {
        free(bc);
        return false;
    }

    return true;
}


static void
produce(bench_conf_t *bc)
{
    int       n;
    char     *pid, item[64];
    size_t    len;
    uint64_t  t;

    if (!bc->resolved) {
        if (px_resolve_queue(bc->vm, bc->queue, &bc->qid) != PX_OK) {
            px_logf(PX_LOG_ERROR, "shared_bench: no queue %s of %s",
                    bc->queue, bc->vm);
            return;
        }
        bc->resolved = 1;
    }

    if (px_get_property(PX_PATH("ngx", "pid"), &pid, &len) != PX_OK) {
        px_log(PX_LOG_ERROR, "shared_bench: no ngx.pid");
        return;
    }

    t = now_ns();
    n = snprintf(item, sizeof(item), "%llu %s", (unsigned long long) t, pid);
    free(pid);

    if (n < 0 || (size_t) n >= sizeof(item)
        || px_enqueue(bc->qid, item, (size_t) n) != PX_OK)
    {
        px_log(PX_LOG_ERROR, "shared_bench: enqueue failed");
    }
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t nheaders, bool eos)
{
    char          *v;
    size_t         len;
    uint32_t       i, fails;
    uint64_t       t0, t1, t;
    bench_conf_t  *bc;

    bc = px_get_context_data(px_root_of(ctx));
    if (bc == NULL) {
        return PX_CONTINUE;
    }

    if (bc->mode == MODE_PRODUCE) {
        produce(bc);
        return PX_CONTINUE;
    }

    if (bc->mode == MODE_CONSUME) {
        return PX_CONTINUE;
    }

    fails = 0;
    t0 = now_ns();

    switch (bc->mode) {

    case MODE_GET:
        for (i = 0; i < bc->n; i++) {
            if (px_get_shared_data(BENCH_KEY, &v, &len, NULL) != PX_OK) {
                fails++;
                continue;
            }
            free(v);
        }
        break;

    case MODE_SET:
        for (i = 0; i < bc->n; i++) {
            if (px_set_shared_data(BENCH_KEY, BENCH_VALUE,
                                   sizeof(BENCH_VALUE) - 1, 0) != PX_OK)
            {
                fails++;
            }
        }
        break;

    case MODE_CLOCK:
        for (i = 0; i < bc->n; i++) {
            (void) px_get_current_time_ns(&t);
        }
        break;

    default:
        for (i = 0; i < bc->n; i++) {
            /* keeps the compiler from deleting the loop */
            __asm__ volatile("" ::: "memory");
        }
        break;
    }

    t1 = now_ns();

    px_logf(PX_LOG_WARN,
            "shared_bench: op=%s n=%u ns=%llu start=%llu fails=%u",
            mode_names[bc->mode], bc->n, (unsigned long long) (t1 - t0),
            (unsigned long long) t0, fails);

    return PX_CONTINUE;
}


static void
on_queue_ready(uint32_t root_id, uint32_t qid)
{
    char      *item, *from;
    size_t     len;
    uint64_t   t, sent;

    /* the clock after each dequeue: an item that lands while this runs
     * must not look older than its enqueue */
    while (px_dequeue(qid, &item, &len) == PX_OK) {
        t = now_ns();
        sent = strtoull(item, &from, 10);
        while (*from == ' ') {
            from++;
        }
        px_logf(PX_LOG_WARN, "shared_bench: wake ns=%lld from=%s",
                (long long) (t - sent), from);
        free(item);
    }
}


static void
on_delete(uint32_t ctx)
{
    if (px_root_of(ctx) == ctx) {
        free(px_get_context_data(ctx));
    }
}


static const px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_request_headers = on_request_headers,
    .on_queue_ready = on_queue_ready,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
