/*  taskq: see taskq.h.  Each level is a ring of task pointers. */
#include "taskq.h"

#include <stdlib.h>

typedef struct {
    rs_task_t **items;
    size_t head, count;
} level_t;

struct rs_taskq_t {
    size_t capacity;
    level_t levels[RS_PRIO_LEVELS];
};

rs_taskq_t *rs_taskq_new(size_t per_level)
{
    if (per_level == 0)
        return NULL;
    rs_taskq_t *self = calloc(1, sizeof *self);
    self->capacity = per_level;
    for (int i = 0; i < RS_PRIO_LEVELS; i++)
        self->levels[i].items = calloc(per_level, sizeof(rs_task_t *));
    return self;
}

void rs_taskq_destroy(rs_taskq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rs_taskq_t *self = *self_p;
    rs_task_t *task;
    while ((task = rs_taskq_pop(self)))
        rs_task_unref(task);
    for (int i = 0; i < RS_PRIO_LEVELS; i++)
        free(self->levels[i].items);
    free(self);
    *self_p = NULL;
}

int rs_taskq_push(rs_taskq_t *self, rs_task_t *task)
{
    level_t *level = &self->levels[task->prio < RS_PRIO_LEVELS ? task->prio : RS_PRIO_MEDIUM];
    if (level->count == self->capacity)
        return -1;
    level->items[(level->head + level->count) % self->capacity] = task;
    level->count++;
    return 0;
}

rs_task_t *rs_taskq_pop(rs_taskq_t *self)
{
    for (int i = 0; i < RS_PRIO_LEVELS; i++) {
        level_t *level = &self->levels[i];
        if (level->count == 0)
            continue;
        rs_task_t *task = level->items[level->head];
        level->head = (level->head + 1) % self->capacity;
        level->count--;
        return task;
    }
    return NULL;
}

size_t rs_taskq_size(rs_taskq_t *self, rs_prio_t prio)
{
    return prio < RS_PRIO_LEVELS ? self->levels[prio].count : 0;
}

size_t rs_taskq_capacity(rs_taskq_t *self)
{
    return self->capacity;
}
