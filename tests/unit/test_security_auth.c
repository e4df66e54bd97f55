/*  test_security_auth: the pieces of a login on a real SQLite file:
 *  password hashes (Argon2id, legacy SHA-256, constant-time checks), the
 *  lockout counter (the Nth failure locks, locked attempts do not extend,
 *  durations grow, success resets) and sessions (hash-only storage,
 *  absolute expiry, per-user limit, sweep). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/lockout.h"
#include "security/passwd.h"
#include "security/sessions.h"
#include "security/users.h"
#include "testutil.h"

typedef struct {
    char dir[64];
    store_t *db;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/keel-sec-XXXXXX");
    if (!mkdtemp(f->dir) || sodium_init() < 0)
        return -1;
    char path[128], err[128];
    snprintf(path, sizeof path, "%s/security.db", f->dir);
    f->db = users_open(path, err, sizeof err);
    *state = f;
    return f->db ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_destroy(&f->db);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static const passwd_params_t cheap = { 1, 8192 };

/* Proves SG-23 (docs/logic-preservation.md). */
static void test_sg23_argon2id_and_legacy(void **state)
{
    (void)state;
    char hash[PASSWD_MAX];
    bool rehash;
    assert_int_equal(passwd_hash(&cheap, "pw", hash), 0);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_null(strstr(hash, "pw$"));
    assert_int_equal(passwd_verify(&cheap, hash, "pw", &rehash), 0);
    assert_false(rehash);
    assert_int_equal(passwd_verify(&cheap, hash, "pW", &rehash), -1);
    passwd_params_t stronger = { 2, 8192 };
    assert_int_equal(passwd_verify(&stronger, hash, "pw", &rehash), 0);
    assert_true(rehash);
    /* sha256("password") */
    const char *legacy = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
    assert_true(passwd_is_legacy(legacy));
    assert_int_equal(passwd_verify(&cheap, legacy, "password", &rehash), 0);
    assert_true(rehash);
    assert_int_equal(passwd_verify(&cheap, legacy, "Password", &rehash), -1);
    assert_false(passwd_is_legacy("5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"));
}

/* The decoy an unknown user is checked against: libsodium reads the same
 * parameters from it as from a real hash (so the check costs the same),
 * no password matches it, and no two are alike. */
static void test_decoy_costs_a_real_check(void **state)
{
    (void)state;
    char decoy[PASSWD_MAX], other[PASSWD_MAX], real[PASSWD_MAX];
    passwd_params_t service = { 3, 65536 * 1024 };
    assert_int_equal(passwd_decoy(&service, decoy), 0);
    assert_int_equal(crypto_pwhash_str_needs_rehash(decoy, service.opslimit, service.memlimit), 0);
    assert_int_equal(strlen(decoy), 97);
    assert_int_equal(passwd_decoy(&cheap, decoy), 0);
    assert_int_equal(passwd_decoy(&cheap, other), 0);
    assert_string_not_equal(decoy, other);
    assert_int_equal(passwd_hash(&cheap, "pw", real), 0);
    assert_int_equal(strlen(decoy), strlen(real));
    assert_int_equal(crypto_pwhash_str_needs_rehash(decoy, cheap.opslimit, cheap.memlimit), 0);
    bool rehash;
    assert_int_equal(passwd_verify(&cheap, decoy, "pw", &rehash), -1);
    assert_int_equal(passwd_verify(&cheap, decoy, "", &rehash), -1);
}

