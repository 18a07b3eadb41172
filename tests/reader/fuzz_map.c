/*
 * libFuzzer target of the pairs serialization and the owned map: decoding
 * then encoding reproduces the input exactly; map operations agree with a
 * plain scan of the decoded pairs.
 *
 *   make fuzz && build/fuzz/fuzz_map build/fuzz/seeds_map
 */
#include <stdlib.h>
#include <string.h>

#include <pw/pw_map.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond) {
        abort();
    }
}

static int
key_eq(pw_str_t a, pw_str_t b)
{
    size_t i;
    int x, y;

    if (a.len != b.len) {
        return 0;
    }
    for (i = 0; i < a.len; i++) {
        x = (unsigned char) a.data[i];
        y = (unsigned char) b.data[i];
        x = x >= 'A' && x <= 'Z' ? x + 32 : x;
        y = y >= 'A' && y <= 'Z' ? y + 32 : y;
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

static void
check_map_ops(const pw_pairs_t *p)
{
    pw_str_t key, v;
    pw_pairs_t view;
    pw_map_t *m;
    size_t i, j, matches, before;

    if (pw_map_new(&m) != PW_OK) {
        return;
    }
    check(pw_map_set_pairs(m, p) == PW_OK);
    check(pw_map_count(m) == p->n);

    for (i = 0; i < p->n; i++) {
        check(pw_map_get(m, p->pairs[i].key, &v) == PW_OK);
        for (j = 0; !key_eq(p->pairs[j].key, p->pairs[i].key); j++) {
            /* the first pair with an equal key */
        }
        check(v.len == p->pairs[j].value.len);
        check(v.len == 0 || memcmp(v.data, p->pairs[j].value.data, v.len)
                            == 0);
    }

    if (p->n > 0) {
        /* replace the last key: one pair left for it, at the first place */
        key = p->pairs[p->n - 1].key;
        matches = 0;
        for (i = 0; i < p->n; i++) {
            matches += key_eq(p->pairs[i].key, key);
        }
        before = pw_map_count(m);
        if (pw_map_replace(m, key, p->pairs[0].value) == PW_OK) {
            check(pw_map_count(m) == before - matches + 1);
            check(pw_map_get(m, key, &v) == PW_OK);
            check(v.len == p->pairs[0].value.len);
        }
        /* remove the first key, through the map's own copy of it */
        pw_map_pairs(m, &view);
        key = view.pairs[0].key;
        before = pw_map_count(m);
        matches = 0;
        for (i = 0; i < view.n; i++) {
            matches += key_eq(view.pairs[i].key, key);
        }
        check(pw_map_remove(m, key) == PW_OK);
        check(pw_map_count(m) == before - matches);
        pw_map_pairs(m, &view);
        for (i = 0; i < view.n; i++) {
            check(view.pairs[i].key.data[view.pairs[i].key.len] == '\0');
        }
    }
    pw_map_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_pairs_t p;
    uint8_t *out;
    size_t need;
    int rc;

    rc = pw_pairs_deserialize(data, size, &p);
    if (rc != PW_OK) {
        check(rc == PW_EMALFORMED || rc == PW_ELIMIT);
        check(p.pairs == NULL && p.n == 0);
        return 0;
    }
    check(pw_pairs_size(&p, &need) == PW_OK);
    if (size < 4) {
        /* the short forms of an empty map */
        check(p.n == 0 && need == 4);
    } else {
        check(need == size);
        out = malloc(need);
        check(out != NULL);
        pw_pairs_serialize(&p, out);
        check(memcmp(out, data, size) == 0);
        free(out);
    }
    check_map_ops(&p);
    free((void *) p.pairs);
    return 0;
}
