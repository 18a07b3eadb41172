/*
 * The C SDK runtime's context table (sdk/c/px_table.h), compiled natively:
 * random puts, finds and removals (by key and by value) against a plain
 * array, with keys chosen to collide, and the churn of contexts that come
 * and go one per request, which must not grow or rebuild the table; the
 * same for the contexts' map, whose direct-mapped front must take that
 * churn alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pwtest.h"
#include "../../sdk/c/px_table.h"

#define REF_MAX 4096

typedef struct {
    uint32_t key, val;
    int live;
} ref_t;

static ref_t ref[REF_MAX];
static uint32_t nref;

static ref_t *
ref_find(uint32_t key)
{
    uint32_t i;

    for (i = 0; i < nref; i++) {
        if (ref[i].live && ref[i].key == key) {
            return &ref[i];
        }
    }
    return NULL;
}

/* Every live key is found with its value, and the count agrees. */
static void
same_as_ref(px__table_t *t)
{
    uint32_t i, live = 0, n = 0;
    px__slot_t *s;

    for (i = 0; i < nref; i++) {
        if (!ref[i].live) {
            continue;
        }
        live++;
        s = px__table_find(t, ref[i].key);
        PW_CHECK(s != NULL && s->state == PX__LIVE);
        PW_CHECK_EQ_INT(s->val, ref[i].val);
    }
    for (i = 0; i < t->cap; i++) {
        n += t->slots[i].state == PX__LIVE;
    }
    PW_CHECK_EQ_INT(t->used, live);
    PW_CHECK_EQ_INT(n, live);
}

static uint32_t
rnd(void)
{
    static uint32_t x = 2463534242u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* After a put of key that gave slot s: a new key's slot is fresh; both
 * get the same new value. */
static void
ref_put(uint32_t key, px__slot_t *s)
{
    uint32_t val;
    ref_t *r;

    r = ref_find(key);
    if (r == NULL) {
        PW_CHECK(nref < REF_MAX);
        r = &ref[nref++];
        r->key = key;
        r->live = 1;
        PW_CHECK_EQ_INT(s->val, 0);
        PW_CHECK(s->ptr == NULL);
    }
    val = rnd() % 7;
    s->val = val;
    r->val = val;
}

PW_TEST(random_against_reference)
{
    px__table_t t = { 0 };
    uint32_t step, key, val, i;
    px__slot_t *s;
    ref_t *r;

    nref = 0;
    for (step = 0; step < 200000; step++) {
        /* few keys, so runs are long and removals shift them */
        key = 1 + rnd() % 300;
        switch (rnd() % 5) {
        case 0:
        case 1:
            s = px__table_put(&t, key);
            PW_CHECK(s != NULL);
            ref_put(key, s);
            break;
        case 2:
        case 3:
            px__table_del(&t, key);
            r = ref_find(key);
            if (r != NULL) {
                r->live = 0;
            }
            PW_CHECK(px__table_find(&t, key) == NULL);
            break;
        default:
            val = rnd() % 7;
            px__table_del_val(&t, val);
            for (i = 0; i < nref; i++) {
                if (ref[i].live && ref[i].val == val) {
                    ref[i].live = 0;
                }
            }
            break;
        }
        if (step % 97 == 0) {
            same_as_ref(&t);
            /* compact the reference now and then */
            for (i = 0, key = 0; i < nref; i++) {
                if (ref[i].live) {
                    ref[key++] = ref[i];
                }
            }
            nref = key;
        }
    }
    same_as_ref(&t);
    free(t.slots);
}

/* A root context stays; each request's context comes and goes. */
PW_TEST(per_request_churn_keeps_the_table)
{
    px__table_t t = { 0 };
    px__slot_t *slots;
    uint32_t id, cap;

    PW_CHECK(px__table_put(&t, 1) != NULL);
    PW_CHECK(px__table_put(&t, 2) != NULL);
    slots = t.slots;
    cap = t.cap;
    for (id = 3; id < 100000; id++) {
        PW_CHECK(px__table_put(&t, id) != NULL);
        PW_CHECK(px__table_find(&t, 1) != NULL);
        px__table_del(&t, id);
        px__table_del_val(&t, id);
    }
    PW_CHECK(t.slots == slots && t.cap == cap);
    PW_CHECK_EQ_INT(t.used, 2);
    free(t.slots);
}

/* The contexts' map (a direct-mapped front on the table) against the
 * reference: keys that share their low bits, so both parts hold some. */
PW_TEST(contexts_against_reference)
{
    px__ctxs_t m;
    uint32_t step, key, i, live;
    px__slot_t *s;
    ref_t *r;

    memset(&m, 0, sizeof(m));
    nref = 0;
    for (step = 0; step < 200000; step++) {
        key = rnd() % 400;                  /* 0 included: table only */
        if (rnd() % 2) {
            s = px__ctxs_put(&m, key);
            PW_CHECK(s != NULL && s->key == key);
            ref_put(key, s);
        } else {
            px__ctxs_del(&m, key);
            r = ref_find(key);
            if (r != NULL) {
                r->live = 0;
            }
            PW_CHECK(px__ctxs_find(&m, key) == NULL);
        }
        if (step % 89 == 0) {
            for (i = 0, live = 0; i < nref; i++) {
                if (ref[i].live) {
                    s = px__ctxs_find(&m, ref[i].key);
                    PW_CHECK(s != NULL && s->key == ref[i].key);
                    PW_CHECK_EQ_INT(s->val, ref[i].val);
                    ref[live++] = ref[i];
                }
            }
            nref = live;
            for (i = 0; i < PX__RECENT; i++) {
                live -= m.recent[i].key != 0;
            }
            PW_CHECK_EQ_INT(live, m.rest.used);
        }
    }
    free(m.rest.slots);
}

/* Contexts one per request beside a root: the table takes only the ids
 * whose slot the root holds, one at a time, and never grows. */
PW_TEST(contexts_churn_stays_in_front)
{
    px__ctxs_t m;
    uint32_t id;

    memset(&m, 0, sizeof(m));
    PW_CHECK(px__ctxs_put(&m, 1) != NULL);
    for (id = 2; id < 100000; id++) {
        PW_CHECK(px__ctxs_put(&m, id) != NULL);
        PW_CHECK(px__ctxs_find(&m, 1) != NULL);
        PW_CHECK(px__ctxs_find(&m, id) != NULL);
        px__ctxs_del(&m, id);
        PW_CHECK(px__ctxs_find(&m, id) == NULL);
    }
    PW_CHECK(m.rest.cap <= 16);
    PW_CHECK_EQ_INT(m.rest.used, 0);
    PW_CHECK(px__ctxs_find(&m, 1) != NULL);
    PW_CHECK(px__ctxs_find(&m, 1 + PX__RECENT) == NULL);
    free(m.rest.slots);
}

int
main(int argc, char **argv)
{
    return pw_test_main(argc, argv, (pw_test_t[]){
        PW_TEST_ENTRY(random_against_reference),
        PW_TEST_ENTRY(per_request_churn_keeps_the_table),
        PW_TEST_ENTRY(contexts_against_reference),
        PW_TEST_ENTRY(contexts_churn_stays_in_front),
        { 0 } });
}
