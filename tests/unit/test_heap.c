/*  test_heap: ordering (priority, then insertion order), bounds, and the
 *  destructor on clear and destroy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "heap.h"

typedef struct {
    int priority;
    int seq;
} item_t;

static int destroyed;

static void count_destroy(void *item)
{
    destroyed++;
    free(item);
}

static void test_empty(void **state)
{
    (void)state;
    heap_t *h = heap_new(0, NULL);
    assert_non_null(h);
    double p = 42;
    assert_null(heap_pop(h, &p));
    assert_null(heap_peek(h, NULL));
    assert_true(p == 42);
    assert_int_equal(heap_size(h), 0);
    assert_int_equal(heap_capacity(h), 0);
    heap_destroy(&h);
    assert_null(h);
    heap_destroy(&h);
    heap_destroy(NULL);
}

static void test_orders_by_priority_then_fifo(void **state)
{
    (void)state;
    heap_t *h = heap_new(0, NULL);
    char *a = "a", *b = "b", *c = "c", *d = "d", *e = "e";
    assert_int_equal(heap_push(h, 5, a), 0);
    assert_int_equal(heap_push(h, 1, b), 0);
    assert_int_equal(heap_push(h, 5, c), 0);
    assert_int_equal(heap_push(h, 1, d), 0);
    assert_int_equal(heap_push(h, -3, e), 0);
    double p;
    assert_ptr_equal(heap_peek(h, &p), e);
    assert_true(p == -3);
    assert_int_equal(heap_size(h), 5);
    char *expected[] = { e, b, d, a, c };
    double prios[] = { -3, 1, 1, 5, 5 };
    for (int i = 0; i < 5; i++) {
        assert_ptr_equal(heap_pop(h, &p), expected[i]);
        assert_true(p == prios[i]);
    }
    assert_null(heap_pop(h, NULL));
    heap_destroy(&h);
}

static item_t *new_item(int priority, int seq)
{
    item_t *it = malloc(sizeof *it);
    assert_non_null(it);
    *it = (item_t){ .priority = priority, .seq = seq };
    return it;
}

static void test_random_pops_sorted_and_stable(void **state)
{
    (void)state;
    enum { N = 10000 };
    heap_t *h = heap_new(0, free);
    srand(12345);
    for (int i = 0; i < N; i++) {
        item_t *it = new_item(rand() % 100, i);      /* many ties */
        assert_int_equal(heap_push(h, it->priority, it), 0);
    }
    assert_int_equal(heap_size(h), N);
    item_t *prev = NULL;
    for (int i = 0; i < N; i++) {
        double p;
        item_t *it = heap_pop(h, &p);
        assert_non_null(it);
        assert_true(p == it->priority);
        if (prev)
            assert_true(prev->priority < it->priority
                        || (prev->priority == it->priority && prev->seq < it->seq));
        free(prev);
        prev = it;
    }
    free(prev);
    assert_null(heap_pop(h, NULL));
    heap_destroy(&h);
}

/* Random pushes and pops against a linear-scan model of the same order. */
static void test_interleaved_matches_model(void **state)
{
    (void)state;
    enum { OPS = 6000 };
    static item_t items[OPS];
    static item_t *model[OPS];
    size_t model_n = 0;
    int pushed = 0;
    heap_t *h = heap_new(0, NULL);
    srand(777);
    for (int op = 0; op < OPS; op++) {
        if (model_n == 0 || rand() % 3 != 0) {
            items[pushed] = (item_t){ .priority = rand() % 20, .seq = pushed };
            assert_int_equal(heap_push(h, items[pushed].priority, &items[pushed]), 0);
            model[model_n++] = &items[pushed++];
            continue;
        }
        size_t best = 0;
        for (size_t i = 1; i < model_n; i++)
            if (model[i]->priority < model[best]->priority
                || (model[i]->priority == model[best]->priority
                    && model[i]->seq < model[best]->seq))
                best = i;
        assert_ptr_equal(heap_pop(h, NULL), model[best]);
        model[best] = model[--model_n];
        assert_int_equal(heap_size(h), model_n);
    }
    heap_destroy(&h);
}

static void test_bounded_capacity(void **state)
{
    (void)state;
    heap_t *h = heap_new(3, NULL);
    int x[4];
    assert_int_equal(heap_capacity(h), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(heap_push(h, i, &x[i]), 0);
    assert_int_equal(heap_push(h, -1, &x[3]), -1);
    assert_int_equal(heap_size(h), 3);
    assert_ptr_equal(heap_peek(h, NULL), &x[0]);      /* refused item not taken */
    heap_pop(h, NULL);
    assert_int_equal(heap_push(h, -1, &x[3]), 0);
    assert_ptr_equal(heap_peek(h, NULL), &x[3]);
    heap_destroy(&h);
}

static void test_nan_refused(void **state)
{
    (void)state;
    heap_t *h = heap_new(0, NULL);
    int x;
    assert_int_equal(heap_push(h, NAN, &x), -1);
    assert_int_equal(heap_size(h), 0);
    heap_destroy(&h);
}

static void test_destructor_on_clear_and_destroy(void **state)
{
    (void)state;
    heap_t *h = heap_new(0, count_destroy);
    destroyed = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(heap_push(h, i, malloc(8)), 0);
    heap_clear(h);
    assert_int_equal(destroyed, 5);
    assert_int_equal(heap_size(h), 0);
    assert_null(heap_pop(h, NULL));
    for (int i = 0; i < 3; i++)
        assert_int_equal(heap_push(h, i, malloc(8)), 0);
    free(heap_pop(h, NULL));                /* popped items are the caller's */
    heap_destroy(&h);
    assert_int_equal(destroyed, 7);
}

static void sum_priorities(void *item, double priority, void *arg)
{
    (void)item;
    *(double *)arg += priority;
}

static void test_foreach_visits_all(void **state)
{
    (void)state;
    heap_t *h = heap_new(0, NULL);
    int x;
    for (int i = 1; i <= 100; i++)
        assert_int_equal(heap_push(h, i, &x), 0);
    double sum = 0;
    heap_foreach(h, sum_priorities, &sum);
    assert_true(sum == 5050);
    assert_int_equal(heap_size(h), 100);
    heap_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_orders_by_priority_then_fifo),
        cmocka_unit_test(test_random_pops_sorted_and_stable),
        cmocka_unit_test(test_interleaved_matches_model),
        cmocka_unit_test(test_bounded_capacity),
        cmocka_unit_test(test_nan_refused),
        cmocka_unit_test(test_destructor_on_clear_and_destroy),
        cmocka_unit_test(test_foreach_visits_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
