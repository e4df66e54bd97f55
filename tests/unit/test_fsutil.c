/*  test_fsutil: mkdir -p, whole-file reads (binary-safe, NUL-terminated)
 *  and atomic writes (mode honoured, no temp file left, old content kept
 *  when the write cannot happen). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "testutil.h"

typedef struct {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-fs-XXXXXX");
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

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_mkdirs(void **state)
{
    fixture_t *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/c", f->dir);
    assert_int_equal(fs_mkdirs(path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fs_mkdirs(path), 0);          /* already there */
    snprintf(path, sizeof path, "%s/a/b/c/", f->dir);
    assert_int_equal(fs_mkdirs(path), 0);          /* trailing slash */
    /* A file in the way is an error. */
    snprintf(path, sizeof path, "%s/file", f->dir);
    assert_int_equal(fs_write_atomic(path, "x", 1, 0600), 0);
    snprintf(path, sizeof path, "%s/file/sub", f->dir);
    assert_int_equal(fs_mkdirs(path), -1);
    char huge[5000];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(fs_mkdirs(huge), -1);
}

static void test_read_all(void **state)
{
    fixture_t *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/data.bin", f->dir);
    const char data[] = "one\0two\nthree";
    assert_int_equal(fs_write_atomic(path, data, sizeof data - 1, 0644), 0);
    size_t len = 0;
    char *text = fs_read_all(path, &len);
    assert_non_null(text);
    assert_int_equal(len, sizeof data - 1);
    assert_memory_equal(text, data, len);
    assert_int_equal(text[len], '\0');
    free(text);
    /* Larger than one read buffer. */
    size_t n = 100000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(fs_write_atomic(path, big, n, 0644), 0);
    text = fs_read_all(path, &len);
    assert_int_equal(len, n);
    assert_memory_equal(text, big, n);
    free(text);
    free(big);
    /* Empty file: an empty string, not NULL. */
    assert_int_equal(fs_write_atomic(path, "", 0, 0644), 0);
    text = fs_read_all(path, NULL);
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);
    snprintf(path, sizeof path, "%s/missing", f->dir);
    assert_null(fs_read_all(path, &len));
}

static void test_write_atomic(void **state)
{
    fixture_t *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/secret.key", f->dir);
    assert_int_equal(fs_write_atomic(path, "first", 5, 0600), 0);
    assert_int_equal(fs_write_atomic(path, "second!", 7, 0600), 0);
    char *text = fs_read_all(path, NULL);
    assert_string_equal(text, "second!");
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_entries(f->dir), 1);     /* no temp file left */
    /* A directory that does not exist: -1, nothing created. */
    snprintf(path, sizeof path, "%s/no/such/file", f->dir);
    assert_int_equal(fs_write_atomic(path, "x", 1, 0600), -1);
    /* Rename onto a directory fails: the temp file is removed. */
    snprintf(path, sizeof path, "%s/adir", f->dir);
    assert_int_equal(fs_mkdirs(path), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/x", path);
    assert_int_equal(fs_write_atomic(inner, "x", 1, 0600), 0);
    assert_int_equal(fs_write_atomic(path, "x", 1, 0600), -1);
    assert_int_equal(count_entries(f->dir), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mkdirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
