/*  taskq: the three-level task queue of the original AsyncProcessor (high,
 *  medium, low; FIFO within a level; a fixed number of entries per level),
 *  with one change: a full level refuses the task instead of silently
 *  dropping its oldest one, so the scheduler can tell the client the truth.
 *  Not thread-safe: the scheduler holds its lock. */
#ifndef KEEL_RS_TASKQ_H
#define KEEL_RS_TASKQ_H
#include <stddef.h>

#include "task.h"

typedef struct taskq_t taskq_t;

taskq_t *taskq_new(size_t per_level);
/* Unreferences the tasks left in it. */
void taskq_destroy(taskq_t **self_p);
/* 0, or -1 when that level is full (the task is not taken). */
int taskq_push(taskq_t *self, task_t *task);
/* The oldest task of the highest non-empty level; NULL when empty. */
task_t *taskq_pop(taskq_t *self);
size_t taskq_size(taskq_t *self, task_prio_t prio);
size_t taskq_capacity(taskq_t *self);
#endif
