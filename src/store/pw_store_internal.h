/*
 * proxy-wasm-c: the store's region layout and internals (shared by the
 * store's .c files and its tests; not a public API).
 *
 * Region:
 *
 *   [ header | kv bucket array | heap ............................ ]
 *
 * Everything inside the region refers to everything else by offset from
 * the region's start, so any process can map it at any address. Every
 * mutable word of the layout is a uint64_t.
 *
 * Heap: blocks of (8-byte header word: block size | PW__USED, payload),
 * sizes multiple of 8, at least 16. Free blocks keep the offset of the next
 * free block in their first payload word; the free list is sorted by
 * address and adjacent free blocks are always merged (first fit).
 *
 * Crash safety: every write to a word that is live when an operation
 * starts goes through pw__set(), which first appends (offset, old value)
 * to the undo journal in the header. An operation ends with pw__commit()
 * (one store: journal length = 0). Whoever takes the lock and finds a
 * non-empty journal (the previous holder died mid-operation) restores the
 * old values in reverse order; this is idempotent, so dying while rolling
 * back is fine too. Memory that was free when the operation started
 * (freshly allocated blocks) is written directly: a rollback makes it free
 * again. Hence the rule: inside one operation every pw__alloc() comes
 * before every pw__free() (a freed block reused in the same operation
 * would be written without an undo record).
 *
 * Eviction frees before the write that needs the room can allocate, so
 * each eviction is an operation of its own (committed), and the write is
 * the next one, all under the same hold of the lock: a crash can leave
 * some evictions done without the write, never half an eviction.
 *
 * KV recency: every entry is on one doubly linked list, most recently
 * used first (lru_head); eviction takes from lru_tail.
 */
#ifndef PW_STORE_INTERNAL_H
#define PW_STORE_INTERNAL_H

#include <pthread.h>
#include <pw/pw_store.h>

#define PW__STORE_MAGIC    0x3130657274537750ULL  /* "PwStre01" */
#define PW__STORE_VERSION  2
#define PW__JOURNAL_MAX    64
#define PW__USED           1ULL
#define PW__BLOCK_MIN      16
#define PW__HIST_BUCKETS   64

typedef struct {
    uint64_t off;
    uint64_t old;
} pw__undo_t;

typedef struct {
    uint64_t magic;
    uint64_t version;
    uint64_t size;
    union {
        pthread_mutex_t mutex;
        uint8_t pad[64];
    } lock;

    /* allocator */
    uint64_t heap_start;
    uint64_t heap_end;
    uint64_t free_head;       /* 0: none */
    uint64_t free_bytes;

    /* key-value hash table */
    uint64_t kv_buckets;      /* offset of uint64_t[kv_nbuckets] */
    uint64_t kv_nbuckets;     /* power of two */
    uint64_t kv_count;
    uint64_t cas_last;        /* last CAS token handed out */

    /* queues and metrics: tables of record offsets indexed by id - 1 */
    uint64_t q_tab;
    uint64_t q_cap;
    uint64_t q_count;
    uint64_t m_tab;
    uint64_t m_cap;
    uint64_t m_count;

    /* options fixed at format time (pw_store_opts_t) */
    uint64_t kv_evict;
    uint64_t q_evict;
    uint64_t q_max_items;
    uint64_t q_max_bytes;
    uint64_t kv_strict_cas;

    /* kv recency list and accounting */
    uint64_t lru_head;        /* most recently used entry */
    uint64_t lru_tail;
    uint64_t kv_bytes;        /* sum of kv entries' block sizes */

    uint64_t kv_evictions;
    uint64_t q_dropped;

    uint64_t jn;              /* undo records in use; 0 = consistent */
    pw__undo_t journal[PW__JOURNAL_MAX];
} pw__hdr_t;

typedef struct {
    uint64_t next;            /* next entry in the bucket chain */
    uint64_t lru_prev;        /* more recently used; 0: the head */
    uint64_t lru_next;        /* less recently used; 0: the tail */
    uint64_t hash;
    uint64_t cas;
    uint64_t klen;
    uint64_t vlen;
    /* key bytes, value bytes */
} pw__kv_t;

