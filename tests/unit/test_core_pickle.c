/*  test_core_pickle: the safe-subset pickle decoder of the coordinator's
 *  language-analysis channel (CO-60 input path, a decision of docs/architecture.md): plain
 *  data in protocols 2, 4 and 5 decodes exactly; anything that names a
 *  class or calls a function, truncated frames, and garbage are refused.
 *  The vectors were made with CPython's pickle.dumps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/pickle.h"

static const char P4[] = "\x80\x04\x95\x8d\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x04\x74\x79\x70\x65\x94\x8c\x11\x6c\x61\x6e\x67\x75\x61\x67\x65\x5f\x61\x6e\x61\x6c\x79\x73\x69\x73\x94\x8c\x01\x6e\x94\x5d\x94\x28\x4b\x01\x47\x40\x04\x00\x00\x00\x00\x00\x00\x88\x4e\x89\x65\x8c\x01\x62\x94\x43\x02\x68\x69\x94\x8c\x01\x74\x94\x4b\x01\x4b\x02\x86\x94\x8c\x03\x62\x69\x67\x94\x4a\x90\xee\xfe\xff\x8c\x03\x6e\x65\x67\x94\x4a\xff\xff\xff\xff\x8c\x01\x75\x94\x8c\x02\xc3\xb1\x94\x8c\x05\x6c\x61\x72\x67\x65\x94\x8a\x06\x00\x00\x00\x00\x00\x01\x8c\x06\x6e\x65\x73\x74\x65\x64\x94\x7d\x94\x8c\x01\x78\x94\x5d\x94\x7d\x94\x61\x73\x75\x2e";
#define P4_LEN 152
static const char P5[] = "\x80\x05\x95\x8d\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x04\x74\x79\x70\x65\x94\x8c\x11\x6c\x61\x6e\x67\x75\x61\x67\x65\x5f\x61\x6e\x61\x6c\x79\x73\x69\x73\x94\x8c\x01\x6e\x94\x5d\x94\x28\x4b\x01\x47\x40\x04\x00\x00\x00\x00\x00\x00\x88\x4e\x89\x65\x8c\x01\x62\x94\x43\x02\x68\x69\x94\x8c\x01\x74\x94\x4b\x01\x4b\x02\x86\x94\x8c\x03\x62\x69\x67\x94\x4a\x90\xee\xfe\xff\x8c\x03\x6e\x65\x67\x94\x4a\xff\xff\xff\xff\x8c\x01\x75\x94\x8c\x02\xc3\xb1\x94\x8c\x05\x6c\x61\x72\x67\x65\x94\x8a\x06\x00\x00\x00\x00\x00\x01\x8c\x06\x6e\x65\x73\x74\x65\x64\x94\x7d\x94\x8c\x01\x78\x94\x5d\x94\x7d\x94\x61\x73\x75\x2e";
#define P5_LEN 152
static const char P2[] = "\x80\x02\x7d\x71\x00\x28\x58\x04\x00\x00\x00\x74\x79\x70\x65\x71\x01\x58\x11\x00\x00\x00\x6c\x61\x6e\x67\x75\x61\x67\x65\x5f\x61\x6e\x61\x6c\x79\x73\x69\x73\x71\x02\x58\x01\x00\x00\x00\x6e\x71\x03\x5d\x71\x04\x28\x4b\x01\x47\x40\x04\x00\x00\x00\x00\x00\x00\x88\x4e\x89\x65\x58\x01\x00\x00\x00\x74\x71\x05\x4b\x01\x4b\x02\x86\x71\x06\x58\x03\x00\x00\x00\x62\x69\x67\x71\x07\x4a\x90\xee\xfe\xff\x58\x03\x00\x00\x00\x6e\x65\x67\x71\x08\x4a\xff\xff\xff\xff\x58\x01\x00\x00\x00\x75\x71\x09\x58\x02\x00\x00\x00\xc3\xb1\x71\x0a\x58\x05\x00\x00\x00\x6c\x61\x72\x67\x65\x71\x0b\x8a\x06\x00\x00\x00\x00\x00\x01\x58\x06\x00\x00\x00\x6e\x65\x73\x74\x65\x64\x71\x0c\x7d\x71\x0d\x58\x01\x00\x00\x00\x78\x71\x0e\x5d\x71\x0f\x7d\x71\x10\x61\x73\x75\x2e";
#define P2_LEN 184
static const char P2BYTES[] = "\x80\x02\x7d\x71\x00\x28\x58\x04\x00\x00\x00\x74\x79\x70\x65\x71\x01\x58\x11\x00\x00\x00\x6c\x61\x6e\x67\x75\x61\x67\x65\x5f\x61\x6e\x61\x6c\x79\x73\x69\x73\x71\x02\x58\x01\x00\x00\x00\x6e\x71\x03\x5d\x71\x04\x28\x4b\x01\x47\x40\x04\x00\x00\x00\x00\x00\x00\x88\x4e\x89\x65\x58\x01\x00\x00\x00\x62\x71\x05\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x06\x58\x02\x00\x00\x00\x68\x69\x71\x07\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x08\x86\x71\x09\x52\x71\x0a\x58\x01\x00\x00\x00\x74\x71\x0b\x4b\x01\x4b\x02\x86\x71\x0c\x58\x03\x00\x00\x00\x62\x69\x67\x71\x0d\x4a\x90\xee\xfe\xff\x58\x03\x00\x00\x00\x6e\x65\x67\x71\x0e\x4a\xff\xff\xff\xff\x58\x01\x00\x00\x00\x75\x71\x0f\x58\x02\x00\x00\x00\xc3\xb1\x71\x10\x58\x05\x00\x00\x00\x6c\x61\x72\x67\x65\x71\x11\x8a\x06\x00\x00\x00\x00\x00\x01\x58\x06\x00\x00\x00\x6e\x65\x73\x74\x65\x64\x71\x12\x7d\x71\x13\x58\x01\x00\x00\x00\x78\x71\x14\x5d\x71\x15\x7d\x71\x16\x61\x73\x75\x2e";
#define P2BYTES_LEN 238
static const char EVIL[] = "\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x05\x70\x6f\x73\x69\x78\x94\x8c\x06\x73\x79\x73\x74\x65\x6d\x94\x93\x94\x8c\x04\x74\x72\x75\x65\x94\x85\x94\x52\x94\x2e";
#define EVIL_LEN 42
static const char INTKEY[] = "\x80\x04\x95\x08\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x4b\x01\x4b\x02\x73\x2e";
#define INTKEY_LEN 19
static const char SHARED[] = "\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x5d\x94\x4b\x01\x61\x8c\x01\x62\x94\x68\x02\x75\x2e";
#define SHARED_LEN 31
static const char P0[] = "\x28\x64\x70\x30\x0a\x56\x61\x0a\x70\x31\x0a\x49\x31\x0a\x73\x2e";
#define P0_LEN 16
static const char HUGE[] = "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8a\x0d\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x2e";
#define HUGE_LEN 27

static void check_sample(json_t *v, int with_bytes)
{
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "language_analysis");
    json_t *n = json_object_get(v, "n");
    assert_int_equal(json_array_size(n), 5);
    assert_int_equal(json_integer_value(json_array_get(n, 0)), 1);
    assert_true(json_real_value(json_array_get(n, 1)) == 2.5);
    assert_true(json_is_true(json_array_get(n, 2)));
    assert_true(json_is_null(json_array_get(n, 3)));
    assert_true(json_is_false(json_array_get(n, 4)));
    if (with_bytes)
        assert_string_equal(json_string_value(json_object_get(v, "b")), "hi");
    json_t *t = json_object_get(v, "t");
    assert_int_equal(json_array_size(t), 2);
    assert_int_equal(json_integer_value(json_array_get(t, 1)), 2);
    assert_int_equal(json_integer_value(json_object_get(v, "big")), -70000);
    assert_int_equal(json_integer_value(json_object_get(v, "neg")), -1);
    assert_string_equal(json_string_value(json_object_get(v, "u")), "\xc3\xb1");
    assert_true(json_integer_value(json_object_get(v, "large")) == (json_int_t)1 << 40);
    assert_int_equal(json_array_size(json_object_get(json_object_get(v, "nested"), "x")), 1);
}

static void test_protocols_decode(void **state)
{
    (void)state;
    char err[128];
    json_t *v = pickle_decode(P4, P4_LEN, err, sizeof err);
    check_sample(v, 1);
    json_decref(v);
    v = pickle_decode(P5, P5_LEN, err, sizeof err);
    check_sample(v, 1);
    json_decref(v);
    v = pickle_decode(P2, P2_LEN, err, sizeof err);
    check_sample(v, 0);
    json_decref(v);
}

static void test_memo_shares_values(void **state)
{
    (void)state;
    char err[128];
    json_t *v = pickle_decode(SHARED, SHARED_LEN, err, sizeof err);
    assert_non_null(v);
    assert_true(json_equal(json_object_get(v, "a"), json_object_get(v, "b")));
    json_decref(v);
}

static void test_code_is_refused(void **state)
{
    (void)state;
    char err[128] = "";
    assert_null(pickle_decode(EVIL, EVIL_LEN, err, sizeof err));
    assert_non_null(strstr(err, "not plain data"));
    assert_null(pickle_decode(P2BYTES, P2BYTES_LEN, err, sizeof err));
    assert_null(pickle_decode(P0, P0_LEN, err, sizeof err));
}

static void test_bad_frames_are_refused(void **state)
{
    (void)state;
    char err[128];
    assert_null(pickle_decode(INTKEY, INTKEY_LEN, err, sizeof err));
    assert_null(pickle_decode(HUGE, HUGE_LEN, err, sizeof err));
    for (size_t cut = 0; cut < P4_LEN; cut++)
        assert_null(pickle_decode(P4, cut, err, sizeof err));
    assert_null(pickle_decode("", 0, err, sizeof err));
    assert_null(pickle_decode("\x80\x04.", 3, err, sizeof err));
    assert_null(pickle_decode("\x80\x04(K\x01u.", 7, err, sizeof err));
    assert_null(pickle_decode("\x80\x04}(K\x01s.", 8, err, sizeof err));
    assert_null(pickle_decode("\x80\x04h\x05.", 5, err, sizeof err));
    assert_null(pickle_decode("\x80\x04K\x01K\x02.", 6, err, sizeof err));
    char deep[10000];
    memset(deep, '(', sizeof deep);
    assert_null(pickle_decode(deep, sizeof deep, err, sizeof err));
}

/* Found by fuzz/fuzz_pickle: a TUPLE2 over a memoized dict and a mark
 * used to free the dict while the stack and the memo still held it. */
