/*  test_log: every JSON line the log file gets must parse on its own (that
 *  is the point of the file), carry ts/level/component/msg, and survive any
 *  byte a message holds; stderr gets the readable form, or the journal's
 *  (priority prefix, no timestamp) when it is the journal stream; levels
 *  filter both; the file is opened again after logrotate moved it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "testutil.h"

typedef struct {
    char dir[64];
    char path[128];
    char err_path[128];
    int saved_stderr;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-log-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/keel.log", f->dir);
    snprintf(f->err_path, sizeof f->err_path, "%s/stderr.txt", f->dir);
    log_set_level(LOG_INFO);
    *state = f;
    return log_open(f->path);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    log_close();
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* stderr goes to a file while the test logs, so its text can be checked;
 * only around the log calls, so cmocka's own messages stay visible. */
static void capture_stderr(fixture_t *f)
{
    fflush(stderr);
    f->saved_stderr = dup(2);
    int fd = open(f->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}

static char *captured_stderr(fixture_t *f)
{
    fflush(stderr);
    dup2(f->saved_stderr, 2);
    close(f->saved_stderr);
    return fs_read_all(f->err_path, NULL);
}

/* The file's lines, each parsed; fails the test on a line that is not JSON. */
static json_t *read_lines(const char *path)
{
    char *text = fs_read_all(path, NULL);
    assert_non_null(text);
    json_t *lines = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *obj = json_loads(line, 0, &jerr);
        if (!obj)
            print_error("not JSON: %s (%s)\n", line, jerr.text);
        assert_non_null(obj);
        json_array_append_new(lines, obj);
    }
    free(text);
    return lines;
}

static const char *field(json_t *line, const char *key)
{
    return json_string_value(json_object_get(line, key));
}

static void test_json_line_fields(void **state)
{
    fixture_t *f = *state;
    log_info("core", "hello %d", 5);
    log_error("errorbus", "boom: %s", "disk full");
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 2);
    json_t *a = json_array_get(lines, 0);
    assert_int_equal(json_object_size(a), 4);
    assert_string_equal(field(a, "level"), "info");
    assert_string_equal(field(a, "component"), "core");
    assert_string_equal(field(a, "msg"), "hello 5");
    double ts = 0;
    assert_int_equal(clock_parse_iso(field(a, "ts"), &ts), 0);
    assert_true(ts > clock_wall() - 60 && ts <= clock_wall() + 1);
    assert_string_equal(field(json_array_get(lines, 1), "level"), "error");
    assert_string_equal(field(json_array_get(lines, 1), "msg"), "boom: disk full");
    json_decref(lines);
}

static void test_level_filtering(void **state)
{
    fixture_t *f = *state;
    capture_stderr(f);
    log_debug("core", "hidden");
    log_set_level(LOG_WARN);
    log_info("core", "hidden too");
    log_warn("core", "shown warn");
    log_set_level(LOG_DEBUG);
    log_debug("core", "shown debug");
    char *err = captured_stderr(f);
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 2);
    assert_string_equal(field(json_array_get(lines, 0), "msg"), "shown warn");
    assert_string_equal(field(json_array_get(lines, 0), "level"), "warn");
    assert_string_equal(field(json_array_get(lines, 1), "msg"), "shown debug");
    assert_string_equal(field(json_array_get(lines, 1), "level"), "debug");
    json_decref(lines);
    assert_null(strstr(err, "hidden"));
    assert_non_null(strstr(err, "shown warn"));
    free(err);
}

static void test_escaping(void **state)
{
    fixture_t *f = *state;
    const char *nasty = "say \"hi\"\\ \n\tnew\r line \x01\x1f end \xc3\xa9";
    log_info("co\"mp", "%s", nasty);
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 1);
    assert_string_equal(field(json_array_get(lines, 0), "msg"), nasty);
    assert_string_equal(field(json_array_get(lines, 0), "component"), "co\"mp");
    json_decref(lines);
    /* The file itself holds no raw control bytes: one object per line. */
    char *text = fs_read_all(f->path, NULL);
    for (char *p = text; *p; p++)
        assert_true((unsigned char)*p >= 0x20 || *p == '\n');
    assert_int_equal(strchr(text, '\n') - text, (long)strlen(text) - 1);
    free(text);
}

static void test_invalid_utf8_never_breaks_the_file(void **state)
{
    fixture_t *f = *state;
    log_info("core", "bad \xff\xfe bytes");
    log_info("core", "after");
    json_t *lines = read_lines(f->path);
    assert_true(json_array_size(lines) >= 1);
    assert_string_equal(field(json_array_get(lines, json_array_size(lines) - 1), "msg"), "after");
    json_decref(lines);
}