typedef struct {
    uint64_t qid;
    uint64_t owner;
    uint64_t head;            /* oldest item */
    uint64_t tail;
    uint64_t count;
    uint64_t bytes;           /* sum of the items' len */
    uint64_t dropped;         /* items dropped by eviction */
    uint64_t vm_len;
    uint64_t name_len;
    /* vm_id bytes, name bytes */
} pw__queue_t;

typedef struct {
    uint64_t next;
    uint64_t len;
    /* data */
} pw__item_t;

typedef struct {
    uint64_t id;
    uint64_t type;
    uint64_t value;           /* counter/gauge value, histogram count */
    uint64_t sum;
    uint64_t name_len;
    /* histogram: uint64_t buckets[64]; then name bytes */
} pw__metric_t;

struct pw_store_s {
    uint8_t *base;
    size_t size;
    pw_store_conf_t conf;
    unsigned owns_region:1;

    /* test hook: called after every journaled write (step counts from 1
     * within one operation) */
    void (*step_hook)(void *arg, unsigned step);
    void *step_hook_arg;
    unsigned step;
};

#define PW__HDR(st)       ((pw__hdr_t *) (st)->base)
#define PW__AT(st, off)   ((void *) ((st)->base + (off)))
#define PW__OFF(st, p)    ((uint64_t) ((uint8_t *) (p) - (st)->base))
#define PW__ALIGN8(n)     (((n) + 7) & ~(uint64_t) 7)
/* size of the heap block holding the payload at off */
#define PW__BSIZE(st, off)                                                  \
    (*(uint64_t *) PW__AT(st, (off) - 8) & ~PW__USED)

/* kv.c */
uint64_t pw__hash(const void *data, size_t len);
/*
 * Under PW_STORE_EVICT_LRU, evict the least recently used entry other than
 * the one at keep (0: none) as one committed operation. 0 when the policy
 * is not LRU or there is nothing to evict. With LRU, keys make room for
 * any allocation (queues, items, metrics too).
 */
int pw__kv_evict_one_locked(pw_store_t *st, uint64_t keep);
/* Free bytes, plus under LRU every key's but keep's (fragmentation aside:
 * more than this can never be had). */
uint64_t pw__kv_room_locked(pw_store_t *st, uint64_t keep);

/* queue.c: drop the oldest item of queue qid as one committed operation
 * (as an enqueue under PW_STORE_EVICT_OLDEST does); 0 if none. */
int pw__queue_drop_qid_locked(pw_store_t *st, uint32_t qid);

/* region.c */
int pw__lock(pw_store_t *st);
void pw__unlock(pw_store_t *st);
void pw__set(pw_store_t *st, uint64_t *word, uint64_t val);
void pw__commit(pw_store_t *st);
void pw__rollback(pw_store_t *st);
int pw__alloc(pw_store_t *st, uint64_t n, uint64_t *off);
/* The block size pw__alloc(n) takes at least. */
uint64_t pw__block_need(uint64_t n);
void pw__free(pw_store_t *st, uint64_t off);
int pw__table_add(pw_store_t *st, uint64_t *tab, uint64_t *cap,
    uint64_t *count, uint64_t rec);
/* Bytes pw__table_add needs to allocate (0 when the table has room). */
uint64_t pw__table_need(uint64_t cap, uint64_t count);

/* ---- test and diagnostic API ---------------------------------------- */

typedef struct {
    uint64_t heap_bytes;
    uint64_t free_bytes;
    uint64_t free_blocks;
    uint64_t used_blocks;
    uint64_t kv_count;
    uint64_t queue_items;
    uint64_t queue_bytes;
} pw__store_stats_t;

/*
 * Walk every structure of the region (heap tiling, free list order and
 * coalescing, hash chains, queues, metrics; every used block referenced
 * exactly once). Takes the lock (recovering it if needed). PW_OK, or
 * PW_EINVAL with a message in err. stats may be NULL.
 */
int pw__store_check(pw_store_t *st, pw__store_stats_t *stats, char *err,
    size_t errlen);

/* Take / release the store's lock as the store does (with recovery). */
int pw__store_lock(pw_store_t *st);
void pw__store_unlock(pw_store_t *st);

void pw__store_set_step_hook(pw_store_t *st,
    void (*hook)(void *arg, unsigned step), void *arg);

#endif /* PW_STORE_INTERNAL_H */
