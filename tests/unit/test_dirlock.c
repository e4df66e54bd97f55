/*  test_dirlock: one holder per directory, its pid readable without taking
 *  the lock, a second taker refused (in this process or another), and the
 *  lock gone with its holder, released or killed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirlock.h"
#include "testutil.h"

typedef struct {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-lock-XXXXXX");
    *state = f;
    return mkdtemp(f->dir) ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static void test_one_holder_named_by_pid(void **state)
{
    fixture_t *f = *state;
    char err[256];
    assert_int_equal(dirlock_holder(f->dir), 0);           /* no lock file yet */
    dirlock_t *lock = dirlock_take(f->dir, err, sizeof err);
    assert_non_null(lock);
    assert_int_equal(dirlock_holder(f->dir), (long)getpid());
    assert_null(dirlock_take(f->dir, err, sizeof err));    /* a second service of this process */
    char expect[64];
    snprintf(expect, sizeof expect, "in use by process %ld", (long)getpid());
    assert_non_null(strstr(err, expect));
    dirlock_release(&lock);
    assert_null(lock);
    assert_int_equal(dirlock_holder(f->dir), 0);
    lock = dirlock_take(f->dir, err, sizeof err);           /* free again */
    assert_non_null(lock);
    dirlock_release(&lock);
}

static void test_lock_dies_with_its_holder(void **state)
{
    fixture_t *f = *state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        char err[256];
        dirlock_t *lock = dirlock_take(f->dir, err, sizeof err);
        char byte = lock ? 'y' : 'n';
        if (write(ready[1], &byte, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char byte = 0;
    assert_int_equal(read(ready[0], &byte, 1), 1);
    assert_int_equal(byte, 'y');
    assert_int_equal(dirlock_holder(f->dir), (long)child);
    char err[256];
    assert_null(dirlock_take(f->dir, err, sizeof err));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_int_equal(dirlock_holder(f->dir), 0);            /* kill -9 frees it */
    dirlock_t *lock = dirlock_take(f->dir, err, sizeof err);
    assert_non_null(lock);
    dirlock_release(&lock);
    close(ready[0]);
    close(ready[1]);
}

static void test_missing_directory_is_an_error(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(dirlock_take("/nonexistent/keel/dir", err, sizeof err));
    assert_non_null(strstr(err, "cannot open /nonexistent/keel/dir/keeld.lock"));
    assert_int_equal(dirlock_holder("/nonexistent/keel/dir"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_holder_named_by_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_dies_with_its_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
