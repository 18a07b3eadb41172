/*
 * pwrun: JSON reader and writer (see json.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct {
    const char *p;
    const char *end;
    const char *line_start;
    int line;
    int max_depth;
    char *err;
    size_t errlen;
    int failed;
} pwr_parser_t;

static pwr_json_t *pwr_parse_value(pwr_parser_t *ps, int depth);

static void
pwr_fail(pwr_parser_t *ps, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->failed) {
        return;
    }
    ps->failed = 1;
    if (ps->errlen == 0) {
        return;
    }
    n = snprintf(ps->err, ps->errlen, "line %d, column %d: ", ps->line,
                 (int) (ps->p - ps->line_start) + 1);
    if (n < 0 || (size_t) n >= ps->errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - n, fmt, ap);
    va_end(ap);
}

static void
pwr_skip_ws(pwr_parser_t *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;

        if (c == '\n') {
            ps->line++;
            ps->line_start = ps->p + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        ps->p++;
    }
}

static pwr_json_t *
pwr_new_value(pwr_parser_t *ps, pwr_json_type_t t)
{
    pwr_json_t *v;

    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        pwr_fail(ps, "out of memory");
        return NULL;
    }
    v->type = t;
    v->line = ps->line;
    v->col = (int) (ps->p - ps->line_start) + 1;
    return v;
}

void
pwr_json_free(pwr_json_t *v)
{
    size_t i;

    if (v == NULL) {
        return;
    }
    for (i = 0; i < v->n; i++) {
        pwr_json_free(v->items[i]);
        if (v->keys) {
            free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    free(v->str);
    free(v);
}

/* Length of the UTF-8 sequence at p, or 0 when it is malformed. */
static size_t
pwr_utf8_seq(const uint8_t *p, size_t avail)
{
    uint32_t cp;
    size_t n, i;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (avail < n) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
        || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    {
        return 0;
    }
    return n;
}

int
pwr_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i, n;

    for (i = 0; i < len; i += n) {
        n = pwr_utf8_seq(p + i, len - i);
        if (n == 0) {
            return 0;
        }
    }
    return 1;
}

