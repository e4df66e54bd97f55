/*  task: one unit of work of the TaskScheduler/AsyncProcessor, as it moves
 *  from the request through the journal, the queue and a worker.  A task
 *  the client waits for is shared by the waiting request and the worker,
 *  hence the reference count; `done` is signalled on its own condition so
 *  a completion wakes only its own waiter. */
#ifndef KEEL_RS_TASK_H
#define KEEL_RS_TASK_H
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { TASK_PRIO_HIGH, TASK_PRIO_MEDIUM, TASK_PRIO_LOW, TASK_PRIO_LEVELS } task_prio_t;

typedef struct task_t {
    int64_t id;
    char *type;
    json_t *data;
    task_prio_t prio;
    int attempts, max_retries;
    double timeout_s;
    double not_before;          /* unix seconds; 0: now */
    double created_at;          /* unix seconds */
    /* completion, guarded by the scheduler's lock */
    int refs;
    bool committed, done, ok;
    char *error;
    int gpu;                    /* worker's GPU index that ran it, -1 none */
    pthread_cond_t cond;
} task_t;

task_t *task_new(const char *type, json_t *data, task_prio_t prio);
/* Drops one reference; frees on the last.  Caller holds the scheduler lock
 * when the task is shared. */
void task_unref(task_t *task);
/* Unknown names are medium, as TaskQueue.add_task did. */
task_prio_t task_prio_parse(json_t *value);
const char *task_prio_name(task_prio_t prio);
#endif
