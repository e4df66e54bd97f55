/*  test_resource_units: the ResourceManager+Scheduler's pure parts, each
 *  checked against values worked out by hand from the RS checklist: the VRAM
 *  policy rules (RS-52, RS-53, RS-56, RS-60, RS-61, RS-64), the three-level
 *  queue (RS-37), the reservation table and admission in MiB (RS-21,
 *  RS-23), the threshold check (RS-15) and the stats history (RS-27). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resource/alloc.h"
#include "resource/manager.h"
#include "resource/stats.h"
#include "resource/taskq.h"
#include "resource/vram_policy.h"

static json_t *table(void)
{
    return json_loads("{"
                      "\"big\":{\"vram_usage_mb\":8000,\"device\":\"MainPC\",\"last_used\":100},"
                      "\"mid\":{\"vram_usage_mb\":4000,\"device\":\"MainPC\",\"last_used\":50},"
                      "\"small\":{\"vram_usage_mb\":1000,\"device\":\"MainPC\",\"last_used\":900},"
                      "\"pc2\":{\"vram_usage_mb\":6000,\"device\":\"PC2\",\"last_used\":10},"
                      "\"odd\":{\"vram_usage_mb\":9000,\"device\":\"mainpc\",\"last_used\":0},"
                      "\"nolast\":{\"vram_usage_mb\":10,\"device\":\"PC2\"}"
                      "}", 0, NULL);
}

static void test_critical_largest_first_RS52_RS56(void **state)
{
    (void)state;
    json_t *models = table();
    json_t *picks = vram_pick_critical(models, "MainPC", "vram_usage_mb");
    assert_int_equal(json_array_size(picks), 2);
    assert_string_equal(json_string_value(json_array_get(picks, 0)), "big");
    assert_string_equal(json_string_value(json_array_get(picks, 1)), "mid");
    json_decref(picks);
    picks = vram_pick_critical(models, "PC2", "vram_usage_mb");
    assert_string_equal(json_string_value(json_array_get(picks, 0)), "pc2");
    json_decref(picks);
    /* "mainpc" is not "MainPC": never a candidate */
    picks = vram_pick_critical(models, "Other", "vram_usage_mb");
    assert_int_equal(json_array_size(picks), 0);
    json_decref(picks);
    json_decref(models);
}

/* Proves RS-55 (docs/logic-preservation.md). */
static void test_idle_oldest_first_RS53_RS55(void **state)
{
    (void)state;
    json_t *models = table();
    /* now 1000, timeout 900: idle iff last_used < 100 (strictly greater gap) */
    json_t *idle = vram_idle(models, "MainPC", 1000, 900);
    assert_int_equal(json_array_size(idle), 1);
    assert_string_equal(json_string_value(json_array_get(idle, 0)), "mid");
    json_decref(idle);
    idle = vram_idle(models, "PC2", 1000, 900);
    assert_int_equal(json_array_size(idle), 2);
    assert_string_equal(json_string_value(json_array_get(idle, 0)), "nolast");
    assert_string_equal(json_string_value(json_array_get(idle, 1)), "pc2");
    json_decref(idle);
    idle = vram_idle(models, "MainPC", 1000, 10000);
    assert_int_equal(json_array_size(idle), 0);
    json_decref(idle);
    json_decref(models);
}