static void test_tuple_over_mark_is_refused(void **state)
{
    (void)state;
    char err[128];
    assert_null(pickle_decode("\x80\x02}\x94(\x86.", 7, err, sizeof err));
    assert_non_null(strstr(err, "mark"));
    assert_null(pickle_decode("\x80\x02]\x94(K\x01\x87.", 9, err, sizeof err));
}

/* Found by fuzz/fuzz_pickle: a list fetched from the memo while it was
 * still being filled made a cycle that was never freed, and one TUPLE1
 * byte per level nested deep enough to overflow the stack of whoever
 * encoded or freed the value. */
static void test_recursion_and_depth_are_bounded(void **state)
{
    (void)state;
    char err[128];
    /* l = []; l.append(l): decodes to a snapshot, not a cycle. */
    json_t *v = pickle_decode("\x80\x02]\x94h\x00" "a.", 8, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 1);
    assert_int_equal(json_array_size(json_array_get(v, 0)), 0);
    json_decref(v);
    static char deep[3 + 5000 + 1];
    memcpy(deep, "\x80\x02]", 3);
    memset(deep + 3, 0x85, 5000);
    deep[3 + 5000] = '.';
    assert_null(pickle_decode(deep, sizeof deep, err, sizeof err));
    assert_non_null(strstr(err, "deep"));
    memset(deep + 3, 0x85, 900);
    deep[3 + 900] = '.';
    v = pickle_decode(deep, 3 + 900 + 1, err, sizeof err);
    assert_non_null(v);
    json_decref(v);
}

