/*  test_privilege: the three route privileges checked for callers of every
 *  kind: trusted sources as CIDRs (IPv4, IPv6, an IPv4 peer seen through
 *  an IPv6 socket), CURVE clients, administrators' tokens, the verdicts
 *  that become 401 and 403, and a bad `trusted_sources` refused without
 *  losing the list in force. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "privilege.h"

static bool is_admin(void *ctx, const char *token)
{
    (void)ctx;
    return strcmp(token, "root") == 0;
}

static privilege_verdict_t check(privilege_t *p, route_privilege_t need, const char *peer, bool curve,
                                 const char *token)
{
    privilege_caller_t caller = { peer, curve, token };
    return privilege_check(p, need, &caller);
}

static int configure(privilege_t *p, const char *yaml, char *err, size_t errlen)
{
    config_t *config = config_new();
    int rc = config_load_text(config, yaml, "test", err, errlen);
    if (rc == 0)
        rc = privilege_configure(p, config, err, errlen);
    config_destroy(&config);
    return rc;
}

static void test_public_needs_nothing(void **state)
{
    (void)state;
    assert_int_equal(check(NULL, ROUTE_PUBLIC, NULL, false, NULL), PRIVILEGE_GRANTED);
    privilege_t *p = privilege_new();
    assert_int_equal(check(p, ROUTE_PUBLIC, "203.0.113.9", false, NULL), PRIVILEGE_GRANTED);
    privilege_destroy(&p);
    assert_null(p);
}

static void test_agent_by_default_loopback_only(void **state)
{
    (void)state;
    privilege_t *p = privilege_new();
    assert_int_equal(check(p, ROUTE_AGENT, "127.0.0.1", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "127.9.8.7", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "::1", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "::ffff:127.0.0.1", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "192.168.100.17", false, NULL), PRIVILEGE_NO_TOKEN);
    assert_int_equal(check(p, ROUTE_AGENT, NULL, false, NULL), PRIVILEGE_NO_TOKEN);
    assert_int_equal(check(p, ROUTE_AGENT, "not an address", false, NULL), PRIVILEGE_NO_TOKEN);
    /* A CURVE client the ZAP handler admitted, from anywhere. */
    assert_int_equal(check(p, ROUTE_AGENT, "192.168.100.17", true, NULL), PRIVILEGE_GRANTED);
    /* No admin check configured: a token opens nothing. */
    assert_int_equal(check(p, ROUTE_AGENT, "192.168.100.17", false, "root"), PRIVILEGE_BAD_TOKEN);
    privilege_set_admin_check(p, is_admin, NULL);
    assert_int_equal(check(p, ROUTE_AGENT, "192.168.100.17", false, "root"), PRIVILEGE_GRANTED);
    privilege_destroy(&p);
}

static void test_admin_needs_the_token_whoever_asks(void **state)
{
    (void)state;
    privilege_t *p = privilege_new();
    privilege_set_admin_check(p, is_admin, NULL);
    assert_int_equal(check(p, ROUTE_ADMIN, "127.0.0.1", true, NULL), PRIVILEGE_NO_TOKEN);
    assert_int_equal(check(p, ROUTE_ADMIN, "127.0.0.1", true, ""), PRIVILEGE_NO_TOKEN);
    assert_int_equal(check(p, ROUTE_ADMIN, "127.0.0.1", true, "user"), PRIVILEGE_BAD_TOKEN);
    assert_int_equal(check(p, ROUTE_ADMIN, "203.0.113.9", false, "root"), PRIVILEGE_GRANTED);
    /* A route that declares nothing is refused to everyone. */
    assert_int_equal(check(p, ROUTE_UNDECLARED, "127.0.0.1", true, "root"), PRIVILEGE_BAD_TOKEN);
    assert_int_equal(check(NULL, ROUTE_ADMIN, "127.0.0.1", true, "root"), PRIVILEGE_BAD_TOKEN);
    privilege_destroy(&p);
}

