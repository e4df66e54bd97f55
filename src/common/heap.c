/*  heap: see heap.h.
 *
 *  Entries live by value in one array (sift moves 24 bytes, no per-item
 *  allocation).  The array grows by doubling, capped at the capacity, so
 *  a generous bound costs nothing until it is used.  The sequence is a
 *  64-bit counter that never wraps in practice, which makes (priority,
 *  sequence) a total order and the pop order stable.  NaN priorities are
 *  refused: they compare false both ways and would corrupt the order. */
#include "heap.h"
#include "log.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct {
    double priority;
    uint64_t seq;
    void *item;
} entry_t;

struct heap_t {
    entry_t *entries;
    size_t size;
    size_t allocated;
    size_t capacity;            /* 0 = unbounded */
    uint64_t next_seq;
    void (*destructor)(void *item);
};

heap_t *heap_new(size_t capacity, void (*destructor)(void *item))
{
    heap_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = capacity;
    self->destructor = destructor;
    return self;
}

void heap_destroy(heap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    heap_t *self = *self_p;
    heap_clear(self);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static bool before(const entry_t *a, const entry_t *b)
{
    if (a->priority != b->priority)
        return a->priority < b->priority;
    return a->seq < b->seq;
}

static void swap(entry_t *a, entry_t *b)
{
    entry_t tmp = *a;
    *a = *b;
    *b = tmp;
}

static void sift_up(entry_t *e, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&e[i], &e[parent]))
            break;
        swap(&e[i], &e[parent]);
        i = parent;
    }
}

static void sift_down(entry_t *e, size_t size, size_t i)
{
    for (;;) {
        size_t least = i;
        size_t left = 2 * i + 1, right = left + 1;
        if (left < size && before(&e[left], &e[least]))
            least = left;
        if (right < size && before(&e[right], &e[least]))
            least = right;
        if (least == i)
            return;
        swap(&e[i], &e[least]);
        i = least;
    }
}

static int grow(heap_t *self)
{
    size_t want = self->allocated ? self->allocated * 2 : 16;
    if (self->capacity && want > self->capacity)
        want = self->capacity;
    entry_t *entries = realloc(self->entries, want * sizeof *entries);
    if (!entries) {
        log_error("heap", "out of memory growing to %zu entries", want);
        return -1;
    }
    self->entries = entries;
    self->allocated = want;
    return 0;
}

int heap_push(heap_t *self, double priority, void *item)
{
    if (isnan(priority)) {
        log_error("heap", "refusing a NaN priority");
        return -1;
    }
    if (self->capacity && self->size >= self->capacity)
        return -1;
    if (self->size == self->allocated && grow(self) != 0)
        return -1;
    entry_t *e = &self->entries[self->size];
    e->priority = priority;
    e->seq = self->next_seq++;
    e->item = item;
    sift_up(self->entries, self->size++);
    return 0;
}

void *heap_pop(heap_t *self, double *priority_out)
{
    if (self->size == 0)
        return NULL;
    entry_t top = self->entries[0];
    self->entries[0] = self->entries[--self->size];
    sift_down(self->entries, self->size, 0);
    if (priority_out)
        *priority_out = top.priority;
    return top.item;
}

void *heap_peek(heap_t *self, double *priority_out)
{
    if (self->size == 0)
        return NULL;
    if (priority_out)
        *priority_out = self->entries[0].priority;
    return self->entries[0].item;
}

size_t heap_size(heap_t *self)
{
    return self->size;
}

size_t heap_capacity(heap_t *self)
{
    return self->capacity;
}

void heap_clear(heap_t *self)
{
    if (self->destructor)
        for (size_t i = 0; i < self->size; i++)
            self->destructor(self->entries[i].item);
    self->size = 0;
}

void heap_foreach(heap_t *self, void (*fn)(void *item, double priority, void *arg), void *arg)
{
    for (size_t i = 0; i < self->size; i++)
        fn(self->entries[i].item, self->entries[i].priority, arg);
}
