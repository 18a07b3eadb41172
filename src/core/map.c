/*
 * proxy-wasm-c: header maps and their Proxy-Wasm serialization (pw_map.h).
 *
 * Serialized input comes from plugins: every length is checked against the
 * buffer and the caps before it is used, and sizes are computed in size_t
 * with the caps checked before each addition so they cannot overflow.
 */
#include <stdlib.h>
#include <string.h>

#include <pw/pw_map.h>

struct pw_map_s {
    pw_pair_t *pairs;           /* key.data is one block: key\0value\0 */
    size_t n;
    size_t cap;
    size_t bytes;               /* serialized size of the pairs */
};

/* Serialized bytes of one pair: two u32 lengths, two NUL-ended strings. */
#define PW__PAIR_BYTES(klen, vlen) (8 + (klen) + 1 + (vlen) + 1)

static void
pw__map_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
    p[2] = (uint8_t) (v >> 16);
    p[3] = (uint8_t) (v >> 24);
}

static uint32_t
pw__map_get_u32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}

/* Whether a pair of these lengths fits beside used bytes under the cap. */
static int
pw__map_fits(size_t used, size_t klen, size_t vlen)
{
    size_t rest;

    /* subtractions only: nothing here can overflow */
    if (used > PW_MAX_MAP_BYTES) {
        return 0;
    }
    rest = (size_t) PW_MAX_MAP_BYTES - used;
    if (rest < 10) {
        return 0;
    }
    rest -= 10;
    if (klen > rest) {
        return 0;
    }
    rest -= klen;
    /* lengths travel as u32; the cap may have been raised past that */
    return vlen <= rest && klen <= UINT32_MAX && vlen <= UINT32_MAX;
}

int
pw_pairs_size(const pw_pairs_t *p, size_t *size)
{
    size_t i, total;

    if (p == NULL || size == NULL || (p->n > 0 && p->pairs == NULL)) {
        return PW_EINVAL;
    }
    if (p->n > PW_MAX_MAP_PAIRS) {
        return PW_ELIMIT;
    }
    total = 4;
    for (i = 0; i < p->n; i++) {
        if (!pw__map_fits(total, p->pairs[i].key.len,
                          p->pairs[i].value.len))
        {
            return PW_ELIMIT;
        }
        total += PW__PAIR_BYTES(p->pairs[i].key.len, p->pairs[i].value.len);
    }
    if (total > PW_MAX_MAP_BYTES) {
        return PW_ELIMIT;
    }
    *size = total;
    return PW_OK;
}

void
pw_pairs_serialize(const pw_pairs_t *p, uint8_t *dst)
{
    const pw_pair_t *pr;
    uint8_t *data;
    size_t i;

    pw__map_put_u32(dst, (uint32_t) p->n);
    data = dst + 4 + 8 * p->n;
    for (i = 0; i < p->n; i++) {
        pr = &p->pairs[i];
        pw__map_put_u32(dst + 4 + 8 * i, (uint32_t) pr->key.len);
        pw__map_put_u32(dst + 8 + 8 * i, (uint32_t) pr->value.len);
        if (pr->key.len > 0) {
            memcpy(data, pr->key.data, pr->key.len);
        }
        data += pr->key.len;
        *data++ = '\0';
        if (pr->value.len > 0) {
            memcpy(data, pr->value.data, pr->value.len);
        }
        data += pr->value.len;
        *data++ = '\0';
    }
}

int
pw_pairs_deserialize(const uint8_t *buf, size_t len, pw_pairs_t *out)
{
    pw_pair_t *pairs;
    size_t off, i;
    uint32_t n, klen, vlen;

    if (out == NULL || (buf == NULL && len > 0)) {
        return PW_EINVAL;
    }
    out->pairs = NULL;
    out->n = 0;

    /* the two forms of an empty map the spec allows besides N = 0 */
    if (len == 0 || (len == 1 && buf[0] == 0)) {
        return PW_OK;
    }
    if (len > PW_MAX_MAP_BYTES) {
        return PW_ELIMIT;
    }
    if (len < 4) {
        return PW_EMALFORMED;
    }
    n = pw__map_get_u32(buf);
    if (n > PW_MAX_MAP_PAIRS) {
        return PW_ELIMIT;
    }
    /* every pair takes 8 bytes of lengths and 2 NULs at least */
    if (n > (len - 4) / 10) {
        return PW_EMALFORMED;
    }
    if (n == 0) {
        return len == 4 ? PW_OK : PW_EMALFORMED;
    }

    pairs = malloc(n * sizeof(pairs[0]));
    if (pairs == NULL) {
        return PW_ENOMEM;
    }
    off = 4 + 8 * (size_t) n;
    for (i = 0; i < n; i++) {
        klen = pw__map_get_u32(buf + 4 + 8 * i);
        vlen = pw__map_get_u32(buf + 8 + 8 * i);
        /* off <= len all along; compare lengths against what is left */
        if (klen >= len - off || buf[off + klen] != 0) {
            goto malformed;
        }
        pairs[i].key.data = (const char *) buf + off;
        pairs[i].key.len = klen;
        off += (size_t) klen + 1;
        if (vlen >= len - off || buf[off + vlen] != 0) {
            goto malformed;
        }
        pairs[i].value.data = (const char *) buf + off;
        pairs[i].value.len = vlen;
        off += (size_t) vlen + 1;
    }
    if (off != len) {
        goto malformed;
    }
    out->pairs = pairs;
    out->n = n;
    return PW_OK;

malformed:
    free(pairs);
    return PW_EMALFORMED;
}

