/*
 * proxy-wasm-c: tests of the store (include/pw/pw_store.h): key-value with
 * CAS, queues, metrics, the allocator, attaching at several addresses,
 * several processes at once, processes killed while holding the lock, and
 * a randomized comparison against a reference model.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include <pw/pw_store.h>

#include "store/pw_store_internal.h"
#include "../pwtest.h"


#define MB  (1024 * 1024)


/* ---- helpers --------------------------------------------------------- */

static void
check_ok(pw_store_t *st)
{
    char err[256];
    int rc;

    rc = pw__store_check(st, NULL, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "  store check: %s\n", err);
    }
    PW_CHECK_EQ_INT(rc, PW_OK);
}


static pw__store_stats_t
stats_of(pw_store_t *st)
{
    pw__store_stats_t s;
    char err[256];

    PW_CHECK_EQ_INT(pw__store_check(st, &s, err, sizeof(err)), PW_OK);
    return s;
}


static pw_store_stats_t
pub_stats(pw_store_t *st)
{
    pw_store_stats_t s;

    PW_CHECK_EQ_INT(pw_store_stats(st, &s), PW_OK);
    return s;
}


static pw_store_t *
new_store(size_t size)
{
    pw_store_t *st;

    PW_CHECK_EQ_INT(pw_store_new(size, NULL, &st), PW_OK);
    return st;
}


static int
set_str(pw_store_t *st, const char *k, const char *v, uint32_t cas)
{
    return pw_kv_set(st, k, strlen(k), v, strlen(v), cas);
}


/* get k as a NUL-terminated malloc'd string (or NULL if absent) */
static char *
get_str(pw_store_t *st, const char *k, uint32_t *cas)
{
    uint8_t *v;
    size_t len;
    char *s;
    int rc;

    rc = pw_kv_get(st, k, strlen(k), &v, &len, cas);
    if (rc == PW_ENOTFOUND) {
        return NULL;
    }
    PW_CHECK_EQ_INT(rc, PW_OK);

    s = malloc(len + 1);
    PW_CHECK(s != NULL);
    memcpy(s, v, len);
    s[len] = '\0';
    free(v);
    return s;
}


static void
check_val(pw_store_t *st, const char *k, const char *want)
{
    char *s;

    s = get_str(st, k, NULL);
    PW_CHECK_EQ_STR(s, want);
    free(s);
}


static void *
shared_map(size_t size)
{
    void *p;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    PW_CHECK(p != MAP_FAILED);
    return p;
}


static pw_store_t *
shared_store(size_t size, void **region)
{
    pw_store_t *st;

    *region = shared_map(size);
    PW_CHECK_EQ_INT(pw_store_format(*region, size), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(*region, size, NULL, &st), PW_OK);
    return st;
}


static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}


static void
fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        p[i] = (uint8_t) rng_next(&seed);
    }
}


static const pw_str_t VM = { "vm", 2 };


/* ---- format and attach ------------------------------------------------ */

static void
lock_only(void *data)
{
}


PW_TEST(format_attach)
{
    uint64_t small[PW_STORE_MIN_SIZE / 8 - 1];
    uint64_t *region;
    pw_store_t *st;
    pw_store_conf_t conf;
    pw__store_stats_t s;
    size_t size;

    size = 64 * 1024;
    region = calloc(1, size);
    PW_CHECK(region != NULL);

    PW_CHECK_EQ_INT(pw_store_format(NULL, size), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_format(small, sizeof(small)), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_format((uint8_t *) region + 4, size - 8),
                    PW_EINVAL);

    /* never formatted */
    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, &st), PW_EINVAL);

    PW_CHECK_EQ_INT(pw_store_format(region, size), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(region, size / 2, NULL, &st), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_attach(NULL, size, NULL, &st), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, NULL), PW_EINVAL);

    memset(&conf, 0, sizeof(conf));
    conf.lock = lock_only;
    PW_CHECK_EQ_INT(pw_store_attach(region, size, &conf, &st), PW_EINVAL);

    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, &st), PW_OK);
    s = stats_of(st);
    PW_CHECK_EQ_INT(s.free_blocks, 1);
    PW_CHECK_EQ_INT(s.used_blocks, 0);
    PW_CHECK_EQ_INT(s.free_bytes, s.heap_bytes);
    PW_CHECK(s.heap_bytes > size / 2);
    pw_store_detach(st);

    PW_CHECK_EQ_INT(pw_store_new(100, NULL, &st), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_new(PW_STORE_MIN_SIZE, NULL, &st), PW_OK);
    PW_CHECK_EQ_INT(set_str(st, "k", "v", 0), PW_OK);
    check_val(st, "k", "v");
    check_ok(st);
    pw_store_free(st);
    pw_store_free(NULL);

    free(region);
}


/* ---- key-value ------------------------------------------------------- */

PW_TEST(kv_get_set)
{
    pw_store_t *st;
    uint8_t *v;
    size_t len;
    uint32_t cas, cas2;

    st = new_store(64 * 1024);

    v = (uint8_t *) "x";
    PW_CHECK_EQ_INT(pw_kv_get(st, "nope", 4, &v, &len, &cas), PW_ENOTFOUND);

    PW_CHECK_EQ_INT(set_str(st, "a", "one", 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_get(st, "a", 1, &v, &len, &cas), PW_OK);
    PW_CHECK_MEM(v, len, "one");
    PW_CHECK(cas != 0);

    /* the copy is the caller's: changing it changes nothing stored */
    v[0] = 'X';
    free(v);
    check_val(st, "a", "one");

    /* exact key bytes: prefixes, NULs and the empty key are distinct */
    PW_CHECK_EQ_INT(pw_kv_set(st, "a\0", 2, "two", 3, 0), PW_OK);
    PW_CHECK_EQ_INT(set_str(st, "ab", "three", 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "", 0, "empty", 5, 0), PW_OK);
    check_val(st, "a", "one");
    check_val(st, "ab", "three");
    check_val(st, "", "empty");
    PW_CHECK_EQ_INT(pw_kv_get(st, "a\0", 2, &v, &len, NULL), PW_OK);
    PW_CHECK_MEM(v, len, "two");
    free(v);
    PW_CHECK_EQ_INT(pw_kv_get(st, "a\0\0", 3, &v, &len, NULL),
                    PW_ENOTFOUND);

    /* overwrite: new value, new token */
    PW_CHECK_EQ_INT(pw_kv_get(st, "a", 1, NULL, &len, &cas), PW_OK);
    PW_CHECK_EQ_INT(len, 3);
    PW_CHECK_EQ_INT(set_str(st, "a", "uno!", 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_get(st, "a", 1, NULL, &len, &cas2), PW_OK);
    PW_CHECK_EQ_INT(len, 4);
    PW_CHECK(cas2 != cas && cas2 != 0);
    check_val(st, "a", "uno!");

    /* bad arguments */
    PW_CHECK_EQ_INT(pw_kv_get(NULL, "a", 1, &v, &len, &cas), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_kv_get(st, NULL, 1, &v, &len, &cas), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_kv_get(st, "a", 1, &v, NULL, &cas), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_kv_set(NULL, "a", 1, "v", 1, 0), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_kv_set(st, NULL, 1, "v", 1, 0), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_kv_set(st, "a", 1, NULL, 1, 0), PW_EINVAL);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_cas)
{
    pw_store_t *st;
    uint32_t c1, c2, c3, *seen;
    size_t i, j, len;

    st = new_store(64 * 1024);

    PW_CHECK_EQ_INT(set_str(st, "k", "v1", 0), PW_OK);
    free(get_str(st, "k", &c1));

    /* right token: written, and the token changes */
    PW_CHECK_EQ_INT(set_str(st, "k", "v2", c1), PW_OK);
    free(get_str(st, "k", &c2));
    PW_CHECK(c2 != c1 && c2 != 0);
    check_val(st, "k", "v2");

    /* stale token: refused, nothing changes */
    PW_CHECK_EQ_INT(set_str(st, "k", "v3", c1), PW_ECAS);
    PW_CHECK_EQ_INT(set_str(st, "k", "v3", c2 + 12345), PW_ECAS);
    free(get_str(st, "k", &c3));
    PW_CHECK_EQ_INT(c3, c2);
    check_val(st, "k", "v2");

    /* cas 0: unconditional */
    PW_CHECK_EQ_INT(set_str(st, "k", "v4", 0), PW_OK);
    check_val(st, "k", "v4");

    /* a token for an absent key: the write happens */
    PW_CHECK_EQ_INT(set_str(st, "fresh", "f", 777), PW_OK);
    check_val(st, "fresh", "f");

    /* deleting with a stale token is refused, with the right one works */
    free(get_str(st, "k", &c1));
    PW_CHECK_EQ_INT(pw_kv_set(st, "k", 1, NULL, 0, c1 + 1), PW_ECAS);
    check_val(st, "k", "v4");
    PW_CHECK_EQ_INT(pw_kv_set(st, "k", 1, NULL, 0, c1), PW_OK);
    PW_CHECK(get_str(st, "k", NULL) == NULL);

    /* a recreated key never gets an old token back */
    PW_CHECK_EQ_INT(set_str(st, "k", "v5", c1), PW_OK);
    free(get_str(st, "k", &c2));
    PW_CHECK(c2 != c1);

    /* every write, to any key, gets a fresh non-zero token */
    seen = malloc(2000 * sizeof(uint32_t));
    PW_CHECK(seen != NULL);
    for (i = 0; i < 2000; i++) {
        PW_CHECK_EQ_INT(pw_kv_set(st, i & 1 ? "x" : "y", 1, "val", 3, 0),
                        PW_OK);
        PW_CHECK_EQ_INT(pw_kv_get(st, i & 1 ? "x" : "y", 1, NULL, &len,
                                  &seen[i]), PW_OK);
        PW_CHECK(seen[i] != 0);
    }
    for (i = 0; i < 2000; i++) {
        for (j = i + 1; j < 2000; j++) {
            PW_CHECK(seen[i] != seen[j]);
        }
    }
    free(seen);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_cas_token_wraps_past_zero)
{
    pw_store_t *st;
    uint32_t cas;

    st = new_store(64 * 1024);

    PW__HDR(st)->cas_last = UINT32_MAX - 1;
    PW_CHECK_EQ_INT(set_str(st, "k", "a", 0), PW_OK);
    free(get_str(st, "k", &cas));
    PW_CHECK_EQ_INT(cas, UINT32_MAX);
    PW_CHECK_EQ_INT(set_str(st, "k", "b", cas), PW_OK);
    free(get_str(st, "k", &cas));
    PW_CHECK_EQ_INT(cas, 1);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_delete)
{
    pw_store_t *st;
    pw__store_stats_t s0, s;
    char key[32];
    int i;

    st = new_store(256 * 1024);
    s0 = stats_of(st);

    /* deleting an absent key is fine */
    PW_CHECK_EQ_INT(pw_kv_set(st, "none", 4, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "none", 4, "", 0, 0), PW_OK);

    for (i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        PW_CHECK_EQ_INT(set_str(st, key, key, 0), PW_OK);
    }
    s = stats_of(st);
    PW_CHECK_EQ_INT(s.kv_count, 200);

    for (i = 0; i < 200; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), "", 0, 0), PW_OK);
    }
    s = stats_of(st);
    PW_CHECK_EQ_INT(s.kv_count, 100);

    for (i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (i & 1) {
            check_val(st, key, key);
        } else {
            PW_CHECK(get_str(st, key, NULL) == NULL);
        }
    }

    for (i = 1; i < 200; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), NULL, 0, 0), PW_OK);
    }

    /* everything given back and merged into one block */
    s = stats_of(st);
    PW_CHECK_EQ_INT(s.kv_count, 0);
    PW_CHECK_EQ_INT(s.free_bytes, s0.free_bytes);
    PW_CHECK_EQ_INT(s.free_blocks, 1);

    pw_store_free(st);
}


