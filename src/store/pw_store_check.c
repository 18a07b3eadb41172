/*
 * proxy-wasm-c: the store's consistency checker. Trusts nothing it reads:
 * every offset is bounds-checked before use and every walk is bounded, so
 * a corrupted region yields a message, not a crash.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pw_store_internal.h"


typedef struct {
    uint64_t off;
    uint64_t size;
    unsigned used:1;
    unsigned refs:31;
} pw__blk_t;

typedef struct {
    pw_store_t *st;
    pw__blk_t *blks;
    size_t nblks;
    char *err;
    size_t errlen;
} pw__chk_t;


static int pw__chk_fail(pw__chk_t *c, const char *fmt, ...);
static pw__blk_t *pw__chk_block(pw__chk_t *c, uint64_t off);
static int pw__chk_ref(pw__chk_t *c, const char *what, uint64_t off,
    uint64_t len);
static int pw__chk_heap(pw__chk_t *c, pw__store_stats_t *stats);
static int pw__chk_kv(pw__chk_t *c);
static int pw__chk_queues(pw__chk_t *c, pw__store_stats_t *stats);
static int pw__chk_metrics(pw__chk_t *c);


int
pw__store_check(pw_store_t *st, pw__store_stats_t *stats, char *err,
    size_t errlen)
{
    int rc;
    pw__chk_t c;
    pw__hdr_t *h;
    pw__store_stats_t s;
    size_t i;

    if (st == NULL) {
        return PW_EINVAL;
    }

    memset(&c, 0, sizeof(c));
    memset(&s, 0, sizeof(s));
    c.st = st;
    c.err = err;
    c.errlen = errlen;
    if (errlen) {
        err[0] = '\0';
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return pw__chk_fail(&c, "cannot lock: %d", rc);
    }

    h = PW__HDR(st);

    if (h->magic != PW__STORE_MAGIC || h->version != PW__STORE_VERSION
        || h->size != st->size)
    {
        rc = pw__chk_fail(&c, "bad header");
        goto done;
    }

    if (h->jn != 0) {
        rc = pw__chk_fail(&c, "journal not empty after lock: %llu",
                          (unsigned long long) h->jn);
        goto done;
    }

    if (h->kv_buckets < sizeof(*h) || h->kv_nbuckets == 0
        || (h->kv_nbuckets & (h->kv_nbuckets - 1)) != 0
        || h->kv_buckets + h->kv_nbuckets * 8 > h->heap_start
        || h->heap_start > h->heap_end || h->heap_end > h->size
        || (h->heap_start & 7) != 0 || (h->heap_end & 7) != 0)
    {
        rc = pw__chk_fail(&c, "bad layout");
        goto done;
    }

    if ((h->kv_evict != PW_STORE_EVICT_NONE
         && h->kv_evict != PW_STORE_EVICT_LRU)
        || (h->q_evict != PW_STORE_EVICT_NONE
            && h->q_evict != PW_STORE_EVICT_OLDEST)
        || h->kv_strict_cas > 1)
    {
        rc = pw__chk_fail(&c, "bad options");
        goto done;
    }

    s.heap_bytes = h->heap_end - h->heap_start;

    rc = pw__chk_heap(&c, &s);
    if (rc == PW_OK) {
        rc = pw__chk_kv(&c);
    }
    if (rc == PW_OK) {
        rc = pw__chk_queues(&c, &s);
    }
    if (rc == PW_OK) {
        rc = pw__chk_metrics(&c);
    }

    for (i = 0; rc == PW_OK && i < c.nblks; i++) {
        if (c.blks[i].used && c.blks[i].refs != 1) {
            rc = pw__chk_fail(&c, "used block %llu referenced %u times",
                              (unsigned long long) c.blks[i].off,
                              (unsigned) c.blks[i].refs);
        }
    }

    s.kv_count = h->kv_count;

done:

    pw__unlock(st);
    free(c.blks);

    if (rc == PW_OK && stats != NULL) {
        *stats = s;
    }

    return rc;
}


static int
pw__chk_fail(pw__chk_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }

    return PW_EINVAL;
}


static pw__blk_t *
pw__chk_block(pw__chk_t *c, uint64_t off)
{
    size_t lo, hi, mid;

    lo = 0;
    hi = c->nblks;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (c->blks[mid].off == off) {
            return &c->blks[mid];
        }
        if (c->blks[mid].off < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }

    return NULL;
}


/* off is a payload offset that must own a used block of >= len bytes. */
static int
pw__chk_ref(pw__chk_t *c, const char *what, uint64_t off, uint64_t len)
{
    pw__blk_t *b;

    b = off >= 8 ? pw__chk_block(c, off - 8) : NULL;

    if (b == NULL || !b->used) {
        return pw__chk_fail(c, "%s at %llu: not a used block", what,
                            (unsigned long long) off);
    }

    if (b->size - 8 < len) {
        return pw__chk_fail(c, "%s at %llu: %llu bytes in a %llu block",
                            what, (unsigned long long) off,
                            (unsigned long long) len,
                            (unsigned long long) b->size);
    }

    b->refs++;
    return PW_OK;
}


