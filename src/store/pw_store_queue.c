/*
 * proxy-wasm-c: the store's shared queues. A queue is named by (vm_id,
 * name); its qid is its index in the queue table plus one, so it stays
 * stable for the life of the region.
 */
#include <stdlib.h>
#include <string.h>

#include "store/pw_store_internal.h"


static int pw__queue_add_locked(pw_store_t *st, pw_str_t vm_id,
    pw_str_t name, uint64_t owner, uint64_t need, pw__queue_t **out);
static int pw__queue_drop_oldest_locked(pw_store_t *st, pw__queue_t *q);


static pw__queue_t *
pw__queue_by_name_locked(pw_store_t *st, pw_str_t vm_id, pw_str_t name)
{
    pw__hdr_t *h;
    pw__queue_t *q;
    uint64_t i, *tab;
    const uint8_t *s;

    h = PW__HDR(st);
    if (h->q_count == 0) {
        return NULL;
    }

    tab = PW__AT(st, h->q_tab);

    for (i = 0; i < h->q_count; i++) {
        q = PW__AT(st, tab[i]);
        s = (const uint8_t *) (q + 1);
        if (q->vm_len == vm_id.len && q->name_len == name.len
            && (vm_id.len == 0 || memcmp(s, vm_id.data, vm_id.len) == 0)
            && (name.len == 0
                || memcmp(s + vm_id.len, name.data, name.len) == 0))
        {
            return q;
        }
    }

    return NULL;
}


static pw__queue_t *
pw__queue_by_id_locked(pw_store_t *st, uint32_t qid)
{
    pw__hdr_t *h;

    h = PW__HDR(st);
    if (qid == 0 || qid > h->q_count) {
        return NULL;
    }

    return PW__AT(st, ((uint64_t *) PW__AT(st, h->q_tab))[qid - 1]);
}


static int
pw__queue_check_names(pw_str_t vm_id, pw_str_t name)
{
    if ((vm_id.data == NULL && vm_id.len > 0)
        || (name.data == NULL && name.len > 0))
    {
        return PW_EINVAL;
    }
    if (vm_id.len > PW_MAX_KEY_BYTES || name.len > PW_MAX_KEY_BYTES) {
        return PW_ELIMIT;
    }
    return PW_OK;
}


int
pw_queue_register(pw_store_t *st, pw_str_t vm_id, pw_str_t name,
    uint64_t owner, uint32_t *qid)
{
    int rc;
    pw__hdr_t *h;
    pw__queue_t *q;
    uint64_t need;

    if (st == NULL || qid == NULL) {
        return PW_EINVAL;
    }
    rc = pw__queue_check_names(vm_id, name);
    if (rc != PW_OK) {
        return rc;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);

    q = pw__queue_by_name_locked(st, vm_id, name);
    if (q != NULL) {
        if (q->owner != owner) {
            pw__set(st, &q->owner, owner);
            pw__commit(st);
        }
        *qid = (uint32_t) q->qid;
        pw__unlock(st);
        return PW_OK;
    }

    if (h->q_count >= UINT32_MAX) {
        pw__unlock(st);
        return PW_ELIMIT;
    }

    need = sizeof(pw__queue_t) + vm_id.len + name.len;
    if (pw__block_need(need) + pw__table_need(h->q_cap, h->q_count)
        > pw__kv_room_locked(st, 0))
    {
        pw__unlock(st);
        return PW_EFULL;
    }

    for ( ;; ) {
        rc = pw__queue_add_locked(st, vm_id, name, owner, need, &q);
        if (rc == PW_OK) {
            break;
        }

        /* the record and the table are two allocations: undo, evict a
         * key (its own operation), try again */
        pw__rollback(st);
        if (rc != PW_EFULL || !pw__kv_evict_one_locked(st, 0)) {
            pw__unlock(st);
            return rc;
        }
    }

    *qid = (uint32_t) q->qid;
    pw__commit(st);
    pw__unlock(st);
    return PW_OK;
}