static void
pwr_buf_put_utf8(pwr_buf_t *b, uint32_t cp)
{
    char s[4];

    if (cp < 0x80) {
        s[0] = (char) cp;
        pwr_buf_add(b, s, 1);
    } else if (cp < 0x800) {
        s[0] = (char) (0xc0 | (cp >> 6));
        s[1] = (char) (0x80 | (cp & 0x3f));
        pwr_buf_add(b, s, 2);
    } else if (cp < 0x10000) {
        s[0] = (char) (0xe0 | (cp >> 12));
        s[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        s[2] = (char) (0x80 | (cp & 0x3f));
        pwr_buf_add(b, s, 3);
    } else {
        s[0] = (char) (0xf0 | (cp >> 18));
        s[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        s[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        s[3] = (char) (0x80 | (cp & 0x3f));
        pwr_buf_add(b, s, 4);
    }
}

static int
pwr_hex4(pwr_parser_t *ps, uint32_t *out)
{
    uint32_t v = 0;
    int i;

    if (ps->end - ps->p < 4) {
        pwr_fail(ps, "truncated \\u escape");
        return -1;
    }
    for (i = 0; i < 4; i++) {
        char c = ps->p[i];

        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t) (c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t) (c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t) (c - 'A' + 10);
        } else {
            pwr_fail(ps, "bad hex digit in \\u escape");
            return -1;
        }
    }
    ps->p += 4;
    *out = v;
    return 0;
}

/* Reads a string after its opening quote into a malloc'd copy. */
static char *
pwr_parse_chars(pwr_parser_t *ps, size_t *len)
{
    pwr_buf_t b = { 0 };
    uint32_t cp, lo;
    size_t n;

    for ( ;; ) {
        const char *run = ps->p;

        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\'
               && (unsigned char) *ps->p >= 0x20
               && (unsigned char) *ps->p < 0x80)
        {
            ps->p++;
        }
        pwr_buf_add(&b, run, (size_t) (ps->p - run));

        if (ps->p >= ps->end) {
            pwr_fail(ps, "unterminated string");
            goto failed;
        }
        if (*ps->p == '"') {
            ps->p++;
            break;
        }
        if ((unsigned char) *ps->p < 0x20) {
            pwr_fail(ps, "control character in string");
            goto failed;
        }
        if ((unsigned char) *ps->p >= 0x80) {
            n = pwr_utf8_seq((const uint8_t *) ps->p,
                             (size_t) (ps->end - ps->p));
            if (n == 0) {
                pwr_fail(ps, "invalid UTF-8 in string");
                goto failed;
            }
            pwr_buf_add(&b, ps->p, n);
            ps->p += n;
            continue;
        }

        /* a backslash */
        ps->p++;
        if (ps->p >= ps->end) {
            pwr_fail(ps, "unterminated string");
            goto failed;
        }
        switch (*ps->p++) {
        case '"':
            pwr_buf_addc(&b, '"');
            break;
        case '\\':
            pwr_buf_addc(&b, '\\');
            break;
        case '/':
            pwr_buf_addc(&b, '/');
            break;
        case 'b':
            pwr_buf_addc(&b, '\b');
            break;
        case 'f':
            pwr_buf_addc(&b, '\f');
            break;
        case 'n':
            pwr_buf_addc(&b, '\n');
            break;
        case 'r':
            pwr_buf_addc(&b, '\r');
            break;
        case 't':
            pwr_buf_addc(&b, '\t');
            break;
        case 'u':
            if (pwr_hex4(ps, &cp) != 0) {
                goto failed;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                pwr_fail(ps, "lone low surrogate in \\u escape");
                goto failed;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (ps->end - ps->p < 2 || ps->p[0] != '\\'
                    || ps->p[1] != 'u')
                {
                    pwr_fail(ps, "lone high surrogate in \\u escape");
                    goto failed;
                }
                ps->p += 2;
                if (pwr_hex4(ps, &lo) != 0) {
                    goto failed;
                }
                if (lo < 0xdc00 || lo > 0xdfff) {
                    pwr_fail(ps, "bad low surrogate in \\u escape");
                    goto failed;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            pwr_buf_put_utf8(&b, cp);
            break;
        default:
            ps->p--;
            pwr_fail(ps, "bad escape \\%c", *ps->p);
            goto failed;
        }
    }

    pwr_buf_addc(&b, '\0');
    if (b.oom) {
        pwr_fail(ps, "out of memory");
        goto failed;
    }
    *len = b.len - 1;
    return b.data;

failed:
    pwr_buf_free(&b);
    return NULL;
}

static pwr_json_t *
pwr_parse_string(pwr_parser_t *ps)
{
    pwr_json_t *v;

    v = pwr_new_value(ps, PWR_JSON_STRING);
    if (v == NULL) {
        return NULL;
    }
    ps->p++;
    v->str = pwr_parse_chars(ps, &v->len);
    if (v->str == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

static pwr_json_t *
pwr_parse_number(pwr_parser_t *ps)
{
    const char *start = ps->p, *q = ps->p;
    char tmp[64], *endp;
    int frac = 0;
    size_t n;
    pwr_json_t *v;

    if (q < ps->end && *q == '-') {
        q++;
    }
    if (q >= ps->end || *q < '0' || *q > '9') {
        pwr_fail(ps, "bad number");
        return NULL;
    }
    if (*q == '0') {
        q++;
        if (q < ps->end && *q >= '0' && *q <= '9') {
            pwr_fail(ps, "leading zero in number");
            return NULL;
        }
    } else {
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < ps->end && *q == '.') {
        frac = 1;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            pwr_fail(ps, "bad fraction in number");
            return NULL;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        frac = 1;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q >= ps->end || *q < '0' || *q > '9') {
            pwr_fail(ps, "bad exponent in number");
            return NULL;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }

    n = (size_t) (q - start);
    if (n >= sizeof(tmp)) {
        pwr_fail(ps, "number too long");
        return NULL;
    }
    memcpy(tmp, start, n);
    tmp[n] = '\0';

    v = pwr_new_value(ps, PWR_JSON_NUMBER);
    if (v == NULL) {
        return NULL;
    }
    v->number = strtod(tmp, &endp);
    if (!frac) {
        long long ll;

        errno = 0;
        ll = strtoll(tmp, &endp, 10);
        if (errno == 0 && *endp == '\0') {
            v->is_int = 1;
            v->integer = (int64_t) ll;
        }
    }
    ps->p = q;
    return v;
}

static int
pwr_push(pwr_json_t *v, pwr_json_t *item, char *key, size_t klen)
{
    size_t cap;
    void *p;

    /* capacity is implied: 4, then doubled each time n reaches a power */
    if (v->n == 0 || (v->n >= 4 && (v->n & (v->n - 1)) == 0)) {
        cap = v->n ? v->n * 2 : 4;
        p = realloc(v->items, cap * sizeof(*v->items));
        if (p == NULL) {
            goto oom;
        }
        v->items = p;
        if (v->type == PWR_JSON_OBJECT) {
            p = realloc(v->keys, cap * sizeof(*v->keys));
            if (p == NULL) {
                goto oom;
            }
            v->keys = p;
            p = realloc(v->key_lens, cap * sizeof(*v->key_lens));
            if (p == NULL) {
                goto oom;
            }
            v->key_lens = p;
        }
    }
    v->items[v->n] = item;
    if (v->type == PWR_JSON_OBJECT) {
        v->keys[v->n] = key;
        v->key_lens[v->n] = klen;
    }
    v->n++;
    return 0;

oom:
    return -1;
}

static pwr_json_t *
pwr_parse_container(pwr_parser_t *ps, int depth, int object)
{
    pwr_json_t *v, *item;
    char *key = NULL;
    size_t klen = 0;
    char close = object ? '}' : ']';

    if (depth >= ps->max_depth) {
        pwr_fail(ps, "nesting deeper than %d", ps->max_depth);
        return NULL;
    }
    v = pwr_new_value(ps, object ? PWR_JSON_OBJECT : PWR_JSON_ARRAY);
    if (v == NULL) {
        return NULL;
    }
    ps->p++;
    pwr_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return v;
    }

    for ( ;; ) {
        pwr_skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"') {
                pwr_fail(ps, "expected a string key");
                goto failed;
            }
            ps->p++;
            key = pwr_parse_chars(ps, &klen);
            if (key == NULL) {
                goto failed;
            }
            pwr_skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                pwr_fail(ps, "expected ':' after key");
                goto failed;
            }
            ps->p++;
            pwr_skip_ws(ps);
        }
        item = pwr_parse_value(ps, depth + 1);
        if (item == NULL) {
            goto failed;
        }
        if (pwr_push(v, item, key, klen) != 0) {
            pwr_fail(ps, "out of memory");
            pwr_json_free(item);
            goto failed;
        }
        key = NULL;
        pwr_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return v;
        }
        pwr_fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto failed;
    }

