/*
 * Unit tests of pwrun's JSON reader and writer (tools/pwrun/json.c).
 */
#include "../pwtest.h"
#include "../../tools/pwrun/json.h"

static pwr_json_t *
parse_ok(const char *text)
{
    pwr_json_t *v = NULL;
    char err[128];

    if (pwr_json_parse(text, strlen(text), 0, &v, err, sizeof(err)) != 0) {
        fprintf(stderr, "  parse of %s failed: %s\n", text, err);
        exit(1);
    }
    return v;
}

/* Parse must fail, and the message must contain want. */
static void
parse_fails(const char *text, size_t len, const char *want)
{
    pwr_json_t *v = NULL;
    char err[128];

    if (pwr_json_parse(text, len, 8, &v, err, sizeof(err)) == 0) {
        fprintf(stderr, "  parse of %s succeeded\n", text);
        exit(1);
    }
    PW_CHECK(v == NULL);
    if (strstr(err, want) == NULL) {
        fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, want);
        exit(1);
    }
}

static char *
write_pretty(const pwr_json_t *v, int pretty)
{
    pwr_buf_t b = { 0 };
    pwr_jw_t w;

    pwr_jw_init(&w, &b, pretty);
    pwr_jw_value(&w, v);
    pwr_buf_addc(&b, '\0');
    PW_CHECK(!b.oom);
    return b.data;
}

PW_TEST(scalars)
{
    pwr_json_t *v;

    v = parse_ok(" true ");
    PW_CHECK(v->type == PWR_JSON_BOOL && v->boolean == 1);
    pwr_json_free(v);
    v = parse_ok("false");
    PW_CHECK(v->type == PWR_JSON_BOOL && v->boolean == 0);
    pwr_json_free(v);
    v = parse_ok("null");
    PW_CHECK(v->type == PWR_JSON_NULL);
    pwr_json_free(v);
    v = parse_ok("\"hi\"");
    PW_CHECK(v->type == PWR_JSON_STRING);
    PW_CHECK_MEM(v->str, v->len, "hi");
    pwr_json_free(v);
}

PW_TEST(numbers)
{
    pwr_json_t *v;

    v = parse_ok("-42");
    PW_CHECK(v->is_int);
    PW_CHECK_EQ_INT(v->integer, -42);
    pwr_json_free(v);

    v = parse_ok("9223372036854775807");
    PW_CHECK(v->is_int);
    PW_CHECK(v->integer == INT64_MAX);
    pwr_json_free(v);

    v = parse_ok("9223372036854775808");
    PW_CHECK(!v->is_int);
    PW_CHECK(v->number > 9.2e18);
    pwr_json_free(v);

    v = parse_ok("1.5e2");
    PW_CHECK(!v->is_int);
    PW_CHECK(v->number == 150.0);
    pwr_json_free(v);

    v = parse_ok("0");
    PW_CHECK(v->is_int && v->integer == 0);
    pwr_json_free(v);

    parse_fails("01", 2, "leading zero");
    parse_fails("1.", 2, "fraction");
    parse_fails("1e", 2, "exponent");
    parse_fails("-", 1, "bad number");
    parse_fails("+1", 2, "unexpected character '+'");
}

