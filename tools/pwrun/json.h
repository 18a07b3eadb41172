/*
 * pwrun: a small JSON reader (a DOM) and a pretty writer.
 *
 * Reader: RFC 8259 text, UTF-8 only, \uXXXX escapes with surrogate pairs
 * (a lone surrogate is an error), numbers kept as double and, when they are
 * integers that fit, as int64 too. Strings may hold NUL bytes (\u0000), so
 * every string has a length. Nesting deeper than the caller's limit is an
 * error, never a stack overflow. In objects the first of duplicate keys
 * wins for lookups.
 *
 * Writer: two-space indentation, keys in the order the caller writes them.
 * pwr_jw_bytes() writes bytes that are valid UTF-8 as a JSON string and any
 * other bytes as {"bytes_hex": "..."}; pwr_jw_str() always writes a string
 * (invalid bytes then become \u00XX: only for text known to be UTF-8).
 */
#ifndef PWR_JSON_H
#define PWR_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PWR_JSON_NULL = 0,
    PWR_JSON_BOOL,
    PWR_JSON_NUMBER,
    PWR_JSON_STRING,
    PWR_JSON_ARRAY,
    PWR_JSON_OBJECT
} pwr_json_type_t;

typedef struct pwr_json_s pwr_json_t;

struct pwr_json_s {
    pwr_json_type_t type;
    int boolean;
    double number;
    int is_int;             /* number is an integer that fits int64 */
    int64_t integer;
    char *str;              /* strings: NUL-terminated copy, len bytes */
    size_t len;
    pwr_json_t **items;     /* arrays and object values */
    char **keys;            /* objects: NUL-terminated keys */
    size_t *key_lens;
    size_t n;
    int bytes;              /* built strings: write with pwr_jw_bytes */
    int line;               /* where the value starts, for messages */
    int col;
};

#define PWR_JSON_DEFAULT_DEPTH 64

/*
 * Parse len bytes of text. On failure returns -1 and writes
 * "line L, column C: reason" to err. max_depth bounds nesting.
 */
int pwr_json_parse(const char *text, size_t len, int max_depth,
    pwr_json_t **out, char *err, size_t errlen);
void pwr_json_free(pwr_json_t *v);

/* The value of key in an object, or NULL (also when v is no object). */
const pwr_json_t *pwr_json_get(const pwr_json_t *v, const char *key);
const char *pwr_json_type_name(pwr_json_type_t t);

/* Non-zero when p[0..len) is well-formed UTF-8 (no surrogates/overlongs). */
int pwr_utf8_valid(const uint8_t *p, size_t len);

/*
 * Building values (the report). Constructors return NULL when out of
 * memory. set/push take ownership of val, return it (NULL on failure) and
 * count every failure (a NULL obj/arr or val included) in
 * pwr_jn_failures(), so a caller checks once at the end.
 */
pwr_json_t *pwr_jn_object(void);
pwr_json_t *pwr_jn_array(void);
pwr_json_t *pwr_jn_str(const char *s, size_t len);   /* text */
pwr_json_t *pwr_jn_cstr(const char *s);
pwr_json_t *pwr_jn_bytes(const void *s, size_t len); /* data, see above */
pwr_json_t *pwr_jn_int(int64_t v);
pwr_json_t *pwr_jn_double(double v);
pwr_json_t *pwr_jn_bool(int b);
pwr_json_t *pwr_jn_null(void);
pwr_json_t *pwr_jn_set(pwr_json_t *obj, const char *key, pwr_json_t *val);
pwr_json_t *pwr_jn_push(pwr_json_t *arr, pwr_json_t *val);
unsigned pwr_jn_failures(void);

/* ---- output ---------------------------------------------------------- */

/* A growable byte buffer; a failed allocation sets oom and drops output. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} pwr_buf_t;

void pwr_buf_add(pwr_buf_t *b, const void *data, size_t len);
void pwr_buf_addc(pwr_buf_t *b, char c);
void pwr_buf_adds(pwr_buf_t *b, const char *s);
void pwr_buf_free(pwr_buf_t *b);

#define PWR_JW_MAX_DEPTH 64

typedef struct {
    pwr_buf_t *out;
    int depth;
    int pretty;
    int after_key;
    int inline_depth;           /* >0: that level and deeper on one line */
    char first[PWR_JW_MAX_DEPTH + 1];
    char close[PWR_JW_MAX_DEPTH + 1];
} pwr_jw_t;

void pwr_jw_init(pwr_jw_t *w, pwr_buf_t *out, int pretty);
void pwr_jw_object(pwr_jw_t *w);
void pwr_jw_array(pwr_jw_t *w);
void pwr_jw_end(pwr_jw_t *w);
void pwr_jw_key(pwr_jw_t *w, const char *key);
void pwr_jw_str(pwr_jw_t *w, const char *s, size_t len);
void pwr_jw_cstr(pwr_jw_t *w, const char *s);
void pwr_jw_bytes(pwr_jw_t *w, const void *s, size_t len);
void pwr_jw_int(pwr_jw_t *w, int64_t v);
void pwr_jw_uint(pwr_jw_t *w, uint64_t v);
void pwr_jw_double(pwr_jw_t *w, double v);
void pwr_jw_bool(pwr_jw_t *w, int v);
void pwr_jw_null(pwr_jw_t *w);
/* Write a whole value (strings built with pwr_jn_bytes as bytes). */
void pwr_jw_value(pwr_jw_t *w, const pwr_json_t *v);

#endif /* PWR_JSON_H */
