/*  test_yamljson: scalar typing as YAML 1.1 plain scalars (what PyYAML gave
 *  the original agents), quoted scalars kept as text, the line map that
 *  configuration errors rely on, and the refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "yamljson.h"

static json_t *parse(const char *text, json_t **lines)
{
    char err[256] = "";
    json_t *root = yamljson_parse(text, strlen(text), lines, err, sizeof err);
    if (!root)
        print_error("unexpected parse error: %s\n", err);
    assert_non_null(root);
    return root;
}

static void test_scalar_types(void **state)
{
    (void)state;
    json_t *r = parse("i: 42\n"
                      "neg: -7\n"
                      "f: 2.5\n"
                      "e: 1e3\n"
                      "t: true\n"
                      "y: yes\n"
                      "on: On\n"
                      "n: no\n"
                      "off: off\n"
                      "nul: null\n"
                      "tilde: ~\n"
                      "empty:\n"
                      "s: hello world\n"
                      "qi: \"42\"\n"
                      "qs: 'true'\n"
                      "ver: 1.2.3\n"
                      "nan: nan\n",
                      NULL);
    assert_true(json_is_integer(json_object_get(r, "i")));
    assert_int_equal(json_integer_value(json_object_get(r, "i")), 42);
    assert_int_equal(json_integer_value(json_object_get(r, "neg")), -7);
    assert_true(json_is_real(json_object_get(r, "f")));
    assert_true(json_real_value(json_object_get(r, "f")) == 2.5);
    assert_true(json_real_value(json_object_get(r, "e")) == 1000.0);
    assert_true(json_is_true(json_object_get(r, "t")));
    assert_true(json_is_true(json_object_get(r, "y")));
    assert_true(json_is_true(json_object_get(r, "on")));
    assert_true(json_is_false(json_object_get(r, "n")));
    assert_true(json_is_false(json_object_get(r, "off")));
    assert_true(json_is_null(json_object_get(r, "nul")));
    assert_true(json_is_null(json_object_get(r, "tilde")));
    assert_true(json_is_null(json_object_get(r, "empty")));
    assert_string_equal(json_string_value(json_object_get(r, "s")), "hello world");
    assert_string_equal(json_string_value(json_object_get(r, "qi")), "42");
    assert_string_equal(json_string_value(json_object_get(r, "qs")), "true");
    assert_string_equal(json_string_value(json_object_get(r, "ver")), "1.2.3");
    assert_string_equal(json_string_value(json_object_get(r, "nan")), "nan");
    json_decref(r);
}

static void test_nesting_and_sequences(void **state)
{
    (void)state;
    json_t *r = parse("a:\n"
                      "  b:\n"
                      "    c: 1\n"
                      "list:\n"
                      "  - x\n"
                      "  - {k: v}\n"
                      "  - [1, 2]\n"
                      "flow: {p: 1, q: [a, b]}\n",
                      NULL);
    char *text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"a\":{\"b\":{\"c\":1}},\"flow\":{\"p\":1,\"q\":[\"a\",\"b\"]},"
                              "\"list\":[\"x\",{\"k\":\"v\"},[1,2]]}");
    free(text);
    json_decref(r);
}

static void test_line_map(void **state)
{
    (void)state;
    json_t *lines = NULL;
    json_t *r = parse("# header\n"
                      "top: 1\n"
                      "\n"
                      "sec:\n"
                      "  inner: 2\n"
                      "  list:\n"
                      "    - a\n"
                      "    - b\n",
                      &lines);
    assert_non_null(lines);
    assert_int_equal(json_integer_value(json_object_get(lines, "top")), 2);
    assert_int_equal(json_integer_value(json_object_get(lines, "sec")), 4);
    assert_int_equal(json_integer_value(json_object_get(lines, "sec.inner")), 5);
    assert_int_equal(json_integer_value(json_object_get(lines, "sec.list")), 6);
    assert_int_equal(json_integer_value(json_object_get(lines, "sec.list[0]")), 7);
    assert_int_equal(json_integer_value(json_object_get(lines, "sec.list[1]")), 8);
    json_decref(lines);
    json_decref(r);
}

static void test_empty_document_is_empty_object(void **state)
{
    (void)state;
    json_t *lines = NULL;
    json_t *r = parse("", &lines);
    assert_true(json_is_object(r));
    assert_int_equal(json_object_size(r), 0);
    json_decref(lines);
    json_decref(r);
    r = parse("# only a comment\n", NULL);
    assert_int_equal(json_object_size(r), 0);
    json_decref(r);
}

static void test_aliases_are_copies(void **state)
{
    (void)state;
    json_t *r = parse("base: &b {x: 1}\nuse: *b\n", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "use"), "x")), 1);
    json_decref(r);
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    char err[256] = "";
    json_t *lines = NULL;
    assert_null(yamljson_parse("a: 1\nb: [1,\n", 12, &lines, err, sizeof err));
    assert_null(lines);
    assert_true(strlen(err) > 2);
    assert_true(err[0] >= '1' && err[0] <= '9');        /* "LINE: reason" */
    assert_non_null(strchr(err, ':'));

    const char *bad_key = "a: 1\n[x]: 2\n";
    assert_null(yamljson_parse(bad_key, strlen(bad_key), NULL, err, sizeof err));
    assert_string_equal(err, "2: mapping keys must be plain text");

    const char *tab = "a:\n\tb: 1\n";
    assert_null(yamljson_parse(tab, strlen(tab), NULL, err, sizeof err));
}

static void test_depth_limit(void **state)
{
    (void)state;
    char text[512] = "";
    for (int i = 0; i < 70; i++)
        strcat(text, "[");
    for (int i = 0; i < 70; i++)
        strcat(text, "]");
    char err[256] = "";
    assert_null(yamljson_parse(text, strlen(text), NULL, err, sizeof err));
    assert_non_null(strstr(err, "nesting deeper than 64 levels"));
    /* 60 levels are fine. */
    text[0] = '\0';
    for (int i = 0; i < 60; i++)
        strcat(text, "[");
    for (int i = 0; i < 60; i++)
        strcat(text, "]");
    json_t *r = yamljson_parse(text, strlen(text), NULL, err, sizeof err);
    assert_true(json_is_array(r));
    json_decref(r);
}

static void test_length_is_respected(void **state)
{
    (void)state;
    const char *text = "a: 1\nb: 2\n";
    char err[64];
    json_t *r = yamljson_parse(text, 5, NULL, err, sizeof err);     /* only "a: 1\n" */
    assert_int_equal(json_object_size(r), 1);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_types),
        cmocka_unit_test(test_nesting_and_sequences),
        cmocka_unit_test(test_line_map),
        cmocka_unit_test(test_empty_document_is_empty_object),
        cmocka_unit_test(test_aliases_are_copies),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_length_is_respected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
