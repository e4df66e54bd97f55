/*  test_wirejson: the wire's JSON reader and writer give jansson's results,
 *  exactly: the writer's text byte for byte against json_dumps with the
 *  wire's flags, the reader's value (type included: 1 is not 1.0) against
 *  json_loadb, for hand-picked edge cases and for thousands of random
 *  values and texts, well-formed and mangled. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wirejson.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

static unsigned long long seed = 88172645463325252ULL;

static unsigned long long next_random(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(next_random() % n);
}

/* Both writers on one value: the same text, or both refuse. */
static void assert_dumps_alike(const json_t *value)
{
    char *theirs = json_dumps(value, FLAGS);
    size_t len = 0;
    char *ours = wirejson_dump(value, &len);
    if (!theirs) {
        assert_null(ours);
        return;
    }
    assert_non_null(ours);
    assert_string_equal(ours, theirs);
    assert_int_equal(len, strlen(theirs));
    free(theirs);
    free(ours);
}

/* Both readers on one text: equal values of equal types, or both refuse. */
static void assert_loads_alike(const char *text, size_t len)
{
    json_error_t err;
    json_t *theirs = json_loadb(text, len, JSON_DECODE_ANY, &err);
    json_t *ours = wirejson_load(text, len);
    if (!theirs) {
        assert_null(ours);
        return;
    }
    assert_non_null(ours);
    assert_true(json_equal(ours, theirs));
    /* json_equal holds 1 and 1.0 apart, but compare the text too: it
     * shows reals and key order. */
    char *a = json_dumps(ours, FLAGS), *b = json_dumps(theirs, FLAGS);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(ours);
    json_decref(theirs);
}

static void test_writes_scalars_as_jansson(void **state)
{
    (void)state;
    const double reals[] = { 0.0, -0.0, 1.0, -5.0, 0.1, 0.85, 123.456, 1e14, 1e15, 1e16, 1e17,
                             -1e17, 1e-5, 1.5e-7, 1e300, 2.5e-300, DBL_MAX, DBL_MIN, 5e-324,
                             123456789012345.0, 999999999999999.0, 0.5, 1.0 / 3, 1e22 };
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        json_t *v = json_real(reals[i]);
        assert_dumps_alike(v);
        json_decref(v);
    }
    const long long ints[] = { 0, 1, -1, 9, 10, -10, 7100, 1LL << 53, INT64_MAX, INT64_MIN,
                               INT64_MIN + 1 };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        json_t *v = json_integer(ints[i]);
        assert_dumps_alike(v);
        json_decref(v);
    }
    assert_dumps_alike(json_true());
    assert_dumps_alike(json_false());
    assert_dumps_alike(json_null());
}

static void test_writes_strings_as_jansson(void **state)
{
    (void)state;
    const char *texts[] = { "", "plain", "quote \" and \\ backslash", "tab\there\nnewline\r\b\f",
                            "\x01\x02\x1f\x7f", "slash / stays", "caf\xc3\xa9", "\xe2\x82\xac euro",
                            "\xf0\x9f\x98\x80 emoji", "\xe2\x80\xa8 line separator" };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        json_t *v = json_string(texts[i]);
        assert_non_null(v);
        assert_dumps_alike(v);
        json_decref(v);
    }
    /* Bytes that are not UTF-8, which only the _nocheck constructors let
     * in: both writers refuse such a string.  As a key, jansson 2.14
     * ignores its own refusal and writes a broken text ({":1}); the wire
     * refuses that too rather than send what no agent can parse. */
    const char *bad[] = { "\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82", "\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *v = json_string_nocheck(bad[i]);
        assert_dumps_alike(v);
        json_t *o = json_object();
        json_object_set_new_nocheck(o, bad[i], json_integer(1));
        size_t len;
        assert_null(wirejson_dump(o, &len));
        json_decref(o);
        json_decref(v);
    }
    json_t *nul = json_stringn("a\0b", 3);
    assert_dumps_alike(nul);
    json_decref(nul);
}

static void test_writes_nested_values_in_insertion_order(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:s, s:i, s:[i, f, {}, []], s:{s:n, s:b}, s:f}", "zeta", "z", "alpha", 1,
                          "list", 2, 2.5, "obj", "k", "t", 1, "uptime", 12.345678);
    json_object_set_new(v, "alpha", json_integer(2));     /* replaced in place */
    json_object_del(v, "zeta");
    json_object_set_new(v, "zeta", json_string("last"));
    assert_dumps_alike(v);
    json_decref(v);
}

static void test_refuses_a_cycle(void **state)
{
    (void)state;
    json_t *a = json_array(), *b = json_array();
    json_array_append(a, b);
    json_array_append(b, a);
    assert_dumps_alike(a);      /* both refuse */
    size_t len;
    assert_null(wirejson_dump(a, &len));
    json_array_clear(b);
    json_decref(a);
    json_decref(b);
}

