/*
 * proxy-wasm-c: the store's metrics. A metric's id is its index in the
 * metric table plus one. Arithmetic is done on uint64_t (wrapping, never
 * undefined) and read back as int64_t.
 */
#include <string.h>

#include "store/pw_store_internal.h"


#define PW__M_BUCKETS(m)  ((uint64_t *) ((m) + 1))
#define PW__M_NAME(m)                                                       \
    ((const char *) ((m) + 1)                                               \
     + ((m)->type == PW_METRIC_HISTOGRAM                                    \
        ? PW__HIST_BUCKETS * sizeof(uint64_t) : 0))


static pw__metric_t *
pw__metric_by_id_locked(pw_store_t *st, uint32_t id)
{
    pw__hdr_t *h;

    h = PW__HDR(st);
    if (id == 0 || id > h->m_count) {
        return NULL;
    }

    return PW__AT(st, ((uint64_t *) PW__AT(st, h->m_tab))[id - 1]);
}


/* Histogram bucket of v: the smallest i with v <= 2^i (v <= 1: 0). */
static unsigned
pw__metric_bucket(int64_t v)
{
    uint64_t u;

    if (v <= 1) {
        return 0;
    }

    u = (uint64_t) v - 1;
    return 64 - (unsigned) __builtin_clzll(u);
}


int
pw_metric_define(pw_store_t *st, pw_metric_type_t type, pw_str_t name,
    uint32_t *id)
{
    int rc;
    pw__hdr_t *h;
    pw__metric_t *m;
    uint64_t i, off, extra, need, *tab;

    if (st == NULL || id == NULL || (name.data == NULL && name.len > 0)) {
        return PW_EINVAL;
    }
    if (type != PW_METRIC_COUNTER && type != PW_METRIC_GAUGE
        && type != PW_METRIC_HISTOGRAM)
    {
        return PW_EINVAL;
    }
    if (name.len > PW_MAX_KEY_BYTES) {
        return PW_ELIMIT;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);

    if (h->m_count) {
        tab = PW__AT(st, h->m_tab);
        for (i = 0; i < h->m_count; i++) {
            m = PW__AT(st, tab[i]);
            if (m->type == (uint64_t) type && m->name_len == name.len
                && (name.len == 0
                    || memcmp(PW__M_NAME(m), name.data, name.len) == 0))
            {
                *id = (uint32_t) m->id;
                pw__unlock(st);
                return PW_OK;
            }
        }
    }

    if (h->m_count >= UINT32_MAX) {
        pw__unlock(st);
        return PW_ELIMIT;
    }

    extra = type == PW_METRIC_HISTOGRAM
            ? PW__HIST_BUCKETS * sizeof(uint64_t) : 0;

    need = sizeof(pw__metric_t) + extra + name.len;
    if (pw__block_need(need) + pw__table_need(h->m_cap, h->m_count)
        > pw__kv_room_locked(st, 0))
    {
        pw__unlock(st);
        return PW_EFULL;
    }

    for ( ;; ) {
        rc = pw__alloc(st, need, &off);
        if (rc == PW_OK) {
            m = PW__AT(st, off);
            m->id = h->m_count + 1;
            m->type = type;
            m->value = 0;
            m->sum = 0;
            m->name_len = name.len;
            memset(m + 1, 0, extra);
            if (name.len) {
                memcpy((uint8_t *) (m + 1) + extra, name.data, name.len);
            }

            rc = pw__table_add(st, &h->m_tab, &h->m_cap, &h->m_count, off);
            if (rc == PW_OK) {
                break;
            }
        }

        /* two allocations: undo, evict a key (LRU), try again */
        pw__rollback(st);
        if (rc != PW_EFULL || !pw__kv_evict_one_locked(st, 0)) {
            pw__unlock(st);
            return rc;
        }
    }

    *id = (uint32_t) m->id;
    pw__commit(st);
    pw__unlock(st);
    return PW_OK;
}


int
pw_metric_increment(pw_store_t *st, uint32_t id, int64_t delta)
{
    int rc;
    pw__metric_t *m;

    if (st == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    m = pw__metric_by_id_locked(st, id);
    if (m == NULL) {
        rc = PW_ENOTFOUND;

    } else if (m->type == PW_METRIC_HISTOGRAM
               || (m->type == PW_METRIC_COUNTER && delta < 0))
    {
        rc = PW_EINVAL;

    } else {
        pw__set(st, &m->value, m->value + (uint64_t) delta);
        pw__commit(st);
    }

    pw__unlock(st);
    return rc;
}


int
pw_metric_record(pw_store_t *st, uint32_t id, int64_t value)
{
    int rc;
    unsigned b;
    pw__metric_t *m;
    uint64_t *buckets;

    if (st == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    m = pw__metric_by_id_locked(st, id);
    if (m == NULL) {
        pw__unlock(st);
        return PW_ENOTFOUND;
    }

    if (m->type == PW_METRIC_HISTOGRAM) {
        buckets = PW__M_BUCKETS(m);
        b = pw__metric_bucket(value);
        pw__set(st, &buckets[b], buckets[b] + 1);
        pw__set(st, &m->sum, m->sum + (uint64_t) value);
        pw__set(st, &m->value, m->value + 1);

    } else {
        pw__set(st, &m->value, (uint64_t) value);
    }

    pw__commit(st);
    pw__unlock(st);
    return PW_OK;
}


int
pw_metric_get(pw_store_t *st, uint32_t id, int64_t *value)
{
    int rc;
    pw__metric_t *m;

    if (st == NULL || value == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    m = pw__metric_by_id_locked(st, id);
    if (m != NULL) {
        *value = (int64_t) m->value;
    }

    pw__unlock(st);
    return m ? PW_OK : PW_ENOTFOUND;
}


int
pw_metric_foreach(pw_store_t *st,
    void (*fn)(void *arg, uint32_t id, const pw_metric_info_t *m),
    void *arg)
{
    int rc;
    pw__hdr_t *h;
    pw__metric_t *m;
    pw_metric_info_t info;
    uint64_t i, *tab;

    if (st == NULL || fn == NULL) {
        return PW_EINVAL;
    }

    rc = pw__lock(st);
    if (rc != PW_OK) {
        return rc;
    }

    h = PW__HDR(st);

    for (i = 0; i < h->m_count; i++) {
        tab = PW__AT(st, h->m_tab);
        m = PW__AT(st, tab[i]);

        info.type = (pw_metric_type_t) m->type;
        info.name.data = PW__M_NAME(m);
        info.name.len = m->name_len;
        info.value = (int64_t) m->value;
        info.sum = (int64_t) m->sum;
        info.buckets = m->type == PW_METRIC_HISTOGRAM
                       ? PW__M_BUCKETS(m) : NULL;

        fn(arg, (uint32_t) m->id, &info);
    }

    pw__unlock(st);
    return PW_OK;
}