static void test_predictors_RS60_RS61(void **state)
{
    (void)state;
    json_t *loaded = json_loads("{\"whisper-large-v3\":{}}", 0, NULL);
    json_t *queue = json_loads("[{\"task_type\":\"tts\"},{\"task_type\":\"asr\"},"
                               "{\"task_type\":\"chat\"},{\"task_type\":\"image_generation\"}]", 0, NULL);
    assert_string_equal(vram_predict_queue(queue, loaded), "gpt-3.5-turbo");
    json_decref(queue);
    double now = 100000;
    json_t *patterns = json_object();
    json_t *hot = json_array(), *few = json_array(), *fresh = json_array();
    for (int i = 0; i < 400; i++)
        json_array_append_new(hot, json_real(now - 3000 + i * 6.0));   /* last at now-606 */
    for (int i = 0; i < 10; i++)
        json_array_append_new(few, json_real(now - 600));
    for (int i = 0; i < 400; i++)
        json_array_append_new(fresh, json_real(now - 100));           /* used 100 s ago */
    json_object_set_new(patterns, "few", few);
    json_object_set_new(patterns, "fresh", fresh);
    json_object_set_new(patterns, "hot", hot);
    assert_string_equal(vram_predict_pattern(patterns, loaded, now, 3600), "hot");
    json_object_set_new(loaded, "hot", json_object());
    assert_null(vram_predict_pattern(patterns, loaded, now, 3600));
    json_decref(patterns);
    json_decref(loaded);
}

/* Proves RS-63 (docs/logic-preservation.md). */
static void test_batch_and_fragmentation_RS63_RS64(void **state)
{
    (void)state;
    assert_int_equal(vram_batch_size(10000, 1.0), 8000);
    assert_int_equal(vram_batch_size(10000, 3000), 2);
    assert_int_equal(vram_batch_size(100, 1000), 1);
    assert_int_equal(vram_batch_size(100, 0), 1);
    assert_true(vram_fragmentation(10000, 2000) > 0.79 && vram_fragmentation(10000, 2000) < 0.81);
    assert_true(vram_fragmentation(0, 0) == 0.0);
    assert_true(vram_fragmentation(1000, 2000) == 0.0);
}

static void test_make_room(void **state)
{
    (void)state;
    json_t *models = json_loads("{"
                                "\"a\":{\"vram_mb\":3000,\"priority\":\"high\",\"last_used\":1},"
                                "\"b\":{\"vram_mb\":2000,\"priority\":\"low\",\"last_used\":50},"
                                "\"c\":{\"vram_mb\":1000,\"priority\":\"low\",\"last_used\":10},"
                                "\"p\":{\"vram_mb\":9000,\"priority\":\"low\",\"pinned\":true}"
                                "}", 0, NULL);
    double freed;
    json_t *out = vram_make_room(models, 2500, "vram_mb", &freed);
    assert_int_equal(json_array_size(out), 2);
    assert_string_equal(json_string_value(json_array_get(out, 0)), "c");
    assert_string_equal(json_string_value(json_array_get(out, 1)), "b");
    assert_true(freed == 3000);
    json_decref(out);
    out = vram_make_room(models, 7000, "vram_mb", &freed);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
    json_decref(models);
}

static task_t *task(const char *prio)
{
    json_t *p = json_string(prio), *data = json_true();
    task_t *t = task_new("logging", data, task_prio_parse(p));
    json_decref(p);
    return t;
}

/* Proves RS-30 (docs/logic-preservation.md). */
static void test_taskq_order_and_bound_RS37_RS30(void **state)
{
    (void)state;
    taskq_t *q = taskq_new(2);
    task_t *l1 = task("low"), *m1 = task("bogus"), *h1 = task("high"), *m2 = task("medium");
    assert_int_equal(m1->prio, TASK_PRIO_MEDIUM);
    assert_int_equal(taskq_push(q, l1), 0);
    assert_int_equal(taskq_push(q, m1), 0);
    assert_int_equal(taskq_push(q, h1), 0);
    assert_int_equal(taskq_push(q, m2), 0);
    task_t *m3 = task("medium");
    assert_int_equal(taskq_push(q, m3), -1);       /* full: refused, not dropped */
    task_unref(m3);
    assert_int_equal(taskq_size(q, TASK_PRIO_MEDIUM), 2);
    assert_ptr_equal(taskq_pop(q), h1);
    assert_ptr_equal(taskq_pop(q), m1);
    assert_ptr_equal(taskq_pop(q), m2);
    assert_ptr_equal(taskq_pop(q), l1);
    assert_null(taskq_pop(q));
    task_unref(h1);
    task_unref(m1);
    task_unref(m2);
    assert_int_equal(taskq_push(q, l1), 0);        /* left in the queue: destroy frees it */
    taskq_destroy(&q);
    assert_null(q);
}