PW_TEST(kv_limits)
{
    pw_store_t *st;
    char *key;
    uint8_t *v;
    size_t len;

    st = new_store(512 * 1024);
    key = malloc(PW_MAX_KEY_BYTES + 1);
    PW_CHECK(key != NULL);
    memset(key, 'k', PW_MAX_KEY_BYTES + 1);

    PW_CHECK_EQ_INT(pw_kv_set(st, key, PW_MAX_KEY_BYTES + 1, "v", 1, 0),
                    PW_ELIMIT);
    PW_CHECK_EQ_INT(pw_kv_get(st, key, PW_MAX_KEY_BYTES + 1, &v, &len, NULL),
                    PW_ELIMIT);

    /* the largest key is fine */
    PW_CHECK_EQ_INT(pw_kv_set(st, key, PW_MAX_KEY_BYTES, "v", 1, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_get(st, key, PW_MAX_KEY_BYTES, &v, &len, NULL),
                    PW_OK);
    PW_CHECK_MEM(v, len, "v");
    free(v);

    /* a value that can never fit the region */
    v = malloc(600 * 1024);
    PW_CHECK(v != NULL);
    memset(v, 1, 600 * 1024);
    PW_CHECK_EQ_INT(pw_kv_set(st, "big", 3, v, 600 * 1024, 0), PW_ELIMIT);
    free(v);

    free(key);
    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_large_values)
{
    pw_store_t *st;
    uint8_t *v, *got;
    size_t len, sizes[] = { 1, 4095, 65536, 1 * MB, 3 * MB + 7 };
    unsigned i;
    char key[16];

    st = new_store(16 * MB);
    v = malloc(4 * MB);
    PW_CHECK(v != NULL);

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(key, sizeof(key), "v%u", i);
        fill_pattern(v, sizes[i], i + 1);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), v, sizes[i], 0),
                        PW_OK);
    }

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(key, sizeof(key), "v%u", i);
        fill_pattern(v, sizes[i], i + 1);
        PW_CHECK_EQ_INT(pw_kv_get(st, key, strlen(key), &got, &len, NULL),
                        PW_OK);
        PW_CHECK_EQ_INT(len, sizes[i]);
        PW_CHECK(memcmp(got, v, len) == 0);
        free(got);
    }

    /* large replaced by small and back */
    PW_CHECK_EQ_INT(pw_kv_set(st, "v4", 2, "tiny", 4, 0), PW_OK);
    check_val(st, "v4", "tiny");
    fill_pattern(v, 4 * MB, 99);
    PW_CHECK_EQ_INT(pw_kv_set(st, "v4", 2, v, 4 * MB, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_get(st, "v4", 2, &got, &len, NULL), PW_OK);
    PW_CHECK_EQ_INT(len, 4 * MB);
    PW_CHECK(memcmp(got, v, len) == 0);
    free(got);

    free(v);
    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_full_then_room_again)
{
    pw_store_t *st;
    pw__store_stats_t s0, s;
    char key[32], val[200], big[600];
    int i, n;

    st = new_store(64 * 1024);
    s0 = stats_of(st);
    memset(val, 'v', sizeof(val));
    memset(big, 'B', sizeof(big));

    for (n = 0; ; n++) {
        snprintf(key, sizeof(key), "k%04d", n);
        i = pw_kv_set(st, key, strlen(key), val, sizeof(val), 0);
        if (i == PW_EFULL) {
            break;
        }
        PW_CHECK_EQ_INT(i, PW_OK);
        PW_CHECK(n < 10000);
    }
    PW_CHECK(n > 100);

    /* full: a failed set changes nothing, an update of an existing key
     * needs room too */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k0001", 5, big, 300, 0), PW_EFULL);
    check_ok(st);
    PW_CHECK_EQ_INT(stats_of(st).kv_count, (uint64_t) n);

    /* two non-adjacent holes do not make room for twice their size */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k0010", 5, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "k0012", 5, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "big", 3, big, sizeof(big), 0), PW_EFULL);

    /* freeing the entry between them merges three blocks into one (the
     * big entry leaves less than one entry's room of it) */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k0011", 5, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "big", 3, big, sizeof(big), 0), PW_OK);
    check_ok(st);

    /* the space of a deleted entry is reused */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k0020", 5, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "new", 3, val, sizeof(val), 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "new2", 4, val, sizeof(val), 0),
                    PW_EFULL);

    /* emptying the store gives every byte back as one block */
    for (i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), NULL, 0, 0), PW_OK);
    }
    PW_CHECK_EQ_INT(pw_kv_set(st, "big", 3, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "new", 3, NULL, 0, 0), PW_OK);
    s = stats_of(st);
    PW_CHECK_EQ_INT(s.free_bytes, s0.free_bytes);
    PW_CHECK_EQ_INT(s.free_blocks, 1);
    PW_CHECK_EQ_INT(s.used_blocks, 0);

    pw_store_free(st);
}


typedef struct {
    int n;
    int seen[10];
    int bad;
} kv_visit_t;


static void
kv_visit(void *arg, pw_str_t key, pw_str_t val, uint32_t cas)
{
    kv_visit_t *v = arg;
    int i;

    v->n++;
    if (key.len != 2 || key.data[0] != 'k' || cas == 0) {
        v->bad++;
        return;
    }
    i = key.data[1] - '0';
    if (i < 0 || i > 9 || val.len != (size_t) i + 1) {
        v->bad++;
        return;
    }
    v->seen[i]++;
}


PW_TEST(kv_foreach)
{
    pw_store_t *st;
    kv_visit_t v;
    char key[3], val[16];
    int i;

    st = new_store(64 * 1024);
    memset(val, 'x', sizeof(val));

    memset(&v, 0, sizeof(v));
    PW_CHECK_EQ_INT(pw_kv_foreach(st, kv_visit, &v), PW_OK);
    PW_CHECK_EQ_INT(v.n, 0);

    for (i = 0; i < 10; i++) {
        key[0] = 'k';
        key[1] = (char) ('0' + i);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, 2, val, (size_t) i + 1, 0), PW_OK);
    }
    PW_CHECK_EQ_INT(pw_kv_set(st, "k3", 2, NULL, 0, 0), PW_OK);

    PW_CHECK_EQ_INT(pw_kv_foreach(st, kv_visit, &v), PW_OK);
    PW_CHECK_EQ_INT(v.n, 9);
    PW_CHECK_EQ_INT(v.bad, 0);
    for (i = 0; i < 10; i++) {
        PW_CHECK_EQ_INT(v.seen[i], i == 3 ? 0 : 1);
    }

    PW_CHECK_EQ_INT(pw_kv_foreach(st, NULL, &v), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_kv_foreach(NULL, kv_visit, &v), PW_EINVAL);
    pw_store_free(st);
}


/* ---- queues ---------------------------------------------------------- */

typedef struct {
    int calls;
    uint32_t qid;
    uint64_t owner;
    int lock_held;
    int lock_calls;
    int held_in_ready;
    pw_store_t *st;
} ready_t;


static void
on_ready(void *data, uint32_t qid, uint64_t owner)
{
    ready_t *r = data;

    r->calls++;
    r->qid = qid;
    r->owner = owner;
    r->held_in_ready += r->lock_held;
}


static void
test_lock(void *data)
{
    ready_t *r = data;

    PW_CHECK(!r->lock_held);
    r->lock_held = 1;
    r->lock_calls++;
}


static void
test_unlock(void *data)
{
    ready_t *r = data;

    PW_CHECK(r->lock_held);
    r->lock_held = 0;
}


PW_TEST(queue_register_resolve)
{
    pw_store_t *st;
    uint32_t q1, q2, q3, q;

    st = new_store(64 * 1024);

    PW_CHECK_EQ_INT(pw_queue_resolve(st, VM, PW_STR("q"), &q), PW_ENOTFOUND);

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 1, &q1), PW_OK);
    PW_CHECK(q1 != 0);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 2, &q2), PW_OK);
    PW_CHECK_EQ_INT(q2, q1);

    /* the same name under another vm, and another name, are other queues */
    PW_CHECK_EQ_INT(pw_queue_register(st, PW_STR("vm2"), PW_STR("q"), 3, &q3),
                    PW_OK);
    PW_CHECK(q3 != 0 && q3 != q1);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q\0"), 3, &q), PW_OK);
    PW_CHECK(q != 0 && q != q1 && q != q3);
    PW_CHECK_EQ_INT(pw_queue_register(st, PW_STR(""), PW_STR(""), 3, &q),
                    PW_OK);
    PW_CHECK(q != 0 && q != q1 && q != q3);

    PW_CHECK_EQ_INT(pw_queue_resolve(st, VM, PW_STR("q"), &q), PW_OK);
    PW_CHECK_EQ_INT(q, q1);
    PW_CHECK_EQ_INT(pw_queue_resolve(st, PW_STR("vm2"), PW_STR("q"), &q),
                    PW_OK);
    PW_CHECK_EQ_INT(q, q3);
    PW_CHECK_EQ_INT(pw_queue_resolve(st, PW_STR("vm3"), PW_STR("q"), &q),
                    PW_ENOTFOUND);

    PW_CHECK_EQ_INT(pw_queue_register(NULL, VM, PW_STR("q"), 1, &q),
                    PW_EINVAL);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 1, NULL),
                    PW_EINVAL);
    PW_CHECK_EQ_INT(pw_queue_resolve(st, VM, PW_STR("q"), NULL), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM,
                                      (pw_str_t) { "x", PW_MAX_KEY_BYTES + 1 },
                                      1, &q), PW_ELIMIT);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, (pw_str_t) { NULL, 3 }, 1, &q),
                    PW_EINVAL);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(queue_fifo)
{
    pw_store_t *st;
    uint32_t q, q2;
    uint8_t *d;
    size_t len;
    char buf[32];
    int i;

    st = new_store(256 * 1024);

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("a"), 7, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("b"), 7, &q2), PW_OK);

    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_EEMPTY);
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, 0, &d, &len), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, 999, &d, &len), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, 999, "x", 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, 0, "x", 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, NULL, 1), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, NULL, &len), PW_EINVAL);

    for (i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "item %d", i);
        PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, buf, strlen(buf)), PW_OK);
        if (i % 3 == 0) {
            PW_CHECK_EQ_INT(pw_queue_enqueue(st, q2, buf, strlen(buf)),
                            PW_OK);
        }
    }
    PW_CHECK_EQ_INT(stats_of(st).queue_items, 1000 + 334);

    for (i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "item %d", i);
        PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_OK);
        PW_CHECK(len == strlen(buf) && memcmp(d, buf, len) == 0);
        free(d);
    }
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_EEMPTY);

    /* the other queue was untouched */
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q2, &d, &len), PW_OK);
    PW_CHECK_MEM(d, len, "item 0");
    free(d);
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q2, &d, &len), PW_OK);
    PW_CHECK_MEM(d, len, "item 3");
    free(d);

    /* empty items are items */
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, NULL, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "z", 1), PW_OK);
    d = (uint8_t *) "sentinel";
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_OK);
    PW_CHECK_EQ_INT(len, 0);
    PW_CHECK(d == NULL);
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_OK);
    PW_CHECK_MEM(d, len, "z");
    free(d);
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_EEMPTY);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(queue_full_then_room_again)
{
    pw_store_t *st;
    uint32_t q;
    uint8_t item[500], *d;
    size_t len;
    int n, i, rc;

    st = new_store(64 * 1024);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 0, &q), PW_OK);

    for (n = 0; ; n++) {
        item[0] = (uint8_t) n;
        rc = pw_queue_enqueue(st, q, item, sizeof(item));
        if (rc == PW_EFULL) {
            break;
        }
        PW_CHECK_EQ_INT(rc, PW_OK);
    }
    PW_CHECK(n > 50);
    check_ok(st);

    for (i = 0; i < 2; i++) {
        PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_OK);
        PW_CHECK_EQ_INT(d[0], (uint8_t) i);
        free(d);
    }
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, sizeof(item)), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, sizeof(item)), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, sizeof(item)), PW_EFULL);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, 2 * MB), PW_EFULL);
    check_ok(st);

    pw_store_free(st);
}


PW_TEST(queue_ready_with_owner)
{
    pw_store_t *st;
    pw_store_conf_t conf;
    ready_t r;
    uint32_t q, q2;

    memset(&r, 0, sizeof(r));
    memset(&conf, 0, sizeof(conf));
    conf.lock = test_lock;
    conf.unlock = test_unlock;
    conf.lock_data = &r;
    conf.queue_ready = on_ready;
    conf.queue_ready_data = &r;

    PW_CHECK_EQ_INT(pw_store_new(64 * 1024, &conf, &st), PW_OK);

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 41, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q2"), 5, &q2), PW_OK);
    PW_CHECK_EQ_INT(r.calls, 0);

    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "a", 1), PW_OK);
    PW_CHECK_EQ_INT(r.calls, 1);
    PW_CHECK_EQ_INT(r.qid, q);
    PW_CHECK_EQ_INT(r.owner, 41);

    /* re-registering takes the queue over */
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 0xabcdef12345ULL,
                                      &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "b", 1), PW_OK);
    PW_CHECK_EQ_INT(r.calls, 2);
    PW_CHECK_EQ_INT(r.owner, 0xabcdef12345ULL);

    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q2, "c", 1), PW_OK);
    PW_CHECK_EQ_INT(r.qid, q2);
    PW_CHECK_EQ_INT(r.owner, 5);

    /* no call when the enqueue fails */
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, 77, "c", 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(r.calls, 3);

    /* called outside the lock; and the caller's lock was used */
    PW_CHECK_EQ_INT(r.held_in_ready, 0);
    PW_CHECK(r.lock_calls >= 6);
    PW_CHECK(!r.lock_held);

    check_ok(st);
    pw_store_free(st);
}


static void
on_ready_reenter(void *data, uint32_t qid, uint64_t owner)
{
    ready_t *r = data;
    uint8_t *d;
    size_t len;

    /* would deadlock if called under the built-in lock */
    PW_CHECK_EQ_INT(pw_queue_dequeue(r->st, qid, &d, &len), PW_OK);
    free(d);
    r->calls++;
}


PW_TEST(queue_ready_outside_builtin_lock)
{
    pw_store_t *st;
    pw_store_conf_t conf;
    ready_t r;
    uint32_t q;

    alarm(10);
    memset(&r, 0, sizeof(r));
    memset(&conf, 0, sizeof(conf));
    conf.queue_ready = on_ready_reenter;
    conf.queue_ready_data = &r;

    PW_CHECK_EQ_INT(pw_store_new(64 * 1024, &conf, &st), PW_OK);
    r.st = st;
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 1, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "abc", 3), PW_OK);
    PW_CHECK_EQ_INT(r.calls, 1);

    pw_store_free(st);
}


/* ---- metrics --------------------------------------------------------- */

typedef struct {
    int n;
    int64_t hist_sum;
    int64_t hist_count;
    uint64_t buckets[64];
    int names_ok;
} metric_visit_t;