static void test_sg47_lockout_rules(void **state)
{
    fixture_t *f = *state;
    lockout_params_t p = { 3, 10, 100, 10, 1000 };
    double retry, lock_s, now = 1000;
    for (int i = 0; i < 2; i++) {
        assert_true(lockout_begin(f->db, &p, "user", "u", now, &retry));
        assert_false(lockout_fail(f->db, &p, "user", "u", now, &lock_s));
    }
    assert_true(lockout_begin(f->db, &p, "user", "u", now, &retry));
    assert_true(lockout_fail(f->db, &p, "user", "u", now, &lock_s));    /* the 3rd failure locks */
    assert_true(lock_s == 10);
    /* attempts while locked are refused and do not extend the lock */
    assert_false(lockout_begin(f->db, &p, "user", "u", now + 5, &retry));
    assert_true(retry == 5);
    assert_false(lockout_begin(f->db, &p, "user", "u", now + 9, &retry));
    assert_true(retry == 1);
    /* after it expires, the next lock lasts twice as long */
    now += 11;
    for (int i = 0; i < 3; i++) {
        assert_true(lockout_begin(f->db, &p, "user", "u", now, &retry));
        assert_int_equal(lockout_fail(f->db, &p, "user", "u", now, &lock_s), i == 2);
    }
    assert_true(lock_s == 20);
    /* a success clears the counter and the level */
    now += 21;
    assert_true(lockout_begin(f->db, &p, "user", "u", now, &retry));
    lockout_success(f->db, "u");
    for (int i = 0; i < 3; i++) {
        assert_true(lockout_begin(f->db, &p, "user", "u", now, &retry));
        lockout_fail(f->db, &p, "user", "u", now, &lock_s);
    }
    assert_true(lock_s == 10);
    /* failures outside the window are forgotten */
    assert_true(lockout_begin(f->db, &p, "user", "w", 0, &retry));
    assert_false(lockout_fail(f->db, &p, "user", "w", 0, &lock_s));
    assert_true(lockout_begin(f->db, &p, "user", "w", 200, &retry));
    assert_true(lockout_begin(f->db, &p, "user", "w", 200, &retry));
    assert_false(lockout_fail(f->db, &p, "user", "w", 200, &lock_s));
    /* in-flight attempts count: the 4th concurrent attempt is refused */
    p.source_failures = 3;
    for (int i = 0; i < 3; i++)
        assert_true(lockout_begin(f->db, &p, "source", "s", now, &retry));
    assert_false(lockout_begin(f->db, &p, "source", "s", now, &retry));
    lockout_undo(f->db, "source", "s");
    assert_true(lockout_begin(f->db, &p, "source", "s", now, &retry));
    assert_int_equal(lockout_sweep(f->db, &p, now + 5000), 3);
}

/* Proves SG-16 (docs/logic-preservation.md). */
static void test_sessions_hash_expiry_limit_sweep(void **state)
{
    fixture_t *f = *state;
    sessions_t *s = sessions_new(f->db, 0);
    char t1[65], t2[65], t3[65], user[64];
    double exp;
    assert_int_equal(sessions_create(s, "u", 100, 50, 2, t1, &exp), 0);
    assert_true(exp == 150);
    assert_int_equal(sessions_create(s, "u", 101, 50, 2, t2, &exp), 0);
    assert_int_equal(sessions_create(s, "u", 102, 50, 2, t3, &exp), 0);
    assert_int_equal(sessions_check(s, t1, 110, NULL, 0), SESSION_UNKNOWN);   /* trimmed */
    assert_int_equal(sessions_check(s, t2, 110, user, sizeof user), SESSION_LIVE);
    assert_string_equal(user, "u");
    sqlite3_stmt *st = store_prepare(f->db, "SELECT COUNT(*) FROM sessions WHERE token_hash=?");
    sqlite3_bind_text(st, 1, t2, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);     /* the token itself is never stored */
    sqlite3_reset(st);
    assert_int_equal(sessions_active(s, 110), 2);
    /* a fresh index loads what the file holds (a restart) */
    sessions_t *again = sessions_new(f->db, 110);
    assert_int_equal(sessions_check(again, t3, 110, NULL, 0), SESSION_LIVE);   /* by its digest */
    assert_int_equal(sessions_check(again, t3, 110, NULL, 0), SESSION_LIVE);   /* by its quick key */
    assert_int_equal(sessions_check(again, t1, 110, NULL, 0), SESSION_UNKNOWN);
    assert_int_equal(sessions_check(again, t3, 1000, NULL, 0), SESSION_EXPIRED);
    assert_int_equal(sessions_check(again, t3, 110, NULL, 0), SESSION_UNKNOWN); /* gone from both keys */
    sessions_destroy(&again);
    assert_int_equal(sessions_check(s, t2, 152, NULL, 0), SESSION_EXPIRED);
    assert_int_equal(sessions_check(s, t2, 110, NULL, 0), SESSION_UNKNOWN);   /* forgotten */
    assert_int_equal(sessions_sweep(s, 160), 2);
    assert_int_equal(sessions_delete(s, t3), 0);
    assert_int_equal(sessions_create(s, "v", 200, 50, 0, t2, &exp), 0);
    for (int i = 0; i < 2999; i++)                       /* the index grows */
        assert_int_equal(sessions_create(s, "v", 200, 50, 0, t1, &exp), 0);
    assert_int_equal(sessions_check(s, t1, 210, NULL, 0), SESSION_LIVE);
    assert_int_equal(sessions_check(s, t2, 210, NULL, 0), SESSION_LIVE);   /* the first, moved by the growth */
    assert_int_equal(sessions_active(s, 210), 3000);
    assert_int_equal(sessions_delete(s, t1), 1);
    assert_int_equal(sessions_check(s, t1, 210, NULL, 0), SESSION_UNKNOWN);
    sessions_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sg23_argon2id_and_legacy),
        cmocka_unit_test(test_decoy_costs_a_real_check),
        cmocka_unit_test_setup_teardown(test_sg47_lockout_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_hash_expiry_limit_sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
