/*  taskq: see taskq.h.  Each level is a ring of task pointers. */
#include "taskq.h"

#include <stdlib.h>

typedef struct {
    task_t **items;
    size_t head, count;
} level_t;

struct taskq_t {
    size_t capacity;
    level_t levels[TASK_PRIO_LEVELS];
};

taskq_t *taskq_new(size_t per_level)
{
    if (per_level == 0)
        return NULL;
    taskq_t *self = calloc(1, sizeof *self);
    self->capacity = per_level;
    for (int i = 0; i < TASK_PRIO_LEVELS; i++)
        self->levels[i].items = calloc(per_level, sizeof(task_t *));
    return self;
}

void taskq_destroy(taskq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    taskq_t *self = *self_p;
    task_t *task;
    while ((task = taskq_pop(self)))
        task_unref(task);
    for (int i = 0; i < TASK_PRIO_LEVELS; i++)
        free(self->levels[i].items);
    free(self);
    *self_p = NULL;
}

int taskq_push(taskq_t *self, task_t *task)
{
    level_t *level = &self->levels[task->prio < TASK_PRIO_LEVELS ? task->prio : TASK_PRIO_MEDIUM];
    if (level->count == self->capacity)
        return -1;
    level->items[(level->head + level->count) % self->capacity] = task;
    level->count++;
    return 0;
}

task_t *taskq_pop(taskq_t *self)
{
    for (int i = 0; i < TASK_PRIO_LEVELS; i++) {
        level_t *level = &self->levels[i];
        if (level->count == 0)
            continue;
        task_t *task = level->items[level->head];
        level->head = (level->head + 1) % self->capacity;
        level->count--;
        return task;
    }
    return NULL;
}

size_t taskq_size(taskq_t *self, task_prio_t prio)
{
    return prio < TASK_PRIO_LEVELS ? self->levels[prio].count : 0;
}

size_t taskq_capacity(taskq_t *self)
{
    return self->capacity;
}
