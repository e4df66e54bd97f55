/*  test_errorbus_evstore: the ErrorBus write path against a real SQLite
 *  file: one transaction per batch, a clean stop writes everything queued,
 *  the bounded queue waits for a working writer and counts what it drops
 *  when there is none, duplicates by error_id (also several in one
 *  many-row INSERT, where SQLite only says how many rows it stored), the
 *  quarantine, per-agent health rows (EB-13), grouping, retention, and
 *  errors_collected = -1 when the count fails (EB-15). */
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
#include "errorbus/analysis.h"
#include "errorbus/evstore.h"
#include "errorbus/ingress.h"
#include "errorbus/rates.h"
#include "errpub.h"
#include "testutil.h"

typedef struct {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/keel-evstore-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/sub/error_system.db", f->dir);
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

static event_t *make(const char *agent, const char *id, const char *message, double ts)
{
    char text[512], reason[128];
    snprintf(text, sizeof text, "{\"agent\":\"%s\",\"error_type\":\"t\",\"message\":\"%s\","
             "\"timestamp\":%.3f%s%s%s}", agent, message, ts, id ? ",\"error_id\":\"" : "",
             id ? id : "", id ? "\"" : "");
    event_t *e = normalise_text(text, strlen(text), FRAMING_F1, clock_wall(), reason, sizeof reason);
    assert_non_null(e);
    return e;
}

static double scalar(evstore_t *s, const char *sql)
{
    return evstore_scalar(s, -1, sql, "");
}

static void test_one_transaction_per_batch_and_stop_flushes(void **state)
{
    fixture_t *f = *state;
    char err[256];
    evstore_t *s = evstore_new(f->path, NULL, NULL, 100000, err, sizeof err);
    assert_non_null(s);
    for (int i = 0; i < 5000; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "event %d", i);
        assert_int_equal(evstore_submit(s, make(i % 2 ? "A" : "B", NULL, msg, clock_wall())), 0);
    }
    assert_int_equal(evstore_start(s), 0);
    for (int i = 0; i < 1000; i++)
        evstore_submit(s, make("C", NULL, "late", clock_wall()));
    evstore_stop(s);
    evstore_stats_t st;
    evstore_stats(s, &st);
    assert_int_equal(st.stored, 6000);
    assert_int_equal(st.total, 6000);
    assert_true(st.batches >= 1 && st.batches <= 1001);
    assert_true(st.batches < 100);
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM errors"), 6000);
    /* EB-13: one health row per agent with the full count */
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM agent_health"), 3);
    assert_int_equal((long)scalar(s, "SELECT error_count FROM agent_health WHERE agent='A'"), 2500);
    /* grouping: numbers stripped, so each agent's events are one group */
    assert_int_equal((long)scalar(s, "SELECT count FROM error_groups WHERE agent='B'"), 2500);
    assert_int_equal((long)scalar(s, "SELECT count(DISTINCT signature) FROM error_groups"), 2);
    evstore_destroy(&s);
    assert_null(s);

    s = evstore_new(f->path, NULL, NULL, 10, err, sizeof err);
    evstore_stats(s, &st);
    assert_int_equal(st.total, 6000);
    evstore_destroy(&s);
}

/* Proves EB-55 (docs/logic-preservation.md). */
static void test_queue_bound_counts_drops(void **state)
{
    fixture_t *f = *state;
    char err[256];
    metrics_t *m = metrics_new();
    evstore_t *s = evstore_new(f->path, m, NULL, 10, err, sizeof err);
    for (int i = 0; i < 25; i++)
        evstore_submit(s, make("Q", NULL, "m", clock_wall()));
    evstore_stats_t st;
    evstore_stats(s, &st);
    assert_int_equal(st.dropped, 15);
    assert_int_equal(st.queued, 10);
    assert_true(metrics_value(m, "keel_errorbus_dropped_total", "reason=\"queue_full\"") == 15);
    evstore_start(s);
    /* with a running writer a full queue waits instead of dropping */
    for (int i = 0; i < 2000; i++)
        assert_int_equal(evstore_submit(s, make("W", NULL, "m", clock_wall())), 0);
    evstore_stop(s);
    evstore_stats(s, &st);
    assert_int_equal(st.stored, 2010);
    assert_int_equal(st.dropped, 15);
    evstore_destroy(&s);
    metrics_destroy(&m);
}