static int
pw__chk_heap(pw__chk_t *c, pw__store_stats_t *s)
{
    pw__hdr_t *h;
    pw__blk_t *b;
    uint64_t off, w, size, prev, nfree, sum, steps;
    size_t cap;
    int prev_free;

    h = PW__HDR(c->st);
    cap = (h->heap_end - h->heap_start) / PW__BLOCK_MIN + 1;
    c->blks = malloc(cap * sizeof(pw__blk_t));
    if (c->blks == NULL) {
        return pw__chk_fail(c, "out of memory");
    }

    prev_free = 0;
    sum = 0;

    for (off = h->heap_start; off < h->heap_end; off += size) {
        w = *(uint64_t *) PW__AT(c->st, off);
        size = w & ~PW__USED;

        if (size < PW__BLOCK_MIN || (size & 7) != 0
            || size > h->heap_end - off || c->nblks == cap)
        {
            return pw__chk_fail(c, "block %llu: bad size %llu",
                                (unsigned long long) off,
                                (unsigned long long) w);
        }

        if (!(w & PW__USED)) {
            if (prev_free) {
                return pw__chk_fail(c, "free blocks not merged at %llu",
                                    (unsigned long long) off);
            }
            s->free_blocks++;
            sum += size;
        } else {
            s->used_blocks++;
        }
        prev_free = !(w & PW__USED);

        b = &c->blks[c->nblks++];
        b->off = off;
        b->size = size;
        b->used = (w & PW__USED) != 0;
        b->refs = 0;
    }

    if (sum != h->free_bytes) {
        return pw__chk_fail(c, "free bytes %llu, header says %llu",
                            (unsigned long long) sum,
                            (unsigned long long) h->free_bytes);
    }

    prev = 0;
    nfree = 0;
    steps = 0;

    for (off = h->free_head; off != 0;
         off = ((uint64_t *) PW__AT(c->st, off))[1])
    {
        b = pw__chk_block(c, off);
        if (b == NULL || b->used) {
            return pw__chk_fail(c, "free list entry %llu is not a free block",
                                (unsigned long long) off);
        }
        if (off <= prev || ++steps > c->nblks) {
            return pw__chk_fail(c, "free list out of order at %llu",
                                (unsigned long long) off);
        }
        prev = off;
        nfree++;
    }

    if (nfree != s->free_blocks) {
        return pw__chk_fail(c, "free list has %llu blocks, heap has %llu",
                            (unsigned long long) nfree,
                            (unsigned long long) s->free_blocks);
    }

    s->free_bytes = sum;
    return PW_OK;
}


