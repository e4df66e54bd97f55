/*  task: see task.h. */
#include "task.h"
#include "clock.h"

#include <stdlib.h>
#include <string.h>

task_t *task_new(const char *type, json_t *data, task_prio_t prio)
{
    task_t *task = calloc(1, sizeof *task);
    task->type = strdup(type);
    task->data = json_incref(data);
    task->prio = prio;
    task->refs = 1;
    task->gpu = -1;
    clock_cond_init(&task->cond);
    return task;
}

void task_unref(task_t *task)
{
    if (!task || --task->refs > 0)
        return;
    free(task->type);
    free(task->error);
    json_decref(task->data);
    pthread_cond_destroy(&task->cond);
    free(task);
}

task_prio_t task_prio_parse(json_t *value)
{
    const char *name = json_string_value(value);
    if (name && !strcmp(name, "high"))
        return TASK_PRIO_HIGH;
    if (name && !strcmp(name, "low"))
        return TASK_PRIO_LOW;
    return TASK_PRIO_MEDIUM;
}

const char *task_prio_name(task_prio_t prio)
{
    static const char *names[] = { "high", "medium", "low" };
    return prio < TASK_PRIO_LEVELS ? names[prio] : "medium";
}
