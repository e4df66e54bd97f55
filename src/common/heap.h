/*  heap: a bounded binary min-heap of (priority, sequence, item) with FIFO
 *  order among equal priorities (the sequence number breaks ties), the
 *  ordering of Python's heapq over (priority, timestamp, task) that the
 *  original coordinator relied on.  Lower priority value pops first.
 *  Not thread-safe: the owner holds its own lock. */
#ifndef KEEL_HEAP_H
#define KEEL_HEAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct heap_t heap_t;

/* capacity 0 means unbounded.  `destructor`, when set, frees items left in
 * the heap at destroy/clear time. */
heap_t *heap_new(size_t capacity, void (*destructor)(void *item));
void heap_destroy(heap_t **self_p);
/* 0 on success, -1 when the heap is full (the item is not taken). */
int heap_push(heap_t *self, double priority, void *item);
/* Pops the smallest; NULL when empty.  priority_out may be NULL. */
void *heap_pop(heap_t *self, double *priority_out);
void *heap_peek(heap_t *self, double *priority_out);
size_t heap_size(heap_t *self);
size_t heap_capacity(heap_t *self);
void heap_clear(heap_t *self);
/* Calls fn for each item in unspecified order (for snapshots). */
void heap_foreach(heap_t *self, void (*fn)(void *item, double priority, void *arg), void *arg);
#endif