/* A growing pickle frame, for the tests that need a long one. */
typedef struct {
    unsigned char *data;
    size_t len;
} frame_t;

static void put(frame_t *f, const void *bytes, size_t n)
{
    f->data = realloc(f->data, f->len + n);
    memcpy(f->data + f->len, bytes, n);
    f->len += n;
}

/* BINBYTES (B) or BINUNICODE (X) of n copies of `fill`. */
static void put_run(frame_t *f, char opcode, unsigned char fill, uint32_t n)
{
    unsigned char head[5] = { (unsigned char)opcode, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >> 24 };
    put(f, head, 5);
    unsigned char *run = malloc(n);
    memset(run, fill, n);
    put(f, run, n);
    free(run);
}

/* The attack: non-UTF-8 bytes became one JSON integer per byte, 20 to 26
 * times the frame in memory.  They come out as one base64 string now,
 * lossless and 4/3 of their size; UTF-8 bytes stay text. */
static void test_bytes_stay_bytes(void **state)
{
    (void)state;
    frame_t f = { 0 };
    put(&f, "\x80\x04", 2);
    put_run(&f, 'B', 0xff, 100000);
    put(&f, ".", 1);
    char err[128];
    json_t *v = pickle_decode(f.data, f.len, err, sizeof err);
    assert_non_null(v);
    assert_true(json_is_object(v));
    assert_int_equal(json_object_size(v), 1);
    json_t *b64 = json_object_get(v, "base64");
    assert_true(json_is_string(b64));
    assert_int_equal(json_string_length(b64), 4 * ((100000 + 2) / 3));
    unsigned char *back = malloc(100000);
    size_t n = 0;
    assert_int_equal(sodium_base642bin(back, 100000, json_string_value(b64), json_string_length(b64),
                                       NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    assert_int_equal(n, 100000);
    assert_true(back[0] == 0xff && back[99999] == 0xff);
    free(back);
    char *text = json_dumps(v, JSON_COMPACT);
    assert_true(strlen(text) < 100000 * 4 / 3 + 32);
    free(text);
    json_decref(v);
    free(f.data);
}

/* A container fetched from the memo a thousand times is copied, but the
 * long string inside it is shared, not copied a thousand times; and dict
 * keys, which jansson always copies, count against the copy budget. */
static void test_memo_copies_are_bounded(void **state)
{
    (void)state;
    frame_t f = { 0 };
    put(&f, "\x80\x04](]\x94", 6);         /* outer, mark, inner = memo 0 */
    put_run(&f, 'X', 'a', 100000);
    put(&f, "a", 1);                        /* inner.append(s) */
    for (int i = 0; i < 999; i++)
        put(&f, "h\x00", 2);
    put(&f, "e.", 2);
    char err[128];
    json_t *v = pickle_decode(f.data, f.len, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 1000);
    json_t *first = json_array_get(json_array_get(v, 0), 0);
    assert_int_equal(json_string_length(first), 100000);
    for (size_t i = 1; i < 1000; i++)
        assert_ptr_equal(json_array_get(json_array_get(v, i), 0), first);
    json_decref(v);
    free(f.data);

    /* {64,000-byte key: None} fetched 200 times costs 200 x 1,002 copy units. */
    f = (frame_t){ 0 };
    put(&f, "\x80\x04](}\x94", 6);
    put_run(&f, 'X', 'k', 64000);
    put(&f, "Ns", 2);
    for (int i = 0; i < 199; i++)
        put(&f, "h\x00", 2);
    put(&f, "e.", 2);
    assert_null(pickle_decode(f.data, f.len, err, sizeof err));
    assert_non_null(strstr(err, "expand too far"));
    free(f.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocols_decode),
        cmocka_unit_test(test_memo_shares_values),
        cmocka_unit_test(test_code_is_refused),
        cmocka_unit_test(test_bad_frames_are_refused),
        cmocka_unit_test(test_tuple_over_mark_is_refused),
        cmocka_unit_test(test_recursion_and_depth_are_bounded),
        cmocka_unit_test(test_bytes_stay_bytes),
        cmocka_unit_test(test_memo_copies_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