static void test_stderr_text(void **state)
{
    fixture_t *f = *state;
    capture_stderr(f);
    log_warn("security", "lockout for %s", "alice");
    char *err = captured_stderr(f);
    assert_non_null(err);
    /* "2025-...Z warn  [security] lockout for alice\n" */
    char ts[64], level[16], rest[128];
    assert_int_equal(sscanf(err, "%63s %15s %127[^\n]", ts, level, rest), 3);
    assert_string_equal(level, "warn");
    assert_string_equal(rest, "[security] lockout for alice");
    assert_int_equal(ts[strlen(ts) - 1], 'Z');
    free(err);
}

/* Issue 18: under journald `journalctl -p err` could not filter Keel's lines. */
static void test_journal_stream_gets_priorities_and_no_timestamp(void **state)
{
    fixture_t *f = *state;
    capture_stderr(f);
    struct stat st;
    assert_int_equal(fstat(2, &st), 0);
    char stream[64];
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", stream, 1);
    log_follow_journal();
    log_set_level(LOG_DEBUG);
    log_error("errorbus", "disk full");
    log_warn("security", "lockout for %s", "alice");
    log_info("core", "ready");
    log_debug("core", "detail");
    log_error("core", "forged\n<3>[core] line");
    /* A JOURNAL_STREAM inherited by a process whose stderr went elsewhere. */
    setenv("JOURNAL_STREAM", "1:2", 1);
    log_follow_journal();
    log_info("core", "plain again");
    unsetenv("JOURNAL_STREAM");
    log_follow_journal();
    log_set_level(LOG_INFO);
    char *err = captured_stderr(f);
    const char *want = "<3>[errorbus] disk full\n"
                       "<4>[security] lockout for alice\n"
                       "<6>[core] ready\n"
                       "<7>[core] detail\n"
                       "<3>[core] forged\\n<3>[core] line\n";
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    const char *plain = err + strlen(want);
    assert_true(plain[0] == '2' && strstr(plain, "Z info  [core] plain again\n") != NULL);
    free(err);
    /* The file keeps its timestamps either way. */
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 6);
    assert_non_null(field(json_array_get(lines, 0), "ts"));
    json_decref(lines);
}

static void test_stderr_lines_never_split(void **state)
{
    fixture_t *f = *state;
    capture_stderr(f);
    log_warn("core", "agent said \"a\nb\r\x01\"");
    char *err = captured_stderr(f);
    assert_non_null(strstr(err, "[core] agent said \"a\\nb\\r\\x01\"\n"));
    assert_int_equal(strchr(err, '\n') - err, (long)strlen(err) - 1);
    free(err);
}

/* logrotate renames keel.log and sends SIGHUP; keeld opens the path again. */
static void test_reopen_after_rotation(void **state)
{
    fixture_t *f = *state;
    log_info("core", "before");
    char rotated[160];
    snprintf(rotated, sizeof rotated, "%s.1", f->path);
    assert_int_equal(rename(f->path, rotated), 0);
    log_info("core", "still old");
    assert_int_equal(log_reopen(), 0);
    log_info("core", "after");
    json_t *old = read_lines(rotated), *fresh = read_lines(f->path);
    assert_int_equal(json_array_size(old), 2);
    assert_string_equal(field(json_array_get(old, 1), "msg"), "still old");
    assert_int_equal(json_array_size(fresh), 1);
    assert_string_equal(field(json_array_get(fresh, 0), "msg"), "after");
    json_decref(old);
    json_decref(fresh);
    /* With no file open, reopening is nothing. */
    log_close();
    assert_int_equal(log_reopen(), 0);
}

static void test_long_message_truncated_not_overflowed(void **state)
{
    fixture_t *f = *state;
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = '\0';
    log_info("core", "%s", big);
    free(big);
    json_t *lines = read_lines(f->path);
    const char *msg = field(json_array_get(lines, 0), "msg");
    assert_true(strlen(msg) > 1000 && strlen(msg) < 9999);
    json_decref(lines);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("INFO"), LOG_INFO);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("warning"), LOG_WARN);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("loud"), -1);
    assert_int_equal(log_level_parse(NULL), -1);
}

static void test_open_failure(void **state)
{
    (void)state;
    assert_int_equal(log_open("/nonexistent-dir/x/keel.log"), -1);
    log_info("core", "still fine");     /* the earlier file stays open */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_line_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_never_breaks_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stderr_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_stream_gets_priorities_and_no_timestamp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stderr_lines_never_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_truncated_not_overflowed, setup, teardown),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