static stats_sample_t sample_with_gpus(void)
{
    stats_sample_t s;
    memset(&s, 0, sizeof s);
    s.cpu_percent = 50;
    s.cpu_count = 8;
    s.memory_total = 16384ULL * 1024 * 1024;
    s.memory_available = 8192ULL * 1024 * 1024;
    s.memory_percent = 50;
    s.ngpu = 2;
    s.gpus[0].index = 0;
    s.gpus[0].mem_total_bytes = 24564ULL * 1024 * 1024;
    s.gpus[0].mem_used_bytes = 2000ULL * 1024 * 1024;
    s.gpus[0].mem_percent = 100.0 * 2000 / 24564;
    s.gpus[1].index = 1;
    s.gpus[1].mem_total_bytes = 12288ULL * 1024 * 1024;
    s.gpus[1].mem_used_bytes = 11000ULL * 1024 * 1024;
    s.gpus[1].mem_percent = 100.0 * 11000 / 12288;
    return s;
}

static alloc_t *vram(const char *id, double mb, int device)
{
    alloc_t *a = alloc_new(id);
    a->kind = ALLOC_KIND_VRAM;
    a->quantity = mb;
    a->device = device;
    a->amount = json_real(mb);
    a->type = json_string("vram");
    return a;
}

static void test_admission_in_mib_RS21(void **state)
{
    (void)state;
    stats_sample_t s = sample_with_gpus();
    alloc_thresholds_t limits = { 100, 100, 100 };
    allocs_t *t = allocs_new();
    int device = -1;
    double room;
    /* picks the card with most room: the 4090 (22564 MiB free) */
    assert_int_equal(allocs_admit(t, ALLOC_KIND_VRAM, 20000, &s, &limits, &device, &room), 1);
    assert_int_equal(device, 0);
    assert_true(room == 22564);
    allocs_add(t, vram("a", 20000, 0));
    assert_true(allocs_held(t, ALLOC_KIND_VRAM, 0) == 20000);
    /* 2564 left on the 4090, 1288 on the 3060: 3000 fits nowhere */
    device = -1;
    assert_int_equal(allocs_admit(t, ALLOC_KIND_VRAM, 3000, &s, &limits, &device, &room), 0);
    device = 1;
    assert_int_equal(allocs_admit(t, ALLOC_KIND_VRAM, 1288, &s, &limits, &device, &room), 1);
    device = 5;
    assert_int_equal(allocs_admit(t, ALLOC_KIND_VRAM, 1, &s, &limits, &device, &room), -1);
    /* memory: limit 80% of 16384 = 13107.2, used 8192 */
    limits.memory = 80;
    assert_int_equal(allocs_admit(t, ALLOC_KIND_MEMORY, 4915, &s, &limits, &device, &room), 1);
    assert_int_equal(allocs_admit(t, ALLOC_KIND_MEMORY, 4916, &s, &limits, &device, &room), 0);
    /* cpu: 8 cores at 50% busy, threshold 100: 4 cores of room */
    assert_int_equal(allocs_admit(t, ALLOC_KIND_CPU, 4, &s, &limits, &device, &room), 1);
    assert_int_equal(allocs_admit(t, ALLOC_KIND_CPU, 4.5, &s, &limits, &device, &room), 0);
    /* other types are bookkeeping only */
    assert_int_equal(allocs_admit(t, ALLOC_KIND_OTHER, 1e12, &s, &limits, &device, &room), 1);
    alloc_free(allocs_remove(t, "a"));
    assert_true(allocs_held(t, ALLOC_KIND_VRAM, 0) == 0);
    allocs_destroy(&t);
}