failed:
    free(key);
    pwr_json_free(v);
    return NULL;
}

static pwr_json_t *
pwr_parse_literal(pwr_parser_t *ps, const char *word, pwr_json_type_t t,
    int b)
{
    size_t n = strlen(word);
    pwr_json_t *v;

    if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        pwr_fail(ps, "unexpected character '%c'", *ps->p);
        return NULL;
    }
    v = pwr_new_value(ps, t);
    if (v == NULL) {
        return NULL;
    }
    v->boolean = b;
    ps->p += n;
    return v;
}

static pwr_json_t *
pwr_parse_value(pwr_parser_t *ps, int depth)
{
    pwr_skip_ws(ps);
    if (ps->p >= ps->end) {
        pwr_fail(ps, "unexpected end of input");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
        return pwr_parse_container(ps, depth, 1);
    case '[':
        return pwr_parse_container(ps, depth, 0);
    case '"':
        return pwr_parse_string(ps);
    case 't':
        return pwr_parse_literal(ps, "true", PWR_JSON_BOOL, 1);
    case 'f':
        return pwr_parse_literal(ps, "false", PWR_JSON_BOOL, 0);
    case 'n':
        return pwr_parse_literal(ps, "null", PWR_JSON_NULL, 0);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
            return pwr_parse_number(ps);
        }
        if ((unsigned char) *ps->p >= 0x20 && (unsigned char) *ps->p < 0x7f) {
            pwr_fail(ps, "unexpected character '%c'", *ps->p);
        } else {
            pwr_fail(ps, "unexpected byte 0x%02x",
                     (unsigned) (unsigned char) *ps->p);
        }
        return NULL;
    }
}

