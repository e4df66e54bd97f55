/*  housekeep: see housekeep.h.  Each chore keeps its own due time, and the
 *  thread sleeps until the earliest one. */
#include "housekeep.h"
#include "clock.h"
#include "log.h"
#include "perflog.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct housekeep_t {
    hubdb_t *db;
    perfmon_t *perf;
    pushhealth_t *pushed;
    int metrics_days, usage_days;
    double retention_s, retry_s, stale_check_s, trim_s;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running;
};

static double min3(double a, double b, double c)
{
    double m = a < b ? a : b;
    return m < c ? m : c;
}

static void *loop(void *arg)
{
    housekeep_t *self = arg;
    double now = clock_mono();
    double retention_due = now, stale_due = now + self->stale_check_s, trim_due = now;
    pthread_mutex_lock(&self->lock);
    while (self->running) {
        pthread_mutex_unlock(&self->lock);
        now = clock_mono();
        if (now >= retention_due) {
            int deleted = perflog_retention(self->db, clock_wall(), self->metrics_days, self->usage_days);
            if (deleted > 0)
                log_info("observability", "retention removed %d performance rows", deleted);
            retention_due = now + (deleted < 0 ? self->retry_s : self->retention_s);
        }
        if (now >= stale_due) {
            pushhealth_sweep(self->pushed);
            stale_due = now + self->stale_check_s;
        }
        if (now >= trim_due) {
            perfmon_trim(self->perf);
            hubdb_lock(self->db);
            store_maintain(self->db->store);
            hubdb_unlock(self->db);
            trim_due = now + self->trim_s;
        }
        double next = min3(retention_due, stale_due, trim_due) - clock_mono();
        pthread_mutex_lock(&self->lock);
        clock_cond_wait(&self->wake, &self->lock, next > 0.01 ? next : 0.01, &self->running);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
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
    pthread_mutex_init(&self->lock, NULL);
    clock_cond_init(&self->wake);
    self->running = true;
    if (pthread_create(&self->thread, NULL, loop, self) != 0)
        self->running = false;
    return self;
}

void housekeep_destroy(housekeep_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    housekeep_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    bool was = self->running;
    self->running = false;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (was)
        pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
