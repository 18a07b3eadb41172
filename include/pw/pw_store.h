/*
 * proxy-wasm-c: the store. Shared key-value data (with CAS), shared queues
 * and metrics, laid out inside a memory region the caller provides and
 * addressed by offsets only, so one region can be mapped at different
 * addresses by several processes (nginx workers sharing memory) or live in
 * plain malloc'd memory (tests, pwrun).
 *
 * Locking: by default the region holds a process-shared, robust pthread
 * mutex; a process killed while holding it does not deadlock the others
 * (the next locker recovers it). A caller may supply its own lock instead.
 *
 * All functions are safe to call concurrently from several processes
 * attached to the same region. Values returned to the caller are copied
 * out (malloc'd; the caller frees them) so no pointer into the region
 * outlives the lock.
 */
#ifndef PW_STORE_H
#define PW_STORE_H

#include <pw/pw_types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_store_s pw_store_t;

typedef struct {
    /* Optional caller lock; when lock is NULL the built-in robust mutex
     * inside the region is used. */
    void (*lock)(void *lock_data);
    void (*unlock)(void *lock_data);
    void *lock_data;

    /*
     * Called (outside the lock) after an enqueue on a queue, with the owner
     * value given at registration. The host delivers proxy_on_queue_ready
     * to that owner (in nginx: possibly in another worker).
     */
    void (*queue_ready)(void *data, uint32_t qid, uint64_t owner);
    void *queue_ready_data;
} pw_store_conf_t;

/* Smallest region pw_store_format accepts. */
#define PW_STORE_MIN_SIZE 4096

/* What to do when a write does not fit (pw_store_opts_t). */
#define PW_STORE_EVICT_NONE    0   /* refuse: PW_EFULL */
#define PW_STORE_EVICT_LRU     1   /* kv: drop least recently used keys */
#define PW_STORE_EVICT_OLDEST  2   /* queues: drop the queue's oldest items */

/*
 * Options fixed when a region is formatted (stored in the region, so every
 * process attached to it follows the same policy). All-zero means the
 * behaviour of pw_store_format: no eviction, unbounded queues.
 */
typedef struct {
    /*
     * PW_STORE_EVICT_NONE: a set that does not fit fails with PW_EFULL.
     * PW_STORE_EVICT_LRU: least recently used keys (pw_kv_get and
     * pw_kv_set both count as a use) are evicted until the entry fits; the
     * key being replaced is never evicted for its own new value. Keys are
     * also evicted to make room for queues, queue items and metrics (the
     * region's keys are a cache). Nothing is evicted when evicting every
     * key could not make room; evictions are final even if the write then
     * fails (fragmentation). Each eviction is crash-safe on its own.
     */
    int kv_eviction;
    /*
     * When an enqueue finds its queue at a bound, or no room in the
     * region: PW_STORE_EVICT_NONE fails with PW_EFULL;
     * PW_STORE_EVICT_OLDEST drops that queue's oldest items until the new
     * one fits (counted as dropped).
     */
    int queue_eviction;
    /* Per-queue bounds; 0 = unbounded. Bytes count item payloads. */
    uint64_t queue_max_items;
    uint64_t queue_max_bytes;
    /*
     * 0 (as Envoy): pw_kv_set with cas != 0 on an absent key (never set,
     * deleted or evicted) writes it. 1: it fails with PW_ECAS.
     */
    int kv_strict_cas;
} pw_store_opts_t;

/*
 * Lay out an empty store in region (size bytes, 8-byte aligned). Call once,
 * before any process attaches. PW_EINVAL if too small or misaligned.
 */
int pw_store_format(void *region, size_t size);

/*
 * pw_store_format with options (opts may be NULL: all zero). PW_EINVAL for
 * an unknown eviction policy (kv: NONE or LRU; queues: NONE or OLDEST).
 */
int pw_store_format_ex(void *region, size_t size,
    const pw_store_opts_t *opts);

/* The options a region was formatted with. */
int pw_store_get_opts(pw_store_t *st, pw_store_opts_t *opts);

/*
 * Attach to a formatted region (at any address). conf may be NULL.
 * *out is process-local; free it with pw_store_detach.
 * PW_EINVAL if the region was not formatted.
 */
int pw_store_attach(void *region, size_t size, const pw_store_conf_t *conf,
    pw_store_t **out);
void pw_store_detach(pw_store_t *st);

/* Convenience for one process: malloc a region, format, attach. */
int pw_store_new(size_t size, const pw_store_conf_t *conf, pw_store_t **out);
/* pw_store_new with format options (opts may be NULL). */
int pw_store_new_ex(size_t size, const pw_store_opts_t *opts,
    const pw_store_conf_t *conf, pw_store_t **out);
/* Detach and free a store made by pw_store_new. */
void pw_store_free(pw_store_t *st);

/* A consistent snapshot (taken under the lock) for host metrics. */
typedef struct {
    uint64_t region_size;     /* bytes of the region */
    uint64_t heap_bytes;      /* of which usable for data */
    uint64_t used_bytes;      /* heap bytes in use (with block overhead) */
    uint64_t kv_entries;
    uint64_t kv_bytes;        /* heap bytes held by kv entries */
    uint64_t kv_evictions;    /* keys evicted since format */
    uint64_t queues;
    uint64_t queue_items;     /* items in all queues */
    uint64_t queue_bytes;     /* item payload bytes in all queues */
    uint64_t queue_dropped;   /* items dropped by eviction since format */
    uint64_t metrics;
} pw_store_stats_t;