static int
pw__queue_add_locked(pw_store_t *st, pw_str_t vm_id, pw_str_t name,
    uint64_t owner, uint64_t need, pw__queue_t **out)
{
    int rc;
    pw__hdr_t *h;
    pw__queue_t *q;
    uint64_t off;
    uint8_t *s;

    h = PW__HDR(st);

    rc = pw__alloc(st, need, &off);
    if (rc == PW_OK) {
        q = PW__AT(st, off);
        q->qid = h->q_count + 1;
        q->owner = owner;
        q->head = 0;
        q->tail = 0;
        q->count = 0;
        q->bytes = 0;
        q->dropped = 0;
        q->vm_len = vm_id.len;
        q->name_len = name.len;
        s = (uint8_t *) (q + 1);
        if (vm_id.len) {
            memcpy(s, vm_id.data, vm_id.len);
        }
        if (name.len) {
            memcpy(s + vm_id.len, name.data, name.len);
        }

        rc = pw__table_add(st, &h->q_tab, &h->q_cap, &h->q_count, off);
        if (rc == PW_OK) {
            *out = q;
        }
    }

    return rc;
}


int
pw_queue_resolve(pw_store_t *st, pw_str_t vm_id, pw_str_t name,
    uint32_t *qid)
{
    int rc;
    pw__queue_t *q;

    if (st == NULL || qid == NULL) {
        return PW_EINVAL;
    }
    rc = pw__queue_check_names(vm_id, name);
    if (rc != PW_OK) {
        return rc;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    q = pw__queue_by_name_locked(st, vm_id, name);
    if (q != NULL) {
        *qid = (uint32_t) q->qid;
    }

    pw__unlock(st);
    return q ? PW_OK : PW_ENOTFOUND;
}


/* Unlink the oldest item of q (not empty) and free it; no commit. */
static void
pw__queue_pop_locked(pw_store_t *st, pw__queue_t *q)
{
    pw__item_t *it;

    it = PW__AT(st, q->head);

    pw__set(st, &q->head, it->next);
    if (it->next == 0) {
        pw__set(st, &q->tail, 0);
    }
    pw__set(st, &q->count, q->count - 1);
    pw__set(st, &q->bytes, q->bytes - it->len);
    pw__free(st, PW__OFF(st, it));
}


int
pw__queue_drop_qid_locked(pw_store_t *st, uint32_t qid)
{
    pw__queue_t *q;

    q = pw__queue_by_id_locked(st, qid);
    return q ? pw__queue_drop_oldest_locked(st, q) : 0;
}


/* Drop the oldest item of q as one committed operation; 0 if empty. */
static int
pw__queue_drop_oldest_locked(pw_store_t *st, pw__queue_t *q)
{
    pw__hdr_t *h;

    if (q->head == 0) {
        return 0;
    }

    h = PW__HDR(st);
    pw__queue_pop_locked(st, q);
    pw__set(st, &q->dropped, q->dropped + 1);
    pw__set(st, &h->q_dropped, h->q_dropped + 1);
    pw__commit(st);
    return 1;
}


/* Could evicting keys (LRU) and, if oldest, emptying q make room for a
 * block of need bytes? */
static int
pw__queue_could_fit_locked(pw_store_t *st, pw__queue_t *q, int oldest,
    uint64_t need)
{
    uint64_t room, off;

    room = pw__kv_room_locked(st, 0);
    for (off = oldest ? q->head : 0; off != 0 && room < need;
         off = ((pw__item_t *) PW__AT(st, off))->next)
    {
        room += PW__BSIZE(st, off);
    }

    return room >= need;
}


int
pw_queue_enqueue(pw_store_t *st, uint32_t qid, const void *data,
    size_t len)
{
    int rc, oldest;
    pw__hdr_t *h;
    pw__queue_t *q;
    pw__item_t *it;
    uint64_t off, owner;

    if (st == NULL || (data == NULL && len > 0)) {
        return PW_EINVAL;
    }
    if (len > st->size) {
        return PW_EFULL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);

    q = pw__queue_by_id_locked(st, qid);
    if (q == NULL) {
        pw__unlock(st);
        return PW_ENOTFOUND;
    }

    if (h->q_max_bytes != 0 && len > h->q_max_bytes) {
        pw__unlock(st);
        return PW_ELIMIT;
    }

    oldest = h->q_evict == PW_STORE_EVICT_OLDEST;

    /* the bounds first: they do not depend on how full the region is */
    while ((h->q_max_items != 0 && q->count >= h->q_max_items)
           || (h->q_max_bytes != 0 && q->bytes + len > h->q_max_bytes))
    {
        if (!oldest || !pw__queue_drop_oldest_locked(st, q)) {
            pw__unlock(st);
            return PW_EFULL;
        }
    }

    if (!pw__queue_could_fit_locked(st, q, oldest,
                                    pw__block_need(sizeof(pw__item_t) + len)))
    {
        pw__unlock(st);
        return PW_EFULL;
    }

    /* keys (under LRU) make room before this queue's own items do */
    for ( ;; ) {
        /* a failed pw__alloc writes nothing */
        rc = pw__alloc(st, sizeof(pw__item_t) + len, &off);
        if (rc != PW_EFULL
            || (!pw__kv_evict_one_locked(st, 0)
                && !(oldest && pw__queue_drop_oldest_locked(st, q))))
        {
            break;
        }
    }

    if (rc != PW_OK) {
        pw__rollback(st);
        pw__unlock(st);
        return rc;
    }

    it = PW__AT(st, off);
    it->next = 0;
    it->len = len;
    if (len) {
        memcpy(it + 1, data, len);
    }

    if (q->tail != 0) {
        pw__set(st, &((pw__item_t *) PW__AT(st, q->tail))->next, off);
    } else {
        pw__set(st, &q->head, off);
    }
    pw__set(st, &q->tail, off);
    pw__set(st, &q->count, q->count + 1);
    pw__set(st, &q->bytes, q->bytes + len);

    owner = q->owner;
    pw__commit(st);
    pw__unlock(st);

    if (st->conf.queue_ready != NULL) {
        st->conf.queue_ready(st->conf.queue_ready_data, qid, owner);
    }

    return PW_OK;
}


int
pw_queue_dequeue(pw_store_t *st, uint32_t qid, uint8_t **data,
    size_t *len)
{
    int rc;
    pw__queue_t *q;
    pw__item_t *it;
    uint8_t *copy;

    if (st == NULL || data == NULL || len == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    q = pw__queue_by_id_locked(st, qid);
    if (q == NULL) {
        pw__unlock(st);
        return PW_ENOTFOUND;
    }

    if (q->head == 0) {
        pw__unlock(st);
        return PW_EEMPTY;
    }

    it = PW__AT(st, q->head);

    copy = NULL;
    if (it->len > 0) {
        copy = malloc(it->len);
        if (copy == NULL) {
            pw__unlock(st);
            return PW_ENOMEM;
        }
        memcpy(copy, it + 1, it->len);
    }
    *len = it->len;

    pw__queue_pop_locked(st, q);
    pw__commit(st);
    pw__unlock(st);

    *data = copy;
    return PW_OK;
}


int
pw_queue_set_owner(pw_store_t *st, uint32_t qid, uint64_t owner)
{
    int rc;
    pw__queue_t *q;

    if (st == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    q = pw__queue_by_id_locked(st, qid);
    if (q != NULL && q->owner != owner) {
        pw__set(st, &q->owner, owner);
        pw__commit(st);
    }

    pw__unlock(st);
    return q ? PW_OK : PW_ENOTFOUND;
}


int
pw_queue_foreach(pw_store_t *st,
    void (*fn)(void *arg, const pw_queue_info_t *q), void *arg)
{
    int rc;
    pw__hdr_t *h;
    pw__queue_t *q;
    pw_queue_info_t info;
    uint64_t i, *tab;

    if (st == NULL || fn == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);

    for (i = 0; i < h->q_count; i++) {
        tab = PW__AT(st, h->q_tab);
        q = PW__AT(st, tab[i]);

        info.qid = (uint32_t) q->qid;
        info.owner = q->owner;
        info.vm_id.data = (const char *) (q + 1);
        info.vm_id.len = q->vm_len;
        info.name.data = info.vm_id.data + q->vm_len;
        info.name.len = q->name_len;
        info.depth = q->count;
        info.bytes = q->bytes;
        info.dropped = q->dropped;

        fn(arg, &info);
    }

    pw__unlock(st);
    return PW_OK;
}
