/*  optimiser: see optimiser.h.
 *
 *  "Processes Keel started" is decided by the parent pid: in `keeld all`
 *  CoreOrchestrator's supervised agents are children of this process, and
 *  nothing else is.  The original's find_large_files walk of / and the
 *  Windows cleanmgr step are not kept: they were slow and of no use to a
 *  service that must answer within a second. */
#include "optimiser.h"
#include "actor.h"
#include "clock.h"
#include "log.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHILDREN 256

struct optimiser_t {
    hostsampler_t *sampler;
    hubdb_t *db;
    errpub_t *errors;
    optimiser_limits_t limits;
    bool kill_processes;
    actor_t *ticker;            /* the first pass after an interval */
};

bool optimiser_needed(const optimiser_limits_t *l, double cpu, double memory, double disk)
{
    return memory > l->memory || cpu > l->cpu || disk > l->disk;
}

static int by_rss_desc(const void *a, const void *b)
{
    uint64_t x = ((const optimiser_proc_t *)a)->rss_bytes, y = ((const optimiser_proc_t *)b)->rss_bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t optimiser_pick(const optimiser_limits_t *l, optimiser_proc_t *procs, size_t n,
                      uint64_t mem_total)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (mem_total && (double)procs[i].rss_bytes * 100.0 / (double)mem_total > l->process_memory_limit)
            procs[kept++] = procs[i];
    qsort(procs, kept, sizeof *procs, by_rss_desc);
    return kept < (size_t)l->max_kills ? kept : (size_t)l->max_kills;
}

/* Children of this process with their resident memory. */
static size_t children(optimiser_proc_t *out, size_t max)
{
    DIR *dir = opendir("/proc");
    if (!dir)
        return 0;
    pid_t me = getpid();
    long page = sysconf(_SC_PAGESIZE);
    size_t n = 0;
    struct dirent *de;
    while (n < max && (de = readdir(dir))) {
        pid_t pid = (pid_t)atoi(de->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *close_paren = strrchr(buf, ')');
        int ppid = 0;
        long rss = 0;
        if (!close_paren || sscanf(close_paren + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u"
                                   " %*u %*u %*d %*d %*d %*d %*d %*d %*u %*u %ld", &ppid, &rss) != 2)
            continue;
        if (ppid == me)
            out[n++] = (optimiser_proc_t){ pid, (uint64_t)rss * (uint64_t)page };
    }
    closedir(dir);
    return n;
}

static void pass(void *arg)
{
    json_decref(optimiser_run(arg));
}

optimiser_t *optimiser_new(config_t *config, hostsampler_t *sampler, hubdb_t *db, errpub_t *errors)
{
    optimiser_t *self = calloc(1, sizeof *self);
    self->sampler = sampler;
    self->db = db;
    self->errors = errors;
    self->limits = (optimiser_limits_t){
        config_double(config, "observability.optimizer.memory_threshold", 80),
        config_double(config, "observability.optimizer.cpu_threshold", 80),
        config_double(config, "observability.optimizer.disk_threshold", 90),
        config_double(config, "observability.optimizer.process_memory_limit", 5.0),
        3,
    };
    self->kill_processes = config_bool(config, "observability.optimizer.kill_processes", false);
    long ms = config_int(config, "observability.optimizer.interval_ms",
                         config_int(config, "observability.optimizer.interval_s", 300) * 1000);
    self->ticker = actor_new("obs optimiser", (ms > 10 ? ms : 10) / 1000.0, pass, self);
    actor_delay_first(self->ticker);
    return self;
}

void optimiser_destroy(optimiser_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    optimiser_t *self = *self_p;
    actor_destroy(&self->ticker);
    free(self);
    *self_p = NULL;
}

json_t *optimiser_run(optimiser_t *self)
{
    sysstat_sample_t s;
    if (!hostsampler_latest(self->sampler, &s, NULL, 0))
        return json_pack("{s:s, s:s}", "status", "error", "message", "cannot read system statistics");
    bool needed = optimiser_needed(&self->limits, s.cpu_percent, s.mem_percent, s.disk_percent);
    json_t *result = json_pack("{s:s, s:b, s:b, s:f, s:f, s:f, s:i, s:[]}", "status", "success",
                               "needed", needed, "kill_processes", self->kill_processes,
                               "cpu_percent", s.cpu_percent, "memory_percent", s.mem_percent,
                               "disk_percent", s.disk_percent, "processes_terminated", 0, "terminated");
    if (!needed)
        return result;
    json_t *terminated = json_object_get(result, "terminated");
    if (self->kill_processes) {
        optimiser_proc_t procs[MAX_CHILDREN];
        size_t n = optimiser_pick(&self->limits, procs, children(procs, MAX_CHILDREN), s.mem_total_bytes);
        for (size_t i = 0; i < n; i++)
            if (kill(procs[i].pid, SIGTERM) == 0)
                json_array_append_new(terminated, json_pack("{s:i, s:I}", "pid", (int)procs[i].pid,
                                                             "rss_bytes", (json_int_t)procs[i].rss_bytes));
        json_object_set_new(result, "processes_terminated", json_integer((json_int_t)json_array_size(terminated)));
    }
    hubdb_event(self->db, "ObservabilityHub", "resource_pressure", result);
    errpub_report(self->errors, "resource_pressure", "WARNING", result,
                  "resource pressure: cpu %.1f%%, memory %.1f%%, disk %.1f%%; %zu processes terminated",
                  s.cpu_percent, s.mem_percent, s.disk_percent, json_array_size(terminated));
    return result;
}

int optimiser_start(optimiser_t *self)
{
    return actor_start(self->ticker);
}

bool optimiser_alive(optimiser_t *self)
{
    return actor_running(self->ticker);
}
