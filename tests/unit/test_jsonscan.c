/*  test_jsonscan: the scanner beside jansson, which it stands in for on
 *  hot paths.  Hand-picked texts at every rule (escapes, surrogates, UTF-8,
 *  numbers, nesting, white space), then some 30,000 mutations of them (a
 *  fixed seed, so a failure repeats): whatever jsonscan accepts, jansson's
 *  json_loadb accepts as an object, every member's key and string value
 *  decode to jansson's bytes, and every compacted value reads back equal to
 *  jansson's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

static const char *const seeds[] = {
    "{}",
    " {\"a\" : 1 }\n",
    "{\"timestamp\": 1752660000.5, \"agent\": \"bench-0\", \"error_type\": \"bench_event\","
    " \"message\": \"benchmark event 7 from publisher 0\", \"severity\": \"ERROR\","
    " \"details\": {\"seq\": 7, \"list\": [1, 2.5, -3e2, true, false, null, \"x\"]}}",
    "{\"s\": \"tab\\there \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\"}",
    "{\"u\": \"\\u00e9\\u20AC\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
    "{\"\\u0061gent\": \"escaped key\", \"agent\": \"last wins\"}",
    "{\"n\": [0, -0, 0.0, 1e5, 1E-5, 123456789012345678, -123456789012345678, 1.5e308]}",
    "{\"deep\": [[[[[[[[[[[[[[[[{\"k\": [[[[[[[[[[1]]]]]]]]]]}]]]]]]]]]]]]]]]]}",
    "{\"empty\": {}, \"none\": [], \"e\": \"\"}",
    "{\"a\":{\"b\":{\"c\":[{\"d\":\"e\"},{}]}}}",
    "{\"edge\": [1.7976931348623157e308, 1e201, 1e-400, 0.00001e310, -2E+200]}",
    "{\"reals\": [0.1, 0.3, 1752660000.123456, -0.0, 123456789012345.6, 1234567890123456.7,"
    " 0.0000000000000000000001, 0.00000000000000000000001, 9007199254740993.0, 2.5e-3, 1.5]}",
    "{\"big\": 12345678901234567890}",
    "{\"huge\": 1e400}",
    "{\"over\": -1.8e308}",
    "{\"nul\": \"a\\u0000b\"}",
    "{\"lone\": \"\\udc00\"}",
    "{\"high\": \"\\ud800x\"}",
    "{\"bad\": \"\xc0\xaf\"}",
    "{\"bad\": \"\xed\xa0\x80\"}",
    "{\"bad\": \"\xf4\x90\x80\x80\"}",
    "{\"lead\": 01}",
    "{\"dot\": 1.}",
    "{\"ctl\": \"a\tb\"}",
    "{\"a\": 1,}",
    "{\"a\": tru}",
    "{\"a\": 1} x",
    "[1, 2]",
    "\"text\"",
    "",
};

/* A decoded string beside jansson's: same bytes. */
static void check_string(const jsonscan_value_t *v, json_t *expected)
{
    assert_true(json_is_string(expected));
    char *out = malloc(v->len + 1);
    size_t n = jsonscan_string(v, out);
    assert_int_equal(n, json_string_length(expected));
    assert_memory_equal(out, json_string_value(expected), n);
    free(out);
}

/* A compacted value read back by jansson: equal to jansson's own. */
static void check_value(const jsonscan_value_t *v, json_t *expected)
{
    if (v->type == JSONSCAN_STRING) {
        check_string(v, expected);
        return;
    }
    if (v->type == JSONSCAN_NUMBER) {
        double mine = jsonscan_number(v);
        assert_true(mine == json_number_value(expected));
        assert_true(!signbit(mine) == !signbit(json_number_value(expected)));
    }
    char *out = malloc(v->len + 1);
    size_t n = jsonscan_compact(v, out);
    assert_true(n <= v->len);
    for (size_t i = 0; i < n; i++)
        assert_true(out[i] != '\n' && out[i] != '\r' && out[i] != '\t');
    json_t *again = json_loadb(out, n, JSON_DECODE_ANY, NULL);
    assert_non_null(again);
    assert_true(json_equal(again, expected));
    json_decref(again);
    free(out);
}

typedef struct {
    json_t *object;             /* jansson's reading of the same text */
    size_t compared;
} compare_t;

/* Every member, in order; with duplicate keys only the last one is what
 * jansson kept, so only that one is compared. */