int
pwr_json_parse(const char *text, size_t len, int max_depth,
    pwr_json_t **out, char *err, size_t errlen)
{
    pwr_parser_t ps;
    pwr_json_t *v;

    memset(&ps, 0, sizeof(ps));
    ps.p = text;
    ps.end = text + len;
    ps.line_start = text;
    ps.line = 1;
    ps.max_depth = max_depth > 0 ? max_depth : PWR_JSON_DEFAULT_DEPTH;
    ps.err = err;
    ps.errlen = errlen;
    if (errlen) {
        err[0] = '\0';
    }

    /* a UTF-8 byte order mark is tolerated */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        ps.p += 3;
        ps.line_start = ps.p;
    }
    v = pwr_parse_value(&ps, 0);
    if (v == NULL) {
        return -1;
    }
    pwr_skip_ws(&ps);
    if (ps.p != ps.end) {
        pwr_fail(&ps, "trailing characters after the value");
        pwr_json_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

const pwr_json_t *
pwr_json_get(const pwr_json_t *v, const char *key)
{
    size_t i, klen;

    if (v == NULL || v->type != PWR_JSON_OBJECT) {
        return NULL;
    }
    klen = strlen(key);
    for (i = 0; i < v->n; i++) {
        if (v->key_lens[i] == klen && memcmp(v->keys[i], key, klen) == 0) {
            return v->items[i];
        }
    }
    return NULL;
}

const char *
pwr_json_type_name(pwr_json_type_t t)
{
    switch (t) {
    case PWR_JSON_NULL:
        return "null";
    case PWR_JSON_BOOL:
        return "a boolean";
    case PWR_JSON_NUMBER:
        return "a number";
    case PWR_JSON_STRING:
        return "a string";
    case PWR_JSON_ARRAY:
        return "an array";
    default:
        return "an object";
    }
}

/* ---- output ---------------------------------------------------------- */

void
pwr_buf_add(pwr_buf_t *b, const void *data, size_t len)
{
    size_t cap;
    char *p;

    if (b->oom || len == 0) {
        return;
    }
    if (len > b->cap - b->len || b->data == NULL) {
        cap = b->cap ? b->cap : 256;
        while (cap - b->len < len + 1) {
            if (cap > ((size_t) -1) / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        p = realloc(b->data, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void
pwr_buf_addc(pwr_buf_t *b, char c)
{
    pwr_buf_add(b, &c, 1);
}

void
pwr_buf_adds(pwr_buf_t *b, const char *s)
{
    pwr_buf_add(b, s, strlen(s));
}

void
pwr_buf_free(pwr_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
pwr_jw_init(pwr_jw_t *w, pwr_buf_t *out, int pretty)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->pretty = pretty;
    w->first[0] = 1;
}

static void
pwr_jw_newline(pwr_jw_t *w)
{
    int i;

    if (!w->pretty) {
        return;
    }
    if (w->inline_depth && w->depth >= w->inline_depth) {
        return;
    }
    pwr_buf_addc(w->out, '\n');
    for (i = 0; i < w->depth; i++) {
        pwr_buf_add(w->out, "  ", 2);
    }
}

/* Separator before a value: a comma unless first, then a new line. */
static void
pwr_jw_before(pwr_jw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0) {
        return;
    }
    if (!w->first[w->depth]) {
        pwr_buf_addc(w->out, ',');
        if (w->pretty && w->inline_depth && w->depth >= w->inline_depth) {
            pwr_buf_addc(w->out, ' ');
        }
    }
    w->first[w->depth] = 0;
    pwr_jw_newline(w);
}

static void
pwr_jw_open(pwr_jw_t *w, char open, char close)
{
    pwr_jw_before(w);
    pwr_buf_addc(w->out, open);
    if (w->depth >= PWR_JW_MAX_DEPTH) {
        w->out->oom = 1;
        return;
    }
    w->depth++;
    w->first[w->depth] = 1;
    w->close[w->depth] = close;
}

void
pwr_jw_object(pwr_jw_t *w)
{
    pwr_jw_open(w, '{', '}');
}

void
pwr_jw_array(pwr_jw_t *w)
{
    pwr_jw_open(w, '[', ']');
}

void
pwr_jw_end(pwr_jw_t *w)
{
    int empty;
    char close;

    if (w->depth == 0) {
        return;
    }
    empty = w->first[w->depth];
    close = w->close[w->depth];
    if (w->inline_depth == w->depth) {
        w->inline_depth = 0;
        empty = 1;
    }
    w->depth--;
    if (!empty) {
        pwr_jw_newline(w);
    }
    pwr_buf_addc(w->out, close);
    if (w->depth == 0 && w->pretty) {
        pwr_buf_addc(w->out, '\n');
    }
}

static void
pwr_jw_quoted(pwr_jw_t *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *) s;
    char esc[6];
    size_t i = 0, run, n;

    pwr_buf_addc(w->out, '"');
    while (i < len) {
        run = i;
        while (i < len && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"'
               && p[i] != '\\')
        {
            i++;
        }
        pwr_buf_add(w->out, s + run, i - run);
        if (i >= len) {
            break;
        }
        if (p[i] >= 0x80) {
            n = pwr_utf8_seq(p + i, len - i);
            if (n > 0) {
                pwr_buf_add(w->out, s + i, n);
                i += n;
                continue;
            }
        }
        switch (p[i]) {
        case '"':
            pwr_buf_add(w->out, "\\\"", 2);
            break;
        case '\\':
            pwr_buf_add(w->out, "\\\\", 2);
            break;
        case '\n':
            pwr_buf_add(w->out, "\\n", 2);
            break;
        case '\r':
            pwr_buf_add(w->out, "\\r", 2);
            break;
        case '\t':
            pwr_buf_add(w->out, "\\t", 2);
            break;
        case '\b':
            pwr_buf_add(w->out, "\\b", 2);
            break;
        case '\f':
            pwr_buf_add(w->out, "\\f", 2);
            break;
        default:
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[p[i] >> 4];
            esc[5] = hex[p[i] & 0xf];
            pwr_buf_add(w->out, esc, 6);
            break;
        }
        i++;
    }
    pwr_buf_addc(w->out, '"');
}

void
pwr_jw_key(pwr_jw_t *w, const char *key)
{
    pwr_jw_before(w);
    pwr_jw_quoted(w, key, strlen(key));
    pwr_buf_add(w->out, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
    w->after_key = 1;
}

void
pwr_jw_str(pwr_jw_t *w, const char *s, size_t len)
{
    pwr_jw_before(w);
    pwr_jw_quoted(w, s ? s : "", s ? len : 0);
}

void
pwr_jw_cstr(pwr_jw_t *w, const char *s)
{
    pwr_jw_str(w, s, s ? strlen(s) : 0);
}

void
pwr_jw_bytes(pwr_jw_t *w, const void *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = s;
    size_t i;
    char h[2];

    if (len == 0 || pwr_utf8_valid(p, len)) {
        pwr_jw_str(w, s, len);
        return;
    }
    pwr_jw_object(w);
    pwr_jw_key(w, "bytes_hex");
    pwr_jw_before(w);
    pwr_buf_addc(w->out, '"');
    for (i = 0; i < len; i++) {
        h[0] = hex[p[i] >> 4];
        h[1] = hex[p[i] & 0xf];
        pwr_buf_add(w->out, h, 2);
    }
    pwr_buf_addc(w->out, '"');
    pwr_jw_end(w);
}

void
pwr_jw_int(pwr_jw_t *w, int64_t v)
{
    char tmp[32];

    pwr_jw_before(w);
    snprintf(tmp, sizeof(tmp), "%lld", (long long) v);
    pwr_buf_adds(w->out, tmp);
}

void
pwr_jw_uint(pwr_jw_t *w, uint64_t v)
{
    char tmp[32];

    pwr_jw_before(w);
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long) v);
    pwr_buf_adds(w->out, tmp);
}

void
pwr_jw_double(pwr_jw_t *w, double v)
{
    char tmp[40];

    pwr_jw_before(w);
    if (!isfinite(v)) {
        pwr_buf_adds(w->out, "null");
        return;
    }
    snprintf(tmp, sizeof(tmp), "%.17g", v);
    pwr_buf_adds(w->out, tmp);
}

void
pwr_jw_bool(pwr_jw_t *w, int v)
{
    pwr_jw_before(w);
    pwr_buf_adds(w->out, v ? "true" : "false");
}

void
pwr_jw_null(pwr_jw_t *w)
{
    pwr_jw_before(w);
    pwr_buf_adds(w->out, "null");
}

static int
pwr_jw_flat(const pwr_json_t *v)
{
    size_t i;

    if (v->n == 0 || v->n > 4) {
        return 0;
    }
    for (i = 0; i < v->n; i++) {
        if (v->items[i]->type == PWR_JSON_ARRAY
            || v->items[i]->type == PWR_JSON_OBJECT
            || (v->items[i]->type == PWR_JSON_STRING && v->items[i]->bytes
                && !pwr_utf8_valid((const uint8_t *) v->items[i]->str,
                                   v->items[i]->len)))
        {
            return 0;
        }
    }
    return 1;
}

void
pwr_jw_value(pwr_jw_t *w, const pwr_json_t *v)
{
    size_t i;

    if (v == NULL) {
        pwr_jw_null(w);
        return;
    }
    switch (v->type) {
    case PWR_JSON_NULL:
        pwr_jw_null(w);
        break;
    case PWR_JSON_BOOL:
        pwr_jw_bool(w, v->boolean);
        break;
    case PWR_JSON_NUMBER:
        if (v->is_int) {
            pwr_jw_int(w, v->integer);
        } else {
            pwr_jw_double(w, v->number);
        }
        break;
    case PWR_JSON_STRING:
        if (v->bytes) {
            pwr_jw_bytes(w, v->str, v->len);
        } else {
            pwr_jw_str(w, v->str, v->len);
        }
        break;
    case PWR_JSON_ARRAY:
        pwr_jw_array(w);
        /* a short list of plain scalars (a header pair) stays on one line */
        if (w->pretty && w->inline_depth == 0 && pwr_jw_flat(v)) {
            w->inline_depth = w->depth;
        }
        for (i = 0; i < v->n; i++) {
            pwr_jw_value(w, v->items[i]);
        }
        pwr_jw_end(w);
        break;
    case PWR_JSON_OBJECT:
        pwr_jw_object(w);
        for (i = 0; i < v->n; i++) {
            pwr_jw_key(w, v->keys[i]);
            pwr_jw_value(w, v->items[i]);
        }
        pwr_jw_end(w);
        break;
    }
}

/* ---- building -------------------------------------------------------- */

static unsigned pwr_jn_failed;

static pwr_json_t *
pwr_jn_new(pwr_json_type_t t)
{
    pwr_json_t *v;

    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        pwr_jn_failed++;
        return NULL;
    }
    v->type = t;
    return v;
}

pwr_json_t *
pwr_jn_object(void)
{
    return pwr_jn_new(PWR_JSON_OBJECT);
}

pwr_json_t *
pwr_jn_array(void)
{
    return pwr_jn_new(PWR_JSON_ARRAY);
}

pwr_json_t *
pwr_jn_str(const char *s, size_t len)
{
    pwr_json_t *v;

    v = pwr_jn_new(PWR_JSON_STRING);
    if (v == NULL) {
        return NULL;
    }
    v->str = malloc(len + 1);
    if (v->str == NULL) {
        pwr_jn_failed++;
        free(v);
        return NULL;
    }
    if (len) {
        memcpy(v->str, s, len);
    }
    v->str[len] = '\0';
    v->len = len;
    return v;
}

pwr_json_t *
pwr_jn_cstr(const char *s)
{
    return pwr_jn_str(s ? s : "", s ? strlen(s) : 0);
}

pwr_json_t *
pwr_jn_bytes(const void *s, size_t len)
{
    pwr_json_t *v;

    v = pwr_jn_str(s, len);
    if (v) {
        v->bytes = 1;
    }
    return v;
}

pwr_json_t *
pwr_jn_int(int64_t i)
{
    pwr_json_t *v;

    v = pwr_jn_new(PWR_JSON_NUMBER);
    if (v) {
        v->is_int = 1;
        v->integer = i;
        v->number = (double) i;
    }
    return v;
}

pwr_json_t *
pwr_jn_double(double d)
{
    pwr_json_t *v;

    v = pwr_jn_new(PWR_JSON_NUMBER);
    if (v) {
        v->number = d;
    }
    return v;
}

pwr_json_t *
pwr_jn_bool(int b)
{
    pwr_json_t *v;

    v = pwr_jn_new(PWR_JSON_BOOL);
    if (v) {
        v->boolean = b != 0;
    }
    return v;
}

pwr_json_t *
pwr_jn_null(void)
{
    return pwr_jn_new(PWR_JSON_NULL);
}

pwr_json_t *
pwr_jn_set(pwr_json_t *obj, const char *key, pwr_json_t *val)
{
    size_t klen;
    char *k;

    if (obj == NULL || val == NULL || obj->type != PWR_JSON_OBJECT) {
        goto failed;
    }
    klen = strlen(key);
    k = malloc(klen + 1);
    if (k == NULL) {
        goto failed;
    }
    memcpy(k, key, klen + 1);
    if (pwr_push(obj, val, k, klen) != 0) {
        free(k);
        goto failed;
    }
    return val;

failed:
    pwr_jn_failed++;
    pwr_json_free(val);
    return NULL;
}

pwr_json_t *
pwr_jn_push(pwr_json_t *arr, pwr_json_t *val)
{
    if (arr == NULL || val == NULL || arr->type != PWR_JSON_ARRAY
        || pwr_push(arr, val, NULL, 0) != 0)
    {
        pwr_jn_failed++;
        pwr_json_free(val);
        return NULL;
    }
    return val;
}

unsigned
pwr_jn_failures(void)
{
    return pwr_jn_failed;
}
