/*  scheduler: the TaskScheduler and AsyncProcessor as one.  A task
 *  (`schedule_task`, or a bare {"type","data","priority"} message) is
 *  checked as AsyncProcessor checked it, written to the journal, queued by
 *  priority, run by a worker, and answered when it has finished, which is
 *  the original's synchronous contract.  A client may instead ask for the
 *  reply at acceptance ("wait": false) or for a later start ("delay_s").
 *
 *  One worker per GPU takes from the single queue, so a card never idles
 *  while work waits behind another.  Built-in types (logging, analysis,
 *  memory) run in the worker; a type mapped to an endpoint in
 *  resource.scheduler.handlers is sent there with the task's timeout, and
 *  a failure is retried with exponential backoff up to max_retries.  The
 *  lock is never held while a worker calls out.  Per-type statistics are
 *  kept in memory, as the original's were. */
#ifndef KEEL_RS_SCHEDULER_H
#define KEEL_RS_SCHEDULER_H
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "errpub.h"
#include "metrics.h"
#include "wire.h"

typedef struct {
    size_t queue_size;          /* per priority level */
    int workers;                /* how many; one per GPU is the caller's default */
    double timeout_s;           /* default per-attempt timeout */
    int max_retries;
    double backoff_s, backoff_max_s;
    double reply_wait_s;        /* longest a waiting client is held */
    json_t *handlers;           /* {type: endpoint}, borrowed; may be NULL */
    bool durable;               /* fsync each journal commit */
    atomic_int *service_state;  /* to let waiting clients go at shutdown */
    int stopping_state;
} scheduler_config_t;

typedef struct scheduler_t scheduler_t;

scheduler_t *scheduler_new(const scheduler_config_t *config, const char *db_path,
                           metrics_t *metrics, errpub_t *errors, char *err, size_t errlen);
/* Stops the workers, then writes what they left to the journal. */
void scheduler_destroy(scheduler_t **self_p);
/* Starts the workers and the journal writer.  0 or -1. */
int scheduler_start(scheduler_t *self);
/* schedule_task, get_task, list_tasks. */
void scheduler_attach(scheduler_t *self, wire_server_t *wire);
/* The AsyncProcessor task path for a request object. */
json_t *scheduler_task(scheduler_t *self, json_t *body);
/* {"queue_sizes":{high,medium,low},"task_stats":{...}} */
json_t *scheduler_queue_stats(scheduler_t *self);
#endif
