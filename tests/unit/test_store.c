/*  test_store: connection settings, migrations (once, in order, rolled
 *  back on failure), the page size chosen at creation only, transactions,
 *  the statement cache, and that a commit
 *  survives its process being killed (SIGKILL) without closing the
 *  database. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"

typedef struct {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/keel-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/test.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

static const char *const schema[] = {
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE runs (n INTEGER);"
    "INSERT INTO runs VALUES (1);",
    "CREATE TABLE owner (id INTEGER PRIMARY KEY);"
    "CREATE TABLE pet (id INTEGER PRIMARY KEY,"
    " owner_id INTEGER NOT NULL REFERENCES owner(id));"
    "INSERT INTO runs VALUES (2);",
    NULL,
};

static int query_int(store_t *s, const char *sql)
{
    sqlite3_stmt *st = store_prepare(s, sql);
    assert_non_null(st);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return v;
}

static const char *query_text(store_t *s, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st = store_prepare(s, sql);
    assert_non_null(st);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return buf;
}

static void test_connection_settings(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    store_t *s = store_new(f->path, schema, err, sizeof err);
    assert_non_null(s);
    assert_non_null(store_db(s));
    char buf[32];
    assert_string_equal(query_text(s, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    assert_int_equal(query_int(s, "PRAGMA synchronous"), 1);      /* NORMAL */
    assert_int_equal(query_int(s, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(s, "PRAGMA busy_timeout"), 5000);
    assert_int_equal(query_int(s, "PRAGMA auto_vacuum"), 2);      /* INCREMENTAL */
    store_set_durable(s, true);
    assert_int_equal(query_int(s, "PRAGMA synchronous"), 2);      /* FULL */
    store_set_durable(s, false);
    assert_int_equal(query_int(s, "PRAGMA synchronous"), 1);
    /* Foreign keys are enforced. */
    assert_int_equal(store_exec(s, "INSERT INTO pet VALUES (1, 99)"), -1);
    assert_non_null(strstr(store_errmsg(s), "FOREIGN KEY"));
    store_destroy(&s);
    assert_null(s);
    store_destroy(&s);
    store_destroy(NULL);
}

/* A page size is the database's from its creation: a new one takes it
 * (with auto_vacuum and WAL as always), an existing one keeps its own. */