static void
metric_visit(void *arg, uint32_t id, const pw_metric_info_t *m)
{
    metric_visit_t *v = arg;

    v->n++;
    if (m->type == PW_METRIC_HISTOGRAM) {
        v->hist_sum = m->sum;
        v->hist_count = m->value;
        memcpy(v->buckets, m->buckets, sizeof(v->buckets));
        v->names_ok += m->name.len == 4
                       && memcmp(m->name.data, "hist", 4) == 0;
    } else {
        v->names_ok += m->buckets == NULL && m->name.len == 1
                       && (m->name.data[0] == 'c' || m->name.data[0] == 'g');
    }
}


PW_TEST(metrics)
{
    pw_store_t *st;
    uint32_t c, c2, g, hi, x;
    int64_t v;
    metric_visit_t mv;
    int64_t obs[] = { 0, 1, 2, 3, 4, 5, 1024, 1025, -7, INT64_MAX };
    unsigned i;
    int64_t sum;

    st = new_store(64 * 1024);

    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_COUNTER, PW_STR("c"), &c),
                    PW_OK);
    PW_CHECK(c != 0);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_COUNTER, PW_STR("c"), &c2),
                    PW_OK);
    PW_CHECK_EQ_INT(c2, c);
    /* same name, other type: another metric */
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_GAUGE, PW_STR("c"), &g),
                    PW_OK);
    PW_CHECK(g != 0 && g != c);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_GAUGE, PW_STR("g"), &g),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_HISTOGRAM, PW_STR("hist"),
                                     &hi), PW_OK);
    PW_CHECK(hi != 0 && hi != g && hi != c);

    PW_CHECK_EQ_INT(pw_metric_define(st, (pw_metric_type_t) 3, PW_STR("x"),
                                     &x), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_GAUGE, PW_STR("x"), NULL),
                    PW_EINVAL);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_GAUGE,
                                     (pw_str_t) { "x", PW_MAX_KEY_BYTES + 1 },
                                     &x), PW_ELIMIT);

    /* counter */
    PW_CHECK_EQ_INT(pw_metric_get(st, c, &v), PW_OK);
    PW_CHECK_EQ_INT(v, 0);
    PW_CHECK_EQ_INT(pw_metric_increment(st, c, 5), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_increment(st, c, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_increment(st, c, -1), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_metric_get(st, c, &v), PW_OK);
    PW_CHECK_EQ_INT(v, 5);
    PW_CHECK_EQ_INT(pw_metric_record(st, c, 100), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_get(st, c, &v), PW_OK);
    PW_CHECK_EQ_INT(v, 100);

    /* gauge */
    PW_CHECK_EQ_INT(pw_metric_increment(st, g, 10), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_increment(st, g, -13), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_get(st, g, &v), PW_OK);
    PW_CHECK_EQ_INT(v, -3);
    PW_CHECK_EQ_INT(pw_metric_record(st, g, -42), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_get(st, g, &v), PW_OK);
    PW_CHECK_EQ_INT(v, -42);

    /* histogram */
    PW_CHECK_EQ_INT(pw_metric_increment(st, hi, 1), PW_EINVAL);
    sum = 0;
    for (i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        PW_CHECK_EQ_INT(pw_metric_record(st, hi, obs[i]), PW_OK);
        sum = (int64_t) ((uint64_t) sum + (uint64_t) obs[i]);
    }
    PW_CHECK_EQ_INT(pw_metric_get(st, hi, &v), PW_OK);
    PW_CHECK_EQ_INT(v, 10);

    memset(&mv, 0, sizeof(mv));
    PW_CHECK_EQ_INT(pw_metric_foreach(st, metric_visit, &mv), PW_OK);
    PW_CHECK_EQ_INT(mv.n, 4);
    PW_CHECK_EQ_INT(mv.names_ok, 4);
    PW_CHECK_EQ_INT(mv.hist_count, 10);
    PW_CHECK_EQ_INT(mv.hist_sum, sum);
    /* bucket i: observations v with 2^(i-1) < v <= 2^i; v <= 1 in 0 */
    PW_CHECK_EQ_INT(mv.buckets[0], 3);      /* 0, 1, -7 */
    PW_CHECK_EQ_INT(mv.buckets[1], 1);      /* 2 */
    PW_CHECK_EQ_INT(mv.buckets[2], 2);      /* 3, 4 */
    PW_CHECK_EQ_INT(mv.buckets[3], 1);      /* 5 */
    PW_CHECK_EQ_INT(mv.buckets[10], 1);     /* 1024 */
    PW_CHECK_EQ_INT(mv.buckets[11], 1);     /* 1025 */
    PW_CHECK_EQ_INT(mv.buckets[63], 1);     /* INT64_MAX */
    PW_CHECK_EQ_INT(mv.buckets[4] + mv.buckets[9] + mv.buckets[62], 0);

    /* unknown ids */
    PW_CHECK_EQ_INT(pw_metric_increment(st, 0, 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_metric_increment(st, 99, 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_metric_record(st, 99, 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_metric_get(st, 99, &v), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_metric_get(st, c, NULL), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_metric_foreach(st, NULL, NULL), PW_EINVAL);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(metrics_many)
{
    pw_store_t *st;
    uint32_t ids[300], id;
    char name[32];
    int64_t v;
    metric_visit_t mv;
    int i;

    st = new_store(256 * 1024);

    for (i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "metric_%d", i);
        PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_COUNTER,
                                         (pw_str_t) { name, strlen(name) },
                                         &ids[i]), PW_OK);
        PW_CHECK_EQ_INT(pw_metric_increment(st, ids[i], i), PW_OK);
    }
    for (i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "metric_%d", i);
        PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_COUNTER,
                                         (pw_str_t) { name, strlen(name) },
                                         &id), PW_OK);
        PW_CHECK_EQ_INT(id, ids[i]);
        PW_CHECK_EQ_INT(pw_metric_get(st, id, &v), PW_OK);
        PW_CHECK_EQ_INT(v, i);
    }

    memset(&mv, 0, sizeof(mv));
    PW_CHECK_EQ_INT(pw_metric_foreach(st, metric_visit, &mv), PW_OK);
    PW_CHECK_EQ_INT(mv.n, 300);

    check_ok(st);
    pw_store_free(st);
}


/* ---- one region, several addresses ----------------------------------- */

PW_TEST(two_addresses)
{
    pw_store_t *a, *b, *c;
    uint8_t *ra, *rb, *copy, *d;
    size_t size, len;
    uint32_t q, qb, m, mb;
    int64_t v;
    int fd;

    size = 256 * 1024;
    fd = memfd_create("pw-store-test", 0);
    PW_CHECK(fd >= 0);
    PW_CHECK(ftruncate(fd, size) == 0);
    ra = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    rb = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    PW_CHECK(ra != MAP_FAILED && rb != MAP_FAILED && ra != rb);

    PW_CHECK_EQ_INT(pw_store_format(ra, size), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(ra, size, NULL, &a), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(rb, size, NULL, &b), PW_OK);

    PW_CHECK_EQ_INT(set_str(a, "shared", "from a", 0), PW_OK);
    check_val(b, "shared", "from a");
    PW_CHECK_EQ_INT(set_str(b, "other", "from b", 0), PW_OK);
    check_val(a, "other", "from b");

    PW_CHECK_EQ_INT(pw_queue_register(a, VM, PW_STR("q"), 1, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_resolve(b, VM, PW_STR("q"), &qb), PW_OK);
    PW_CHECK_EQ_INT(qb, q);
    PW_CHECK_EQ_INT(pw_queue_enqueue(a, q, "one", 3), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(b, q, "two", 3), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_dequeue(b, q, &d, &len), PW_OK);
    PW_CHECK_MEM(d, len, "one");
    free(d);

    PW_CHECK_EQ_INT(pw_metric_define(a, PW_METRIC_COUNTER, PW_STR("m"), &m),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_metric_define(b, PW_METRIC_COUNTER, PW_STR("m"), &mb),
                    PW_OK);
    PW_CHECK_EQ_INT(mb, m);
    PW_CHECK_EQ_INT(pw_metric_increment(b, m, 3), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_get(a, m, &v), PW_OK);
    PW_CHECK_EQ_INT(v, 3);

    check_ok(a);
    check_ok(b);

    /* a byte copy at a third address is the same store */
    copy = malloc(size);
    PW_CHECK(copy != NULL);
    memcpy(copy, ra, size);
    PW_CHECK_EQ_INT(pw_store_attach(copy, size, NULL, &c), PW_OK);
    check_ok(c);
    check_val(c, "shared", "from a");
    check_val(c, "other", "from b");
    PW_CHECK_EQ_INT(pw_queue_dequeue(c, q, &d, &len), PW_OK);
    PW_CHECK_MEM(d, len, "two");
    free(d);
    pw_store_detach(c);
    free(copy);

    pw_store_detach(a);
    pw_store_detach(b);
    munmap(ra, size);
    munmap(rb, size);
    close(fd);
}


PW_TEST(caller_lock)
{
    pw_store_t *st;
    pw_store_conf_t conf;
    ready_t r;
    int before;

    memset(&r, 0, sizeof(r));
    memset(&conf, 0, sizeof(conf));
    conf.lock = test_lock;
    conf.unlock = test_unlock;
    conf.lock_data = &r;

    PW_CHECK_EQ_INT(pw_store_new(64 * 1024, &conf, &st), PW_OK);

    before = r.lock_calls;
    PW_CHECK_EQ_INT(set_str(st, "k", "v", 0), PW_OK);
    PW_CHECK_EQ_INT(r.lock_calls, before + 1);
    check_val(st, "k", "v");
    PW_CHECK_EQ_INT(r.lock_calls, before + 2);
    PW_CHECK(!r.lock_held);

    /* the built-in mutex is not touched: holding it changes nothing */
    PW_CHECK_EQ_INT(pthread_mutex_lock(&PW__HDR(st)->lock.mutex), 0);
    PW_CHECK_EQ_INT(set_str(st, "k2", "v2", 0), PW_OK);
    PW_CHECK_EQ_INT(pthread_mutex_unlock(&PW__HDR(st)->lock.mutex), 0);

    pw_store_free(st);
}


/* ---- several processes ----------------------------------------------- */

#define NPROC       4
#define INCS        5000
#define ITEMS       500

typedef struct {
    uint32_t producer;
    uint32_t seq;
    uint32_t len;
    uint32_t sum;
    uint8_t data[200];
} mp_item_t;


static uint32_t
mp_sum(const mp_item_t *it)
{
    uint32_t s, i;

    s = it->producer * 2654435761u ^ it->seq;
    for (i = 0; i < it->len; i++) {
        s = s * 31 + it->data[i];
    }
    return s;
}


/* yield: give others a chance to write between our get and our set */
static int
cas_increment(pw_store_t *st, const char *key, int yield, int *retries)
{
    uint8_t *v;
    size_t len;
    uint32_t cas;
    char buf[32];
    long n;
    int rc;

    for ( ;; ) {
        rc = pw_kv_get(st, key, strlen(key), &v, &len, &cas);
        if (rc != PW_OK || len >= sizeof(buf)) {
            return -1;
        }
        memcpy(buf, v, len);
        buf[len] = '\0';
        free(v);

        n = strtol(buf, NULL, 10);
        snprintf(buf, sizeof(buf), "%ld", n + 1);
        if (yield) {
            sched_yield();
        }

        rc = pw_kv_set(st, key, strlen(key), buf, strlen(buf), cas);
        if (rc == PW_OK) {
            return 0;
        }
        if (rc != PW_ECAS) {
            return -1;
        }
        (*retries)++;
    }
}


/* 0 if the item is intact and seen for the first time */
static int
mp_consume(const uint8_t *d, size_t len, uint32_t *seen)
{
    mp_item_t it;

    if (len < offsetof(mp_item_t, data) || len > sizeof(it)) {
        return -1;
    }
    memset(&it, 0, sizeof(it));
    memcpy(&it, d, len);
    if (it.producer >= NPROC || it.seq >= ITEMS
        || len != offsetof(mp_item_t, data) + it.len || it.sum != mp_sum(&it))
    {
        return -1;
    }

    __atomic_fetch_add(&seen[it.producer * ITEMS + it.seq], 1,
                       __ATOMIC_SEQ_CST);
    return 0;
}


/*
 * Evicting variant: small region with LRU keys and queues bounded to
 * MP_QMAX items dropping the oldest; every child also writes filler keys
 * of many sizes (forcing evictions) and enqueues more than it dequeues
 * (forcing drops). The counter stays exact: it is used all the time, so
 * never the least recently used key.
 */
#define MP_QMAX  4

static int mp_evicting;

static void
mp_child(pw_store_t *st, uint32_t id, uint32_t q, uint32_t *seen,
    uint32_t *shared)
{
    mp_item_t it;
    uint8_t *d, filler[3000];
    size_t len;
    uint32_t k;
    int i, rc, retries;
    uint64_t rs, r;
    char key[32];

    rs = id * 7919 + 1;
    retries = 0;
    k = 0;

    /* start together, so the increments really race */
    while (__atomic_load_n(&shared[0], __ATOMIC_ACQUIRE) == 0) {
        sched_yield();
    }

    for (i = 0; i < INCS; i++) {
        if (cas_increment(st, "counter", i % 8 == 0, &retries) != 0) {
            _exit(10);
        }

        if (mp_evicting) {
            r = rng_next(&rs);
            snprintf(key, sizeof(key), "f%u-%u", id, (unsigned) (r % 64));
            memset(filler, (int) id, sizeof(filler));
            if (pw_kv_set(st, key, strlen(key), filler,
                          1 + (r >> 8) % sizeof(filler), 0) != PW_OK
                || pw_metric_record(st, 1, i) != PW_OK)
            {
                _exit(14);
            }
        }

        if ((i % 5 == 0 || (mp_evicting && i % 5 == 3)) && k < ITEMS) {
            memset(&it, 0, sizeof(it));
            it.producer = id;
            it.seq = k++;
            it.len = (uint32_t) (rng_next(&rs) % sizeof(it.data));
            fill_pattern(it.data, it.len, rs);
            it.sum = mp_sum(&it);
            if (pw_queue_enqueue(st, q, &it,
                                 offsetof(mp_item_t, data) + it.len) != PW_OK)
            {
                _exit(11);
            }
        }

        if (mp_evicting ? i % 25 == 2 : i % 5 == 2) {
            rc = pw_queue_dequeue(st, q, &d, &len);
            if (rc == PW_OK) {
                if (mp_consume(d, len, seen) != 0) {
                    _exit(12);
                }
                free(d);
            } else if (rc != PW_EEMPTY) {
                _exit(13);
            }
        }
    }

    __atomic_fetch_add(&shared[1], (uint32_t) retries, __ATOMIC_SEQ_CST);
    _exit(0);
}


static void
mp_run(int evicting)
{
    pw_store_t *st;
    pw_store_opts_t o;
    pw_store_stats_t ss;
    void *region;
    uint32_t *seen, *shared, q, i, id, nseen;
    size_t size, len;
    pid_t pids[NPROC];
    int64_t hist_count;
    int status, n;
    uint8_t *d;
    char *s;

    mp_evicting = evicting;
    memset(&o, 0, sizeof(o));
    if (evicting) {
        o.kv_eviction = PW_STORE_EVICT_LRU;
        o.queue_eviction = PW_STORE_EVICT_OLDEST;
        o.queue_max_items = MP_QMAX;
    }

    size = evicting ? 128 * 1024 : 4 * MB;
    region = shared_map(size);
    PW_CHECK_EQ_INT(pw_store_format_ex(region, size, &o), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, &st), PW_OK);
    seen = shared_map(NPROC * ITEMS * sizeof(uint32_t));
    shared = shared_map(4096);

    PW_CHECK_EQ_INT(set_str(st, "counter", "0", 0), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("mp"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_HISTOGRAM, PW_STR("h"),
                                     &id), PW_OK);
    PW_CHECK_EQ_INT(id, 1);

    for (i = 0; i < NPROC; i++) {
        pids[i] = fork();
        PW_CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            mp_child(st, i, q, seen, shared);
        }
    }
    __atomic_store_n(&shared[0], 1, __ATOMIC_RELEASE);

    for (i = 0; i < NPROC; i++) {
        PW_CHECK(waitpid(pids[i], &status, 0) == pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "  child %u: status 0x%x\n", i, status);
        }
        PW_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    s = get_str(st, "counter", NULL);
    PW_CHECK(s != NULL);
    PW_CHECK_EQ_INT(strtol(s, NULL, 10), NPROC * INCS);
    free(s);

    n = 0;
    while (pw_queue_dequeue(st, q, &d, &len) == PW_OK) {
        PW_CHECK_EQ_INT(mp_consume(d, len, seen), 0);
        free(d);
        n++;
    }

    nseen = 0;
    for (i = 0; i < NPROC * ITEMS; i++) {
        if (seen[i] != 1 && (!evicting || seen[i] > 1)) {
            fprintf(stderr, "  item %u/%u seen %u times\n", i / ITEMS,
                    i % ITEMS, seen[i]);
        }
        PW_CHECK(evicting ? seen[i] <= 1 : seen[i] == 1);
        nseen += seen[i];
    }

    check_ok(st);
    PW_CHECK_EQ_INT(stats_of(st).queue_items, 0);

    /* every item was either consumed once or dropped (and counted) */
    ss = pub_stats(st);
    PW_CHECK_EQ_INT(nseen + ss.queue_dropped, NPROC * ITEMS);
    if (evicting) {
        printf("  %llu keys evicted, %llu items dropped\n",
               (unsigned long long) ss.kv_evictions,
               (unsigned long long) ss.queue_dropped);
        PW_CHECK(ss.kv_evictions > 100);
        PW_CHECK(ss.queue_dropped > 1000);
        PW_CHECK_EQ_INT(pw_metric_get(st, id, &hist_count), PW_OK);
        PW_CHECK_EQ_INT(hist_count, NPROC * INCS);
    } else {
        PW_CHECK_EQ_INT(ss.kv_evictions + ss.queue_dropped, 0);
    }
    printf("  %d items left for the parent, %u CAS retries\n", n,
           shared[1]);
    /* the increments did race (else this test proves little) */
    PW_CHECK(shared[1] > 0);

    pw_store_detach(st);
    munmap(shared, 4096);
    munmap(seen, NPROC * ITEMS * sizeof(uint32_t));
    munmap(region, size);
}


