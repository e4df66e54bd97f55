/*  test_httpparse: the request side of HTTP as httpd reads it: where a
 *  head ends however it arrives, the request line and its decoding (the
 *  path's "%XX", the query's '+'), the headers the server acts on, every
 *  ambiguity refused (two lengths, a second Host, a lone CR, a NUL), and
 *  chunked bodies split anywhere. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

/* Parses `text` as one whole head into `head`, from a copy kept in `buf`. */
static int parse(const char *text, char *buf, size_t cap, http_head_t *head)
{
    size_t n = strlen(text);
    assert_true(n < cap);
    memcpy(buf, text, n);
    return http_head_parse(buf, n, head);
}

static void test_head_length(void **state)
{
    (void)state;
    size_t scanned = 0;
    const char *text = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
    assert_int_equal(http_head_length(text, strlen(text), &scanned), 27);
    scanned = 0;
    assert_int_equal(http_head_length("GET / HTTP/1.0\n\nrest", 20, &scanned), 16);
    scanned = 0;
    assert_int_equal(http_head_length("\r\n\r\nGET / HTTP/1.0\r\n\r\n", 22, &scanned), 22);
    scanned = 0;
    assert_int_equal(http_head_length("GET / HTTP/1.1\r\nHost: a\r\n", 25, &scanned), 0);
    /* A byte at a time, resuming where the last call got to: the same end. */
    for (size_t split = 0; split < 8; split++) {
        scanned = 0;
        size_t found = 0;
        for (size_t len = 1; len <= strlen(text) && !found; len += 1 + split)
            found = http_head_length(text, len, &scanned);
        if (!found)
            found = http_head_length(text, strlen(text), &scanned);
        assert_int_equal(found, 27);
    }
}

static void test_request_line_and_query(void **state)
{
    (void)state;
    char buf[512];
    http_head_t h;
    assert_int_equal(parse("GET /items/a+b%20c%2F?q=x+y%26z&flag&Empty=&q=second HTTP/1.1\r\n\r\n",
                           buf, sizeof buf, &h), 0);
    assert_string_equal(h.method, "GET");
    assert_string_equal(h.path, "/items/a+b c/");      /* '+' is a plus in a path */
    assert_string_equal(http_head_arg(&h, "q"), "x y&z");
    assert_string_equal(http_head_arg(&h, "Q"), "x y&z");  /* names regardless of case */
    assert_null(http_head_arg(&h, "flag"));
    assert_string_equal(http_head_arg(&h, "empty"), "");
    assert_null(http_head_arg(&h, "missing"));
    assert_int_equal(h.minor, 1);
    assert_false(h.close);
    http_head_clear(&h);

    assert_int_equal(parse("GET /100%25%zz HTTP/1.0\r\n\r\n", buf, sizeof buf, &h), 0);
    assert_string_equal(h.path, "/100%%zz");            /* a broken escape stays */
    assert_true(h.close);
    http_head_clear(&h);

    const char *bad[] = {
        "GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n", "GET / HTTX/1.1\r\n\r\n", "GET / HTTP/1.12\r\n\r\n",
        "GET /a%00b HTTP/1.1\r\n\r\n", "GET /a\x7f HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], buf, sizeof buf, &h), 400);
        http_head_clear(&h);
    }
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", buf, sizeof buf, &h), 505);
    http_head_clear(&h);
    assert_int_equal(parse("GET / HTTP/1.7\r\n\r\n", buf, sizeof buf, &h), 0);
    assert_int_equal(h.minor, 1);
    http_head_clear(&h);
}

static void test_headers(void **state)
{
    (void)state;
    char buf[512];
    http_head_t h;
    assert_int_equal(parse("POST /x HTTP/1.1\r\nhOsT:  dash.lan:8002 \r\nAuthorization: Bearer a\r\n"
                           "Authorization: Bearer b\r\nContent-Length: 12\r\ncontent-length: 12\r\n"
                           "Connection: Upgrade, CLOSE\r\nExpect: 100-Continue\r\nX-Folded: one\r\n"
                           "\t two\r\n\r\n", buf, sizeof buf, &h), 0);
    assert_string_equal(h.host, "dash.lan:8002");
    assert_string_equal(h.authorization, "Bearer a");
    assert_true(h.has_length);
    assert_int_equal(h.length, 12);
    assert_true(h.close);
    assert_true(h.expect_continue);
    http_head_clear(&h);

    /* HTTP/1.0 keeps the connection only when asked to; it has no 100-continue. */
    assert_int_equal(parse("GET / HTTP/1.0\nConnection: keep-alive\nExpect: 100-continue\n\n",
                           buf, sizeof buf, &h), 0);
    assert_false(h.close);
    assert_false(h.expect_continue);
    assert_null(h.host);
    http_head_clear(&h);

    /* Chunked framing replaces a length, and the connection ends after it. */
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: Chunked\r\n\r\n",
                           buf, sizeof buf, &h), 0);
    assert_true(h.chunked);
    assert_false(h.has_length);
    assert_true(h.close);
    http_head_clear(&h);

    const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",       /* length unknowable */
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
        "GET / HTTP/1.1\r\nName : value\r\n\r\n",
        "GET / HTTP/1.1\r\n: value\r\n\r\n",
        "GET / HTTP/1.1\r\n folded onto the request line\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], buf, sizeof buf, &h), 400);
        http_head_clear(&h);
    }
    assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", buf, sizeof buf, &h),
                     501);
    http_head_clear(&h);
    /* A NUL anywhere. */
    memcpy(buf, "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27);
    assert_int_equal(http_head_parse(buf, 26, &h), 400);
    http_head_clear(&h);
}

/* Decodes `body` handed over in pieces of `step` bytes; returns the data,
 * or NULL when refused. */
static char *dechunk(const char *body, size_t step, size_t *taken_out)
{
    http_chunks_t c = { 0 };
    static char out[256];
    size_t len = strlen(body), taken = 0, n_out = 0;
    while (taken < len && !http_chunks_done(&c)) {
        size_t avail = len - taken < step ? len - taken : step;
        const char *data;
        size_t n;
        long k = http_chunks_read(&c, body + taken, avail, &data, &n);
        if (k < 0)
            return NULL;
        assert_true(k > 0);
        if (n)
            memcpy(out + n_out, data, n);
        n_out += n;
        taken += (size_t)k;
    }
    out[n_out] = '\0';
    *taken_out = taken;
    return http_chunks_done(&c) ? out : NULL;
}

static void test_chunked_bodies(void **state)
{
    (void)state;
    const char *body = "5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA \r\n0123456789\r\n0\r\nTrailer: t\r\n\r\nNEXT";
    for (size_t step = 1; step < 12; step++) {
        size_t taken;
        char *out = dechunk(body, step, &taken);
        assert_non_null(out);
        assert_string_equal(out, "hello 0123456789");
        assert_int_equal(taken, strlen(body) - 4);      /* the next request is not the body's */
    }
    size_t taken;
    assert_non_null(dechunk("0\n\n", 1, &taken));       /* bare line feeds */
    const char *bad[] = { "x\r\n", "\r\n", "5\r\nhelloX\r\n", "5\rX", "1000000000000000\r\n",
                          "0\r\n\rX" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(dechunk(bad[i], 3, &taken));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_length),
        cmocka_unit_test(test_request_line_and_query),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_chunked_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
