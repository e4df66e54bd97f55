/*  test_core_backend: group commit in CoreOrchestrator's SQLite backend,
 *  against real files.  Deferred writes are read back at once by this
 *  backend but are not in the file until the commit (a second connection
 *  does not see them); a write from another thread commits them with its
 *  own; and when the file cannot take them (the file size limit standing
 *  in for a full disk) the commit fails with SQLite's words and every
 *  deferred write is undone in memory and reported, while a later batch
 *  works again. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include "core/backend.h"
#include "testutil.h"

typedef struct {
    char dir[64], path[128];
    backend_t *backend;
} fixture_t;

static backend_t *open_at(const char *path)
{
    char err[256];
    backend_t *b = backend_new("sqlite", path, NULL, NULL, false, err, sizeof err);
    if (!b)
        print_error("%s\n", err);
    assert_non_null(b);
    return b;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/keel-backend-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
    f->backend = open_at(f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    backend_destroy(&f->backend);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static void put(backend_t *b, const char *key, int port)
{
    char err[256];
    json_t *v = json_pack("{s:i}", "port", port);
    assert_int_equal(backend_put(b, "agents", key, v, err, sizeof err), 0);
    json_decref(v);
}

/* The port stored under key, -1 when absent. */
static int port_of(backend_t *b, const char *key)
{
    char err[256];
    json_t *v = NULL;
    int rc = backend_get(b, "agents", key, &v, err, sizeof err);
    int port = rc == 1 ? (int)json_integer_value(json_object_get(v, "port")) : -1;
    json_decref(v);
    return port;
}

/* What another connection finds in the file: -1 when absent. */
static int port_on_disk(fixture_t *f, const char *key)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM entries WHERE tbl = 'agents' AND key = ?",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int port = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        json_t *v = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        port = (int)json_integer_value(json_object_get(v, "port"));
        json_decref(v);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return port;
}

static void test_deferred_writes_reach_the_file_at_the_commit(void **state)
{
    fixture_t *f = *state;
    put(f->backend, "a", 1);
    backend_defer(f->backend);
    put(f->backend, "a", 2);
    put(f->backend, "b", 3);
    char err[256];
    assert_int_equal(backend_del(f->backend, "agents", "b", err, sizeof err), 1);
    put(f->backend, "c", 4);
    assert_int_equal(port_of(f->backend, "a"), 2);      /* this backend reads them at once */
    assert_int_equal(port_on_disk(f, "a"), 1);          /* the file does not have them yet */
    assert_int_equal(port_on_disk(f, "c"), -1);
    assert_int_equal(backend_commit(f->backend, err, sizeof err, NULL, NULL), 0);
    assert_int_equal(port_on_disk(f, "a"), 2);
    assert_int_equal(port_on_disk(f, "b"), -1);
    assert_int_equal(port_on_disk(f, "c"), 4);
    /* Not deferring: each write is in the file when it returns. */
    put(f->backend, "d", 5);
    assert_int_equal(port_on_disk(f, "d"), 5);
    assert_int_equal(backend_commit(f->backend, err, sizeof err, NULL, NULL), 0);
}

static void *put_e(void *arg)
{
    put(arg, "e", 6);
    return NULL;
}

static void test_another_threads_write_commits_at_once(void **state)
{
    fixture_t *f = *state;
    backend_defer(f->backend);
    put(f->backend, "a", 1);
    pthread_t t;
    pthread_create(&t, NULL, put_e, f->backend);
    pthread_join(t, NULL);
    assert_int_equal(port_on_disk(f, "e"), 6);      /* its writer was answered: it is in the file */
    assert_int_equal(port_on_disk(f, "a"), 1);      /* and so is what it was committed with */
    char err[256];
    assert_int_equal(backend_commit(f->backend, err, sizeof err, NULL, NULL), 0);
}

typedef struct {
    char keys[8][32];
    int count;
} undone_t;

static void note_undone(void *arg, const char *table, const char *key)
{
    undone_t *u = arg;
    assert_string_equal(table, "agents");
    if (u->count < 8)
        snprintf(u->keys[u->count++], sizeof u->keys[0], "%s", key);
}

static void test_a_failed_commit_undoes_the_batch(void **state)
{
    fixture_t *f = *state;
    put(f->backend, "kept", 1);
    signal(SIGXFSZ, SIG_IGN);       /* past the limit, write() fails with EFBIG instead */
    struct rlimit was, tight = { 64 * 1024, 64 * 1024 };
    getrlimit(RLIMIT_FSIZE, &was);
    tight.rlim_max = was.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &tight), 0);
    backend_defer(f->backend);
    char err[256];
    char *big = malloc(20000);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    json_t *v = json_pack("{s:i, s:s}", "port", 2, "pad", big);
    backend_put(f->backend, "agents", "kept", v, err, sizeof err);    /* may fail itself */
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof key, "n%d", i);
        backend_put(f->backend, "agents", key, v, err, sizeof err);
    }
    json_decref(v);
    free(big);
    undone_t u = { .count = 0 };
    int rc = backend_commit(f->backend, err, sizeof err, note_undone, &u);
    setrlimit(RLIMIT_FSIZE, &was);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "database write failed"));
    assert_true(u.count >= 1);
    assert_int_equal(port_of(f->backend, "kept"), 1);       /* put back in memory */
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof key, "n%d", i);
        assert_int_equal(port_of(f->backend, key), -1);
    }
    assert_int_equal(port_on_disk(f, "kept"), 1);
    /* With room again, the next batch is written. */
    backend_defer(f->backend);
    put(f->backend, "later", 7);
    assert_int_equal(backend_commit(f->backend, err, sizeof err, NULL, NULL), 0);
    assert_int_equal(port_on_disk(f, "later"), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deferred_writes_reach_the_file_at_the_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_threads_write_commits_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_commit_undoes_the_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