static void test_page_size_at_creation_only(void **state)
{
    fixture_t *f = *state;
    char err[256] = "", other[160];
    store_t *s = store_new_paged(f->path, schema, 16384, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(query_int(s, "PRAGMA page_size"), 16384);
    assert_int_equal(query_int(s, "PRAGMA auto_vacuum"), 2);
    store_destroy(&s);
    s = store_new(f->path, schema, err, sizeof err);
    assert_int_equal(query_int(s, "PRAGMA page_size"), 16384);
    store_destroy(&s);
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    s = store_new(other, schema, err, sizeof err);
    assert_int_equal(query_int(s, "PRAGMA page_size"), 4096);
    store_destroy(&s);
    s = store_new_paged(other, schema, 16384, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(query_int(s, "PRAGMA page_size"), 4096);
    assert_int_equal(query_int(s, "SELECT count(*) FROM runs"), 2);
    store_destroy(&s);
}

static void test_migrations_applied_once(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    store_t *s = store_new(f->path, schema, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_version(s), 2);
    assert_int_equal(query_int(s, "PRAGMA user_version"), 2);
    assert_int_equal(query_int(s, "SELECT count(*) FROM runs"), 2);
    assert_int_equal(store_exec(s, "INSERT INTO kv VALUES ('a', 'alpha')"), 0);
    store_destroy(&s);

    s = store_new(f->path, schema, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_version(s), 2);
    assert_int_equal(query_int(s, "SELECT count(*) FROM runs"), 2);
    char buf[32];
    assert_string_equal(query_text(s, "SELECT v FROM kv WHERE k = 'a'", buf, sizeof buf),
                        "alpha");
    store_destroy(&s);

    /* A later build adds migration 3: only it runs. */
    const char *const grown[] = { schema[0], schema[1], "INSERT INTO runs VALUES (3);", NULL };
    s = store_new(f->path, grown, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_version(s), 3);
    assert_int_equal(query_int(s, "SELECT count(*) FROM runs"), 3);
    assert_int_equal(query_int(s, "SELECT sum(n) FROM runs"), 6);
    store_destroy(&s);
}

static void test_no_migrations(void **state)
{
    fixture_t *f = *state;
    store_t *s = store_new(f->path, NULL, NULL, 0);
    assert_non_null(s);
    assert_int_equal(store_version(s), 0);
    store_destroy(&s);
}

static void test_failing_migration_reported_and_rolled_back(void **state)
{
    fixture_t *f = *state;
    const char *const bad[] = {
        schema[0],
        "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);",
        NULL,
    };
    char err[256] = "";
    assert_null(store_new(f->path, bad, err, sizeof err));
    assert_non_null(strstr(err, "migration 2 failed: "));
    assert_non_null(strstr(err, "no_such_table"));

    /* Migration 1 committed; migration 2 left nothing behind. */
    const char *const first[] = { schema[0], NULL };
    store_t *s = store_new(f->path, first, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_version(s), 1);
    assert_int_equal(query_int(s,
        "SELECT count(*) FROM sqlite_master WHERE name = 'half'"), 0);
    assert_int_equal(query_int(s, "SELECT count(*) FROM runs"), 1);
    store_destroy(&s);

    /* The fixed build retries from version 1. */
    s = store_new(f->path, schema, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_version(s), 2);
    store_destroy(&s);
}

static void test_newer_database_refused(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    store_t *s = store_new(f->path, schema, err, sizeof err);
    assert_non_null(s);
    store_destroy(&s);
    const char *const older[] = { schema[0], NULL };
    assert_null(store_new(f->path, older, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
}

static void test_open_failure_reported(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    char path[256];
    snprintf(path, sizeof path, "%s/missing-dir/x.db", f->dir);
    assert_null(store_new(path, schema, err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(store_new(NULL, schema, err, sizeof err));
    assert_non_null(strstr(err, "path"));
}

static void test_transactions(void **state)
{
    fixture_t *f = *state;
    store_t *s = store_new(f->path, schema, NULL, 0);
    assert_non_null(s);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_exec(s, "INSERT INTO kv VALUES ('x', '1')"), 0);
    assert_int_equal(query_int(s, "SELECT count(*) FROM kv"), 1);
    assert_int_equal(store_rollback(s), 0);
    assert_int_equal(query_int(s, "SELECT count(*) FROM kv"), 0);

    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_exec(s, "INSERT INTO kv VALUES ('y', '2')"), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(query_int(s, "SELECT count(*) FROM kv"), 1);

    assert_int_equal(store_commit(s), -1);          /* no transaction open */
    assert_int_equal(store_exec(s, "NOT SQL"), -1);
    store_destroy(&s);
}

static void test_prepare_cache(void **state)
{
    fixture_t *f = *state;
    store_t *s = store_new(f->path, schema, NULL, 0);
    assert_non_null(s);
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *ins = store_prepare(s, "INSERT INTO kv VALUES (?1, ?2)");
        assert_non_null(ins);
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        sqlite3_bind_text(ins, 1, k, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, "v", -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    }
    const char *sql = "SELECT k, ?1 FROM kv ORDER BY k";
    sqlite3_stmt *a = store_prepare(s, sql);
    assert_non_null(a);
    sqlite3_bind_int(a, 1, 42);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(a, 1), 42);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);   /* left mid-result */
    assert_true(sqlite3_stmt_busy(a));

    char copy[64];
    strcpy(copy, sql);                               /* keyed by text, not pointer */
    sqlite3_stmt *b = store_prepare(s, copy);
    assert_ptr_equal(a, b);
    assert_false(sqlite3_stmt_busy(b));              /* reset */
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(b, 0), "k0");
    assert_int_equal(sqlite3_column_type(b, 1), SQLITE_NULL);   /* bindings cleared */
    sqlite3_reset(b);

    assert_ptr_not_equal(store_prepare(s, "SELECT 1"), a);
    assert_null(store_prepare(s, "SELECT FROM nowhere"));
    store_destroy(&s);
}

static void test_maintain(void **state)
{
    fixture_t *f = *state;
    store_t *s = store_new(f->path, schema, NULL, 0);
    assert_non_null(s);
    assert_int_equal(store_begin(s), 0);
    for (int i = 0; i < 2000; i++) {
        sqlite3_stmt *st = store_prepare(s, "INSERT INTO kv VALUES (?1, randomblob(500))");
        sqlite3_bind_int(st, 1, i);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    }
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_exec(s, "DELETE FROM kv"), 0);
    assert_int_equal(store_maintain(s), 0);
    assert_int_equal(store_maintain(s), 0);
    assert_int_equal(query_int(s, "PRAGMA freelist_count"), 0);
    store_destroy(&s);
}

/* The child commits, reports how far it got through a pipe and waits;
 * the parent then kills it with SIGKILL: no close, no atexit, nothing but
 * what SQLite had handed to the kernel at COMMIT.  (A signal the kernel
 * delivers from outside also keeps valgrind from running a leak check in
 * the dying child, which by design never frees its store.) */
static char child_commit(const char *path)
{
    store_t *s = store_new(path, schema, NULL, 0);
    if (!s)
        return 'o';
    store_set_durable(s, true);
    if (store_begin(s) != 0)
        return 'b';
    for (int i = 0; i < 100; i++) {
        sqlite3_stmt *st = store_prepare(s, "INSERT INTO kv VALUES (?1, 'kept')");
        sqlite3_bind_int(st, 1, i);
        if (sqlite3_step(st) != SQLITE_DONE)
            return 'i';
    }
    return store_commit(s) == 0 ? 'c' : 'x';
}

static void test_commit_survives_process_death(void **state)
{
    fixture_t *f = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        char result = child_commit(f->path);
        if (write(fds[1], &result, 1) == 1)
            for (;;)
                pause();
        _exit(1);
    }
    close(fds[1]);
    char result = 0;
    ssize_t got = read(fds[0], &result, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(got, 1);
    assert_int_equal(result, 'c');
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    store_t *s = store_new(f->path, schema, NULL, 0);
    assert_non_null(s);
    assert_int_equal(store_version(s), 2);
    assert_int_equal(query_int(s, "SELECT count(*) FROM kv WHERE v = 'kept'"), 100);
    store_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connection_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_size_at_creation_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_applied_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_migration_reported_and_rolled_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maintain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_survives_process_death, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
