/*  test_child: the one module that runs processes, driven as its owner
 *  drives it (child_run in a loop) on real programs (/bin/sh): exit codes,
 *  output to a file and as log lines, the environment, working directory
 *  and descriptors a child starts with, restart backoff and the give-up
 *  event on a real SUB socket, stop escalating to SIGKILL for the whole
 *  process group, and dependency order.  Waits poll a condition against a
 *  deadline scaled by KEEL_TIME_FACTOR; the timing bounds checked are the
 *  lower ones (a backoff is never cut short) and generous upper ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "child.h"
#include "clock.h"
#include "errpub.h"
#include "fsutil.h"
#include "log.h"
#include "testutil.h"
#include "zsocket.h"

static double factor(void)
{
    const char *f = getenv("KEEL_TIME_FACTOR");
    return f && atof(f) > 0 ? atof(f) : 1.0;
}

typedef struct {
    char dir[64];
    char log[128];              /* the output file */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test-child-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/out.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static const child_timing_t quick = { 0.05, 0.2, 60, 0.3, 3 };

/* A child of `sh -c script`, output to the fixture's file. */
static child_t *shell(fixture_t *f, const char *name, const char *script, child_restart_t restart)
{
    json_t *argv = json_pack("[s,s,s]", "/bin/sh", "-c", script);
    child_args_t args = { .name = name, .argv = argv, .output = CHILD_OUTPUT_FILE, .log_path = f->log,
                          .restart = restart, .timing = quick };
    child_t *c = child_new(&args);
    json_decref(argv);
    return c;
}

static const char *state_of(child_t *c, char *buf, size_t len)
{
    json_t *s = child_status(c);
    snprintf(buf, len, "%s", json_string_value(json_object_get(s, "state")));
    json_decref(s);
    return buf;
}

static bool in_state(child_t *c, const char *want)
{
    char buf[32];
    return !strcmp(state_of(c, buf, sizeof buf), want);
}

/* Runs the children as their owner would until `c` is in state `want`. */
static bool run_until_state(child_t **all, size_t n, child_t *c, const char *want, double seconds)
{
    double until = clock_mono() + seconds * factor();
    while (!in_state(c, want)) {
        if (clock_mono() > until)
            return false;
        for (size_t i = 0; i < n; i++)
            child_run(all[i]);
        usleep(5000);
    }
    return true;
}

static char *file_text(const char *path)
{
    char *text = fs_read_all(path, NULL);
    return text ? text : strdup("");
}

/* Runs `c` until its output file holds `needle`. */
static bool run_until_output(child_t *c, const char *path, const char *needle, double seconds)
{
    double until = clock_mono() + seconds * factor();
    for (;;) {
        child_run(c);
        char *text = file_text(path);
        bool found = strstr(text, needle) != NULL;
        free(text);
        if (found)
            return true;
        if (clock_mono() > until)
            return false;
        usleep(5000);
    }
}

static json_int_t status_int(child_t *c, const char *key)
{
    json_t *s = child_status(c);
    json_int_t v = json_integer_value(json_object_get(s, key));
    json_decref(s);
    return v;
}

static void test_backoff_doubles_to_its_cap(void **state)
{
    (void)state;
    assert_true(child_backoff(1, 1, 60) == 1);
    assert_true(child_backoff(3, 1, 60) == 4);
    assert_true(child_backoff(10, 1, 60) == 60);
    assert_true(child_backoff(0, 2, 60) == 2);
}

static void test_exit_code_and_output_in_order_in_a_file(void **state)
{
    fixture_t *f = *state;
    child_t *c = shell(f, "Crasher", "echo one; echo two >&2; echo three; exit 3", CHILD_RESTART_NEVER);
    assert_true(in_state(c, "stopped"));
    child_run(c);
    assert_int_equal(child_pid(c), 0);         /* not wanted yet: nothing runs */
    child_start(c);
    assert_true(run_until_state(&c, 1, c, "exited", 5));
    assert_int_equal(status_int(c, "last_exit"), 3);
    assert_int_equal(child_starts(c), 1);
    char *text = file_text(f->log);
    assert_string_equal(text, "one\ntwo\nthree\n");     /* one pipe: the order written */
    free(text);
    child_destroy(&c);
    assert_null(c);
}