/* Proves EB-36 (docs/logic-preservation.md). */
static void test_duplicates_quarantine_and_wait(void **state)
{
    fixture_t *f = *state;
    char err[256];
    evstore_t *s = evstore_new(f->path, NULL, NULL, 1000, err, sizeof err);
    evstore_start(s);
    assert_int_equal(evstore_submit_wait(s, make("D", "id-1", "one", clock_wall()), 5000, err,
                                         sizeof err), 0);
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM errors WHERE error_id='id-1'"), 1);
    assert_int_equal(evstore_submit_wait(s, make("D", "id-1", "two", clock_wall()), 5000, err,
                                         sizeof err), 0);
    evstore_quarantine(s, "F1", "payload: not JSON", "\xff\x01 bad", 6);
    evstore_stop(s);
    evstore_stats_t st;
    evstore_stats(s, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.quarantined, 1);
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM errors WHERE error_id='id-1'"), 1);
    json_t *q = evstore_query(s, "SELECT reason, sample, size FROM quarantine", "");
    assert_int_equal(json_array_size(q), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(q, 0), "sample")),
                        "\\xff\\x01 bad");
    json_decref(q);
    evstore_destroy(&s);
}

typedef struct {
    size_t n;
    char messages[128][16];
} sunk_t;

static void sink(void *ctx, event_t **events, size_t n)
{
    sunk_t *sunk = ctx;
    for (size_t i = 0; i < n; i++) {
        if (sunk->n < 128)
            snprintf(sunk->messages[sunk->n], sizeof sunk->messages[0], "%s", events[i]->message);
        sunk->n++;
        event_destroy(&events[i]);
    }
}

static bool sunk_has(const sunk_t *sunk, const char *message)
{
    for (size_t i = 0; i < sunk->n && i < 128; i++)
        if (!strcmp(sunk->messages[i], message))
            return true;
    return false;
}

/* One batch of 100 events, written as three INSERTs of 32 rows and four
 * single ones: ten repeat an id stored before, two ids repeat within one
 * many-row INSERT and one between an INSERT of 32 and a single one.
 * Exactly the first of each id is stored and reaches the sink. */
static void test_duplicates_inside_one_insert(void **state)
{
    fixture_t *f = *state;
    char err[256], id[32], msg[16];
    evstore_t *s = evstore_new(f->path, NULL, NULL, 1000, err, sizeof err);
    sunk_t sunk = { 0 };
    evstore_set_sink(s, sink, &sunk);
    evstore_start(s);
    assert_int_equal(evstore_submit_wait(s, make("D", "old", "before", clock_wall()), 5000, err,
                                         sizeof err), 0);
    evstore_stop(s);
    assert_int_equal(sunk.n, 1);
    sunk.n = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        snprintf(msg, sizeof msg, "m%d", i);
        const char *given = i % 10 == 3 ? "old" : i == 40 || i == 41 ? "twin"
                          : i == 90 || i == 97 ? "pair" : id;
        assert_int_equal(evstore_submit(s, make("D", given, msg, clock_wall())), 0);
    }
    evstore_start(s);
    evstore_stop(s);
    evstore_stats_t st;
    evstore_stats(s, &st);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.stored, 1 + 88);
    assert_int_equal(st.duplicates, 12);
    assert_int_equal(sunk.n, 88);
    assert_true(sunk_has(&sunk, "m40") && !sunk_has(&sunk, "m41"));
    assert_true(sunk_has(&sunk, "m90") && !sunk_has(&sunk, "m97"));
    assert_true(!sunk_has(&sunk, "m3") && sunk_has(&sunk, "m99"));
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM errors"), 89);
    json_t *rows = evstore_query(s, "SELECT message FROM errors WHERE error_id IN ('old', 'twin',"
                                    " 'pair') ORDER BY id", "");
    assert_int_equal(json_array_size(rows), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "message")),
                        "before");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "message")),
                        "m40");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 2), "message")),
                        "m90");
    json_decref(rows);
    assert_int_equal((long)scalar(s, "SELECT error_count FROM agent_health WHERE agent='D'"), 89);
    evstore_destroy(&s);
}

static void test_retention_and_count_failure(void **state)
{
    fixture_t *f = *state;
    char err[256];
    evstore_t *s = evstore_new(f->path, NULL, NULL, 1000, err, sizeof err);
    evstore_set_retention(s, 1, 0.05);
    evstore_start(s);
    assert_int_equal(evstore_submit_wait(s, make("Old", NULL, "old", clock_wall() - 3 * 86400),
                                         5000, err, sizeof err), 0);
    assert_int_equal(evstore_submit_wait(s, make("New", NULL, "new", clock_wall()), 5000, err,
                                         sizeof err), 0);
    for (int i = 0; i < 100 && scalar(s, "SELECT count(*) FROM errors WHERE agent='Old'") != 0; i++)
        usleep(20000);
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM errors WHERE agent='Old'"), 0);
    assert_int_equal((long)scalar(s, "SELECT count(*) FROM errors WHERE agent='New'"), 1);
    evstore_stop(s);
    /* EB-15: the count query failing reads as -1 */
    assert_true(evstore_exec(s, "DROP VIEW error_log", "") >= 0);
    assert_true(evstore_exec(s, "ALTER TABLE errors RENAME TO errors_old", "") >= 0);
    assert_true(scalar(s, "SELECT count(*) FROM errors") == -1);
    evstore_destroy(&s);
}

