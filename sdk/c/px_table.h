/*
 * The C SDK runtime's u32-keyed table (included by proxy_wasm.c only; not
 * part of the SDK's interface). Kept apart so that tests/sdk can check it
 * natively.
 */
#ifndef PX_TABLE_H
#define PX_TABLE_H

#include <stdint.h>
#include <stdlib.h>

/*
 * Used for callout tokens (key = token, val = issuing context) and, behind
 * the direct-mapped front of px__ctxs_t below, for the contexts that front
 * has no slot for (key = context id). Linear probing; a removal shifts
 * the rest of its run back instead of leaving a tombstone, so a table that
 * sees a context come and go per request never needs rebuilding (nor a
 * malloc) unless it grows.
 */

enum { PX__FREE = 0, PX__LIVE = 1 };

typedef struct {
    uint32_t key;
    uint32_t val;
    void *ptr;
    uint8_t state;
} px__slot_t;

typedef struct {
    px__slot_t *slots;
    uint32_t cap;            /* power of two or 0 */
    uint32_t used;           /* live slots */
} px__table_t;

static uint32_t
px__hash(uint32_t k)
{
    k ^= k >> 16;
    k *= 0x45d9f3bu;
    k ^= k >> 16;
    return k;
}


static px__slot_t *
px__table_find(px__table_t *t, uint32_t key)
{
    uint32_t i, n;
    px__slot_t *s;

    if (t->cap == 0) {
        return NULL;
    }

    for (i = px__hash(key) & (t->cap - 1), n = 0; n < t->cap;
         i = (i + 1) & (t->cap - 1), n++)
    {
        s = &t->slots[i];
        if (s->state == PX__FREE) {
            return NULL;
        }
        if (s->key == key) {
            return s;
        }
    }

    return NULL;
}


/* out of line: a put that fits (nearly every one) stays small */
static __attribute__((noinline)) int
px__table_rehash(px__table_t *t, uint32_t cap)
{
    uint32_t i, j;
    px__slot_t *old, *slots;

    slots = calloc(cap, sizeof(px__slot_t));
    if (slots == NULL) {
        return -1;
    }

    old = t->slots;
    for (i = 0; i < t->cap; i++) {
        if (old[i].state != PX__LIVE) {
            continue;
        }
        for (j = px__hash(old[i].key) & (cap - 1);
             slots[j].state != PX__FREE;
             j = (j + 1) & (cap - 1))
        {
            /* probe */
        }
        slots[j] = old[i];
    }

    free(old);
    t->slots = slots;
    t->cap = cap;

    return 0;
}


/* The live slot for `key`, created (val 0, ptr NULL) if absent. */
static px__slot_t *
px__table_put(px__table_t *t, uint32_t key)
{
    uint32_t i, mask;
    px__slot_t *s;

    /* one probe finds the key or where it goes */
    if (t->cap != 0) {
        mask = t->cap - 1;
        for (i = px__hash(key) & mask; t->slots[i].state == PX__LIVE;
             i = (i + 1) & mask)
        {
            if (t->slots[i].key == key) {
                return &t->slots[i];
            }
        }
        if ((t->used + 1) * 2 <= t->cap) {
            goto insert;
        }
    }

    if (px__table_rehash(t, t->cap ? t->cap * 2 : 16) != 0) {
        return NULL;
    }
    mask = t->cap - 1;
    for (i = px__hash(key) & mask; t->slots[i].state == PX__LIVE;
         i = (i + 1) & mask)
    {
        /* probe */
    }

insert:
    s = &t->slots[i];
    t->used++;
    s->state = PX__LIVE;
    s->key = key;
    s->val = 0;
    s->ptr = NULL;

    return s;
}


/*
 * Empty slot s and move back whichever later slots of its run would no
 * longer be found past the hole (their home is not between it and them).
 */
static void
px__table_remove(px__table_t *t, px__slot_t *s)
{
    uint32_t hole, j, home, mask = t->cap - 1;

    hole = (uint32_t) (s - t->slots);
    t->slots[hole].state = PX__FREE;
    t->used--;

    for (j = (hole + 1) & mask; t->slots[j].state == PX__LIVE;
         j = (j + 1) & mask)
    {
        home = px__hash(t->slots[j].key) & mask;
        /* stays when its home lies cyclically in (hole, j] */
        if (((j - home) & mask) < ((j - hole) & mask)) {
            continue;
        }
        t->slots[hole] = t->slots[j];
        t->slots[j].state = PX__FREE;
        hole = j;
    }
}


static void
px__table_del(px__table_t *t, uint32_t key)
{
    px__slot_t *s;

    s = px__table_find(t, key);
    if (s != NULL) {
        px__table_remove(t, s);
    }
}


static __attribute__((noinline)) void
px__table_del_val_scan(px__table_t *t, uint32_t val)
{
    uint32_t i;

    /* a removal may move a later slot into i: look at i again */
    for (i = 0; i < t->cap; /* void */) {
        if (t->slots[i].state == PX__LIVE && t->slots[i].val == val) {
            px__table_remove(t, &t->slots[i]);
            continue;
        }
        i++;
    }
}


/*
 * Remove every slot whose val is `val`. The empty test is inline: every
 * context's deletion asks the callout tables, which are nearly always
 * empty, and a call into the scan costs more than the test.
 */
static inline void
px__table_del_val(px__table_t *t, uint32_t val)
{
    if (t->used != 0) {
        px__table_del_val_scan(t, val);
    }
}


/*
 * The contexts: ids are handed out in sequence and most live for one
 * request, so a direct-mapped array of PX__RECENT slots (slot: the id's low
 * bits, key 0: free) takes nearly all of them, in a few loads and stores;
 * an id whose slot is taken goes to the table. Id 0 is never a context's.
 */
#define PX__RECENT 64

typedef struct {
    px__slot_t recent[PX__RECENT];
    px__table_t rest;
} px__ctxs_t;


static px__slot_t *
px__ctxs_find(px__ctxs_t *m, uint32_t key)
{
    px__slot_t *s = &m->recent[key & (PX__RECENT - 1)];

    if (s->key == key && key != 0) {
        return s;
    }

    return m->rest.used != 0 ? px__table_find(&m->rest, key) : NULL;
}


/* The live slot for `key`, created (val 0, ptr NULL) if absent. */
static px__slot_t *
px__ctxs_put(px__ctxs_t *m, uint32_t key)
{
    px__slot_t *s;

    s = px__ctxs_find(m, key);
    if (s != NULL) {
        return s;
    }

    s = &m->recent[key & (PX__RECENT - 1)];
    if (s->key != 0 || key == 0) {
        return px__table_put(&m->rest, key);
    }

    s->key = key;
    s->val = 0;
    s->ptr = NULL;
    s->state = PX__LIVE;

    return s;
}


static void
px__ctxs_del(px__ctxs_t *m, uint32_t key)
{
    px__slot_t *s = &m->recent[key & (PX__RECENT - 1)];

    if (s->key == key && key != 0) {
        s->key = 0;
        s->state = PX__FREE;
        return;
    }

    if (m->rest.used != 0) {
        px__table_del(&m->rest, key);
    }
}

#endif /* PX_TABLE_H */
