/*
 * proxy-wasm-c: header maps (pairs) and their Proxy-Wasm serialization.
 *
 * Serialized form (ABI.md section 4), little-endian: u32 N, then N x
 * (u32 key_len, u32 value_len), then N x (key, 0x00, value, 0x00).
 * Lengths do not count the NULs. An empty map serializes to 4 zero bytes
 * (u32 N = 0); a zero-length or one 0x00 byte input decodes as empty.
 */
#ifndef PW_MAP_H
#define PW_MAP_H

#include <pw/pw_types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    pw_str_t key;
    pw_str_t value;
} pw_pair_t;

/* A borrowed view of pairs. */
typedef struct {
    const pw_pair_t *pairs;
    size_t n;
} pw_pairs_t;

/*
 * Serialized size of pairs. PW_ELIMIT when n > PW_MAX_MAP_PAIRS or the
 * size exceeds PW_MAX_MAP_BYTES.
 */
int pw_pairs_size(const pw_pairs_t *p, size_t *size);
/* Write pairs to dst, which has pw_pairs_size() bytes. */
void pw_pairs_serialize(const pw_pairs_t *p, uint8_t *dst);
/*
 * Decode buf. out->pairs is malloc'd (free() it) and points into buf, which
 * must outlive it. PW_EMALFORMED for truncated or inconsistent input,
 * PW_ELIMIT over the caps.
 */
int pw_pairs_deserialize(const uint8_t *buf, size_t len, pw_pairs_t *out);

/*
 * An owned, ordered header map with case-insensitive keys, for hosts that
 * keep their own maps (pwrun, tests) and for callout answers.
 */
typedef struct pw_map_s pw_map_t;

int pw_map_new(pw_map_t **out);
void pw_map_free(pw_map_t *m);
void pw_map_clear(pw_map_t *m);
/* Append a pair (copies). */
int pw_map_add(pw_map_t *m, pw_str_t key, pw_str_t value);
/* Replace the first pair with key and drop the others; add if absent. */
int pw_map_replace(pw_map_t *m, pw_str_t key, pw_str_t value);
/* Remove every pair with key; PW_OK even if none. */
int pw_map_remove(pw_map_t *m, pw_str_t key);
/* First value of key (borrowed until the next change); PW_ENOTFOUND. */
int pw_map_get(const pw_map_t *m, pw_str_t key, pw_str_t *value);
/* Replace the whole content with pairs (copies). */
int pw_map_set_pairs(pw_map_t *m, const pw_pairs_t *p);
/* Borrowed view of the content, valid until the next change. */
void pw_map_pairs(const pw_map_t *m, pw_pairs_t *out);
size_t pw_map_count(const pw_map_t *m);

#ifdef __cplusplus
}
#endif

#endif /* PW_MAP_H */