PW_TEST(multi_process)
{
    mp_run(0);
}


PW_TEST(multi_process_evicting)
{
    mp_run(1);
}


/* ---- processes killed while holding the lock ------------------------- */

/*
 * Compare the logical state of two images of a region: header fields,
 * bucket array, every block's size and state, every used block's bytes and
 * every free block's link. Bytes inside free blocks and the lock and
 * journal areas may differ.
 */
static int
same_state(const uint8_t *a, const uint8_t *b, int verbose)
{
    const pw__hdr_t *ha = (const void *) a, *hb = (const void *) b;
    uint64_t off, wa, size;

    if (memcmp(&ha->heap_start, &hb->heap_start,
               offsetof(pw__hdr_t, jn) - offsetof(pw__hdr_t, heap_start))
        != 0)
    {
        if (verbose) {
            fprintf(stderr, "  header differs\n");
        }
        return 0;
    }

    if (memcmp(a + ha->kv_buckets, b + hb->kv_buckets, ha->kv_nbuckets * 8)
        != 0)
    {
        if (verbose) {
            fprintf(stderr, "  buckets differ\n");
        }
        return 0;
    }

    for (off = ha->heap_start; off < ha->heap_end; off += size) {
        wa = *(const uint64_t *) (a + off);
        size = wa & ~PW__USED;
        if (wa != *(const uint64_t *) (b + off) || size == 0) {
            if (verbose) {
                fprintf(stderr, "  block at %llu differs\n",
                        (unsigned long long) off);
            }
            return 0;
        }
        if (memcmp(a + off, b + off, (wa & PW__USED) ? size : 16) != 0) {
            if (verbose) {
                fprintf(stderr, "  content at %llu differs\n",
                        (unsigned long long) off);
            }
            return 0;
        }
    }

    return 1;
}


typedef struct {
    unsigned at;
    int fd;
} kill_hook_t;


static void
hook_die(void *arg, unsigned step)
{
    kill_hook_t *k = arg;

    if (step == k->at) {
        raise(SIGKILL);
    }
}


static void
hook_hold(void *arg, unsigned step)
{
    kill_hook_t *k = arg;
    char c = 'L';

    if (step == k->at) {
        if (write(k->fd, &c, 1) != 1) {
            _exit(20);
        }
        for ( ;; ) {
            pause();
        }
    }
}


typedef void (*op_fn_t)(pw_store_t *st);

static void
op_set_new(pw_store_t *st)
{
    if (set_str(st, "new-key", "new value", 0) != PW_OK) {
        _exit(30);
    }
}

static void
op_replace(pw_store_t *st)
{
    char v[300];

    memset(v, 'R', sizeof(v));
    if (pw_kv_set(st, "k3", 2, v, sizeof(v), 0) != PW_OK) {
        _exit(31);
    }
}

static void
op_delete_merge(pw_store_t *st)
{
    /* k5's neighbours k4 and k6 are free: a three-way merge */
    if (pw_kv_set(st, "k5", 2, NULL, 0, 0) != PW_OK) {
        _exit(32);
    }
}

static void
op_delete_last(pw_store_t *st)
{
    if (pw_kv_set(st, "k1", 2, NULL, 0, 0) != PW_OK) {
        _exit(33);
    }
}

static void
op_enqueue(pw_store_t *st)
{
    if (pw_queue_enqueue(st, 1, "queued item", 11) != PW_OK) {
        _exit(34);
    }
}

static void
op_dequeue(pw_store_t *st)
{
    uint8_t *d;
    size_t len;

    if (pw_queue_dequeue(st, 1, &d, &len) != PW_OK) {
        _exit(35);
    }
    free(d);
}

static void
op_register(pw_store_t *st)
{
    uint32_t q;

    if (pw_queue_register(st, VM, PW_STR("another"), 9, &q) != PW_OK) {
        _exit(36);
    }
}

static void
op_define_grow(pw_store_t *st)
{
    uint32_t id;

    /* the 9th metric grows the table: alloc, alloc, copy, free */
    if (pw_metric_define(st, PW_METRIC_HISTOGRAM, PW_STR("ninth"), &id)
        != PW_OK)
    {
        _exit(37);
    }
}

static void
op_histogram(pw_store_t *st)
{
    if (pw_metric_record(st, 1, 1000) != PW_OK) {
        _exit(38);
    }
}


static void
kill_setup(pw_store_t *st)
{
    char key[8], v[100];
    uint32_t q, id;
    int i;

    memset(v, 'v', sizeof(v));
    for (i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, 2, v, sizeof(v), 0), PW_OK);
    }
    PW_CHECK_EQ_INT(pw_kv_set(st, "k4", 2, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "k6", 2, NULL, 0, 0), PW_OK);

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 1, &q), PW_OK);
    PW_CHECK_EQ_INT(q, 1);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "first", 5), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "second", 6), PW_OK);

    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_HISTOGRAM, PW_STR("h"),
                                     &id), PW_OK);
    PW_CHECK_EQ_INT(id, 1);
    for (i = 0; i < 7; i++) {
        snprintf(key, sizeof(key), "m%d", i);
        PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_GAUGE,
                                         (pw_str_t) { key, 2 }, &id), PW_OK);
    }
    check_ok(st);
}


/*
 * Run op in a child killed after its 1st, 2nd, ... journaled write, until
 * it completes; after every kill the next locker must find exactly the
 * state from before the operation.
 */
static void
kill_each_step(pw_store_t *st, void *region, size_t size, const char *name,
    op_fn_t fn)
{
    uint8_t *snap;
    unsigned at, kills;
    kill_hook_t k;
    pid_t pid;
    int status;

    snap = malloc(size);
    PW_CHECK(snap != NULL);
    memcpy(snap, region, size);
    kills = 0;

    for (at = 1; ; at++) {
        PW_CHECK(at < 100);
        k.at = at;

        pid = fork();
        PW_CHECK(pid >= 0);
        if (pid == 0) {
            pw__store_set_step_hook(st, hook_die, &k);
            fn(st);
            _exit(0);
        }
        PW_CHECK(waitpid(pid, &status, 0) == pid);

        if (WIFEXITED(status)) {
            /* the operation completed: fewer than `at` steps */
            PW_CHECK_EQ_INT(WEXITSTATUS(status), 0);
            break;
        }

        PW_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        kills++;

        /* the next locker rolls the half-done operation back */
        check_ok(st);
        if (!same_state(snap, region, 1)) {
            fprintf(stderr, "  %s: killed at step %u: state differs\n",
                    name, at);
            PW_CHECK(0);
        }
    }

    /* every operation writes something, so it was killed at least once */
    PW_CHECK(kills > 0);
    check_ok(st);
    PW_CHECK(!same_state(snap, region, 0));
    free(snap);
}


static void
op_set_exact(pw_store_t *st)
{
    char v[100];

    memset(v, 'E', sizeof(v));
    if (pw_kv_set(st, "f9999", 5, v, sizeof(v), 0) != PW_OK) {
        _exit(39);
    }
}


PW_TEST(kill_at_every_step)
{
    static const struct {
        const char *name;
        op_fn_t fn;
    } ops[] = {
        { "set new", op_set_new },
        { "replace", op_replace },
        { "delete with merge", op_delete_merge },
        { "delete", op_delete_last },
        { "enqueue", op_enqueue },
        { "dequeue", op_dequeue },
        { "register", op_register },
        { "define (table grows)", op_define_grow },
        { "histogram record", op_histogram },
    };
    pw_store_t *st;
    void *region;
    size_t size;
    unsigned i;
    char key[8], v[100];
    pw__store_stats_t s0, s;

    size = 64 * 1024;
    st = shared_store(size, &region);
    kill_setup(st);

    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        kill_each_step(st, region, size, ops[i].name, ops[i].fn);
    }

    /* what the completed operations did */
    PW_CHECK(get_str(st, "k5", NULL) == NULL);
    PW_CHECK(get_str(st, "k1", NULL) == NULL);
    check_val(st, "new-key", "new value");
    PW_CHECK_EQ_INT(stats_of(st).queue_items, 2);

    /*
     * An allocation that takes a free block whole: its link word becomes
     * payload, and must come back on rollback.
     */
    memset(v, 'f', sizeof(v));
    for (i = 0; ; i++) {
        snprintf(key, sizeof(key), "f%04u", i);
        if (pw_kv_set(st, key, 5, v, sizeof(v), 0) == PW_EFULL) {
            break;
        }
    }
    PW_CHECK_EQ_INT(pw_kv_set(st, "f0100", 5, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "f0102", 5, NULL, 0, 0), PW_OK);
    s0 = stats_of(st);
    kill_each_step(st, region, size, "set into an exact hole", op_set_exact);
    s = stats_of(st);
    PW_CHECK_EQ_INT(s.free_blocks, s0.free_blocks - 1);
    PW_CHECK_EQ_INT(s.kv_count, s0.kv_count + 1);

    pw_store_detach(st);
    munmap(region, size);
}