static void test_buffer_pieces(void **state)
{
    (void)state;
    wirejson_buf_t buf = { 0 };
    wirejson_buf_raw(&buf, "{", 1);
    wirejson_buf_string(&buf, "k\"", 2);
    wirejson_buf_raw(&buf, ":", 1);
    wirejson_buf_real(&buf, 2.0);
    wirejson_buf_raw(&buf, ",\"n\":", 5);
    wirejson_buf_integer(&buf, -42);
    wirejson_buf_raw(&buf, "}", 1);
    size_t len;
    char *text = wirejson_buf_finish(&buf, &len);
    assert_string_equal(text, "{\"k\\\"\":2.0,\"n\":-42}");
    assert_int_equal(len, strlen(text));
    free(text);
    wirejson_buf_string(&buf, "\xff", 1);
    wirejson_buf_raw(&buf, "x", 1);
    assert_null(wirejson_buf_finish(&buf, &len));
}

static void test_reads_as_jansson(void **state)
{
    (void)state;
    const char *texts[] = {
        "{\"action\":\"ping\"}", " { \"a\" : 1 , \"b\" : [ true , false , null ] } ", "[]", "{}",
        "\"just a string\"", "42", "-0", "0", "-", "01", "1.", ".5", "1e5", "1E+5", "1e-400",
        "1e400", "-1e400", "1.5", "123456789012345678", "1234567890123456789",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "{\"a\":1,\"a\":2}", "{\"a\":1,}", "[1,]", "[1 2]", "{\"a\" 1}",
        "{\"a\":}", "{1:2}", "tru", "true x", "nul", "null", "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
        "\"\\u0041\"", "\"\\u0000\"", "\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\x\"", "\"tab\there\"",
        "\"caf\xc3\xa9\"", "\"bad \xff\"", "\"unterminated", "{\"k\\n\":\"v\"}", "", "   ",
        "{\"a\":{\"b\":{\"c\":[1,[2,[3]]]}}}", "\xef\xbb\xbf{}", "{\"a\":1}garbage", "[1e5, 2.50, -3]",
        "{\"\\u0000\":1}", "\"\x7f\"", "NaN", "Infinity", "+1", "[\"a\",\"b\"]\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        assert_loads_alike(texts[i], strlen(texts[i]));
    assert_loads_alike("{\"a\":\"b\0c\"}", 11);     /* a NUL byte in the frame */
    char deep[300];
    memset(deep, '[', 150);
    memset(deep + 150, ']', 150);
    assert_loads_alike(deep, sizeof deep);
}

/* A random value of every type, nested a few levels. */
static json_t *random_value(int depth)
{
    static const char *const words[] = { "a", "ping", "agent_name", "caf\xc3\xa9", "q\"uote",
                                         "back\\slash", "line\nbreak", "\x01", "\xe2\x82\xac",
                                         "", "/", "\xf0\x9f\x98\x80" };
    unsigned kind = depth > 3 ? pick(6) : pick(8);
    switch (kind) {
    case 0: return json_null();
    case 1: return pick(2) ? json_true() : json_false();
    case 2: return json_integer((long long)next_random() >> pick(64));
    case 3: {
        double v;
        unsigned long long bits = next_random();
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            v = (double)(long long)(next_random() >> 20) / (1 << pick(30));
        return json_real(v);
    }
    case 4:
    case 5: return json_string(words[pick(sizeof words / sizeof *words)]);
    case 6: {
        json_t *a = json_array();
        for (unsigned i = pick(5); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = pick(6); i > 0; i--)
            json_object_set_new(o, words[pick(sizeof words / sizeof *words)], random_value(depth + 1));
        return o;
    }
    }
}

static void test_random_values_and_texts(void **state)
{
    (void)state;
    for (int round = 0; round < 4000; round++) {
        json_t *v = random_value(0);
        assert_dumps_alike(v);
        char *text = json_dumps(v, round % 2 ? FLAGS : JSON_ENCODE_ANY | JSON_INDENT(1));
        size_t len = strlen(text);
        assert_loads_alike(text, len);
        /* mangled: a byte changed, dropped or cut off */
        if (len) {
            size_t at = pick((unsigned)len);
            char saved = text[at];
            static const char swaps[] = "{}[],:\"\\ 0-.e5tfnu\x01\xff";
            text[at] = swaps[pick(sizeof swaps - 1)];
            assert_loads_alike(text, len);
            text[at] = saved;
            assert_loads_alike(text, at);
            memmove(text + at, text + at + 1, len - at);
            assert_loads_alike(text, len - 1);
        }
        free(text);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_scalars_as_jansson),
        cmocka_unit_test(test_writes_strings_as_jansson),
        cmocka_unit_test(test_writes_nested_values_in_insertion_order),
        cmocka_unit_test(test_refuses_a_cycle),
        cmocka_unit_test(test_buffer_pieces),
        cmocka_unit_test(test_reads_as_jansson),
        cmocka_unit_test(test_random_values_and_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