int pw_store_stats(pw_store_t *st, pw_store_stats_t *stats);

/* ---- key-value ------------------------------------------------------- */

/*
 * Copy out the value of key. *val is malloc'd (free() it; NULL when the
 * value is empty), *cas its current CAS token (never 0).
 * PW_ENOTFOUND when absent.
 */
int pw_kv_get(pw_store_t *st, const char *key, size_t klen, uint8_t **val,
    size_t *vlen, uint32_t *cas);

/*
 * Set key to val. cas == 0 writes unconditionally; otherwise the write
 * happens only if key is absent or its token equals cas, else PW_ECAS
 * (with kv_strict_cas an absent key is a PW_ECAS too; an evicted key is
 * absent). An empty value (vlen == 0) deletes the key.
 * PW_EFULL when the region has no room (after evicting, with LRU);
 * PW_ELIMIT when key or value exceed PW_MAX_KEY_BYTES / the region.
 */
int pw_kv_set(pw_store_t *st, const char *key, size_t klen, const void *val,
    size_t vlen, uint32_t cas);

/* Visit every key (under the lock: the callback must not call the store). */
int pw_kv_foreach(pw_store_t *st,
    void (*fn)(void *arg, pw_str_t key, pw_str_t val, uint32_t cas),
    void *arg);

/* ---- queues ---------------------------------------------------------- */

/*
 * Register a queue (vm_id, name); if it exists, open it and take over its
 * owner. owner is an opaque value handed back to queue_ready.
 */
int pw_queue_register(pw_store_t *st, pw_str_t vm_id, pw_str_t name,
    uint64_t owner, uint32_t *qid);
/* Find an existing queue; PW_ENOTFOUND if none. */
int pw_queue_resolve(pw_store_t *st, pw_str_t vm_id, pw_str_t name,
    uint32_t *qid);
/*
 * Append a copy of data; PW_ENOTFOUND for an unknown qid; PW_ELIMIT when
 * len exceeds queue_max_bytes; PW_EFULL when the queue is at a bound or
 * the region has no room (with PW_STORE_EVICT_OLDEST: only when even an
 * empty queue leaves no room). Calls conf->queue_ready on success.
 */
int pw_queue_enqueue(pw_store_t *st, uint32_t qid, const void *data,
    size_t len);
/* Pop the oldest item (malloc'd, free() it); PW_EEMPTY when empty,
 * PW_ENOTFOUND for an unknown qid. */
int pw_queue_dequeue(pw_store_t *st, uint32_t qid, uint8_t **data,
    size_t *len);

/*
 * Point a queue's wake-ups (queue_ready) at owner; pw_queue_register of an
 * existing (vm_id, name) does the same and returns the same qid.
 * PW_ENOTFOUND for an unknown qid.
 */
int pw_queue_set_owner(pw_store_t *st, uint32_t qid, uint64_t owner);

typedef struct {
    uint32_t qid;
    uint64_t owner;
    pw_str_t vm_id;
    pw_str_t name;
    uint64_t depth;           /* items waiting */
    uint64_t bytes;           /* their payload bytes */
    uint64_t dropped;         /* items dropped by eviction */
} pw_queue_info_t;

/* Visit every queue in qid order (under the lock: the callback must not
 * call the store; vm_id and name are valid only during the call). */
int pw_queue_foreach(pw_store_t *st,
    void (*fn)(void *arg, const pw_queue_info_t *q), void *arg);

/* ---- metrics --------------------------------------------------------- */

/*
 * Define a metric; defining the same (type, name) again returns the same
 * id. PW_EINVAL for an unknown type.
 */
int pw_metric_define(pw_store_t *st, pw_metric_type_t type, pw_str_t name,
    uint32_t *id);
/* Counter: delta must be >= 0 (else PW_EINVAL). Gauge: any delta.
 * Histogram: PW_EINVAL. PW_ENOTFOUND for an unknown id. */
int pw_metric_increment(pw_store_t *st, uint32_t id, int64_t delta);
/* Counter and gauge: set the value. Histogram: record one observation. */
int pw_metric_record(pw_store_t *st, uint32_t id, int64_t value);
/* Counter and gauge: the value. Histogram: the number of observations. */
int pw_metric_get(pw_store_t *st, uint32_t id, int64_t *value);

typedef struct {
    pw_metric_type_t type;
    pw_str_t name;
    int64_t value;        /* counter/gauge value; histogram count */
    int64_t sum;          /* histogram: sum of observations */
    /* histogram: observations v with 2^(i-1) < v <= 2^i, i in [0, 63]
     * (bucket 0: v <= 1, negatives included); not cumulative */
    const uint64_t *buckets;
} pw_metric_info_t;

/* Visit every metric (under the lock: the callback must not call the
 * store; name and buckets are valid only during the call). */
int pw_metric_foreach(pw_store_t *st,
    void (*fn)(void *arg, uint32_t id, const pw_metric_info_t *m),
    void *arg);

#ifdef __cplusplus
}
#endif

#endif /* PW_STORE_H */