/* Every Keel service reports through errpub (F1 to the ingress): the
 * real publisher into the real ingress lands one row per report. */
static void test_errpub_reaches_the_ingress(void **state)
{
    fixture_t *f = *state;
    char err[256], endpoint[64];
    int port = tu_free_port();
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    evstore_t *s = evstore_new(f->path, NULL, NULL, 1000, err, sizeof err);
    ingress_t *in = ingress_new(endpoint, s, NULL, NULL, 1000, 1 << 20);
    assert_non_null(in);
    assert_int_equal(evstore_start(s), 0);
    assert_int_equal(ingress_start(in), 0);
    errpub_t *pub = errpub_new(endpoint, "ResourceManager");
    errpub_start(pub);
    for (int i = 0; i < 200 && scalar(s, "SELECT count(*) FROM errors") < 1; i++) {
        json_t *details = json_pack("{s:i}", "try", i);
        errpub_report(pub, "allocation_failed", "ERROR", details, "no room for model %d", i);
        json_decref(details);
        usleep(25000);
    }
    ingress_stop(in);
    evstore_stop(s);
    assert_true(scalar(s, "SELECT count(*) FROM errors WHERE agent='ResourceManager'"
                          " AND error_type='allocation_failed' AND framing='F1'") >= 1);
    assert_true(ingress_received(in) >= 1);
    errpub_destroy(&pub);
    ingress_destroy(&in);
    evstore_destroy(&s);
}

static long count_of(json_t *snap, const char *key)
{
    return (long)json_integer_value(json_object_get(json_object_get(snap, key), "count"));
}

/* Sliding windows: old buckets stop counting, ranks keep the worst level,
 * and keys past the bound are counted under "(other)". */
static void test_rates_window_rank_and_bound(void **state)
{
    (void)state;
    rates_t *r = rates_new(1, 10, 3);
    rates_add(r, "a", 1000.2, 5, 1);
    rates_add(r, "a", 1003.5, 2, 4);
    rates_add(r, "b", 1004.0, 1, 2);
    rates_add(r, "c", 1004.0, 7, 3);        /* third key: the bound keeps it for (other) */
    rates_add(r, "d", 1004.0, 1, 1);
    json_t *snap = rates_snapshot(r, 1004.9, 10);
    assert_int_equal(count_of(snap, "a"), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(snap, "a"), "rank")), 4);
    assert_int_equal(count_of(snap, "b"), 1);
    assert_int_equal(count_of(snap, "(other)"), 8);
    assert_null(json_object_get(snap, "c"));
    json_decref(snap);
    snap = rates_snapshot(r, 1004.9, 2);     /* the last two seconds only */
    assert_int_equal(count_of(snap, "a"), 2);
    json_decref(snap);
    snap = rates_snapshot(r, 1020.0, 10);    /* everything aged out */
    assert_int_equal(json_object_size(snap), 0);
    json_decref(snap);
    rates_add(r, "a", 1013.2, 3, 1);         /* same ring slot as 1003, a later lap */
    snap = rates_snapshot(r, 1013.5, 10);
    assert_int_equal(count_of(snap, "a"), 3);
    json_decref(snap);
    rates_destroy(&r);
    assert_null(r);
}

/* Proves EB-52 (docs/logic-preservation.md). */
static void test_eb52_thresholds(void **state)
{
    (void)state;
    assert_int_equal(analysis_threshold("critical"), 1);
    assert_int_equal(analysis_threshold("high"), 3);
    assert_int_equal(analysis_threshold("medium"), 5);
    assert_int_equal(analysis_threshold("low"), 10);
    assert_int_equal(analysis_threshold("other"), 10);
    assert_int_equal(evstore_level_rank("critical"), 4);
    assert_int_equal(evstore_level_rank("error"), 3);
    assert_int_equal(evstore_level_rank("warning"), 2);
    assert_int_equal(evstore_level_rank("info"), 1);
    assert_int_equal(evstore_level_rank(NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_transaction_per_batch_and_stop_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_counts_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_quarantine_and_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_inside_one_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_and_count_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errpub_reaches_the_ingress, setup, teardown),
        cmocka_unit_test(test_rates_window_rank_and_bound),
        cmocka_unit_test(test_eb52_thresholds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