/* ---- the owned map ---------------------------------------------------- */

static int
pw__map_key_eq(pw_str_t a, pw_str_t b)
{
    size_t i;
    unsigned char x, y;

    if (a.len != b.len) {
        return 0;
    }
    for (i = 0; i < a.len; i++) {
        x = (unsigned char) a.data[i];
        y = (unsigned char) b.data[i];
        if (x >= 'A' && x <= 'Z') {
            x = (unsigned char) (x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = (unsigned char) (y - 'A' + 'a');
        }
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

static int
pw__map_str_ok(pw_str_t s)
{
    return s.data != NULL || s.len == 0;
}

/* A pair owning one block "key\0value\0". */
static int
pw__map_pair_new(pw_str_t key, pw_str_t value, pw_pair_t *pair)
{
    char *blk;

    /* the caller checked the sizes against the caps */
    blk = malloc(key.len + value.len + 2);
    if (blk == NULL) {
        return PW_ENOMEM;
    }
    if (key.len > 0) {
        memcpy(blk, key.data, key.len);
    }
    blk[key.len] = '\0';
    if (value.len > 0) {
        memcpy(blk + key.len + 1, value.data, value.len);
    }
    blk[key.len + 1 + value.len] = '\0';
    pair->key.data = blk;
    pair->key.len = key.len;
    pair->value.data = blk + key.len + 1;
    pair->value.len = value.len;
    return PW_OK;
}

static void
pw__map_pair_free(pw_pair_t *pair)
{
    free((char *) pair->key.data);
}

static int
pw__map_reserve(pw_map_t *m, size_t n)
{
    pw_pair_t *pairs;
    size_t cap;

    if (n <= m->cap) {
        return PW_OK;
    }
    cap = m->cap ? m->cap * 2 : 8;
    if (cap < n) {
        cap = n;
    }
    pairs = realloc(m->pairs, cap * sizeof(pairs[0]));
    if (pairs == NULL) {
        return PW_ENOMEM;
    }
    m->pairs = pairs;
    m->cap = cap;
    return PW_OK;
}

int
pw_map_new(pw_map_t **out)
{
    pw_map_t *m;

    if (out == NULL) {
        return PW_EINVAL;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return PW_ENOMEM;
    }
    m->bytes = 4;
    *out = m;
    return PW_OK;
}

void
pw_map_clear(pw_map_t *m)
{
    size_t i;

    if (m == NULL) {
        return;
    }
    for (i = 0; i < m->n; i++) {
        pw__map_pair_free(&m->pairs[i]);
    }
    m->n = 0;
    m->bytes = 4;
}

void
pw_map_free(pw_map_t *m)
{
    if (m == NULL) {
        return;
    }
    pw_map_clear(m);
    free(m->pairs);
    free(m);
}

int
pw_map_add(pw_map_t *m, pw_str_t key, pw_str_t value)
{
    pw_pair_t pair;
    int rc;

    if (m == NULL || !pw__map_str_ok(key) || !pw__map_str_ok(value)) {
        return PW_EINVAL;
    }
    if (m->n >= PW_MAX_MAP_PAIRS || !pw__map_fits(m->bytes, key.len,
                                                  value.len))
    {
        return PW_ELIMIT;
    }
    rc = pw__map_reserve(m, m->n + 1);
    if (rc != PW_OK) {
        return rc;
    }
    rc = pw__map_pair_new(key, value, &pair);
    if (rc != PW_OK) {
        return rc;
    }
    m->pairs[m->n++] = pair;
    m->bytes += PW__PAIR_BYTES(key.len, value.len);
    return PW_OK;
}

int
pw_map_replace(pw_map_t *m, pw_str_t key, pw_str_t value)
{
    size_t i, j, first, bytes;
    pw_pair_t pair;
    int rc;

    if (m == NULL || !pw__map_str_ok(key) || !pw__map_str_ok(value)) {
        return PW_EINVAL;
    }

    /* the size after the change, to check the cap before any change */
    first = m->n;
    bytes = m->bytes;
    for (i = 0; i < m->n; i++) {
        if (pw__map_key_eq(m->pairs[i].key, key)) {
            if (first == m->n) {
                first = i;
            }
            bytes -= PW__PAIR_BYTES(m->pairs[i].key.len,
                                    m->pairs[i].value.len);
        }
    }
    if (first == m->n) {
        return pw_map_add(m, key, value);
    }
    if (!pw__map_fits(bytes, key.len, value.len)) {
        return PW_ELIMIT;
    }

    /* copy first: key and value may point into the map itself */
    rc = pw__map_pair_new(key, value, &pair);
    if (rc != PW_OK) {
        return rc;
    }
    pw__map_pair_free(&m->pairs[first]);
    m->pairs[first] = pair;
    for (i = j = first + 1; i < m->n; i++) {
        if (pw__map_key_eq(m->pairs[i].key, pair.key)) {
            pw__map_pair_free(&m->pairs[i]);
        } else {
            m->pairs[j++] = m->pairs[i];
        }
    }
    m->n = j;
    m->bytes = bytes + PW__PAIR_BYTES(key.len, value.len);
    return PW_OK;
}

int
pw_map_remove(pw_map_t *m, pw_str_t key)
{
    const char *blk, *keep;
    size_t i, j;

    if (m == NULL || !pw__map_str_ok(key)) {
        return PW_EINVAL;
    }
    /* key may point into a pair being removed: free that block last */
    keep = NULL;
    for (i = j = 0; i < m->n; i++) {
        if (!pw__map_key_eq(m->pairs[i].key, key)) {
            m->pairs[j++] = m->pairs[i];
            continue;
        }
        blk = m->pairs[i].key.data;
        m->bytes -= PW__PAIR_BYTES(m->pairs[i].key.len,
                                   m->pairs[i].value.len);
        if (key.data != NULL && (uintptr_t) key.data >= (uintptr_t) blk
            && (uintptr_t) key.data
               < (uintptr_t) blk + m->pairs[i].key.len
                 + m->pairs[i].value.len + 2)
        {
            keep = blk;
        } else {
            free((char *) blk);
        }
    }
    m->n = j;
    free((char *) keep);
    return PW_OK;
}

int
pw_map_get(const pw_map_t *m, pw_str_t key, pw_str_t *value)
{
    size_t i;

    if (m == NULL || value == NULL || !pw__map_str_ok(key)) {
        return PW_EINVAL;
    }
    for (i = 0; i < m->n; i++) {
        if (pw__map_key_eq(m->pairs[i].key, key)) {
            *value = m->pairs[i].value;
            return PW_OK;
        }
    }
    return PW_ENOTFOUND;
}

int
pw_map_set_pairs(pw_map_t *m, const pw_pairs_t *p)
{
    pw_pair_t *pairs;
    size_t i, size;
    int rc;

    if (m == NULL || p == NULL) {
        return PW_EINVAL;
    }
    rc = pw_pairs_size(p, &size);
    if (rc != PW_OK) {
        return rc;
    }
    for (i = 0; i < p->n; i++) {
        if (!pw__map_str_ok(p->pairs[i].key)
            || !pw__map_str_ok(p->pairs[i].value))
        {
            return PW_EINVAL;
        }
    }

    /* build the new content aside: p may be a view of m itself */
    pairs = NULL;
    if (p->n > 0) {
        pairs = malloc(p->n * sizeof(pairs[0]));
        if (pairs == NULL) {
            return PW_ENOMEM;
        }
    }
    for (i = 0; i < p->n; i++) {
        rc = pw__map_pair_new(p->pairs[i].key, p->pairs[i].value,
                              &pairs[i]);
        if (rc != PW_OK) {
            while (i-- > 0) {
                pw__map_pair_free(&pairs[i]);
            }
            free(pairs);
            return rc;
        }
    }
    pw_map_clear(m);
    free(m->pairs);
    m->pairs = pairs;
    m->n = p->n;
    m->cap = p->n;
    m->bytes = size;
    return PW_OK;
}

void
pw_map_pairs(const pw_map_t *m, pw_pairs_t *out)
{
    if (m == NULL) {
        out->pairs = NULL;
        out->n = 0;
        return;
    }
    out->pairs = m->pairs;
    out->n = m->n;
}

size_t
pw_map_count(const pw_map_t *m)
{
    return m != NULL ? m->n : 0;
}
