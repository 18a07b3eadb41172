/*
 * proxy-wasm-c: the store's region: layout, lock, undo journal, allocator.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/pw_store_internal.h"


static void pw__undo(pw__hdr_t *h, uint8_t *base);


int
pw_store_format(void *region, size_t size)
{
    return pw_store_format_ex(region, size, NULL);
}


int
pw_store_format_ex(void *region, size_t size, const pw_store_opts_t *opts)
{
    pw__hdr_t *h;
    pthread_mutexattr_t attr;
    pw_store_opts_t o;
    uint64_t nb, heap, first;

    if (region == NULL || ((uintptr_t) region & 7) != 0
        || size < PW_STORE_MIN_SIZE)
    {
        return PW_EINVAL;
    }

    memset(&o, 0, sizeof(o));
    if (opts != NULL) {
        o = *opts;
    }

    if ((o.kv_eviction != PW_STORE_EVICT_NONE
         && o.kv_eviction != PW_STORE_EVICT_LRU)
        || (o.queue_eviction != PW_STORE_EVICT_NONE
            && o.queue_eviction != PW_STORE_EVICT_OLDEST))
    {
        return PW_EINVAL;
    }

    size &= ~(size_t) 7;
    h = region;
    memset(h, 0, sizeof(*h));

    /* about one bucket per 512 bytes of region */
    nb = 8;
    while (nb * 2 <= size / 512) {
        nb *= 2;
    }

    h->kv_buckets = PW__ALIGN8(sizeof(*h));
    h->kv_nbuckets = nb;
    memset((uint8_t *) region + h->kv_buckets, 0, nb * sizeof(uint64_t));

    heap = h->kv_buckets + nb * sizeof(uint64_t);
    if (heap + 4 * PW__BLOCK_MIN > size) {
        return PW_EINVAL;
    }

    h->heap_start = heap;
    h->heap_end = size;
    first = heap;
    *(uint64_t *) ((uint8_t *) region + first) = size - heap;
    *(uint64_t *) ((uint8_t *) region + first + 8) = 0;
    h->free_head = first;
    h->free_bytes = size - heap;

    h->kv_evict = (uint64_t) o.kv_eviction;
    h->q_evict = (uint64_t) o.queue_eviction;
    h->q_max_items = o.queue_max_items;
    h->q_max_bytes = o.queue_max_bytes;
    h->kv_strict_cas = o.kv_strict_cas != 0;

    if (pthread_mutexattr_init(&attr) != 0) {
        return PW_EIO;
    }
    if (pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0
        || pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0
        || pthread_mutex_init(&h->lock.mutex, &attr) != 0)
    {
        pthread_mutexattr_destroy(&attr);
        return PW_EIO;
    }
    pthread_mutexattr_destroy(&attr);

    h->size = size;
    h->version = PW__STORE_VERSION;
    /* the magic last: a half-formatted region never attaches */
    __atomic_store_n(&h->magic, PW__STORE_MAGIC, __ATOMIC_RELEASE);

    return PW_OK;
}


int
pw_store_attach(void *region, size_t size, const pw_store_conf_t *conf,
    pw_store_t **out)
{
    pw__hdr_t *h;
    pw_store_t *st;

    if (region == NULL || out == NULL || ((uintptr_t) region & 7) != 0
        || size < PW_STORE_MIN_SIZE)
    {
        return PW_EINVAL;
    }

    h = region;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != PW__STORE_MAGIC
        || h->version != PW__STORE_VERSION
        || h->size != (size & ~(size_t) 7))
    {
        return PW_EINVAL;
    }

    if (conf != NULL && (conf->lock == NULL) != (conf->unlock == NULL)) {
        return PW_EINVAL;
    }

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return PW_ENOMEM;
    }

    st->base = region;
    st->size = h->size;
    if (conf != NULL) {
        st->conf = *conf;
    }

    *out = st;
    return PW_OK;
}


void
pw_store_detach(pw_store_t *st)
{
    free(st);
}


int
pw_store_get_opts(pw_store_t *st, pw_store_opts_t *opts)
{
    pw__hdr_t *h;

    if (st == NULL || opts == NULL) {
        return PW_EINVAL;
    }

    /* fixed since format: no lock needed */
    h = PW__HDR(st);
    memset(opts, 0, sizeof(*opts));
    opts->kv_eviction = (int) h->kv_evict;
    opts->queue_eviction = (int) h->q_evict;
    opts->queue_max_items = h->q_max_items;
    opts->queue_max_bytes = h->q_max_bytes;
    opts->kv_strict_cas = (int) h->kv_strict_cas;
    return PW_OK;
}


