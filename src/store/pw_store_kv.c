/*
 * proxy-wasm-c: the store's key-value table (shared data with CAS).
 */
#include <stdlib.h>
#include <string.h>

#include "store/pw_store_internal.h"



/* FNV-1a: keys are short and chains are compared byte for byte anyway. */
uint64_t
pw__hash(const void *data, size_t len)
{
    const uint8_t *p;
    uint64_t h;

    h = 0xcbf29ce484222325ULL;
    for (p = data; len--; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }

    return h;
}


/*
 * Find key; *link is the word that points at the entry (bucket slot or the
 * previous entry's next), so callers can unlink or replace it.
 */
static pw__kv_t *
pw__kv_find_locked(pw_store_t *st, const char *key, size_t klen,
    uint64_t hash, uint64_t **link)
{
    pw__hdr_t *h;
    pw__kv_t *e;
    uint64_t *l, off;

    h = PW__HDR(st);
    l = &((uint64_t *) PW__AT(st, h->kv_buckets))[hash
                                                  & (h->kv_nbuckets - 1)];

    for (off = *l; off != 0; off = e->next) {
        e = PW__AT(st, off);
        if (e->hash == hash && e->klen == klen
            && (klen == 0 || memcmp(e + 1, key, klen) == 0))
        {
            *link = l;
            return e;
        }
        l = &e->next;
    }

    *link = l;
    return NULL;
}


static void
pw__kv_lru_unlink_locked(pw_store_t *st, pw__kv_t *e)
{
    pw__hdr_t *h;

    h = PW__HDR(st);

    if (e->lru_prev != 0) {
        pw__set(st, &((pw__kv_t *) PW__AT(st, e->lru_prev))->lru_next,
                e->lru_next);
    } else {
        pw__set(st, &h->lru_head, e->lru_next);
    }

    if (e->lru_next != 0) {
        pw__set(st, &((pw__kv_t *) PW__AT(st, e->lru_next))->lru_prev,
                e->lru_prev);
    } else {
        pw__set(st, &h->lru_tail, e->lru_prev);
    }
}


/* e's own links are already set (fresh entry) or journaled by the caller */
static void
pw__kv_lru_link_head_locked(pw_store_t *st, uint64_t off)
{
    pw__hdr_t *h;

    h = PW__HDR(st);

    if (h->lru_head != 0) {
        pw__set(st, &((pw__kv_t *) PW__AT(st, h->lru_head))->lru_prev, off);
    } else {
        pw__set(st, &h->lru_tail, off);
    }
    pw__set(st, &h->lru_head, off);
}


static void
pw__kv_touch_locked(pw_store_t *st, pw__kv_t *e)
{
    pw__hdr_t *h;
    uint64_t off;

    h = PW__HDR(st);
    off = PW__OFF(st, e);

    if (h->lru_head == off) {
        return;
    }

    pw__kv_lru_unlink_locked(st, e);
    pw__set(st, &e->lru_prev, 0);
    pw__set(st, &e->lru_next, h->lru_head);
    pw__kv_lru_link_head_locked(st, off);
}


/* Unlink e (reached through *link) everywhere and free it. */
static void
pw__kv_remove_locked(pw_store_t *st, pw__kv_t *e, uint64_t *link)
{
    pw__hdr_t *h;
    uint64_t off;

    h = PW__HDR(st);
    off = PW__OFF(st, e);

    pw__set(st, link, e->next);
    pw__kv_lru_unlink_locked(st, e);
    pw__set(st, &h->kv_count, h->kv_count - 1);
    pw__set(st, &h->kv_bytes, h->kv_bytes - PW__BSIZE(st, off));
    pw__free(st, off);
}


int
pw__kv_evict_one_locked(pw_store_t *st, uint64_t keep)
{
    pw__hdr_t *h;
    pw__kv_t *v;
    uint64_t off, *link;

    h = PW__HDR(st);
    if (h->kv_evict != PW_STORE_EVICT_LRU) {
        return 0;
    }

    off = h->lru_tail;
    if (off != 0 && off == keep) {
        off = ((pw__kv_t *) PW__AT(st, keep))->lru_prev;
    }
    if (off == 0) {
        return 0;
    }

    v = PW__AT(st, off);
    link = &((uint64_t *) PW__AT(st, h->kv_buckets))[v->hash
                                                     & (h->kv_nbuckets - 1)];
    while (*link != off) {
        if (*link == 0) {
            /* not on its chain: never the case in a consistent region */
            return 0;
        }
        link = &((pw__kv_t *) PW__AT(st, *link))->next;
    }

    pw__kv_remove_locked(st, v, link);
    pw__set(st, &h->kv_evictions, h->kv_evictions + 1);
    pw__commit(st);
    return 1;
}


uint64_t
pw__kv_room_locked(pw_store_t *st, uint64_t keep)
{
    pw__hdr_t *h;

    h = PW__HDR(st);
    if (h->kv_evict != PW_STORE_EVICT_LRU) {
        return h->free_bytes;
    }

    return h->free_bytes + h->kv_bytes - (keep ? PW__BSIZE(st, keep) : 0);
}