static void compare_member(void *ctx, const jsonscan_value_t *key, const jsonscan_value_t *value)
{
    compare_t *c = ctx;
    char *name = malloc(key->len + 1);
    jsonscan_string(key, name);
    json_t *expected = json_object_get(c->object, name);
    assert_non_null(expected);
    json_t *mine = json_loadb(value->text - (value->type == JSONSCAN_STRING),
                              value->len + 2 * (value->type == JSONSCAN_STRING),
                              JSON_DECODE_ANY, NULL);
    assert_non_null(mine);
    if (json_equal(mine, expected)) {
        check_value(value, expected);
        c->compared++;
    }
    json_decref(mine);
    free(name);
}

/* 1 when jsonscan accepted the text (and everything matched), else 0. */
static int compare(const char *text, size_t len)
{
    json_t *object = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    compare_t c = { object, 0 };
    int rc = -1;
    if (object && json_is_object(object))
        rc = jsonscan_object(text, len, compare_member, &c);
    else
        assert_int_equal(jsonscan_object(text, len, NULL, NULL), -1);
    if (rc == 0)
        assert_true(c.compared >= json_object_size(object));
    json_decref(object);
    return rc == 0;
}

static void test_seeds(void **state)
{
    (void)state;
    int accepted = 0;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        accepted += compare(seeds[i], strlen(seeds[i]));
    /* the first twelve are valid and within the scanner's bounds */
    assert_int_equal(accepted, 12);
}

static void test_refusals_and_decoding(void **state)
{
    (void)state;
    assert_int_equal(jsonscan_object("{\"a\":1}", 7, NULL, NULL), 0);
    /* past the scanner, not invalid: jansson takes these */
    char deep[2 * JSONSCAN_MAX_DEPTH + 16];
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"d\":");
    for (int i = 0; i < JSONSCAN_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSONSCAN_MAX_DEPTH; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(jsonscan_object(deep, n, NULL, NULL), -1);
    json_t *parsed = json_loadb(deep, n, 0, NULL);
    assert_non_null(parsed);
    json_decref(parsed);
    const char *nine = "{\"n\": 9223372036854775807}";
    assert_int_equal(jsonscan_object(nine, strlen(nine), NULL, NULL), -1);

    jsonscan_value_t v = { JSONSCAN_STRING, "x\\u00e9\\ud83d\\ude00\\n", 20, true };
    char out[32];
    assert_int_equal(jsonscan_string(&v, out), 1 + 2 + 4 + 1);
    assert_string_equal(out, "x\xc3\xa9\xf0\x9f\x98\x80\n");
    jsonscan_value_t o = { JSONSCAN_OBJECT, "{ \"a b\" : [ 1 , \"c\\\" d\" ] }", 27, false };
    char compact[32];
    jsonscan_compact(&o, compact);
    assert_string_equal(compact, "{\"a b\":[1,\"c\\\" d\"]}");
}

/* xorshift: the same mutations on every run */
static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void test_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]:,\"\\u0aeE.-+ 9\n\t\x01\x7f\xc3\xa9\xed\xf0\x80\xbf";
    uint32_t seed = 0x4b45454c;
    int accepted = 0, runs = 0;
    char text[512];
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        for (int m = 0; m < 1200; m++) {
            size_t len = strlen(seeds[s]);
            memcpy(text, seeds[s], len);
            int edits = 1 + (int)(next(&seed) % 2);
            for (int e = 0; e < edits; e++) {
                uint32_t r = next(&seed);
                size_t at = len ? r % len : 0;
                char c = alphabet[(r >> 16) % (sizeof alphabet - 1)];
                switch ((r >> 8) % 8) {
                case 0:                         /* replace a byte */
                case 4:
                case 5:
                case 6:
                    if (len)
                        text[at] = c;
                    break;
                case 1:                         /* insert one */
                case 2:
                case 3:
                    if (len + 1 < sizeof text) {
                        memmove(text + at + 1, text + at, len - at);
                        text[at] = c;
                        len++;
                    }
                    break;
                default:                        /* cut the text short */
                    len = at;
                }
            }
            accepted += compare(text, len);
            runs++;
        }
    }
    /* enough mutants stay valid for the comparison to mean something
     * (1,919 of the 36,000 with this seed) */
    assert_int_equal(runs, 36000);
    assert_true(accepted > 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_refusals_and_decoding),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