int
pw_store_stats(pw_store_t *st, pw_store_stats_t *stats)
{
    int rc;
    pw__hdr_t *h;
    pw__queue_t *q;
    pw_store_stats_t s;
    uint64_t i, *tab;

    if (st == NULL || stats == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);
    memset(&s, 0, sizeof(s));
    s.region_size = h->size;
    s.heap_bytes = h->heap_end - h->heap_start;
    s.used_bytes = s.heap_bytes - h->free_bytes;
    s.kv_entries = h->kv_count;
    s.kv_bytes = h->kv_bytes;
    s.kv_evictions = h->kv_evictions;
    s.queues = h->q_count;
    s.queue_dropped = h->q_dropped;
    s.metrics = h->m_count;

    for (i = 0; i < h->q_count; i++) {
        tab = PW__AT(st, h->q_tab);
        q = PW__AT(st, tab[i]);
        s.queue_items += q->count;
        s.queue_bytes += q->bytes;
    }

    pw__unlock(st);

    *stats = s;
    return PW_OK;
}


int
pw_store_new(size_t size, const pw_store_conf_t *conf, pw_store_t **out)
{
    return pw_store_new_ex(size, NULL, conf, out);
}


int
pw_store_new_ex(size_t size, const pw_store_opts_t *opts,
    const pw_store_conf_t *conf, pw_store_t **out)
{
    int rc;
    void *region;

    if (out == NULL || size < PW_STORE_MIN_SIZE) {
        return PW_EINVAL;
    }

    size &= ~(size_t) 7;
    if (posix_memalign(&region, 64, size) != 0) {
        return PW_ENOMEM;
    }

    rc = pw_store_format_ex(region, size, opts);
    if (rc == PW_OK) {
        rc = pw_store_attach(region, size, conf, out);
    }
    if (rc != PW_OK) {
        free(region);
        return rc;
    }

    (*out)->owns_region = 1;
    return PW_OK;
}


void
pw_store_free(pw_store_t *st)
{
    void *region;

    if (st == NULL) {
        return;
    }

    region = st->owns_region ? st->base : NULL;
    if (region != NULL) {
        pthread_mutex_destroy(&PW__HDR(st)->lock.mutex);
    }
    pw_store_detach(st);
    free(region);
}


/* ---- lock ------------------------------------------------------------ */

int
pw__lock(pw_store_t *st)
{
    int rc, dead;
    pw__hdr_t *h;

    h = PW__HDR(st);
    dead = 0;

    if (st->conf.lock != NULL) {
        st->conf.lock(st->conf.lock_data);

    } else {
        rc = pthread_mutex_lock(&h->lock.mutex);
        if (rc == EOWNERDEAD) {
            dead = 1;
        } else if (rc != 0) {
            return PW_EIO;
        }
    }

    /*
     * A non-empty journal means the last holder died mid-operation (with a
     * caller lock we cannot tell otherwise, so check on every lock).
     */
    if (__atomic_load_n(&h->jn, __ATOMIC_ACQUIRE) != 0) {
        pw__undo(h, st->base);
    }

    if (dead) {
        pthread_mutex_consistent(&h->lock.mutex);
    }

    st->step = 0;
    return PW_OK;
}


void
pw__unlock(pw_store_t *st)
{
    if (st->conf.unlock != NULL) {
        st->conf.unlock(st->conf.lock_data);
        return;
    }

    pthread_mutex_unlock(&PW__HDR(st)->lock.mutex);
}


int
pw__store_lock(pw_store_t *st)
{
    return pw__lock(st);
}


void
pw__store_unlock(pw_store_t *st)
{
    pw__unlock(st);
}


void
pw__store_set_step_hook(pw_store_t *st,
    void (*hook)(void *arg, unsigned step), void *arg)
{
    st->step_hook = hook;
    st->step_hook_arg = arg;
}


/* ---- undo journal ---------------------------------------------------- */

void
pw__set(pw_store_t *st, uint64_t *word, uint64_t val)
{
    pw__hdr_t *h;
    uint64_t n;

    h = PW__HDR(st);
    n = h->jn;

    if (n == PW__JOURNAL_MAX) {
        /* operations have a small fixed bound of writes: a bug */
        abort();
    }

    h->journal[n].off = PW__OFF(st, word);
    h->journal[n].old = *word;
    /* the record must be complete before it counts, and count before the
     * write it protects */
    __atomic_store_n(&h->jn, n + 1, __ATOMIC_RELEASE);
    __atomic_store_n(word, val, __ATOMIC_RELEASE);

    if (st->step_hook != NULL) {
        st->step_hook(st->step_hook_arg, ++st->step);
    }
}


void
pw__commit(pw_store_t *st)
{
    /* steps keep counting across the operations of one lock hold
     * (evictions, then the write), so a test can kill at each of them */
    __atomic_store_n(&PW__HDR(st)->jn, 0, __ATOMIC_RELEASE);
}


void
pw__rollback(pw_store_t *st)
{
    pw__undo(PW__HDR(st), st->base);
}


