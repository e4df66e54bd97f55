/*  test_security_accounts: SecurityGateway's user management (accounts.c)
 *  on a real service in this process: the first administrator only from a
 *  loopback address and only while none exists, every other change only
 *  with an administrator's token (a JWT with scope admin or an
 *  administrator's session, checked in the service's own table), a new
 *  password or a deletion ending the user's sessions, the last
 *  administrator kept, and bad names refused.  Requests without a peer
 *  address go through wire_server_handle: to the service they come from
 *  nowhere it trusts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "security/security.h"
#include "testutil.h"
#include "token.h"
#include "wire.h"

typedef struct {
    char dir[64];
    config_t *config;
    service_t *svc;
    int offset;
    char *admin_jwt;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-acct-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    srand((unsigned)getpid() ^ (unsigned)(clock_wall() * 1000));
    for (int i = 0; i < 200 && !f->offset; i++) {
        int offset = (100 + rand() % 2900) * 10;
        if (tu_port_free(7005 + offset) && tu_port_free(8005 + offset) && tu_port_free(7150 + offset))
            f->offset = offset;
    }
    char yaml[512], err[256];
    snprintf(yaml, sizeof yaml, "data_dir: %s\nport_offset: %d\n"
             "security: {argon2: {opslimit: 1, memlimit_kib: 8}}\n", f->dir, f->offset);
    f->config = config_new();
    if (!f->offset || config_load_text(f->config, yaml, "test", err, sizeof err) < 0)
        return -1;
    f->svc = service_new(&security_service, f->config);
    if (service_start(f->svc) < 0)
        return -1;
    json_t *scopes = json_pack("[s]", "admin");
    f->admin_jwt = token_issue(f->config, "ops", scopes, 300);
    json_decref(scopes);
    *state = f;
    return f->admin_jwt ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    service_destroy(&f->svc);
    config_destroy(&f->config);
    free(f->admin_jwt);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* A request from no address (wire_server_handle). */
static json_t *ask(fixture_t *f, json_t *request)
{
    char *text = json_dumps(request, JSON_COMPACT);
    json_decref(request);
    char *reply = wire_server_handle(f->svc->wire, text, strlen(text));
    free(text);
    json_t *r = json_loads(reply, 0, NULL);
    free(reply);
    assert_non_null(r);
    return r;
}

/* A request over TCP from 127.0.0.1. */
static json_t *ask_loopback(fixture_t *f, json_t *request)
{
    char endpoint[64], err[256] = "";
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", 7005 + f->offset);
    json_t *r = wire_call(endpoint, request, 5000, 0, err, sizeof err);
    json_decref(request);
    assert_non_null(r);
    return r;
}

static void assert_success(json_t *r)
{
    if (strcmp(json_string_value(json_object_get(r, "status")) ?: "", "success") != 0) {
        char *text = json_dumps(r, 0);
        fail_msg("not a success: %s", text);
    }
    json_decref(r);
}

static void assert_error(json_t *r, const char *prefix)
{
    const char *error = json_string_value(json_object_get(r, "error"));
    if (!error || strncmp(error, prefix, strlen(prefix)) != 0) {
        char *text = json_dumps(r, 0);
        fail_msg("expected an error starting \"%s\": %s", prefix, text);
    }
    json_decref(r);
}

static char *login(fixture_t *f, const char *user, const char *password)
{
    json_t *r = ask(f, json_pack("{s:s, s:s, s:s}", "action", "login", "user_id", user, "password", password));
    const char *token = json_string_value(json_object_get(json_object_get(r, "session"), "token"));
    char *copy = token ? strdup(token) : NULL;
    json_decref(r);
    return copy;
}

static bool valid(fixture_t *f, const char *token)
{
    json_t *r = ask(f, json_pack("{s:s, s:s}", "action", "validate_token", "token", token));
    bool ok = json_is_true(json_object_get(r, "valid"));
    json_decref(r);
    return ok;
}

