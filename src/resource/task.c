/*  task: see task.h. */
#include "task.h"
#include "clock.h"

#include <stdlib.h>
#include <string.h>

rs_task_t *rs_task_new(const char *type, json_t *data, rs_prio_t prio)
{
    rs_task_t *task = calloc(1, sizeof *task);
    task->type = strdup(type);
    task->data = json_incref(data);
    task->prio = prio;
    task->refs = 1;
    task->gpu = -1;
    clock_cond_init(&task->cond);
    return task;
}

void rs_task_unref(rs_task_t *task)
{
    if (!task || --task->refs > 0)
        return;
    free(task->type);
    free(task->error);
    json_decref(task->data);
    pthread_cond_destroy(&task->cond);
    free(task);
}

rs_prio_t rs_prio_parse(json_t *value)
{
    const char *name = json_string_value(value);
    if (name && !strcmp(name, "high"))
        return RS_PRIO_HIGH;
    if (name && !strcmp(name, "low"))
        return RS_PRIO_LOW;
    return RS_PRIO_MEDIUM;
}

const char *rs_prio_name(rs_prio_t prio)
{
    static const char *names[] = { "high", "medium", "low" };
    return prio < RS_PRIO_LEVELS ? names[prio] : "medium";
}
