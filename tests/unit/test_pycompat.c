/*  test_pycompat: the answers in the Python agents' own words, each
 *  checked against what CPython 3 prints for the same value: repr() of
 *  floats (RS-20, RS-47), str() of every JSON type with repr() inside
 *  lists and dicts, truthiness (RS-33), and the BaseAgent's unknown-action
 *  reply in each service's wording. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pycompat.h"

static void test_float_repr_RS20_RS47(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(pycompat_float(1.0, buf, sizeof buf), "1.0");
    assert_string_equal(pycompat_float(0.85, buf, sizeof buf), "0.85");
    assert_string_equal(pycompat_float(2.5, buf, sizeof buf), "2.5");
    assert_string_equal(pycompat_float(100.0, buf, sizeof buf), "100.0");
    assert_string_equal(pycompat_float(0.1, buf, sizeof buf), "0.1");
    assert_string_equal(pycompat_float(0.0001, buf, sizeof buf), "0.0001");
    assert_string_equal(pycompat_float(0.00001, buf, sizeof buf), "1e-05");
    assert_string_equal(pycompat_float(1.5e-5, buf, sizeof buf), "1.5e-05");
    assert_string_equal(pycompat_float(1e16, buf, sizeof buf), "1e+16");
    assert_string_equal(pycompat_float(123456789012345.0, buf, sizeof buf), "123456789012345.0");
    assert_string_equal(pycompat_float(-3.25, buf, sizeof buf), "-3.25");
    assert_string_equal(pycompat_float(0.0, buf, sizeof buf), "0.0");
    json_t *v = json_integer(2);
    assert_string_equal(pycompat_str(v, buf, sizeof buf), "2");
    json_decref(v);
    assert_string_equal(pycompat_str(NULL, buf, sizeof buf), "None");
    assert_string_equal(pycompat_str(json_true(), buf, sizeof buf), "True");
}

static void test_truthy_RS33(void **state)
{
    (void)state;
    const char *falsy[] = { "null", "\"\"", "0", "0.0", "false", "{}", "[]" };
    for (size_t i = 0; i < sizeof falsy / sizeof falsy[0]; i++) {
        json_t *v = json_loads(falsy[i], JSON_DECODE_ANY, NULL);
        assert_false(pycompat_truthy(v));
        json_decref(v);
    }
    const char *truthy[] = { "\"x\"", "1", "0.5", "true", "{\"a\":1}", "[0]" };
    for (size_t i = 0; i < sizeof truthy / sizeof truthy[0]; i++) {
        json_t *v = json_loads(truthy[i], JSON_DECODE_ANY, NULL);
        assert_true(pycompat_truthy(v));
        json_decref(v);
    }
    assert_false(pycompat_truthy(NULL));
}

static void assert_str_of(const char *json, const char *python)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    char buf[256];
    assert_string_equal(pycompat_str(v, buf, sizeof buf), python);
    json_decref(v);
}

/* The right-hand sides are what `str(json.loads(left))` prints in CPython. */
static void test_str_of_every_type(void **state)
{
    (void)state;
    assert_str_of("null", "None");
    assert_str_of("false", "False");
    assert_str_of("-7", "-7");
    assert_str_of("1e300", "1e+300");
    assert_str_of("\"plain\"", "plain");
    assert_str_of("[1, \"a\", null, true, 2.5]", "[1, 'a', None, True, 2.5]");
    assert_str_of("{\"k\": [], \"n\": {}}", "{'k': [], 'n': {}}");
    assert_str_of("[\"it's\"]", "[\"it's\"]");
    assert_str_of("[\"both ' and \\\"\"]", "['both \\' and \"']");
    assert_str_of("[\"a\\nb\\t\\\\\"]", "['a\\nb\\t\\\\']");
    assert_str_of("[\"\\u0001\\u007f\\u00e9\\u2028\"]", "['\\x01\\x7f\u00e9\\u2028']");
}

static void test_str_is_cut_to_the_buffer(void **state)
{
    (void)state;
    json_t *v = json_loads("[\"abcdefghij\", \"klmnop\"]", 0, NULL);
    char buf[8];
    assert_string_equal(pycompat_str(v, buf, sizeof buf), "['abcde");
    json_decref(v);
}

static void assert_unknown(json_t *action, const char *key, const char *missing, const char *text)
{
    json_t *reply = pycompat_unknown_action(action, key, missing);
    assert_string_equal(json_string_value(json_object_get(reply, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(reply, key)), text);
    assert_int_equal(json_object_size(reply), 2);
    json_decref(reply);
}

static void test_unknown_action_in_each_wording(void **state)
{
    (void)state;
    json_t *name = json_string("fly");
    assert_unknown(name, "error", "None", "Unknown action: fly");
    assert_unknown(name, "message", "None", "Unknown action: fly");
    json_decref(name);
    assert_unknown(NULL, "error", "None", "Unknown action: None");
    assert_unknown(json_null(), "message", "", "Unknown action: ");
    json_t *list = json_loads("[1, \"x\"]", 0, NULL);
    assert_unknown(list, "error", "None", "Unknown action: [1, 'x']");
    json_decref(list);
    assert_unknown(json_true(), "error", "None", "Unknown action: True");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_repr_RS20_RS47),
        cmocka_unit_test(test_truthy_RS33),
        cmocka_unit_test(test_str_of_every_type),
        cmocka_unit_test(test_str_is_cut_to_the_buffer),
        cmocka_unit_test(test_unknown_action_in_each_wording),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