PW_TEST(kill_with_caller_lock)
{
    pw_store_t *st, *st2;
    pw_store_conf_t conf;
    void *region;
    uint8_t *snap;
    size_t size;
    unsigned at;
    kill_hook_t k;
    pid_t pid;
    int status, lock_calls;

    /*
     * A caller lock (in nginx: a shmtx the master releases when a worker
     * dies) cannot report a dead owner: the next locker must still find
     * the journal and roll back.
     */
    lock_calls = 0;
    memset(&conf, 0, sizeof(conf));
    conf.lock = lock_only;
    conf.unlock = lock_only;
    conf.lock_data = &lock_calls;

    size = 64 * 1024;
    region = shared_map(size);
    PW_CHECK_EQ_INT(pw_store_format(region, size), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(region, size, &conf, &st), PW_OK);
    kill_setup(st);
    snap = malloc(size);
    PW_CHECK(snap != NULL);
    memcpy(snap, region, size);

    for (at = 1; ; at++) {
        PW_CHECK(at < 100);
        k.at = at;
        pid = fork();
        PW_CHECK(pid >= 0);
        if (pid == 0) {
            pw__store_set_step_hook(st, hook_die, &k);
            op_replace(st);
            _exit(0);
        }
        PW_CHECK(waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status)) {
            break;
        }
        PW_CHECK(PW__HDR(st)->jn == at);

        PW_CHECK_EQ_INT(pw_store_attach(region, size, &conf, &st2), PW_OK);
        check_ok(st2);
        PW_CHECK(same_state(snap, region, 1));
        pw_store_detach(st2);
    }
    PW_CHECK(at > 3);
    PW_CHECK(!same_state(snap, region, 0));

    free(snap);
    pw_store_detach(st);
    munmap(region, size);
}


PW_TEST(kill_lock_holder_others_continue)
{
    pw_store_t *st;
    void *region;
    size_t size;
    kill_hook_t k;
    pid_t victim, workers[3];
    int pfd[2], status, i, j, retries;
    char c, *s;

    size = 256 * 1024;
    st = shared_store(size, &region);
    PW_CHECK_EQ_INT(set_str(st, "counter", "0", 0), PW_OK);
    PW_CHECK(pipe(pfd) == 0);

    /* the victim stops in the middle of a set, holding the lock */
    victim = fork();
    PW_CHECK(victim >= 0);
    if (victim == 0) {
        k.at = 2;
        k.fd = pfd[1];
        pw__store_set_step_hook(st, hook_hold, &k);
        op_set_new(st);
        _exit(40);
    }
    PW_CHECK(read(pfd[0], &c, 1) == 1 && c == 'L');

    for (i = 0; i < 3; i++) {
        workers[i] = fork();
        PW_CHECK(workers[i] >= 0);
        if (workers[i] == 0) {
            retries = 0;
            for (j = 0; j < 1000; j++) {
                if (cas_increment(st, "counter", 0, &retries) != 0) {
                    _exit(41);
                }
            }
            _exit(0);
        }
    }

    /* the workers are blocked on the lock the victim holds */
    usleep(100 * 1000);
    for (i = 0; i < 3; i++) {
        PW_CHECK(waitpid(workers[i], &status, WNOHANG) == 0);
    }

    PW_CHECK(kill(victim, SIGKILL) == 0);
    PW_CHECK(waitpid(victim, &status, 0) == victim);
    PW_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    for (i = 0; i < 3; i++) {
        PW_CHECK(waitpid(workers[i], &status, 0) == workers[i]);
        PW_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    s = get_str(st, "counter", NULL);
    PW_CHECK_EQ_STR(s, "3000");
    free(s);
    PW_CHECK(get_str(st, "new-key", NULL) == NULL);
    check_ok(st);

    /* and the lock still works for everyone */
    PW_CHECK_EQ_INT(set_str(st, "after", "yes", 0), PW_OK);
    check_val(st, "after", "yes");

    close(pfd[0]);
    close(pfd[1]);
    pw_store_detach(st);
    munmap(region, size);
}


PW_TEST(kill_lock_holder_idle)
{
    pw_store_t *st;
    void *region;
    size_t size;
    pid_t pid;
    int pfd[2], status;
    char c;

    /* killed while holding the lock outside any operation (test API) */
    size = 64 * 1024;
    st = shared_store(size, &region);
    PW_CHECK(pipe(pfd) == 0);

    pid = fork();
    PW_CHECK(pid >= 0);
    if (pid == 0) {
        if (pw__store_lock(st) != PW_OK || write(pfd[1], "L", 1) != 1) {
            _exit(1);
        }
        for ( ;; ) {
            pause();
        }
    }
    PW_CHECK(read(pfd[0], &c, 1) == 1);
    PW_CHECK(kill(pid, SIGKILL) == 0);
    PW_CHECK(waitpid(pid, &status, 0) == pid);

    PW_CHECK_EQ_INT(set_str(st, "k", "v", 0), PW_OK);
    check_val(st, "k", "v");
    check_ok(st);

    close(pfd[0]);
    close(pfd[1]);
    pw_store_detach(st);
    munmap(region, size);
}


/* ---- randomized comparison against a model --------------------------- */

#define FZ_KEYS    24
#define FZ_QUEUES  3
#define FZ_QMAX    128
#define FZ_VMAX    1500

typedef struct {
    int present;
    size_t len;
    uint8_t val[FZ_VMAX];
    uint64_t version;        /* bumped on every successful write */
    uint32_t seen_cas;       /* token from the last get ... */
    uint64_t seen_version;   /* ... and the version it belonged to */
    int seen;
} fz_key_t;

typedef struct {
    size_t len[FZ_QMAX];
    uint8_t *data[FZ_QMAX];
    int head, n;
} fz_queue_t;

typedef struct {
    fz_key_t keys[FZ_KEYS];
    fz_queue_t queues[FZ_QUEUES];
    uint32_t qids[FZ_QUEUES];
    int nkeys_visited;
    int bad;
} fz_model_t;


static void
fz_key(int i, char *buf, size_t *len)
{
    /* key 0 is the empty key; others share prefixes on purpose */
    if (i == 0) {
        *len = 0;
        return;
    }
    *len = (size_t) snprintf(buf, 16, "key%d", i);
}


static void
fz_visit(void *arg, pw_str_t key, pw_str_t val, uint32_t cas)
{
    fz_model_t *m = arg;
    char buf[16];
    size_t len;
    int i;

    for (i = 0; i < FZ_KEYS; i++) {
        fz_key(i, buf, &len);
        if (len == key.len && (len == 0 || memcmp(buf, key.data, len) == 0)) {
            break;
        }
    }
    if (i == FZ_KEYS || !m->keys[i].present || m->keys[i].len != val.len
        || memcmp(m->keys[i].val, val.data, val.len) != 0)
    {
        m->bad++;
    }
    m->nkeys_visited++;
}


static void
fz_run(uint64_t seed, int ops)
{
    pw_store_t *st;
    fz_model_t *m;
    fz_key_t *k;
    fz_queue_t *fq;
    uint8_t val[FZ_VMAX], *got;
    char key[16];
    size_t klen, vlen, len;
    uint32_t cas, use;
    int i, op, rc, expect_cas, present, nfull, deq;
    char name[8];
    pw__store_stats_t s0, s;

    st = new_store(32 * 1024);
    m = calloc(1, sizeof(*m));
    PW_CHECK(m != NULL);
    nfull = 0;

    for (i = 0; i < FZ_QUEUES; i++) {
        snprintf(name, sizeof(name), "q%d", i);
        PW_CHECK_EQ_INT(pw_queue_register(st, VM, (pw_str_t) { name, 2 }, 0,
                                          &m->qids[i]), PW_OK);
    }
    s0 = stats_of(st);

    for (i = 0; i < ops; i++) {
        op = (int) (rng_next(&seed) % 100);
        /* alternate phases that fill the queues and drain them */
        deq = (i / 2000) % 2 ? 75 : 85;
        k = &m->keys[rng_next(&seed) % FZ_KEYS];
        fz_key((int) (k - m->keys), key, &klen);
        fq = &m->queues[rng_next(&seed) % FZ_QUEUES];
        use = m->qids[fq - m->queues];

        vlen = rng_next(&seed) % 8 == 0 ? 0 : 1 + rng_next(&seed) % FZ_VMAX;
        if (rng_next(&seed) % 2) {
            vlen = vlen % 40;
        }
        fill_pattern(val, vlen, seed);

        if (op < 30) {
            /* unconditional set (or delete) */
            rc = pw_kv_set(st, key, klen, val, vlen, 0);
            if (rc == PW_EFULL) {
                PW_CHECK(vlen > 0);
                nfull++;
                continue;
            }
            PW_CHECK_EQ_INT(rc, PW_OK);
            k->present = vlen > 0;
            k->len = vlen;
            memcpy(k->val, val, vlen);
            k->version++;

        } else if (op < 45) {
            /* set with the token of the last get of this key */
            if (!k->seen) {
                continue;
            }
            present = k->present;
            expect_cas = present && k->version != k->seen_version;
            rc = pw_kv_set(st, key, klen, val, vlen, k->seen_cas);
            if (expect_cas) {
                PW_CHECK_EQ_INT(rc, PW_ECAS);
                continue;
            }
            if (rc == PW_EFULL) {
                nfull++;
                continue;
            }
            PW_CHECK_EQ_INT(rc, PW_OK);
            k->present = vlen > 0;
            k->len = vlen;
            memcpy(k->val, val, vlen);
            k->version++;

        } else if (op < 65) {
            rc = pw_kv_get(st, key, klen, &got, &len, &cas);
            if (!k->present) {
                PW_CHECK_EQ_INT(rc, PW_ENOTFOUND);
                continue;
            }
            PW_CHECK_EQ_INT(rc, PW_OK);
            PW_CHECK_EQ_INT(len, k->len);
            PW_CHECK(memcmp(got, k->val, len) == 0);
            PW_CHECK(cas != 0);
            /* same version, same token; new version, new token */
            if (k->seen && k->seen_version == k->version) {
                PW_CHECK_EQ_INT(cas, k->seen_cas);
            } else if (k->seen) {
                PW_CHECK(cas != k->seen_cas);
            }
            free(got);
            k->seen = 1;
            k->seen_cas = cas;
            k->seen_version = k->version;

        } else if (op < deq) {
            if (fq->n == FZ_QMAX) {
                continue;
            }
            rc = pw_queue_enqueue(st, use, val, vlen);
            if (rc == PW_EFULL) {
                nfull++;
                continue;
            }
            PW_CHECK_EQ_INT(rc, PW_OK);
            got = malloc(vlen ? vlen : 1);
            PW_CHECK(got != NULL);
            memcpy(got, val, vlen);
            fq->data[(fq->head + fq->n) % FZ_QMAX] = got;
            fq->len[(fq->head + fq->n) % FZ_QMAX] = vlen;
            fq->n++;

        } else {
            rc = pw_queue_dequeue(st, use, &got, &len);
            if (fq->n == 0) {
                PW_CHECK_EQ_INT(rc, PW_EEMPTY);
                continue;
            }
            PW_CHECK_EQ_INT(rc, PW_OK);
            PW_CHECK_EQ_INT(len, fq->len[fq->head]);
            PW_CHECK(len == 0 || memcmp(got, fq->data[fq->head], len) == 0);
            free(got);
            free(fq->data[fq->head]);
            fq->head = (fq->head + 1) % FZ_QMAX;
            fq->n--;
        }

        if (i % 250 == 0) {
            check_ok(st);
            m->nkeys_visited = 0;
            PW_CHECK_EQ_INT(pw_kv_foreach(st, fz_visit, m), PW_OK);
            PW_CHECK_EQ_INT(m->bad, 0);
            present = 0;
            for (op = 0; op < FZ_KEYS; op++) {
                present += m->keys[op].present;
            }
            PW_CHECK_EQ_INT(m->nkeys_visited, present);
        }
    }

    /* the region was small enough to fill up now and then */
    PW_CHECK(nfull > 0);

    /* drain everything: all space comes back */
    for (i = 0; i < FZ_KEYS; i++) {
        fz_key(i, key, &klen);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, klen, NULL, 0, 0), PW_OK);
    }
    for (i = 0; i < FZ_QUEUES; i++) {
        fq = &m->queues[i];
        while (fq->n > 0) {
            PW_CHECK_EQ_INT(pw_queue_dequeue(st, m->qids[i], &got, &len),
                            PW_OK);
            PW_CHECK_EQ_INT(len, fq->len[fq->head]);
            PW_CHECK(len == 0 || memcmp(got, fq->data[fq->head], len) == 0);
            free(got);
            free(fq->data[fq->head]);
            fq->head = (fq->head + 1) % FZ_QMAX;
            fq->n--;
        }
        PW_CHECK_EQ_INT(pw_queue_dequeue(st, m->qids[i], &got, &len),
                        PW_EEMPTY);
    }

    s = stats_of(st);
    PW_CHECK_EQ_INT(s.free_bytes, s0.free_bytes);
    PW_CHECK_EQ_INT(s.used_blocks, s0.used_blocks);
    PW_CHECK_EQ_INT(s.kv_count, 0);

    free(m);
    pw_store_free(st);
}


PW_TEST(randomized_vs_model)
{
    fz_run(1, 20000);
    fz_run(0x9e3779b97f4a7c15ULL, 20000);
    fz_run((uint64_t) time(NULL) | 1, 20000);
}


/* ---- eviction and bounds --------------------------------------------- */