static void test_first_admin_from_loopback_only(void **state)
{
    fixture_t *f = *state;
    /* add_user needs an administrator's token, even before there is one. */
    assert_error(ask_loopback(f, json_pack("{s:s, s:s, s:s, s:b}", "action", "add_user", "user_id", "root",
                                           "password", "pw", "admin", 1)), "Forbidden: add_user");
    /* add_first_admin from no address (not loopback): refused, though no
     * administrator exists. */
    assert_error(ask(f, json_pack("{s:s, s:s, s:s}", "action", "add_first_admin", "user_id", "root",
                                  "password", "pw")), "Forbidden");
    json_t *r = ask_loopback(f, json_pack("{s:s, s:s, s:s}", "action", "add_first_admin", "user_id", "root",
                                          "password", "pw"));
    assert_true(json_is_true(json_object_get(r, "first_admin")));
    assert_true(json_is_true(json_object_get(r, "admin")));
    assert_success(r);
    /* Once one exists, loopback needs a token like everyone. */
    assert_error(ask_loopback(f, json_pack("{s:s, s:s, s:s}", "action", "add_first_admin", "user_id", "second",
                                           "password", "pw")), "Forbidden: an administrator exists already");
    /* An administrator's session, checked in the service's own table. */
    char *session = login(f, "root", "pw");
    assert_non_null(session);
    r = ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", session,
                         "user_id", "second", "password", "pw2"));
    assert_false(json_is_true(json_object_get(r, "first_admin")));
    assert_success(r);
    /* A non-administrator's session is not enough. */
    char *plain = login(f, "second", "pw2");
    assert_error(ask(f, json_pack("{s:s, s:s}", "action", "list_users", "auth_token", plain)), "Forbidden");
    free(plain);
    free(session);
}

static void test_changes_need_an_admin_and_end_sessions(void **state)
{
    fixture_t *f = *state;
    const char *jwt = f->admin_jwt;
    assert_success(ask(f, json_pack("{s:s, s:s, s:s, s:s, s:b}", "action", "add_user", "auth_token", jwt,
                                     "user_id", "root", "password", "pw", "admin", 1)));
    assert_success(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                     "user_id", "bob", "password", "old")));
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", "bob", "password", "x")), "User bob already exists");
    char *a = login(f, "bob", "old"), *b = login(f, "bob", "old");
    assert_true(valid(f, a) && valid(f, b));
    /* Without a token nothing changes. */
    assert_error(ask(f, json_pack("{s:s, s:s, s:s}", "action", "set_password", "user_id", "bob",
                                  "password", "new")), "Forbidden: set_password");
    assert_true(valid(f, a));
    json_t *r = ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "set_password", "auth_token", jwt,
                                 "user_id", "bob", "password", "new"));
    assert_int_equal(json_integer_value(json_object_get(r, "sessions_ended")), 2);
    assert_success(r);
    assert_false(valid(f, a) || valid(f, b));
    char *c = login(f, "bob", "new");
    assert_non_null(c);
    assert_null(login(f, "bob", "old"));
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "set_password", "auth_token", jwt,
                                  "user_id", "nobody", "password", "x")), "Unknown user: nobody");

    r = ask(f, json_pack("{s:s, s:s}", "action", "list_users", "auth_token", jwt));
    json_t *users = json_object_get(r, "users");
    assert_int_equal(json_array_size(users), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "user_id")), "bob");
    assert_true(json_is_false(json_object_get(json_array_get(users, 0), "admin")));
    assert_true(json_is_true(json_object_get(json_array_get(users, 1), "admin")));
    assert_success(r);

    assert_error(ask(f, json_pack("{s:s, s:s, s:s}", "action", "delete_user", "auth_token", jwt,
                                  "user_id", "root")), "Refused: root is the last administrator");
    r = ask(f, json_pack("{s:s, s:s, s:s}", "action", "delete_user", "auth_token", jwt, "user_id", "bob"));
    assert_int_equal(json_integer_value(json_object_get(r, "sessions_ended")), 1);
    assert_success(r);
    assert_false(valid(f, c));
    assert_null(login(f, "bob", "new"));
    free(a);
    free(b);
    free(c);
}

static void test_bad_input_refused(void **state)
{
    fixture_t *f = *state;
    const char *jwt = f->admin_jwt;
    char long_name[200];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", long_name, "password", "x")), "user_id is longer than 128");
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", "a\x1b[31mb", "password", "x")), "user_id must not contain control");
    assert_error(ask(f, json_pack("{s:s, s:s, s:i, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", 5, "password", "x")), "user_id must be a non-empty string");
    assert_error(ask(f, json_pack("{s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", "x")), "password must be a non-empty string");
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", "x", "password", "a", "legacy_sha256", "b")), "give password");
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", "x", "legacy_sha256", "abc")), "legacy_sha256 must be 64");
    assert_error(ask(f, json_pack("{s:s, s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                  "user_id", "x", "password", "a", "admin", "yes")), "admin must be true");
    /* sha256("password"), as an original agent stored it: accepted once, then rehashed */
    assert_success(ask(f, json_pack("{s:s, s:s, s:s, s:s}", "action", "add_user", "auth_token", jwt,
                                     "user_id", "legacy", "legacy_sha256",
                                     "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8")));
    char *token = login(f, "legacy", "password");
    assert_non_null(token);
    free(token);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_admin_from_loopback_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_need_an_admin_and_end_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