static void test_trusted_sources_as_cidrs(void **state)
{
    (void)state;
    privilege_t *p = privilege_new();
    char err[256];
    assert_int_equal(configure(p, "trusted_sources: [10.1.0.0/16, 192.168.100.16, 'fd00::/8', 0.0.0.0/0]\n",
                               err, sizeof err), 0);
    assert_int_equal(check(p, ROUTE_AGENT, "10.1.255.3", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "192.168.100.16", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "fd12:3456::1", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "8.8.8.8", false, NULL), PRIVILEGE_GRANTED);  /* 0.0.0.0/0 */
    assert_int_equal(configure(p, "trusted_sources: [10.1.0.0/17, 192.168.100.16]\n", err, sizeof err), 0);
    assert_int_equal(check(p, ROUTE_AGENT, "10.1.127.3", false, NULL), PRIVILEGE_GRANTED);
    assert_int_equal(check(p, ROUTE_AGENT, "10.1.128.3", false, NULL), PRIVILEGE_NO_TOKEN);
    assert_int_equal(check(p, ROUTE_AGENT, "192.168.100.17", false, NULL), PRIVILEGE_NO_TOKEN);
    assert_int_equal(check(p, ROUTE_AGENT, "127.0.0.1", false, NULL), PRIVILEGE_NO_TOKEN);  /* not listed */
    assert_int_equal(check(p, ROUTE_AGENT, "fd12:3456::1", false, NULL), PRIVILEGE_NO_TOKEN);
    assert_int_equal(configure(p, "trusted_sources: []\n", err, sizeof err), 0);
    assert_int_equal(check(p, ROUTE_AGENT, "10.1.0.1", false, NULL), PRIVILEGE_NO_TOKEN);
    privilege_destroy(&p);
}

static void test_a_bad_list_is_refused_and_the_old_one_kept(void **state)
{
    (void)state;
    privilege_t *p = privilege_new();
    char err[256];
    static const char *const bad[] = {
        "trusted_sources: [10.0.0.0/33]\n", "trusted_sources: ['::1/129']\n",
        "trusted_sources: [example.com]\n", "trusted_sources: [10.0.0.0/]\n",
        "trusted_sources: [10.0.0.0/8x]\n", "trusted_sources: [7]\n", "trusted_sources: ['']\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(configure(p, bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "trusted_sources"));
    }
    assert_int_equal(check(p, ROUTE_AGENT, "127.0.0.1", false, NULL), PRIVILEGE_GRANTED);
    privilege_destroy(&p);
}

static void test_names_and_refusals(void **state)
{
    (void)state;
    assert_string_equal(privilege_name(ROUTE_PUBLIC), "public");
    assert_string_equal(privilege_name(ROUTE_AGENT), "agent");
    assert_string_equal(privilege_name(ROUTE_ADMIN), "admin");
    assert_string_equal(privilege_name(ROUTE_UNDECLARED), "undeclared");
    assert_false(privilege_declared(ROUTE_UNDECLARED));
    assert_true(privilege_declared(ROUTE_AGENT));
    char text[300];
    privilege_refusal(ROUTE_ADMIN, "stop_agent", text, sizeof text);
    assert_string_equal(text, "Forbidden: stop_agent needs an administrator's token");
    privilege_refusal(ROUTE_AGENT, "register_agent", text, sizeof text);
    assert_string_equal(text, "Forbidden: register_agent needs a CURVE client key, a trusted source "
                              "address or an administrator's token");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_needs_nothing),
        cmocka_unit_test(test_agent_by_default_loopback_only),
        cmocka_unit_test(test_admin_needs_the_token_whoever_asks),
        cmocka_unit_test(test_trusted_sources_as_cidrs),
        cmocka_unit_test(test_a_bad_list_is_refused_and_the_old_one_kept),
        cmocka_unit_test(test_names_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