static pw_store_t *
new_store_opts(size_t size, int kv, int qe, uint64_t qitems, uint64_t qbytes)
{
    pw_store_opts_t o;
    pw_store_t *st;

    memset(&o, 0, sizeof(o));
    o.kv_eviction = kv;
    o.queue_eviction = qe;
    o.queue_max_items = qitems;
    o.queue_max_bytes = qbytes;
    PW_CHECK_EQ_INT(pw_store_new_ex(size, &o, NULL, &st), PW_OK);
    return st;
}


static int
has_key(pw_store_t *st, const char *k)
{
    size_t len;
    int rc;

    /* foreach would not touch recency, but a get does: only for tests
     * where that is wanted or the policy is NONE */
    rc = pw_kv_get(st, k, strlen(k), NULL, &len, NULL);
    PW_CHECK(rc == PW_OK || rc == PW_ENOTFOUND);
    return rc == PW_OK;
}


typedef struct {
    const char *key;
    int found;
} key_find_t;


static void
key_find(void *arg, pw_str_t key, pw_str_t val, uint32_t cas)
{
    key_find_t *f = arg;

    if (key.len == strlen(f->key) && memcmp(key.data, f->key, key.len) == 0)
    {
        f->found = 1;
    }
}


/* presence without touching recency */
static int
present(pw_store_t *st, const char *k)
{
    key_find_t f = { k, 0 };

    PW_CHECK_EQ_INT(pw_kv_foreach(st, key_find, &f), PW_OK);
    return f.found;
}


PW_TEST(format_options)
{
    uint64_t *region;
    pw_store_opts_t o, got;
    pw_store_t *st;
    size_t size;

    size = 64 * 1024;
    region = calloc(1, size);
    PW_CHECK(region != NULL);

    memset(&o, 0, sizeof(o));
    o.kv_eviction = PW_STORE_EVICT_OLDEST;
    PW_CHECK_EQ_INT(pw_store_format_ex(region, size, &o), PW_EINVAL);
    o.kv_eviction = 7;
    PW_CHECK_EQ_INT(pw_store_format_ex(region, size, &o), PW_EINVAL);
    o.kv_eviction = PW_STORE_EVICT_NONE;
    o.queue_eviction = PW_STORE_EVICT_LRU;
    PW_CHECK_EQ_INT(pw_store_format_ex(region, size, &o), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_new_ex(size, &o, NULL, &st), PW_EINVAL);

    /* what one process formats, another reads back on attach */
    o.kv_eviction = PW_STORE_EVICT_LRU;
    o.queue_eviction = PW_STORE_EVICT_OLDEST;
    o.queue_max_items = 10;
    o.queue_max_bytes = 1000;
    o.kv_strict_cas = 1;
    PW_CHECK_EQ_INT(pw_store_format_ex(region, size, &o), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, &st), PW_OK);
    PW_CHECK_EQ_INT(pw_store_get_opts(st, &got), PW_OK);
    PW_CHECK_EQ_INT(got.kv_eviction, PW_STORE_EVICT_LRU);
    PW_CHECK_EQ_INT(got.queue_eviction, PW_STORE_EVICT_OLDEST);
    PW_CHECK_EQ_INT(got.queue_max_items, 10);
    PW_CHECK_EQ_INT(got.queue_max_bytes, 1000);
    PW_CHECK_EQ_INT(got.kv_strict_cas, 1);
    PW_CHECK_EQ_INT(pw_store_get_opts(st, NULL), PW_EINVAL);
    check_ok(st);
    pw_store_detach(st);

    /* the plain format is all zero */
    PW_CHECK_EQ_INT(pw_store_format(region, size), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, &st), PW_OK);
    PW_CHECK_EQ_INT(pw_store_get_opts(st, &got), PW_OK);
    PW_CHECK_EQ_INT(got.kv_eviction, PW_STORE_EVICT_NONE);
    PW_CHECK_EQ_INT(got.queue_eviction, PW_STORE_EVICT_NONE);
    PW_CHECK_EQ_INT(got.queue_max_items, 0);
    PW_CHECK_EQ_INT(got.queue_max_bytes, 0);
    PW_CHECK_EQ_INT(got.kv_strict_cas, 0);
    pw_store_detach(st);

    free(region);
}


/* set fixed-size entries k0, k1, ... until the next eviction */
static int
fill_until_evicting(pw_store_t *st, const char *val, size_t vlen)
{
    char key[32];
    uint64_t ev;
    int n;

    ev = pub_stats(st).kv_evictions;
    for (n = 0; ; n++) {
        snprintf(key, sizeof(key), "k%d", n);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), val, vlen, 0),
                        PW_OK);
        if (pub_stats(st).kv_evictions > ev) {
            return n + 1;
        }
        PW_CHECK(n < 10000);
    }
}


PW_TEST(kv_lru_order)
{
    pw_store_t *st;
    char val[200], key[32];
    int n, i;

    st = new_store_opts(64 * 1024, PW_STORE_EVICT_LRU, 0, 0, 0);
    memset(val, 'v', sizeof(val));

    n = fill_until_evicting(st, val, sizeof(val));
    PW_CHECK(n > 100);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 1);

    /* the first key went first, every other one is still there */
    PW_CHECK(!present(st, "k0"));
    for (i = 1; i < n; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        PW_CHECK(present(st, key));
    }

    /* a get makes k1 recent: the next eviction takes k2 (every entry
     * here has the same block size) */
    PW_CHECK(has_key(st, "k1"));
    PW_CHECK_EQ_INT(pw_kv_set(st, "x1", 2, val, sizeof(val), 0), PW_OK);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 2);
    PW_CHECK(present(st, "k1"));
    PW_CHECK(!present(st, "k2"));

    /* replacing k3 needs a second block for a moment: it evicts the
     * oldest other key (k4), never k3 itself, and makes k3 recent */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k3", 2, val, sizeof(val), 0), PW_OK);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 3);
    PW_CHECK(present(st, "k3"));
    PW_CHECK(!present(st, "k4"));

    /* k3's old block is free again: no eviction for the next one */
    PW_CHECK_EQ_INT(pw_kv_set(st, "x2", 2, val, sizeof(val), 0), PW_OK);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 3);
    PW_CHECK(present(st, "k5"));

    /* a failed CAS is not a use; foreach is not a use */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k5", 2, "z", 1, 12345), PW_ECAS);
    PW_CHECK_EQ_INT(pw_kv_set(st, "x3", 2, val, sizeof(val), 0), PW_OK);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 4);
    PW_CHECK(!present(st, "k5"));
    PW_CHECK(present(st, "k6"));

    /* a deleted key leaves the list: its room is reused, no eviction */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k7", 2, NULL, 0, 0), PW_OK);
    PW_CHECK_EQ_INT(pw_kv_set(st, "x4", 2, val, sizeof(val), 0), PW_OK);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 4);
    PW_CHECK(present(st, "k6"));

    /* one big value evicts as many of the oldest as it needs, in order */
    {
        char big[2000];

        memset(big, 'B', sizeof(big));
        PW_CHECK_EQ_INT(pw_kv_set(st, "big", 3, big, sizeof(big), 0),
                        PW_OK);
    }
    PW_CHECK(pub_stats(st).kv_evictions >= 4 + 7);
    PW_CHECK(!present(st, "k6") && !present(st, "k8"));
    PW_CHECK(!present(st, "k12") && present(st, "k40"));
    PW_CHECK(present(st, "k1") && present(st, "k3") && present(st, "x4"));

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_lru_limits)
{
    pw_store_t *st;
    pw_store_stats_t s0, s;
    uint8_t *v;
    uint32_t q;
    char val[200];
    size_t size;
    int n;

    size = 64 * 1024;
    st = new_store_opts(size, PW_STORE_EVICT_LRU, 0, 0, 0);
    memset(val, 'v', sizeof(val));
    v = calloc(1, size);
    PW_CHECK(v != NULL);

    /* a queue item first: not a key, so never evicted for a key */
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, v, 8000), PW_OK);
    n = fill_until_evicting(st, val, sizeof(val));

    /* bigger than the region: refused as before, nothing evicted */
    s0 = pub_stats(st);
    PW_CHECK_EQ_INT(pw_kv_set(st, "huge", 4, v, size, 0), PW_ELIMIT);
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, s0.kv_evictions);

    /* more than evicting every key would free: refused before evicting */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k-new", 5, v,
                              s0.heap_bytes - s0.used_bytes + s0.kv_bytes,
                              0), PW_EFULL);
    s = pub_stats(st);
    PW_CHECK_EQ_INT(s.kv_evictions, s0.kv_evictions);
    PW_CHECK_EQ_INT(s.kv_entries, (uint64_t) n - 1);
    PW_CHECK(present(st, "k1"));

    /* just what evicting every key frees: all go, the value fits */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k-new", 5, v,
                              s0.heap_bytes - s0.used_bytes + s0.kv_bytes
                              - 200, 0), PW_OK);
    s = pub_stats(st);
    PW_CHECK_EQ_INT(s.kv_entries, 1);
    PW_CHECK_EQ_INT(s.kv_evictions, s0.kv_evictions + (uint64_t) n - 1);
    PW_CHECK_EQ_INT(s.queue_items, 1);
    check_ok(st);

    /* keys make room for queue items too (and for new queues) */
    PW_CHECK_EQ_INT(pw_kv_set(st, "k-new", 5, NULL, 0, 0), PW_OK);
    fill_until_evicting(st, val, sizeof(val));
    s0 = pub_stats(st);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, v, 2000), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q2"), 0, &q), PW_OK);
    s = pub_stats(st);
    PW_CHECK(s.kv_evictions >= s0.kv_evictions + 2000 / 272);
    PW_CHECK_EQ_INT(s.queue_items, 2);
    PW_CHECK_EQ_INT(s.queues, 2);

    free(v);
    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_none_is_full)
{
    pw_store_t *st;
    char val[200], key[32];
    int n, rc;

    st = new_store_opts(64 * 1024, PW_STORE_EVICT_NONE, 0, 0, 0);
    memset(val, 'v', sizeof(val));

    for (n = 0; ; n++) {
        snprintf(key, sizeof(key), "k%d", n);
        rc = pw_kv_set(st, key, strlen(key), val, sizeof(val), 0);
        if (rc == PW_EFULL) {
            break;
        }
        PW_CHECK_EQ_INT(rc, PW_OK);
    }
    PW_CHECK(n > 100);
    PW_CHECK(present(st, "k0"));
    PW_CHECK_EQ_INT(pub_stats(st).kv_evictions, 0);
    PW_CHECK_EQ_INT(pub_stats(st).kv_entries, (uint64_t) n);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(kv_cas_absent)
{
    pw_store_opts_t o;
    pw_store_t *st, *strict;
    char val[200];
    uint32_t cas;
    int n;

    /* an evicted key is absent: as Envoy, a set with its old token
     * writes it; with kv_strict_cas it is a mismatch */
    st = new_store_opts(64 * 1024, PW_STORE_EVICT_LRU, 0, 0, 0);
    memset(&o, 0, sizeof(o));
    o.kv_eviction = PW_STORE_EVICT_LRU;
    o.kv_strict_cas = 1;
    PW_CHECK_EQ_INT(pw_store_new_ex(64 * 1024, &o, NULL, &strict), PW_OK);
    memset(val, 'v', sizeof(val));

    free(get_str(st, "k0", &cas));
    PW_CHECK_EQ_INT(set_str(st, "k0", "x", 0), PW_OK);
    free(get_str(st, "k0", &cas));
    n = fill_until_evicting(st, val, sizeof(val));
    PW_CHECK(n > 1 && !present(st, "k0"));
    PW_CHECK_EQ_INT(set_str(st, "k0", "again", cas), PW_OK);
    check_val(st, "k0", "again");

    PW_CHECK_EQ_INT(set_str(strict, "k0", "x", 0), PW_OK);
    free(get_str(strict, "k0", &cas));
    fill_until_evicting(strict, val, sizeof(val));
    PW_CHECK(!present(strict, "k0"));
    PW_CHECK_EQ_INT(set_str(strict, "k0", "again", cas), PW_ECAS);
    PW_CHECK(!present(strict, "k0"));
    PW_CHECK_EQ_INT(set_str(strict, "never", "v", 1), PW_ECAS);
    PW_CHECK_EQ_INT(set_str(strict, "k0", "again", 0), PW_OK);
    check_val(strict, "k0", "again");

    /* present keys behave the same under both */
    free(get_str(strict, "k0", &cas));
    PW_CHECK_EQ_INT(set_str(strict, "k0", "b", cas + 1), PW_ECAS);
    PW_CHECK_EQ_INT(set_str(strict, "k0", "b", cas), PW_OK);

    check_ok(st);
    check_ok(strict);
    pw_store_free(st);
    pw_store_free(strict);
}


/*
 * Many sizes against a model of recency: after every operation the store
 * holds exactly the model's keys, where a set that reports d new
 * evictions removed the d least recently used keys other than its own.
 */
#define LM_KEYS  300

typedef struct {
    int present;
    size_t len;
    uint64_t seed;
    uint64_t used;          /* clock of the last use */
} lm_key_t;


static void
lm_name(int i, char *buf, size_t size)
{
    snprintf(buf, size, "key/%d", i);
}


static void
lm_evict(lm_key_t *m, int keep, uint64_t d)
{
    int i, victim;

    while (d-- > 0) {
        victim = -1;
        for (i = 0; i < LM_KEYS; i++) {
            if (m[i].present && i != keep
                && (victim < 0 || m[i].used < m[victim].used))
            {
                victim = i;
            }
        }
        PW_CHECK(victim >= 0);
        m[victim].present = 0;
    }
}


typedef struct {
    lm_key_t *m;
    int n;
    int bad;
} lm_visit_t;


static void
lm_visit(void *arg, pw_str_t key, pw_str_t val, uint32_t cas)
{
    lm_visit_t *v = arg;
    uint8_t want[9000];
    size_t j;
    int i;

    v->n++;
    if (key.len < 5 || memcmp(key.data, "key/", 4) != 0) {
        v->bad++;
        return;
    }
    /* the key is not NUL-terminated (the value follows it) */
    for (i = 0, j = 4; j < key.len; j++) {
        i = i * 10 + (key.data[j] - '0');
    }
    if (i < 0 || i >= LM_KEYS || !v->m[i].present
        || v->m[i].len != val.len)
    {
        fprintf(stderr, "  key %d: store has %zu bytes, model %s %zu\n", i,
                val.len, v->m[i].present ? "has" : "lacks", v->m[i].len);
        v->bad++;
        return;
    }
    fill_pattern(want, val.len, v->m[i].seed);
    if (memcmp(want, val.data, val.len) != 0) {
        v->bad++;
    }
}


static void
lm_run(uint64_t seed, int ops)
{
    pw_store_t *st;
    lm_key_t *m;
    lm_visit_t v;
    pw_store_stats_t s;
    uint64_t rs, clock, ev, r, len;
    uint8_t *buf, *got;
    size_t glen;
    char key[32];
    int op, i, k, rc, npresent, fails;

    st = new_store_opts(128 * 1024, PW_STORE_EVICT_LRU, 0, 0, 0);
    m = calloc(LM_KEYS, sizeof(lm_key_t));
    buf = malloc(9000);
    PW_CHECK(m != NULL && buf != NULL);
    rs = seed;
    clock = 0;
    ev = 0;
    fails = 0;

    for (op = 0; op < ops; op++) {
        r = rng_next(&rs);
        k = (int) (r % LM_KEYS);
        lm_name(k, key, sizeof(key));
        r >>= 16;

        if (r % 10 < 3) {
            rc = pw_kv_get(st, key, strlen(key), &got, &glen, NULL);
            if (m[k].present) {
                PW_CHECK_EQ_INT(rc, PW_OK);
                PW_CHECK_EQ_INT(glen, m[k].len);
                fill_pattern(buf, glen, m[k].seed);
                PW_CHECK(memcmp(buf, got, glen) == 0);
                free(got);
                m[k].used = ++clock;
            } else {
                PW_CHECK_EQ_INT(rc, PW_ENOTFOUND);
            }

        } else if (r % 10 == 3) {
            PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), NULL, 0, 0),
                            PW_OK);
            m[k].present = 0;

        } else {
            /* mostly small, some large */
            r >>= 8;
            len = r % 16 == 0 ? 2000 + (r >> 4) % 7000 : 1 + (r >> 4) % 400;
            fill_pattern(buf, len, rs);
            rc = pw_kv_set(st, key, strlen(key), buf, len, 0);

            s = pub_stats(st);
            lm_evict(m, k, s.kv_evictions - ev);
            ev = s.kv_evictions;

            if (rc == PW_OK) {
                m[k].present = 1;
                m[k].len = len;
                m[k].seed = rs;
                m[k].used = ++clock;
            } else {
                /* only a replacement can fail: its old block may split
                 * the room that evicting everything else frees */
                PW_CHECK_EQ_INT(rc, PW_EFULL);
                PW_CHECK(m[k].present);
                fails++;
            }
        }

        if (op % 64 == 0 || op == ops - 1) {
            memset(&v, 0, sizeof(v));
            v.m = m;
            PW_CHECK_EQ_INT(pw_kv_foreach(st, lm_visit, &v), PW_OK);
            for (i = 0, npresent = 0; i < LM_KEYS; i++) {
                npresent += m[i].present;
            }
            if (v.bad || v.n != npresent) {
                fprintf(stderr, "  op %d: %d bad, %d keys, model %d\n", op,
                        v.bad, v.n, npresent);
            }
            PW_CHECK_EQ_INT(v.bad, 0);
            PW_CHECK_EQ_INT(v.n, npresent);
        }
        if (op % 512 == 0) {
            check_ok(st);
        }
    }

    /* the region was really under pressure */
    PW_CHECK(ev > (uint64_t) ops / 20);
    PW_CHECK(fails < ops / 100);
    check_ok(st);

    free(buf);
    free(m);
    pw_store_free(st);
}