static void
pw__undo(pw__hdr_t *h, uint8_t *base)
{
    uint64_t i, off;

    i = h->jn;
    if (i > PW__JOURNAL_MAX) {
        i = PW__JOURNAL_MAX;
    }

    while (i-- > 0) {
        off = h->journal[i].off;
        if (off + 8 > h->size || (off & 7) != 0) {
            continue;
        }
        __atomic_store_n((uint64_t *) (base + off), h->journal[i].old,
                         __ATOMIC_RELEASE);
    }

    __atomic_store_n(&h->jn, 0, __ATOMIC_RELEASE);
}


/* ---- allocator ------------------------------------------------------- */

#define PW__BLK(st, off)  ((uint64_t *) PW__AT(st, off))

uint64_t
pw__block_need(uint64_t n)
{
    uint64_t need;

    need = PW__ALIGN8(n + 8);
    return need < PW__BLOCK_MIN ? PW__BLOCK_MIN : need;
}


int
pw__alloc(pw_store_t *st, uint64_t n, uint64_t *off)
{
    pw__hdr_t *h;
    uint64_t need, *link, blk, *b, bsize, rest;

    h = PW__HDR(st);

    if (n > h->heap_end - h->heap_start) {
        return PW_EFULL;
    }

    need = pw__block_need(n);

    if (need > h->free_bytes) {
        return PW_EFULL;
    }

    link = &h->free_head;

    for (blk = *link; blk != 0; blk = b[1]) {
        b = PW__BLK(st, blk);
        bsize = b[0];

        if (bsize >= need) {
            rest = bsize - need;

            if (rest >= PW__BLOCK_MIN) {
                /* carve from the tail: one write to the free block */
                pw__set(st, &b[0], rest);
                blk += rest;
                *PW__BLK(st, blk) = need | PW__USED;

            } else {
                need = bsize;
                /* its next word becomes payload: keep it for a rollback */
                pw__set(st, &b[1], b[1]);
                pw__set(st, link, b[1]);
                pw__set(st, &b[0], bsize | PW__USED);
            }

            pw__set(st, &h->free_bytes, h->free_bytes - need);
            *off = blk + 8;
            return PW_OK;
        }

        link = &b[1];
    }

    return PW_EFULL;
}


void
pw__free(pw_store_t *st, uint64_t off)
{
    pw__hdr_t *h;
    uint64_t blk, size, *b, *link, prev, next, *p, *nx;

    h = PW__HDR(st);
    blk = off - 8;
    b = PW__BLK(st, blk);
    size = b[0] & ~PW__USED;

    prev = 0;
    link = &h->free_head;
    next = *link;
    while (next != 0 && next < blk) {
        prev = next;
        link = &PW__BLK(st, next)[1];
        next = *link;
    }

    p = prev ? PW__BLK(st, prev) : NULL;
    nx = next ? PW__BLK(st, next) : NULL;

    if (p != NULL && prev + p[0] == blk) {
        if (nx != NULL && blk + size == next) {
            pw__set(st, &p[1], nx[1]);
            pw__set(st, &p[0], p[0] + size + nx[0]);
        } else {
            pw__set(st, &p[0], p[0] + size);
        }

    } else if (nx != NULL && blk + size == next) {
        pw__set(st, &b[1], nx[1]);
        pw__set(st, &b[0], size + nx[0]);
        pw__set(st, link, blk);

    } else {
        pw__set(st, &b[1], next);
        pw__set(st, &b[0], size);
        pw__set(st, link, blk);
    }

    pw__set(st, &h->free_bytes, h->free_bytes + size);
}


uint64_t
pw__table_need(uint64_t cap, uint64_t count)
{
    if (count < cap) {
        return 0;
    }

    return pw__block_need((cap ? cap * 2 : 8) * sizeof(uint64_t));
}


/* Append rec to a table of offsets (queues, metrics), growing it. */
int
pw__table_add(pw_store_t *st, uint64_t *tab, uint64_t *cap, uint64_t *count,
    uint64_t rec)
{
    int rc;
    uint64_t ncap, ntab, old;

    if (*count < *cap) {
        pw__set(st, &((uint64_t *) PW__AT(st, *tab))[*count], rec);
        pw__set(st, count, *count + 1);
        return PW_OK;
    }

    ncap = *cap ? *cap * 2 : 8;
    rc = pw__alloc(st, ncap * sizeof(uint64_t), &ntab);
    if (rc != PW_OK) {
        return rc;
    }

    if (*count) {
        memcpy(PW__AT(st, ntab), PW__AT(st, *tab), *count * sizeof(uint64_t));
    }
    ((uint64_t *) PW__AT(st, ntab))[*count] = rec;

    old = *tab;
    pw__set(st, tab, ntab);
    pw__set(st, cap, ncap);
    pw__set(st, count, *count + 1);

    if (old != 0) {
        pw__free(st, old);
    }

    return PW_OK;
}