static int
pw__chk_kv(pw__chk_t *c)
{
    int rc;
    pw__hdr_t *h;
    pw__kv_t *e, *o;
    pw__blk_t *b;
    uint64_t i, off, o2, *buckets, n, steps, bytes, prev;

    h = PW__HDR(c->st);
    buckets = PW__AT(c->st, h->kv_buckets);
    n = 0;
    bytes = 0;

    for (i = 0; i < h->kv_nbuckets; i++) {
        steps = 0;

        for (off = buckets[i]; off != 0; off = e->next) {
            if (++steps > c->nblks) {
                return pw__chk_fail(c, "kv chain %llu loops",
                                    (unsigned long long) i);
            }

            rc = pw__chk_ref(c, "kv entry", off, sizeof(pw__kv_t));
            if (rc != PW_OK) {
                return rc;
            }

            e = PW__AT(c->st, off);
            if (e->klen > PW_MAX_KEY_BYTES || e->vlen == 0
                || e->vlen > c->st->size)
            {
                return pw__chk_fail(c, "kv entry %llu: bad lengths",
                                    (unsigned long long) off);
            }

            /* counted once already: check the size without a second ref */
            bytes += pw__chk_block(c, off - 8)->size;
            if (pw__chk_block(c, off - 8)->size - 8
                < sizeof(pw__kv_t) + e->klen + e->vlen)
            {
                return pw__chk_fail(c, "kv entry %llu overflows its block",
                                    (unsigned long long) off);
            }

            if (e->hash != pw__hash(e + 1, e->klen)
                || (e->hash & (h->kv_nbuckets - 1)) != i)
            {
                return pw__chk_fail(c, "kv entry %llu: wrong hash",
                                    (unsigned long long) off);
            }

            if (e->cas == 0 || e->cas > UINT32_MAX) {
                return pw__chk_fail(c, "kv entry %llu: bad cas",
                                    (unsigned long long) off);
            }

            for (o2 = buckets[i]; o2 != off; o2 = o->next) {
                o = PW__AT(c->st, o2);
                if (o->klen == e->klen
                    && memcmp(o + 1, e + 1, e->klen) == 0)
                {
                    return pw__chk_fail(c, "duplicate kv key at %llu",
                                        (unsigned long long) off);
                }
            }

            n++;
        }
    }

    if (n != h->kv_count) {
        return pw__chk_fail(c, "kv count %llu, header says %llu",
                            (unsigned long long) n,
                            (unsigned long long) h->kv_count);
    }

    if (bytes != h->kv_bytes) {
        return pw__chk_fail(c, "kv bytes %llu, header says %llu",
                            (unsigned long long) bytes,
                            (unsigned long long) h->kv_bytes);
    }

    /*
     * The recency list: n entries, each on its hash chain, back links
     * matching (which also rules out visiting one entry twice).
     */
    prev = 0;
    steps = 0;
    for (off = h->lru_head; off != 0; off = e->lru_next) {
        b = off >= 8 ? pw__chk_block(c, off - 8) : NULL;
        if (b == NULL || !b->used || ++steps > n) {
            return pw__chk_fail(c, "lru list: bad entry %llu",
                                (unsigned long long) off);
        }

        e = PW__AT(c->st, off);
        if (e->lru_prev != prev) {
            return pw__chk_fail(c, "lru list: %llu has a wrong back link",
                                (unsigned long long) off);
        }

        for (o2 = buckets[e->hash & (h->kv_nbuckets - 1)];
             o2 != 0 && o2 != off; o2 = o->next)
        {
            o = PW__AT(c->st, o2);
        }
        if (o2 != off) {
            return pw__chk_fail(c, "lru list: %llu is not a kv entry",
                                (unsigned long long) off);
        }

        prev = off;
    }

    if (steps != n || prev != h->lru_tail) {
        return pw__chk_fail(c, "lru list: %llu entries of %llu, tail %s",
                            (unsigned long long) steps,
                            (unsigned long long) n,
                            prev == h->lru_tail ? "ok" : "wrong");
    }

    return PW_OK;
}


static int
pw__chk_table(pw__chk_t *c, const char *what, uint64_t tab, uint64_t cap,
    uint64_t count)
{
    if (count > cap || (tab == 0) != (cap == 0)) {
        return pw__chk_fail(c, "%s table: count %llu, capacity %llu", what,
                            (unsigned long long) count,
                            (unsigned long long) cap);
    }

    if (tab == 0) {
        return PW_OK;
    }

    if (cap > c->st->size / 8) {
        return pw__chk_fail(c, "%s table: capacity too large", what);
    }

    return pw__chk_ref(c, what, tab, cap * 8);
}