PW_TEST(kv_lru_vs_model)
{
    lm_run(7, 6000);
    lm_run(0x1234567887654321ULL, 6000);
    lm_run((uint64_t) time(NULL) | 1, 6000);
}


typedef struct {
    int n;
    pw_queue_info_t q[4];
    char names[4][16];
} q_list_t;


static void
q_list(void *arg, const pw_queue_info_t *q)
{
    q_list_t *l = arg;

    if (l->n < 4) {
        l->q[l->n] = *q;
        snprintf(l->names[l->n], sizeof(l->names[0]), "%.*s/%.*s",
                 (int) q->vm_id.len, q->vm_id.data, (int) q->name.len,
                 q->name.data);
        l->q[l->n].vm_id.data = NULL;
        l->q[l->n].name.data = NULL;
    }
    l->n++;
}


static void
expect_items(pw_store_t *st, uint32_t q, const char *const *want, int n)
{
    uint8_t *d;
    size_t len;
    int i;

    for (i = 0; i < n; i++) {
        PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_OK);
        PW_CHECK(len == strlen(want[i]) && memcmp(d, want[i], len) == 0);
        free(d);
    }
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_EEMPTY);
}


PW_TEST(queue_bound_oldest)
{
    static const char *const last3[] = { "3", "4", "5" };
    static const char *const bytes[] = { "ccc", "dddd" };
    pw_store_t *st, *sb;
    uint32_t q, q2;
    q_list_t l;
    char buf[8];
    int i;

    st = new_store_opts(64 * 1024, 0, PW_STORE_EVICT_OLDEST, 3, 0);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("other"), 0, &q2),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q2, "keep", 4), PW_OK);

    for (i = 1; i <= 5; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, buf, 1), PW_OK);
    }

    memset(&l, 0, sizeof(l));
    PW_CHECK_EQ_INT(pw_queue_foreach(st, q_list, &l), PW_OK);
    PW_CHECK_EQ_INT(l.n, 2);
    PW_CHECK_EQ_INT(l.q[0].depth, 3);
    PW_CHECK_EQ_INT(l.q[0].bytes, 3);
    PW_CHECK_EQ_INT(l.q[0].dropped, 2);
    PW_CHECK_EQ_INT(l.q[1].depth, 1);
    PW_CHECK_EQ_INT(l.q[1].dropped, 0);
    PW_CHECK_EQ_INT(pub_stats(st).queue_dropped, 2);
    check_ok(st);

    expect_items(st, q, last3, 3);
    expect_items(st, q2, (const char *const[]) { "keep" }, 1);
    pw_store_free(st);

    /* a byte bound: drop until the new item's bytes fit */
    sb = new_store_opts(64 * 1024, 0, PW_STORE_EVICT_OLDEST, 0, 8);
    PW_CHECK_EQ_INT(pw_queue_register(sb, VM, PW_STR("q"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(sb, q, "a", 1), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(sb, q, "bb", 2), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(sb, q, "ccc", 3), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(sb, q, "dddd", 4), PW_OK);
    PW_CHECK_EQ_INT(pub_stats(sb).queue_dropped, 2);
    PW_CHECK_EQ_INT(pub_stats(sb).queue_bytes, 7);
    /* an item over the bound never fits: refused, nothing dropped */
    PW_CHECK_EQ_INT(pw_queue_enqueue(sb, q, "123456789", 9), PW_ELIMIT);
    PW_CHECK_EQ_INT(pub_stats(sb).queue_dropped, 2);
    check_ok(sb);
    expect_items(sb, q, bytes, 2);
    pw_store_free(sb);
}


PW_TEST(queue_bound_none)
{
    pw_store_t *st;
    pw_store_conf_t conf;
    ready_t r;
    uint32_t q;
    uint8_t *d;
    size_t len;

    memset(&r, 0, sizeof(r));
    memset(&conf, 0, sizeof(conf));
    conf.queue_ready = on_ready;
    conf.queue_ready_data = &r;
    {
        pw_store_opts_t o;

        memset(&o, 0, sizeof(o));
        o.queue_max_items = 2;
        o.queue_max_bytes = 10;
        PW_CHECK_EQ_INT(pw_store_new_ex(64 * 1024, &o, &conf, &st), PW_OK);
    }

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 3, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "one", 3), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "two", 3), PW_OK);
    PW_CHECK_EQ_INT(r.calls, 2);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "3", 1), PW_EFULL);
    PW_CHECK_EQ_INT(r.calls, 2);

    /* room again after a dequeue; the byte bound holds too */
    PW_CHECK_EQ_INT(pw_queue_dequeue(st, q, &d, &len), PW_OK);
    PW_CHECK_MEM(d, len, "one");
    free(d);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "12345678", 8), PW_EFULL);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "1234567", 7), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "x", 1), PW_EFULL);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "12345678901", 11), PW_ELIMIT);
    PW_CHECK_EQ_INT(pub_stats(st).queue_dropped, 0);
    expect_items(st, q, (const char *const[]) { "two", "1234567" }, 2);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(queue_oldest_region_full)
{
    pw_store_t *st;
    pw_store_stats_t s;
    uint32_t q, q2, seq, first;
    uint8_t item[600], *d;
    size_t len;
    int i, n;

    /* no bound: the region's room is the bound */
    st = new_store_opts(64 * 1024, 0, PW_STORE_EVICT_OLDEST, 0, 0);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q2"), 0, &q2), PW_OK);
    memset(item, 'i', sizeof(item));
    for (i = 0; i < 10; i++) {
        PW_CHECK_EQ_INT(pw_queue_enqueue(st, q2, item, sizeof(item)), PW_OK);
    }

    for (seq = 0; seq < 1000; seq++) {
        memcpy(item, &seq, sizeof(seq));
        PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, sizeof(item)), PW_OK);
    }
    s = pub_stats(st);
    PW_CHECK(s.queue_dropped > 500);
    PW_CHECK_EQ_INT(s.queue_items, 1000 - s.queue_dropped + 10);
    check_ok(st);

    /* what is left is the newest run, in order; q2 lost nothing */
    n = 0;
    first = (uint32_t) s.queue_dropped;
    while (pw_queue_dequeue(st, q, &d, &len) == PW_OK) {
        memcpy(&seq, d, sizeof(seq));
        PW_CHECK_EQ_INT(seq, first + (uint32_t) n);
        free(d);
        n++;
    }
    PW_CHECK_EQ_INT(first + (uint32_t) n, 1000);
    for (i = 0; i < 10; i++) {
        PW_CHECK_EQ_INT(pw_queue_dequeue(st, q2, &d, &len), PW_OK);
        free(d);
    }

    /* an item that emptying its queue would not make room for fails
     * without dropping anything (the rest is held by keys, with no kv
     * eviction) */
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, 100), PW_OK);
    for (i = 0; ; i++) {
        char key[16];

        snprintf(key, sizeof(key), "k%d", i);
        if (pw_kv_set(st, key, strlen(key), item, 200, 0) == PW_EFULL) {
            break;
        }
        PW_CHECK(i < 1000);
    }
    s = pub_stats(st);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, item, sizeof(item)), PW_EFULL);
    PW_CHECK_EQ_INT(pub_stats(st).queue_dropped, s.queue_dropped);
    PW_CHECK_EQ_INT(pub_stats(st).queue_items, 1);
    check_ok(st);

    pw_store_free(st);
}


PW_TEST(queue_owner_and_list)
{
    pw_store_t *st;
    pw_store_conf_t conf;
    ready_t r;
    q_list_t l;
    uint32_t q, q2, again;

    memset(&r, 0, sizeof(r));
    memset(&conf, 0, sizeof(conf));
    conf.queue_ready = on_ready;
    conf.queue_ready_data = &r;
    PW_CHECK_EQ_INT(pw_store_new(64 * 1024, &conf, &st), PW_OK);

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("jobs"), 100, &q),
                    PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, PW_STR("vm2"), PW_STR("x"), 200,
                                      &q2), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "a", 1), PW_OK);
    PW_CHECK_EQ_INT(r.owner, 100);

    /* a new worker takes the queue over: wake-ups go to it, items stay */
    PW_CHECK_EQ_INT(pw_queue_set_owner(st, q, 101), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "bb", 2), PW_OK);
    PW_CHECK_EQ_INT(r.owner, 101);
    PW_CHECK_EQ_INT(r.qid, q);

    /* re-registration is the same queue with the new owner */
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("jobs"), 102, &again),
                    PW_OK);
    PW_CHECK_EQ_INT(again, q);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "c", 1), PW_OK);
    PW_CHECK_EQ_INT(r.owner, 102);

    PW_CHECK_EQ_INT(pw_queue_set_owner(st, 0, 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_queue_set_owner(st, 99, 1), PW_ENOTFOUND);
    PW_CHECK_EQ_INT(pw_queue_set_owner(NULL, q, 1), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_queue_foreach(st, NULL, NULL), PW_EINVAL);

    memset(&l, 0, sizeof(l));
    PW_CHECK_EQ_INT(pw_queue_foreach(st, q_list, &l), PW_OK);
    PW_CHECK_EQ_INT(l.n, 2);
    PW_CHECK_EQ_INT(l.q[0].qid, q);
    PW_CHECK_EQ_INT(l.q[0].owner, 102);
    PW_CHECK_EQ_STR(l.names[0], "vm/jobs");
    PW_CHECK_EQ_INT(l.q[0].depth, 3);
    PW_CHECK_EQ_INT(l.q[0].bytes, 4);
    PW_CHECK_EQ_INT(l.q[1].qid, q2);
    PW_CHECK_EQ_INT(l.q[1].owner, 200);
    PW_CHECK_EQ_STR(l.names[1], "vm2/x");
    PW_CHECK_EQ_INT(l.q[1].depth, 0);

    check_ok(st);
    pw_store_free(st);
}


