/*  test_names: the one limit on names, and the refusal it makes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "metrics.h"
#include "names.h"

static void test_limit_is_inclusive(void **state)
{
    (void)state;
    char name[NAMES_MAX + 2];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_false(names_fit(name));
    name[NAMES_MAX] = '\0';
    assert_true(names_fit(name));
    assert_true(names_fit(""));
    assert_true(names_fit(NULL));
}

static void test_refusal_names_the_limit_and_counts(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    char name[300], why[160];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_true(names_refuse(m, "core", "agent_id", name, why, sizeof why));
    assert_string_equal(why, "agent_id is 299 bytes long; names are limited to 255 bytes");
    assert_true(names_refuse(m, "core", "agent_id", name, why, sizeof why));
    assert_true(metrics_value(m, "keel_bad_requests_total",
                              "service=\"core\",reason=\"name_too_long\"") == 2.0);
    strcpy(why, "untouched");
    name[NAMES_MAX] = '\0';
    assert_false(names_refuse(m, "core", "agent_id", name, why, sizeof why));
    assert_string_equal(why, "untouched");
    assert_false(names_refuse(NULL, NULL, "agent_id", "short", why, sizeof why));
    metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_is_inclusive),
        cmocka_unit_test(test_refusal_names_the_limit_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