static void test_table_many_owner_and_lease_RS23(void **state)
{
    (void)state;
    allocs_t *t = allocs_new();
    char id[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof id, "r%d", i);
        alloc_t *a = vram(id, 1, i % 2);
        if (i % 3 == 0)
            a->owner = strdup("AgentX");
        if (i % 5 == 0)
            a->expires_mono = 10.0;
        allocs_add(t, a);
    }
    assert_int_equal(allocs_count(t), 10000);
    assert_non_null(allocs_find(t, "r9999"));
    assert_null(allocs_find(t, "r10000"));
    json_t *gone = json_array();
    assert_int_equal(allocs_expire(t, 9.0, gone), 0);       /* nothing due yet */
    alloc_t *renewed = allocs_find(t, "r1");
    allocs_set_expiry(t, renewed, 5.0);                        /* a lease given later */
    assert_int_equal(allocs_expire(t, 6.0, gone), 1);
    assert_string_equal(json_string_value(json_array_get(gone, 0)), "r1");
    json_array_clear(gone);
    size_t expired = allocs_expire(t, 11.0, gone);
    assert_int_equal(expired, 2000);
    assert_int_equal(json_array_size(gone), 2000);
    size_t owned = allocs_release_owner(t, "AgentX", NULL);
    assert_int_equal(owned, 3334 - 667);           /* multiples of 3, less those of 15 */
    assert_int_equal(allocs_count(t), 10000 - 1 - 2000 - owned);
    assert_true(allocs_held(t, ALLOC_KIND_VRAM, 0) + allocs_held(t, ALLOC_KIND_VRAM, 1)
                == (double)allocs_count(t));
    json_decref(gone);
    allocs_destroy(&t);
}

/* Proves RS-7 (docs/logic-preservation.md). */
static void test_check_strict_RS15_RS7(void **state)
{
    (void)state;
    stats_sample_t s = sample_with_gpus();     /* cpu 50, memory 50, gpu 89.5 */
    alloc_thresholds_t t = { 80, 80, 90 };
    assert_true(manager_check(&s, &t));
    t.gpu = 80;
    assert_false(manager_check(&s, &t));
    t.gpu = 100;
    t.cpu = 50;                              /* equal is not above */
    assert_true(manager_check(&s, &t));
    t.cpu = 49.9;
    assert_false(manager_check(&s, &t));
    assert_true(stats_sample_gpu_percent(&s) == 89.5);
}

/* Proves RS-11 (docs/logic-preservation.md). */
static void test_stats_history_100_RS27_RS11(void **state)
{
    (void)state;
    stats_t *stats = stats_new("/proc", NULL, 0);
    stats_sample_t s;
    assert_int_equal(stats_sample(stats, &s), 0);
    assert_true(s.cpu_percent == 0.0);                  /* first sample */
    assert_int_equal(s.ngpu, 0);
    for (int i = 0; i < 149; i++)
        stats_sample(stats, &s);
    assert_int_equal(stats_taken(stats), 150);
    assert_int_equal(stats_history(stats), 100);
    json_t *j = stats_sample_json(&s, NULL);
    assert_non_null(json_object_get(j, "gpu_memory_percent"));
    assert_null(json_object_get(j, "gpu_memory_allocated"));
    assert_true(json_is_integer(json_object_get(j, "memory_total")));
    json_decref(j);
    stats_destroy(&stats);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_critical_largest_first_RS52_RS56),
        cmocka_unit_test(test_idle_oldest_first_RS53_RS55),
        cmocka_unit_test(test_predictors_RS60_RS61),
        cmocka_unit_test(test_batch_and_fragmentation_RS63_RS64),
        cmocka_unit_test(test_make_room),
        cmocka_unit_test(test_taskq_order_and_bound_RS37_RS30),
        cmocka_unit_test(test_admission_in_mib_RS21),
        cmocka_unit_test(test_table_many_owner_and_lease_RS23),
        cmocka_unit_test(test_check_strict_RS15_RS7),
        cmocka_unit_test(test_stats_history_100_RS27_RS11),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