PW_TEST(store_stats)
{
    pw_store_t *st;
    pw_store_stats_t s, s0;
    pw__store_stats_t in;
    uint32_t q, id;
    char val[300];
    int n;

    st = new_store_opts(64 * 1024, PW_STORE_EVICT_LRU,
                        PW_STORE_EVICT_OLDEST, 2, 0);
    PW_CHECK_EQ_INT(pw_store_stats(NULL, &s), PW_EINVAL);
    PW_CHECK_EQ_INT(pw_store_stats(st, NULL), PW_EINVAL);

    s0 = pub_stats(st);
    PW_CHECK_EQ_INT(s0.region_size, 64 * 1024);
    PW_CHECK(s0.heap_bytes > 32 * 1024 && s0.heap_bytes < 64 * 1024);
    PW_CHECK_EQ_INT(s0.used_bytes, 0);
    PW_CHECK_EQ_INT(s0.kv_entries + s0.kv_bytes + s0.kv_evictions
                    + s0.queues + s0.queue_items + s0.queue_bytes
                    + s0.queue_dropped + s0.metrics, 0);

    memset(val, 'v', sizeof(val));
    n = fill_until_evicting(st, val, sizeof(val));
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("a"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "123", 3), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "45", 2), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "6789", 4), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("b"), 0, &q), PW_OK);
    PW_CHECK_EQ_INT(pw_metric_define(st, PW_METRIC_COUNTER, PW_STR("c"),
                                     &id), PW_OK);

    s = pub_stats(st);
    in = stats_of(st);
    PW_CHECK_EQ_INT(s.kv_entries, in.kv_count);
    PW_CHECK(s.kv_evictions >= 1);
    PW_CHECK_EQ_INT(s.kv_entries + s.kv_evictions, (uint64_t) n);
    PW_CHECK_EQ_INT(s.used_bytes, s.heap_bytes - in.free_bytes);
    PW_CHECK(s.kv_bytes > s.kv_entries * sizeof(val)
             && s.kv_bytes < s.used_bytes);
    PW_CHECK_EQ_INT(s.queues, 2);
    PW_CHECK_EQ_INT(s.queue_items, 2);
    PW_CHECK_EQ_INT(s.queue_bytes, 6);
    PW_CHECK_EQ_INT(s.queue_dropped, 1);
    PW_CHECK_EQ_INT(s.metrics, 1);

    check_ok(st);
    pw_store_free(st);
}


/* ---- processes killed while evicting ---------------------------------- */

static uint8_t *
region_copy(const void *region, size_t size)
{
    void *p;

    PW_CHECK(posix_memalign(&p, 64, size) == 0);
    memcpy(p, region, size);
    return p;
}


/* offset of key's entry, or 0 */
static uint64_t
kv_entry_off(pw_store_t *st, const char *key)
{
    pw__hdr_t *h;
    pw__kv_t *e;
    uint64_t hash, off;
    size_t klen;

    h = PW__HDR(st);
    klen = strlen(key);
    hash = pw__hash(key, klen);
    off = ((uint64_t *) PW__AT(st, h->kv_buckets))[hash
                                                   & (h->kv_nbuckets - 1)];
    for ( ; off != 0; off = e->next) {
        e = PW__AT(st, off);
        if (e->klen == klen && memcmp(e + 1, key, klen) == 0) {
            return off;
        }
    }

    return 0;
}


/*
 * Like kill_each_step, for an operation that first evicts keys (drops:
 * queue items of queue 1) one committed step at a time: after a kill at
 * step `at` (each run from the same start) the region must be exactly the
 * state after the first j evictions, j growing with `at`, and the last
 * kills must land after all of them. The
 * reference states come from the internal evict/drop functions run on a
 * copy; the final state from the operation run on another copy.
 */
static void
kill_each_step_evicting(pw_store_t *st, void *region, size_t size,
    const char *name, op_fn_t fn, int drops, const char *keep_key)
{
    uint8_t *done, *cur, **refs;
    pw_store_t *st2;
    pw_store_stats_t s0, s1;
    unsigned at, kills;
    uint64_t n, j, last, keep;
    kill_hook_t k;
    pid_t pid;
    int status, found;

    /* the operation on a copy: how many evictions, and the end state */
    done = region_copy(region, size);
    PW_CHECK_EQ_INT(pw_store_attach(done, size, NULL, &st2), PW_OK);
    s0 = pub_stats(st2);
    fn(st2);
    s1 = pub_stats(st2);
    pw_store_detach(st2);
    n = drops ? s1.queue_dropped - s0.queue_dropped
              : s1.kv_evictions - s0.kv_evictions;
    PW_CHECK_EQ_INT(drops ? s1.kv_evictions - s0.kv_evictions
                          : s1.queue_dropped - s0.queue_dropped, 0);
    PW_CHECK(n >= 1);

    refs = calloc(n + 1, sizeof(uint8_t *));
    PW_CHECK(refs != NULL);
    refs[0] = region_copy(region, size);
    cur = region_copy(region, size);
    PW_CHECK_EQ_INT(pw_store_attach(cur, size, NULL, &st2), PW_OK);
    for (j = 1; j <= n; j++) {
        PW_CHECK_EQ_INT(pw__store_lock(st2), PW_OK);
        keep = keep_key ? kv_entry_off(st2, keep_key) : 0;
        PW_CHECK_EQ_INT(drops ? pw__queue_drop_qid_locked(st2, 1)
                              : pw__kv_evict_one_locked(st2, keep), 1);
        pw__store_unlock(st2);
        refs[j] = region_copy(cur, size);
    }
    pw_store_detach(st2);
    free(cur);

    last = 0;
    kills = 0;
    for (at = 1; ; at++) {
        PW_CHECK(at < 400);
        k.at = at;

        /* evictions done before a kill stay done: start every run from
         * the same state (the lock in it is free, as in the snapshot) */
        memcpy(region, refs[0], size);

        pid = fork();
        PW_CHECK(pid >= 0);
        if (pid == 0) {
            pw__store_set_step_hook(st, hook_die, &k);
            fn(st);
            _exit(0);
        }
        PW_CHECK(waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status)) {
            PW_CHECK_EQ_INT(WEXITSTATUS(status), 0);
            break;
        }
        PW_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        kills++;

        check_ok(st);
        found = 0;
        for (j = last; j <= n && !found; j++) {
            if (same_state(refs[j], region, 0)) {
                found = 1;
                last = j;
            }
        }
        if (!found) {
            fprintf(stderr, "  %s: killed at step %u: not a state after "
                    "%llu or more evictions\n", name, at,
                    (unsigned long long) last);
            PW_CHECK(0);
        }
    }

    printf("  %s: %llu evictions, %u kills\n", name, (unsigned long long) n,
           kills);
    PW_CHECK_EQ_INT(last, n);
    PW_CHECK(kills > n);
    check_ok(st);
    PW_CHECK(same_state(done, region, 1));

    for (j = 0; j <= n; j++) {
        free(refs[j]);
    }
    free(refs);
    free(done);
}


static void
op_get_touch(pw_store_t *st)
{
    size_t len;

    if (pw_kv_get(st, "k5", 2, NULL, &len, NULL) != PW_OK) {
        _exit(50);
    }
}

static void
op_set_evicting(pw_store_t *st)
{
    char v[1500];

    memset(v, 'B', sizeof(v));
    if (pw_kv_set(st, "big", 3, v, sizeof(v), 0) != PW_OK) {
        _exit(51);
    }
}

static void
op_replace_evicting(pw_store_t *st)
{
    char v[1200];

    memset(v, 'R', sizeof(v));
    if (pw_kv_set(st, "k10", 3, v, sizeof(v), 0) != PW_OK) {
        _exit(52);
    }
}

static void
op_enqueue_dropping(pw_store_t *st)
{
    if (pw_queue_enqueue(st, 1, "d", 1) != PW_OK) {
        _exit(53);
    }
}

static void
op_define_evicting(pw_store_t *st)
{
    uint32_t id;

    /* a histogram record (>500 bytes) and the metric table: two
     * allocations, retried after each eviction */
    if (pw_metric_define(st, PW_METRIC_HISTOGRAM, PW_STR("hist"), &id)
        != PW_OK)
    {
        _exit(54);
    }
}


/* add keys until one is evicted: the region has less than a key's room */
static void
top_up(pw_store_t *st, char prefix)
{
    char key[16], v[300];
    uint64_t ev;
    int i;

    memset(v, 'v', sizeof(v));
    ev = pub_stats(st).kv_evictions;
    for (i = 0; pub_stats(st).kv_evictions == ev; i++) {
        snprintf(key, sizeof(key), "%c%d", prefix, i);
        PW_CHECK_EQ_INT(pw_kv_set(st, key, strlen(key), v, sizeof(v), 0),
                        PW_OK);
    }
}


PW_TEST(kill_at_every_step_evicting)
{
    pw_store_t *st;
    pw_store_opts_t o;
    void *region;
    size_t size;
    uint32_t q;
    char v[300];

    size = 64 * 1024;
    region = shared_map(size);
    memset(&o, 0, sizeof(o));
    o.kv_eviction = PW_STORE_EVICT_LRU;
    o.queue_eviction = PW_STORE_EVICT_OLDEST;
    o.queue_max_items = 3;
    PW_CHECK_EQ_INT(pw_store_format_ex(region, size, &o), PW_OK);
    PW_CHECK_EQ_INT(pw_store_attach(region, size, NULL, &st), PW_OK);

    PW_CHECK_EQ_INT(pw_queue_register(st, VM, PW_STR("q"), 1, &q), PW_OK);
    PW_CHECK_EQ_INT(q, 1);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "a", 1), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "b", 1), PW_OK);
    PW_CHECK_EQ_INT(pw_queue_enqueue(st, q, "c", 1), PW_OK);
    memset(v, 'v', sizeof(v));
    fill_until_evicting(st, v, sizeof(v));
    check_ok(st);

    kill_each_step(st, region, size, "get (touch)", op_get_touch);
    kill_each_step_evicting(st, region, size, "set evicting",
                            op_set_evicting, 0, NULL);
    top_up(st, 't');
    kill_each_step_evicting(st, region, size, "replace evicting",
                            op_replace_evicting, 0, "k10");
    kill_each_step_evicting(st, region, size, "enqueue dropping",
                            op_enqueue_dropping, 1, NULL);
    top_up(st, 'u');
    kill_each_step_evicting(st, region, size, "define evicting",
                            op_define_evicting, 0, NULL);

    /* what the completed operations did */
    PW_CHECK(present(st, "big") && present(st, "k10") && present(st, "k5"));
    PW_CHECK(!present(st, "k1") && !present(st, "k2"));
    PW_CHECK_EQ_INT(pub_stats(st).queue_items, 3);
    PW_CHECK_EQ_INT(pub_stats(st).queue_dropped, 1);

    pw_store_detach(st);
    munmap(region, size);
}


int
main(int argc, char **argv)
{
    return pw_test_main(argc, argv, (pw_test_t[]) {
        PW_TEST_ENTRY(format_attach),
        PW_TEST_ENTRY(kv_get_set),
        PW_TEST_ENTRY(kv_cas),
        PW_TEST_ENTRY(kv_cas_token_wraps_past_zero),
        PW_TEST_ENTRY(kv_delete),
        PW_TEST_ENTRY(kv_limits),
        PW_TEST_ENTRY(kv_large_values),
        PW_TEST_ENTRY(kv_full_then_room_again),
        PW_TEST_ENTRY(kv_foreach),
        PW_TEST_ENTRY(queue_register_resolve),
        PW_TEST_ENTRY(queue_fifo),
        PW_TEST_ENTRY(queue_full_then_room_again),
        PW_TEST_ENTRY(queue_ready_with_owner),
        PW_TEST_ENTRY(queue_ready_outside_builtin_lock),
        PW_TEST_ENTRY(metrics),
        PW_TEST_ENTRY(metrics_many),
        PW_TEST_ENTRY(two_addresses),
        PW_TEST_ENTRY(caller_lock),
        PW_TEST_ENTRY(multi_process),
        PW_TEST_ENTRY(multi_process_evicting),
        PW_TEST_ENTRY(kill_at_every_step),
        PW_TEST_ENTRY(kill_with_caller_lock),
        PW_TEST_ENTRY(kill_lock_holder_others_continue),
        PW_TEST_ENTRY(kill_lock_holder_idle),
        PW_TEST_ENTRY(randomized_vs_model),
        PW_TEST_ENTRY(format_options),
        PW_TEST_ENTRY(kv_lru_order),
        PW_TEST_ENTRY(kv_lru_limits),
        PW_TEST_ENTRY(kv_none_is_full),
        PW_TEST_ENTRY(kv_cas_absent),
        PW_TEST_ENTRY(kv_lru_vs_model),
        PW_TEST_ENTRY(queue_bound_oldest),
        PW_TEST_ENTRY(queue_bound_none),
        PW_TEST_ENTRY(queue_oldest_region_full),
        PW_TEST_ENTRY(queue_owner_and_list),
        PW_TEST_ENTRY(store_stats),
        PW_TEST_ENTRY(kill_at_every_step_evicting),
        { 0 }
    });
}