static void test_environment_directory_and_only_three_descriptors(void **state)
{
    fixture_t *f = *state;
    int leaked = dup2(STDIN_FILENO, 57);        /* keeld's own, without close-on-exec */
    assert_int_equal(leaked, 57);
    json_t *argv = json_pack("[s,s,s]", "/bin/sh", "-c",
                             "echo \"greeting=$GREETING\"; echo \"cwd=$(pwd)\";"
                             " for d in /proc/$$/fd/*; do echo \"fd=${d##*/}\"; done");
    json_t *env = json_pack("{s:s, s:i}", "GREETING", "hello-env", "COUNT", 3);
    child_args_t args = { .name = "Env", .argv = argv, .env = env, .cwd = f->dir,
                          .output = CHILD_OUTPUT_FILE, .log_path = f->log,
                          .restart = CHILD_RESTART_NEVER, .timing = quick };
    child_t *c = child_new(&args);
    json_decref(argv);
    json_decref(env);
    child_start(c);
    assert_true(run_until_state(&c, 1, c, "exited", 5));
    char *text = file_text(f->log);
    assert_non_null(strstr(text, "greeting=hello-env\n"));
    char cwd[128];
    snprintf(cwd, sizeof cwd, "cwd=%s\n", f->dir);
    assert_non_null(strstr(text, cwd));
    char fd[32];
    snprintf(fd, sizeof fd, "fd=%d\n", leaked);
    assert_null(strstr(text, fd));
    assert_non_null(strstr(text, "fd=2\n"));
    free(text);
    close(leaked);
    child_destroy(&c);
}

/* The level of the JSON log line whose msg is `msg`, or NULL. */
static char *level_of(const char *logfile, const char *msg)
{
    char *text = file_text(logfile), *level = NULL;
    for (char *line = strtok(text, "\n"); line && !level; line = strtok(NULL, "\n")) {
        json_t *entry = json_loads(line, 0, NULL);
        if (!strcmp(json_string_value(json_object_get(entry, "msg")) ?: "", msg))
            level = strdup(json_string_value(json_object_get(entry, "level")));
        json_decref(entry);
    }
    free(text);
    return level;
}

static void test_output_as_log_lines_stderr_at_error(void **state)
{
    fixture_t *f = *state;
    char logfile[160];
    snprintf(logfile, sizeof logfile, "%s/keel.log", f->dir);
    assert_int_equal(log_open(logfile), 0);
    log_set_level(LOG_INFO);
    json_t *argv = json_pack("[s,s,s]", "/bin/sh", "-c", "echo hello; echo; printf 'half a line' >&2");
    child_args_t args = { .name = "Talker", .argv = argv, .output = CHILD_OUTPUT_LOG | CHILD_OUTPUT_FILE,
                          .log_path = f->log, .restart = CHILD_RESTART_NEVER, .timing = quick };
    child_t *c = child_new(&args);
    json_decref(argv);
    child_start(c);
    assert_true(run_until_state(&c, 1, c, "exited", 5));
    child_destroy(&c);
    log_set_level(LOG_ERROR);
    log_close();
    char *level = level_of(logfile, "[Talker] hello");
    assert_string_equal(level, "info");
    free(level);
    level = level_of(logfile, "[Talker] half a line");     /* an unfinished last line is kept */
    assert_string_equal(level, "error");
    free(level);
    assert_null(level_of(logfile, "[Talker] "));          /* an empty line is not logged */
    char *text = file_text(f->log);
    assert_string_equal(text, "hello\n\nhalf a line");    /* and the file has it all */
    free(text);
}

