/*  test_resource_journal: the task journal and the scheduler over it, on a
 *  real SQLite file in a temporary directory: a task written is read back
 *  after reopening (what survives a crash), retries rewrite attempts,
 *  deletes remove; the scheduler answers a task synchronously (RS-34),
 *  refuses a full level (RS-37), and restores accepted tasks on start. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errpub.h"
#include "metrics.h"
#include "resource/journal.h"
#include "resource/scheduler.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/keel-rs-journal-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static task_t *make_task(int64_t id, const char *prio)
{
    json_t *p = json_string(prio), *data = json_pack("{s:i}", "n", (int)id);
    task_t *t = task_new("analysis", data, task_prio_parse(p));
    json_decref(p);
    json_decref(data);
    t->id = id;
    t->max_retries = 3;
    t->timeout_s = 30;
    t->created_at = 1000.0 + (double)id;
    return t;
}

static void collect(void *arg, task_t *task)
{
    json_t *ids = arg;
    json_array_append_new(ids, json_pack("{s:I, s:i, s:s, s:f}", "id", (json_int_t)task->id,
                                         "attempts", task->attempts, "prio",
                                         task_prio_name(task->prio), "due", task->not_before));
    task_unref(task);
}

static void test_journal_round_trip(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/j.db", dir);
    journal_t *j = journal_new(path, true, err, sizeof err);
    assert_non_null(j);
    task_t *tasks[3] = { make_task(1, "low"), make_task(2, "high"), make_task(3, "medium") };
    assert_int_equal(journal_apply(j, tasks, 3, NULL, 0, NULL, 0), 0);
    journal_update_t up = { 2, 1, 5000.0 };
    int64_t gone = 3;
    assert_int_equal(journal_apply(j, NULL, 0, &up, 1, &gone, 1), 0);
    assert_int_equal(journal_max_id(j), 2);
    assert_int_equal(journal_count(j), 2);
    json_t *one = journal_get(j, 1);
    assert_string_equal(json_string_value(json_object_get(one, "priority")), "low");
    json_decref(one);
    assert_null(journal_get(j, 3));
    json_t *list = journal_list(j, 10);
    assert_int_equal(json_array_size(list), 2);         /* high first */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "task_id")), 2);
    json_decref(list);
    journal_destroy(&j);
    for (int i = 0; i < 3; i++)
        task_unref(tasks[i]);
    j = journal_new(path, false, err, sizeof err);
    json_t *ids = json_array();
    assert_int_equal(journal_load(j, collect, ids), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ids, 1), "attempts")), 1);
    assert_true(json_real_value(json_object_get(json_array_get(ids, 1), "due")) == 5000.0);
    json_decref(ids);
    journal_destroy(&j);
}

static scheduler_t *open_sched(metrics_t *m, errpub_t *e, size_t queue_size)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/tasks.db", dir);
    scheduler_config_t c = { .queue_size = queue_size, .workers = 2, .timeout_s = 1,
                            .max_retries = 1, .backoff_s = 0.01, .backoff_max_s = 0.1,
                            .reply_wait_s = 5, .durable = false };
    scheduler_t *s = scheduler_new(&c, path, m, e, err, sizeof err);
    assert_int_equal(scheduler_start(s), 0);
    return s;
}

static json_t *task_reply(scheduler_t *s, const char *text)
{
    json_t *body = json_loads(text, 0, NULL);
    json_t *reply = scheduler_task(s, body);
    json_decref(body);
    return reply;
}

static void test_scheduler_sync_full_and_restore_RS34_RS37(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    errpub_t *e = errpub_new("tcp://127.0.0.1:9", "test");
    scheduler_t *s = open_sched(m, e, 2);
    assert_non_null(s);
    json_t *r = task_reply(s, "{\"type\":\"logging\",\"data\":{\"a\":1}}");
    assert_string_equal(json_string_value(json_object_get(r, "message")),
                        "Task logging processed successfully");
    json_decref(r);
    json_t *stats = scheduler_queue_stats(s);
    json_t *logging = json_object_get(json_object_get(stats, "task_stats"), "logging");
    assert_int_equal(json_integer_value(json_object_get(logging, "success")), 1);
    json_decref(stats);
    for (int i = 0; i < 2; i++) {
        r = task_reply(s, "{\"type\":\"memory\",\"data\":1,\"priority\":\"low\",\"delay_s\":600}");
        assert_string_equal(json_string_value(json_object_get(r, "message")), "Task queued");
        json_decref(r);
    }
    r = task_reply(s, "{\"type\":\"memory\",\"data\":1,\"priority\":\"low\",\"delay_s\":600}");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "error");
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "Task queue full"));
    json_decref(r);
    r = task_reply(s, "{\"type\":\"nope\",\"data\":1}");
    assert_string_equal(json_string_value(json_object_get(r, "error")), "Unknown task type: nope");
    json_decref(r);
    scheduler_destroy(&s);
    assert_null(s);
    s = open_sched(m, e, 2);             /* the two delayed tasks come back */
    stats = scheduler_queue_stats(s);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "queue_sizes"), "low")), 2);
    assert_int_equal(json_object_size(json_object_get(stats, "task_stats")), 0);
    json_decref(stats);
    scheduler_destroy(&s);
    errpub_destroy(&e);
    metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journal_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_sync_full_and_restore_RS34_RS37, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
