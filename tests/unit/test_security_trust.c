/*  test_security_trust: AgentTrustScorer's formula against the original's
 *  reference doubles (SG-27 ... SG-31), compared bit for bit, and the clamp. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "security/trust.h"

static void test_sg27_sg28_sg29_reference_values(void **state)
{
    (void)state;
    assert_true(trust_formula(1, 1, 0.0) == 1.0);
    assert_true(trust_formula(0, 1, 0.0) == 0.3);
    assert_true(trust_formula(1, 2, 0.0) == 0.6499999999999999);
    assert_true(trust_formula(1, 2, 1.0) == 0.59);
    assert_true(trust_formula(2, 3, 2.5) == 0.6166666666666666);
    assert_true(trust_formula(1, 1, 6.0) == 0.7);
}

static void test_sg31_clamp(void **state)
{
    (void)state;
    assert_true(trust_formula(1, 1, -1.0) == 1.06);     /* the original's value */
    assert_true(trust_score(1, 1, -1.0) == 1.0);        /* Keel clamps */
    assert_true(trust_score(0, 1, 1e9) == 0.0);
    assert_true(trust_score(1, 2, 1.0) == 0.59);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sg27_sg28_sg29_reference_values),
        cmocka_unit_test(test_sg31_clamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