/* Restart n waits backoff(n): 0.05, 0.1, 0.2 (the cap); then it gives up. */
static void test_restarts_back_off_then_give_up(void **state)
{
    fixture_t *f = *state;
    child_t *c = shell(f, "Looper", "exit 1", CHILD_RESTART_ON_FAILURE);
    child_start(c);
    double started[8];
    int seen = 0;
    double until = clock_mono() + 10 * factor();
    while (!child_failed(c) && clock_mono() < until) {
        child_run(c);
        if (child_starts(c) > seen && seen < 8)
            started[seen++] = clock_mono();
        usleep(1000);
    }
    assert_true(child_failed(c));
    assert_int_equal(seen, 4);                  /* the first run and max_restarts (3) more */
    for (int n = 1; n < seen; n++) {
        double gap = started[n] - started[n - 1];
        double want = child_backoff(n, quick.backoff_base_s, quick.backoff_max_s);
        assert_true(gap >= want);
        assert_true(gap < want + 1.0 * factor());
    }
    assert_true(in_state(c, "failed"));
    assert_int_equal(status_int(c, "last_exit"), 1);
    child_start(c);                             /* a start forgets the give-up */
    assert_false(child_failed(c));
    child_destroy(&c);
}

static void test_stop_escalates_to_sigkill_for_the_whole_group(void **state)
{
    fixture_t *f = *state;
    child_t *c = shell(f, "Deaf", "trap '' TERM; sleep 60 & echo \"ready $!\"; while :; do sleep 0.05; done",
                       CHILD_RESTART_ALWAYS);
    child_start(c);
    assert_true(run_until_output(c, f->log, "ready ", 5));
    char *text = file_text(f->log);
    int grandchild = atoi(strstr(text, "ready ") + 6);
    free(text);
    pid_t pid = child_pid(c);
    assert_true(pid > 0 && grandchild > 0);
    double asked = clock_mono();
    child_stop(c);
    assert_true(in_state(c, "stopping"));
    assert_true(run_until_state(&c, 1, c, "exited", 5));
    assert_true(clock_mono() - asked >= quick.stop_grace_s);   /* SIGTERM was ignored */
    assert_int_equal(status_int(c, "last_exit"), -SIGKILL);
    assert_int_equal(kill(pid, 0), -1);                         /* reaped: no zombie */
    assert_int_equal(errno, ESRCH);
    /* The program's own child went with it (its group), reaped by init. */
    char stat[64];
    snprintf(stat, sizeof stat, "/proc/%d/stat", grandchild);
    double until = clock_mono() + 5 * factor();
    while (access(stat, F_OK) == 0 && clock_mono() < until)
        usleep(10000);
    assert_int_not_equal(access(stat, F_OK), 0);
    child_run(c);
    assert_int_equal(child_pid(c), 0);          /* stopped means not restarted, whatever the policy */
    child_destroy(&c);
}

static void test_restart_is_at_once_without_backoff(void **state)
{
    fixture_t *f = *state;
    child_t *c = shell(f, "Sleeper", "exec sleep 60", CHILD_RESTART_ON_FAILURE);
    child_start(c);
    assert_true(run_until_state(&c, 1, c, "running", 5));
    pid_t first = child_pid(c);
    child_restart(c);
    assert_true(in_state(c, "stopping"));
    assert_true(run_until_state(&c, 1, c, "running", 5));
    assert_true(child_pid(c) != first);
    assert_int_equal(status_int(c, "restarts"), 0);
    assert_int_equal(status_int(c, "last_exit"), -SIGTERM);
    child_destroy(&c);
}

static void test_dependencies_start_first_and_cycles_are_refused(void **state)
{
    fixture_t *f = *state;
    child_t *dep = shell(f, "Dep", "exec sleep 60", CHILD_RESTART_ON_FAILURE);
    child_t *main = shell(f, "Main", "exec sleep 60", CHILD_RESTART_ON_FAILURE);
    assert_int_equal(child_depends_on(main, dep), 0);
    assert_int_equal(child_depends_on(dep, main), -1);     /* a cycle would never start */
    child_t *all[] = { main, dep };             /* Main is run first each pass */
    child_start(main);                          /* and starts Dep, which nobody asked for */
    double until = clock_mono() + 5 * factor();
    while (child_pid(main) == 0 && clock_mono() < until) {
        child_run(main);
        assert_true(child_pid(main) == 0 || child_pid(dep) > 0);
        child_run(dep);
        usleep(5000);
    }
    assert_true(child_pid(main) > 0 && child_pid(dep) > 0);
    child_stop_all(all, 2);
    assert_int_equal(child_pid(main), 0);
    assert_int_equal(child_pid(dep), 0);
    child_destroy(&main);
    child_destroy(&dep);
}