static int
pw__chk_queues(pw__chk_t *c, pw__store_stats_t *s)
{
    int rc;
    pw__hdr_t *h;
    pw__queue_t *q, *o;
    pw__item_t *it;
    uint64_t i, j, *tab, off, last, n, bytes;

    h = PW__HDR(c->st);

    rc = pw__chk_table(c, "queue", h->q_tab, h->q_cap, h->q_count);
    if (rc != PW_OK || h->q_count == 0) {
        return rc;
    }

    tab = PW__AT(c->st, h->q_tab);

    for (i = 0; i < h->q_count; i++) {
        rc = pw__chk_ref(c, "queue", tab[i], sizeof(pw__queue_t));
        if (rc != PW_OK) {
            return rc;
        }

        q = PW__AT(c->st, tab[i]);
        if (q->qid != i + 1 || q->vm_len > PW_MAX_KEY_BYTES
            || q->name_len > PW_MAX_KEY_BYTES
            || pw__chk_block(c, tab[i] - 8)->size - 8
               < sizeof(pw__queue_t) + q->vm_len + q->name_len)
        {
            return pw__chk_fail(c, "queue %llu: bad record",
                                (unsigned long long) i + 1);
        }

        for (j = 0; j < i; j++) {
            o = PW__AT(c->st, tab[j]);
            if (o->vm_len == q->vm_len && o->name_len == q->name_len
                && memcmp(o + 1, q + 1, q->vm_len + q->name_len) == 0)
            {
                return pw__chk_fail(c, "queues %llu and %llu share a name",
                                    (unsigned long long) j + 1,
                                    (unsigned long long) i + 1);
            }
        }

        n = 0;
        bytes = 0;
        last = 0;
        for (off = q->head; off != 0; off = it->next) {
            if (n > c->nblks) {
                return pw__chk_fail(c, "queue %llu loops",
                                    (unsigned long long) i + 1);
            }

            rc = pw__chk_ref(c, "queue item", off, sizeof(pw__item_t));
            if (rc != PW_OK) {
                return rc;
            }

            it = PW__AT(c->st, off);
            if (it->len > c->st->size
                || pw__chk_block(c, off - 8)->size - 8
                   < sizeof(pw__item_t) + it->len)
            {
                return pw__chk_fail(c, "queue item %llu: bad length",
                                    (unsigned long long) off);
            }

            last = off;
            bytes += it->len;
            n++;
        }

        if (bytes != q->bytes
            || (h->q_max_items != 0 && n > h->q_max_items)
            || (h->q_max_bytes != 0 && bytes > h->q_max_bytes))
        {
            return pw__chk_fail(c, "queue %llu: %llu bytes, header says "
                                "%llu, or over a bound",
                                (unsigned long long) i + 1,
                                (unsigned long long) bytes,
                                (unsigned long long) q->bytes);
        }

        if (n != q->count || last != q->tail) {
            return pw__chk_fail(c, "queue %llu: %llu items, count %llu, "
                                "tail %s", (unsigned long long) i + 1,
                                (unsigned long long) n,
                                (unsigned long long) q->count,
                                last == q->tail ? "ok" : "wrong");
        }

        s->queue_items += n;
        s->queue_bytes += bytes;
    }

    return PW_OK;
}


static int
pw__chk_metrics(pw__chk_t *c)
{
    int rc;
    pw__hdr_t *h;
    pw__metric_t *m;
    uint64_t i, j, *tab, extra, sum, *b;

    h = PW__HDR(c->st);

    rc = pw__chk_table(c, "metric", h->m_tab, h->m_cap, h->m_count);
    if (rc != PW_OK || h->m_count == 0) {
        return rc;
    }

    tab = PW__AT(c->st, h->m_tab);

    for (i = 0; i < h->m_count; i++) {
        rc = pw__chk_ref(c, "metric", tab[i], sizeof(pw__metric_t));
        if (rc != PW_OK) {
            return rc;
        }

        m = PW__AT(c->st, tab[i]);
        extra = m->type == PW_METRIC_HISTOGRAM
                ? PW__HIST_BUCKETS * sizeof(uint64_t) : 0;

        if (m->id != i + 1 || m->type > PW_METRIC_HISTOGRAM
            || m->name_len > PW_MAX_KEY_BYTES
            || pw__chk_block(c, tab[i] - 8)->size - 8
               < sizeof(pw__metric_t) + extra + m->name_len)
        {
            return pw__chk_fail(c, "metric %llu: bad record",
                                (unsigned long long) i + 1);
        }

        if (extra) {
            b = (uint64_t *) (m + 1);
            sum = 0;
            for (j = 0; j < PW__HIST_BUCKETS; j++) {
                sum += b[j];
            }
            if (sum != m->value) {
                return pw__chk_fail(c, "histogram %llu: buckets hold %llu, "
                                    "count %llu", (unsigned long long) i + 1,
                                    (unsigned long long) sum,
                                    (unsigned long long) m->value);
            }
        }
    }

    return PW_OK;
}