PW_TEST(escapes)
{
    pwr_json_t *v;

    v = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    PW_CHECK_MEM(v->str, v->len, "a\"b\\c/d\b\f\n\r\t");
    pwr_json_free(v);

    /* two-byte, three-byte and a surrogate pair (U+1F600) */
    v = parse_ok("\"\\u00e9\\u20AC\\ud83d\\ude00\"");
    PW_CHECK_MEM(v->str, v->len, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    pwr_json_free(v);

    /* NUL inside a string keeps the length */
    v = parse_ok("\"a\\u0000b\"");
    PW_CHECK_EQ_INT(v->len, 3);
    PW_CHECK(v->str[1] == '\0' && v->str[2] == 'b');
    pwr_json_free(v);

    /* raw UTF-8 passes through */
    v = parse_ok("\"caf\xc3\xa9\"");
    PW_CHECK_MEM(v->str, v->len, "caf\xc3\xa9");
    pwr_json_free(v);

    parse_fails("\"\\ud83d\"", 8, "lone high surrogate");
    parse_fails("\"\\ude00\"", 8, "lone low surrogate");
    parse_fails("\"\\ud83d\\u0041\"", 14, "bad low surrogate");
    parse_fails("\"\\u12g4\"", 8, "bad hex digit");
    parse_fails("\"\\u12\"", 6, "\\u escape");
    parse_fails("\"\\x\"", 4, "bad escape \\x");
    parse_fails("\"a\nb\"", 5, "control character");
    parse_fails("\"abc", 4, "unterminated string");
    parse_fails("\"\xff\"", 3, "invalid UTF-8");
    parse_fails("\"\xc0\xaf\"", 4, "invalid UTF-8");        /* overlong */
    parse_fails("\"\xed\xa0\x80\"", 5, "invalid UTF-8");    /* surrogate */
}

PW_TEST(containers)
{
    pwr_json_t *v;
    const pwr_json_t *a, *x;
    int i;

    v = parse_ok("{\"a\": [1, 2, {\"b\": null}], \"c\": {}, \"d\": [],"
                 " \"a\": 5}");
    PW_CHECK(v->type == PWR_JSON_OBJECT);
    PW_CHECK_EQ_INT(v->n, 4);
    a = pwr_json_get(v, "a");
    PW_CHECK(a != NULL && a->type == PWR_JSON_ARRAY && a->n == 3);
    PW_CHECK_EQ_INT(a->items[1]->integer, 2);
    x = pwr_json_get(a->items[2], "b");
    PW_CHECK(x != NULL && x->type == PWR_JSON_NULL);
    PW_CHECK(pwr_json_get(v, "c")->n == 0);
    PW_CHECK(pwr_json_get(v, "d")->type == PWR_JSON_ARRAY);
    PW_CHECK(pwr_json_get(v, "zz") == NULL);
    PW_CHECK(pwr_json_get(a, "a") == NULL);
    pwr_json_free(v);

    /* many items: exercises growth */
    {
        char text[8192];
        size_t n = 0;

        text[n++] = '[';
        for (i = 0; i < 1000; i++) {
            n += (size_t) sprintf(text + n, "%s%d", i ? "," : "", i);
        }
        text[n++] = ']';
        text[n] = '\0';
        v = parse_ok(text);
        PW_CHECK_EQ_INT(v->n, 1000);
        PW_CHECK_EQ_INT(v->items[999]->integer, 999);
        pwr_json_free(v);
    }

    parse_fails("[1, 2,]", 7, "unexpected character ']'");
    parse_fails("{\"a\" 1}", 7, "expected ':'");
    parse_fails("{1: 2}", 6, "expected a string key");
    parse_fails("[1 2]", 5, "expected ',' or ']'");
    parse_fails("{\"a\": 1", 7, "expected ',' or '}'");
    parse_fails("[1] x", 5, "trailing characters");
    parse_fails("", 0, "unexpected end of input");
    parse_fails("   ", 3, "unexpected end of input");
    parse_fails("tru", 3, "unexpected character 't'");
    parse_fails("\x01", 1, "unexpected byte 0x01");
}

PW_TEST(depth_limit)
{
    char deep[64];
    pwr_json_t *v = NULL;
    char err[128];

    memset(deep, '[', sizeof(deep));
    /* limit 8: eight levels parse, nine do not */
    PW_CHECK(pwr_json_parse("[[[[[[[[]]]]]]]]", 16, 8, &v, err,
                            sizeof(err)) == 0);
    pwr_json_free(v);
    parse_fails("[[[[[[[[[]]]]]]]]]", 18, "nesting deeper than 8");
    /* a very deep unbalanced input fails cleanly, no recursion blowup */
    parse_fails(deep, sizeof(deep), "nesting deeper than 8");
}

PW_TEST(error_position)
{
    pwr_json_t *v = NULL;
    char err[128];
    const char *text = "{\n  \"a\": 1,\n  \"b\": x\n}";

    PW_CHECK(pwr_json_parse(text, strlen(text), 0, &v, err,
                            sizeof(err)) != 0);
    PW_CHECK(strstr(err, "line 3, column 8") != NULL);

    /* value positions are recorded for scenario messages */
    v = parse_ok("{\n  \"a\": [true]\n}");
    PW_CHECK_EQ_INT(pwr_json_get(v, "a")->line, 2);
    PW_CHECK_EQ_INT(pwr_json_get(v, "a")->col, 8);
    pwr_json_free(v);
}

PW_TEST(writer_pretty_exact)
{
    pwr_json_t *v;
    char *s;

    v = parse_ok("{\"a\":[1,true,null,\"x\"],\"b\":{},\"c\":[],"
                 "\"d\":{\"e\":-2.5},\"f\":[1,2,3,4,5],\"g\":[[\"k\",\"v\"]]}");
    s = write_pretty(v, 1);
    /* up to four scalars stay on one line (header pairs), else one per
     * line */
    PW_CHECK_EQ_STR(s, "{\n"
                       "  \"a\": [1, true, null, \"x\"],\n"
                       "  \"b\": {},\n"
                       "  \"c\": [],\n"
                       "  \"d\": {\n"
                       "    \"e\": -2.5\n"
                       "  },\n"
                       "  \"f\": [\n"
                       "    1,\n"
                       "    2,\n"
                       "    3,\n"
                       "    4,\n"
                       "    5\n"
                       "  ],\n"
                       "  \"g\": [\n"
                       "    [\"k\", \"v\"]\n"
                       "  ]\n"
                       "}\n");
    free(s);
    s = write_pretty(v, 0);
    PW_CHECK_EQ_STR(s, "{\"a\":[1,true,null,\"x\"],\"b\":{},\"c\":[],"
                       "\"d\":{\"e\":-2.5},\"f\":[1,2,3,4,5],"
                       "\"g\":[[\"k\",\"v\"]]}");
    free(s);
    pwr_json_free(v);
}

PW_TEST(writer_escapes)
{
    pwr_buf_t b = { 0 };
    pwr_jw_t w;

    pwr_jw_init(&w, &b, 0);
    pwr_jw_array(&w);
    pwr_jw_str(&w, "q\"b\\n\n\t\x01\x7f" "caf\xc3\xa9", 14);
    pwr_jw_str(&w, "a\0b", 3);
    pwr_jw_str(&w, "bad\xff", 4);       /* forced string: \u00ff */
    pwr_jw_bytes(&w, "ok \xe2\x82\xac", 6);
    pwr_jw_bytes(&w, "\x00\xff\x10", 3);   /* 0xff: hex */
    pwr_jw_bytes(&w, "\xc3", 1);          /* truncated sequence: hex */
    pwr_jw_bytes(&w, "", 0);
    pwr_jw_end(&w);
    pwr_buf_addc(&b, '\0');
    PW_CHECK(!b.oom);
    PW_CHECK_EQ_STR(b.data,
        "[\"q\\\"b\\\\n\\n\\t\\u0001\x7f" "caf\xc3\xa9\","
        "\"a\\u0000b\","
        "\"bad\\u00ff\","
        "\"ok \xe2\x82\xac\","
        "{\"bytes_hex\":\"00ff10\"},"
        "{\"bytes_hex\":\"c3\"},"
        "\"\"]");
    pwr_buf_free(&b);
}

PW_TEST(writer_numbers)
{
    pwr_buf_t b = { 0 };
    pwr_jw_t w;

    pwr_jw_init(&w, &b, 0);
    pwr_jw_array(&w);
    pwr_jw_int(&w, INT64_MIN);
    pwr_jw_uint(&w, UINT64_MAX);
    pwr_jw_double(&w, 0.1);
    pwr_jw_double(&w, 1.0 / 0.0);
    pwr_jw_end(&w);
    pwr_buf_addc(&b, '\0');
    PW_CHECK_EQ_STR(b.data, "[-9223372036854775808,18446744073709551615,"
                            "0.10000000000000001,null]");
    pwr_buf_free(&b);
}

PW_TEST(roundtrip)
{
    const char *text = "{\"k\\u0000ey\":[\"\\u00e9\\n\",-1,2.25,false,"
                       "{\"x\":[[[]]]}],\"e\":\"\"}";
    pwr_json_t *v, *v2;
    char *s1, *s2;

    v = parse_ok(text);
    s1 = write_pretty(v, 1);
    v2 = parse_ok(s1);
    s2 = write_pretty(v2, 1);
    PW_CHECK_EQ_STR(s1, s2);
    PW_CHECK_MEM(pwr_json_get(v2, "e")->str, pwr_json_get(v2, "e")->len, "");
    free(s1);
    free(s2);
    pwr_json_free(v);
    pwr_json_free(v2);
}

PW_TEST(utf8_validator)
{
    PW_CHECK(pwr_utf8_valid((const uint8_t *) "", 0));
    PW_CHECK(pwr_utf8_valid((const uint8_t *) "\xf4\x8f\xbf\xbf", 4));
    PW_CHECK(!pwr_utf8_valid((const uint8_t *) "\xf4\x90\x80\x80", 4));
    PW_CHECK(!pwr_utf8_valid((const uint8_t *) "\xe0\x80\x80", 3));
    PW_CHECK(!pwr_utf8_valid((const uint8_t *) "\xf0\x9f\x98", 3));
    PW_CHECK(!pwr_utf8_valid((const uint8_t *) "\x80", 1));
}

PW_TEST(builder)
{
    pwr_json_t *root, *arr, *o;
    pwr_buf_t b = { 0 };
    pwr_jw_t w;

    root = pwr_jn_object();
    PW_CHECK(pwr_jn_set(root, "name", pwr_jn_cstr("x")) != NULL);
    arr = pwr_jn_set(root, "list", pwr_jn_array());
    PW_CHECK(arr != NULL);
    pwr_jn_push(arr, pwr_jn_int(-7));
    pwr_jn_push(arr, pwr_jn_bool(1));
    pwr_jn_push(arr, pwr_jn_null());
    pwr_jn_push(arr, pwr_jn_bytes("\x01\xfe", 2));
    pwr_jn_push(arr, pwr_jn_bytes("t\xc3\xa9", 3));
    pwr_jn_push(arr, pwr_jn_double(0.5));
    o = pwr_jn_set(root, "o", pwr_jn_object());
    pwr_jn_set(o, "k", pwr_jn_str("a\0b", 3));
    PW_CHECK_EQ_INT(pwr_jn_failures(), 0);

    /* misuse is counted, never a crash */
    PW_CHECK(pwr_jn_push(NULL, pwr_jn_int(1)) == NULL);
    PW_CHECK(pwr_jn_set(arr, "k", pwr_jn_int(1)) == NULL);
    PW_CHECK(pwr_jn_push(arr, NULL) == NULL);
    PW_CHECK_EQ_INT(pwr_jn_failures(), 3);

    pwr_jw_init(&w, &b, 0);
    pwr_jw_value(&w, root);
    pwr_buf_addc(&b, '\0');
    PW_CHECK_EQ_STR(b.data, "{\"name\":\"x\",\"list\":[-7,true,null,"
                            "{\"bytes_hex\":\"01fe\"},\"t\xc3\xa9\",0.5],"
                            "\"o\":{\"k\":\"a\\u0000b\"}}");
    pwr_buf_free(&b);
    pwr_json_free(root);
}

/* Mutations of a valid document: every one parses or fails cleanly. */
PW_TEST(mutations_never_crash)
{
    const char *seed = "{\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\",true,"
                       "null,{\"b\":[]}],\"c\":\"\\\"\"}";
    static const char alphabet[] = "{}[]\",:\\u0123456789eE.-+tfnl \x80\xff";
    char buf[256];
    size_t len = strlen(seed), i;
    uint32_t rnd = 12345;
    int round, ok = 0, bad = 0;
    pwr_json_t *v;
    char err[128];

    for (round = 0; round < 20000; round++) {
        memcpy(buf, seed, len);
        for (i = 0; i < 3; i++) {
            rnd = rnd * 1103515245 + 12345;
            buf[(rnd >> 8) % len] = alphabet[(rnd >> 20)
                                             % (sizeof(alphabet) - 1)];
        }
        rnd = rnd * 1103515245 + 12345;
        v = NULL;
        if (pwr_json_parse(buf, len - (rnd >> 16) % 4, 16, &v, err,
                           sizeof(err)) == 0)
        {
            PW_CHECK(v != NULL);
            free(write_pretty(v, 1));
            pwr_json_free(v);
            ok++;
        } else {
            PW_CHECK(v == NULL);
            PW_CHECK(strncmp(err, "line ", 5) == 0);
            bad++;
        }
    }
    PW_CHECK(ok > 0 && bad > 0);
}

int
main(int argc, char **argv)
{
    return pw_test_main(argc, argv, (pw_test_t[]) {
        PW_TEST_ENTRY(scalars),
        PW_TEST_ENTRY(numbers),
        PW_TEST_ENTRY(escapes),
        PW_TEST_ENTRY(containers),
        PW_TEST_ENTRY(depth_limit),
        PW_TEST_ENTRY(error_position),
        PW_TEST_ENTRY(writer_pretty_exact),
        PW_TEST_ENTRY(writer_escapes),
        PW_TEST_ENTRY(writer_numbers),
        PW_TEST_ENTRY(roundtrip),
        PW_TEST_ENTRY(utf8_validator),
        PW_TEST_ENTRY(builder),
        PW_TEST_ENTRY(mutations_never_crash),
        { 0 } });
}