static void test_a_failed_dependency_fails_its_dependents(void **state)
{
    fixture_t *f = *state;
    json_t *argv = json_pack("[s]", "/nonexistent/agent");
    child_args_t args = { .name = "Broken", .argv = argv, .output = CHILD_OUTPUT_FILE, .log_path = f->log,
                          .restart = CHILD_RESTART_ON_FAILURE, .timing = quick };
    child_t *broken = child_new(&args);
    json_decref(argv);
    char why[256];
    assert_int_equal(child_check(broken, why, sizeof why), -1);
    assert_string_equal(why, "/nonexistent/agent: No such file or directory");
    child_t *orphan = shell(f, "Orphan", "exec sleep 60", CHILD_RESTART_ON_FAILURE);
    child_depends_on(orphan, broken);
    child_t *all[] = { broken, orphan };
    child_start(orphan);
    assert_true(run_until_state(all, 2, orphan, "failed", 5));
    assert_true(child_failed(broken));
    assert_int_equal(child_starts(orphan), 0);
    json_t *s = child_status(broken);
    assert_string_equal(json_string_value(json_object_get(s, "error")), why);
    assert_int_equal(json_integer_value(json_object_get(s, "last_exit")), 127);
    json_decref(s);
    child_t *sh = shell(f, "Shell", "true", CHILD_RESTART_NEVER);
    assert_int_equal(child_check(sh, why, sizeof why), 0);
    child_destroy(&sh);
    child_destroy(&orphan);
    child_destroy(&broken);
}

static void test_give_up_is_an_errorbus_event(void **state)
{
    fixture_t *f = *state;
    void *sub = zsocket_new(ZMQ_SUB, ZSOCKET_SERVER, 0);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    assert_int_equal(zmq_bind(sub, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t len = sizeof endpoint;
    zmq_getsockopt(sub, ZMQ_LAST_ENDPOINT, endpoint, &len);
    errpub_t *bus = errpub_new(endpoint, "CoreOrchestrator");
    errpub_start(bus);
    json_t *argv = json_pack("[s,s,s]", "/bin/sh", "-c", "exit 2");
    child_args_t args = { .name = "Quitter", .argv = argv, .output = CHILD_OUTPUT_FILE, .log_path = f->log,
                          .restart = CHILD_RESTART_ALWAYS, .timing = quick, .errors = bus };
    child_t *c = child_new(&args);
    json_decref(argv);
    child_start(c);
    assert_true(run_until_state(&c, 1, c, "failed", 5));
    json_t *event = NULL;
    zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
    while (!event && zmq_poll(&item, 1, (long)(5000 * factor())) == 1) {
        char frame[4096];
        int n = zmq_recv(sub, frame, sizeof frame - 1, 0);
        assert_true(n > 6);
        frame[n] = '\0';
        json_t *e = json_loads(frame + 6, 0, NULL);     /* after "ERROR:" */
        if (!strcmp(json_string_value(json_object_get(e, "error_type")) ?: "", "agent_restart_give_up"))
            event = e;
        else
            json_decref(e);
    }
    assert_non_null(event);
    json_t *details = json_object_get(event, "details");
    assert_string_equal(json_string_value(json_object_get(details, "agent")), "Quitter");
    assert_int_equal(json_integer_value(json_object_get(details, "restarts")), quick.max_restarts);
    assert_int_equal(json_integer_value(json_object_get(details, "last_exit")), 2);
    assert_string_equal(json_string_value(json_object_get(event, "severity")), "critical");
    json_decref(event);
    child_destroy(&c);
    errpub_destroy(&bus);
    zmq_close(sub);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_its_cap),
        cmocka_unit_test_setup_teardown(test_exit_code_and_output_in_order_in_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_directory_and_only_three_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_as_log_lines_stderr_at_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restarts_back_off_then_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_escalates_to_sigkill_for_the_whole_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_is_at_once_without_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependencies_start_first_and_cycles_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_dependency_fails_its_dependents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_give_up_is_an_errorbus_event, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
