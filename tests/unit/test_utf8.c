/*  test_utf8: the one UTF-8 rule (wire, jsonscan and wirejson all use it)
 *  held to jansson's, which decides what Keel must accept: every one- and
 *  two-byte text, every three-byte text whose lead byte starts a sequence,
 *  four-byte texts across the lead bytes and the edges of the continuation
 *  range, and each of them at every offset of the eight-byte ASCII scan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "utf8.h"

/* Whether jansson takes the n bytes as a string. */
static bool jansson_takes(const unsigned char *s, size_t n)
{
    json_t *j = json_stringn((const char *)s, n);
    json_decref(j);
    return j != NULL;
}

/* The text at every offset after some ASCII, and with ASCII after it. */
static void agrees_everywhere(const unsigned char *s, size_t n)
{
    bool want = jansson_takes(s, n);
    unsigned char buf[32];
    for (size_t pad = 0; pad <= 9; pad++) {
        memset(buf, 'a', sizeof buf);
        memcpy(buf + pad, s, n);
        assert_int_equal(utf8_valid(buf, pad + n), want);
        assert_int_equal(utf8_valid(buf, pad + n + 9), want);
    }
    if (n && s[0] >= 0x80)
        assert_int_equal(utf8_sequence(s, n) == n, want);
}

static void test_one_and_two_bytes(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        unsigned char one[1] = { (unsigned char)a };
        agrees_everywhere(one, 1);
        for (unsigned b = 0; b < 256; b++) {
            unsigned char two[2] = { (unsigned char)a, (unsigned char)b };
            assert_int_equal(utf8_valid(two, 2), jansson_takes(two, 2));
        }
    }
    agrees_everywhere((const unsigned char *)"\xC3\xA9", 2);    /* é */
    agrees_everywhere((const unsigned char *)"\xC0\xAF", 2);    /* overlong '/' */
}

static void test_three_bytes(void **state)
{
    (void)state;
    for (unsigned a = 0xE0; a <= 0xEF; a++)
        for (unsigned b = 0; b < 256; b++)
            for (unsigned c = 0x70; c <= 0xC0; c++) {
                unsigned char s[3] = { (unsigned char)a, (unsigned char)b, (unsigned char)c };
                assert_int_equal(utf8_valid(s, 3), jansson_takes(s, 3));
            }
    agrees_everywhere((const unsigned char *)"\xE2\x82\xAC", 3);    /* € */
    agrees_everywhere((const unsigned char *)"\xED\xA0\x80", 3);    /* a surrogate */
    agrees_everywhere((const unsigned char *)"\xE0\x80\xAF", 3);    /* overlong */
    agrees_everywhere((const unsigned char *)"\xE2\x82", 2);        /* cut short */
}

static void test_four_bytes(void **state)
{
    (void)state;
    static const unsigned char edges[] = { 0x00, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF };
    for (unsigned a = 0xF0; a <= 0xFF; a++)
        for (size_t b = 0; b < sizeof edges; b++)
            for (size_t c = 0; c < sizeof edges; c++)
                for (size_t d = 0; d < sizeof edges; d++) {
                    unsigned char s[4] = { (unsigned char)a, edges[b], edges[c], edges[d] };
                    assert_int_equal(utf8_valid(s, 4), jansson_takes(s, 4));
                }
    agrees_everywhere((const unsigned char *)"\xF0\x9F\x98\x80", 4);    /* an emoji */
    agrees_everywhere((const unsigned char *)"\xF4\x90\x80\x80", 4);    /* past U+10FFFF */
    agrees_everywhere((const unsigned char *)"\xF0\x8F\xBF\xBF", 4);    /* overlong */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_and_two_bytes),
        cmocka_unit_test(test_three_bytes),
        cmocka_unit_test(test_four_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
