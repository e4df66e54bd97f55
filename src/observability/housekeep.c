/*  housekeep: see housekeep.h.  Each chore keeps its own due time, and the
 *  ticker (actor.h) sleeps until the earliest one. */
#include "housekeep.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "perflog.h"

#include <math.h>
#include <stdlib.h>

struct housekeep_t {
    hubdb_t *db;
    perfmon_t *perf;
    pushhealth_t *pushed;
    int metrics_days, usage_days;
    double retention_s, retry_s, stale_check_s, trim_s;
    actor_t *ticker;
    double retention_due, stale_due, trim_due;  /* the ticker's own, monotonic */
};

static void chores(void *arg)
{
    housekeep_t *self = arg;
    double now = clock_mono();
    if (now >= self->retention_due) {
        int deleted = perflog_retention(self->db, clock_wall(), self->metrics_days, self->usage_days);
        if (deleted > 0)
            log_info("observability", "retention removed %d performance rows", deleted);
        self->retention_due = now + (deleted < 0 ? self->retry_s : self->retention_s);
    }
    if (now >= self->stale_due) {
        pushhealth_sweep(self->pushed);
        self->stale_due = now + self->stale_check_s;
    }
    if (now >= self->trim_due) {
        perfmon_trim(self->perf);
        hubdb_lock(self->db);
        store_maintain(self->db->store);
        hubdb_unlock(self->db);
        self->trim_due = now + self->trim_s;
    }
    double next = fmin(self->retention_due, fmin(self->stale_due, self->trim_due)) - clock_mono();
    actor_set_interval(self->ticker, next > 0.01 ? next : 0.01);
}

housekeep_t *housekeep_new(config_t *config, hubdb_t *db, perfmon_t *perf, pushhealth_t *pushed)
{
    housekeep_t *self = calloc(1, sizeof *self);
    self->db = db;
    self->perf = perf;
    self->pushed = pushed;
    self->metrics_days = (int)config_int(config, "observability.retention.metrics_days", 30);
    self->usage_days = (int)config_int(config, "observability.retention.resource_usage_days", 7);
    self->retention_s = (double)config_int(config, "observability.retention.interval_s", 86400);
    self->retry_s = (double)config_int(config, "observability.retention.retry_s", 3600);
    self->stale_check_s = config_int(config, "observability.stale_check_ms", 30000) / 1000.0;
    self->trim_s = 3600;
    self->ticker = actor_new("obs housekeep", 0, chores, self);
    return self;
}

int housekeep_start(housekeep_t *self)
{
    double now = clock_mono();
    self->retention_due = self->trim_due = now;
    self->stale_due = now + self->stale_check_s;
    return actor_start(self->ticker);
}

void housekeep_destroy(housekeep_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    housekeep_t *self = *self_p;
    actor_destroy(&self->ticker);
    free(self);
    *self_p = NULL;
}