int
pw_kv_get(pw_store_t *st, const char *key, size_t klen, uint8_t **val,
    size_t *vlen, uint32_t *cas)
{
    int rc;
    pw__kv_t *e;
    uint64_t *link;
    uint8_t *copy;

    if (st == NULL || (key == NULL && klen > 0) || vlen == NULL) {
        return PW_EINVAL;
    }
    if (klen > PW_MAX_KEY_BYTES) {
        return PW_ELIMIT;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    e = pw__kv_find_locked(st, key, klen, pw__hash(key, klen), &link);
    if (e == NULL) {
        pw__unlock(st);
        return PW_ENOTFOUND;
    }

    copy = NULL;
    if (val != NULL && e->vlen > 0) {
        copy = malloc(e->vlen);
        if (copy == NULL) {
            pw__unlock(st);
            return PW_ENOMEM;
        }
        memcpy(copy, (uint8_t *) (e + 1) + e->klen, e->vlen);
    }

    *vlen = e->vlen;
    if (cas != NULL) {
        *cas = (uint32_t) e->cas;
    }

    if (PW__HDR(st)->kv_evict == PW_STORE_EVICT_LRU) {
        pw__kv_touch_locked(st, e);
        pw__commit(st);
    }

    pw__unlock(st);

    if (val != NULL) {
        *val = copy;
    }

    return PW_OK;
}


int
pw_kv_set(pw_store_t *st, const char *key, size_t klen, const void *val,
    size_t vlen, uint32_t cas)
{
    int rc, evicted;
    pw__hdr_t *h;
    pw__kv_t *e, *n;
    uint64_t hash, *link, need, noff, token, keep;

    if (st == NULL || (key == NULL && klen > 0)
        || (val == NULL && vlen > 0))
    {
        return PW_EINVAL;
    }
    if (klen > PW_MAX_KEY_BYTES) {
        return PW_ELIMIT;
    }

    h = PW__HDR(st);
    hash = pw__hash(key, klen);
    need = sizeof(pw__kv_t) + klen + vlen;

    if (vlen > st->size || need > h->heap_end - h->heap_start) {
        return PW_ELIMIT;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    e = pw__kv_find_locked(st, key, klen, hash, &link);

    if (cas != 0
        && ((e != NULL && e->cas != cas) || (e == NULL && h->kv_strict_cas)))
    {
        pw__unlock(st);
        return PW_ECAS;
    }

    if (vlen == 0) {
        if (e != NULL) {
            pw__kv_remove_locked(st, e, link);
            pw__commit(st);
        }
        pw__unlock(st);
        return PW_OK;
    }

    keep = e ? PW__OFF(st, e) : 0;
    evicted = 0;

    /* evict nothing when evicting everything else could not do */
    if (pw__block_need(need) > pw__kv_room_locked(st, keep)) {
        pw__unlock(st);
        return PW_EFULL;
    }

    for ( ;; ) {
        /* a failed pw__alloc writes nothing */
        rc = pw__alloc(st, need, &noff);
        if (rc != PW_EFULL || !pw__kv_evict_one_locked(st, keep)) {
            break;
        }
        evicted = 1;
    }

    if (rc != PW_OK) {
        pw__rollback(st);
        pw__unlock(st);
        return rc;
    }

    if (evicted) {
        /* an evicted entry may have held the word that linked to ours */
        e = pw__kv_find_locked(st, key, klen, hash, &link);
    }

    token = (uint32_t) (h->cas_last + 1);
    if (token == 0) {
        token = 1;
    }
    pw__set(st, &h->cas_last, token);

    if (e != NULL) {
        pw__kv_lru_unlink_locked(st, e);
    }

    /* the new entry is fresh memory: fill it, then publish it */
    n = PW__AT(st, noff);
    n->next = e ? e->next : 0;
    n->lru_prev = 0;
    n->lru_next = h->lru_head;
    n->hash = hash;
    n->cas = token;
    n->klen = klen;
    n->vlen = vlen;
    if (klen) {
        memcpy(n + 1, key, klen);
    }
    memcpy((uint8_t *) (n + 1) + klen, val, vlen);

    pw__set(st, link, noff);
    pw__kv_lru_link_head_locked(st, noff);

    if (e != NULL) {
        pw__set(st, &h->kv_bytes,
                h->kv_bytes + PW__BSIZE(st, noff) - PW__BSIZE(st, keep));
        pw__free(st, keep);

    } else {
        pw__set(st, &h->kv_count, h->kv_count + 1);
        pw__set(st, &h->kv_bytes, h->kv_bytes + PW__BSIZE(st, noff));
    }

    pw__commit(st);
    pw__unlock(st);
    return PW_OK;
}


int
pw_kv_foreach(pw_store_t *st,
    void (*fn)(void *arg, pw_str_t key, pw_str_t val, uint32_t cas),
    void *arg)
{
    int rc;
    pw__hdr_t *h;
    pw__kv_t *e;
    pw_str_t k, v;
    uint64_t i, off, *buckets;

    if (st == NULL || fn == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);
    buckets = PW__AT(st, h->kv_buckets);

    for (i = 0; i < h->kv_nbuckets; i++) {
        for (off = buckets[i]; off != 0; off = e->next) {
            e = PW__AT(st, off);
            k.data = (const char *) (e + 1);
            k.len = e->klen;
            v.data = k.data + e->klen;
            v.len = e->vlen;
            fn(arg, k, v, (uint32_t) e->cas);
        }
    }

    pw__unlock(st);
    return PW_OK;
}
