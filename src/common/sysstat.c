/*  sysstat: see sysstat.h.
 *
 *  Every figure comes from files under proc_root, never from /proc
 *  directly, so a test can lay out a fake tree and check exact numbers.
 *  For the same reason process CPU intervals are measured with
 *  <proc_root>/uptime rather than a process clock: it is the clock the
 *  kernel counts a process's starttime in, so "since start" and "since
 *  the previous call" use one time base, and a fake tree can pin it.
 *
 *  The definitions follow psutil, which the original agents used: system
 *  busy time is everything but idle and iowait over the first eight cpu
 *  fields (guest time is already inside user time); a process's percent
 *  is CPU seconds over wall seconds, so a process busy on two cores reads
 *  200.  Used memory is total minus available, the figure mem_percent is
 *  taken from, so the two never disagree.  When no clock tick has passed
 *  since the previous reading (two calls within 10 ms), the previous
 *  percent is returned instead of a meaningless 0/0.
 *
 *  Previous process samples live in a fixed table keyed by pid and
 *  starttime (so a recycled pid starts afresh); when it is full the least
 *  recently sampled entry is dropped, which only costs that process one
 *  "since start" reading.  One mutex guards the previous-sample state;
 *  the other files are read without it. */
#include "sysstat.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PROC_SLOTS 128

typedef struct {
    pid_t pid;                  /* 0: empty */
    unsigned long long start_ticks;
    unsigned long long cpu_ticks;
    double uptime;              /* when sampled */
    double percent;
} proc_slot_t;

struct sysstat_t {
    pthread_mutex_t lock;
    char *root;
    double clk_tck;
    uint64_t page_size;
    unsigned long long prev_busy, prev_total;
    double last_cpu;
    double btime;               /* unix seconds; 0 until /proc/stat is read */
    proc_slot_t slots[PROC_SLOTS];
};

/* One /proc/<pid>/stat line, the fields we use. */
typedef struct {
    char name[64];
    char state;
    unsigned long long utime, stime, start_ticks, vsize;
    long long rss_pages;
    int threads;
} pid_stat_t;

sysstat_t *sysstat_new(const char *proc_root)
{
    sysstat_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->root = strdup(proc_root ? proc_root : "/proc");
    if (!self->root) {
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->clk_tck = (double) sysconf(_SC_CLK_TCK);
    self->page_size = (uint64_t) sysconf(_SC_PAGESIZE);
    return self;
}

void sysstat_destroy(sysstat_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sysstat_t *self = *self_p;
    pthread_mutex_destroy(&self->lock);
    free(self->root);
    free(self);
    *self_p = NULL;
}

/* Opens <root>/<name>; NULL with errno set when it cannot. */
static FILE *proc_open(sysstat_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static FILE *proc_open(sysstat_t *self, const char *fmt, ...)
{
    char rel[64], path[4096];
    va_list args;
    va_start(args, fmt);
    vsnprintf(rel, sizeof rel, fmt, args);
    va_end(args);
    if (snprintf(path, sizeof path, "%s/%s", self->root, rel) >= (int) sizeof path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return fopen(path, "r");
}

/* Reads the first line of <root>/<name> into *line (getline buffer). */
static int read_first_line(sysstat_t *self, const char *name, char **line, size_t *cap)
{
    FILE *f = proc_open(self, "%s", name);
    if (!f)
        return -1;
    ssize_t len = getline(line, cap, f);
    fclose(f);
    return len > 0 ? 0 : -1;
}

/* Aggregate cpu line and btime; caller holds the lock (btime is cached). */
static int read_cpu(sysstat_t *self, unsigned long long *busy, unsigned long long *total)
{
    FILE *f = proc_open(self, "stat");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (getline(&line, &cap, f) > 0) {
        unsigned long long v[8] = { 0 };
        double btime;
        if (strncmp(line, "cpu ", 4) == 0
            && sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu",
                      &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 4) {
            *total = 0;
            for (int i = 0; i < 8; i++)
                *total += v[i];
            *busy = *total - v[3] - v[4];
            found |= 1;
        } else if (sscanf(line, "btime %lf", &btime) == 1) {
            self->btime = btime;
            found |= 2;
        }
    }
    free(line);
    fclose(f);
    return found == 3 ? 0 : -1;
}

/* Caller holds the lock. */
static double system_cpu_percent(sysstat_t *self, unsigned long long busy,
                                 unsigned long long total)
{
    if (total > self->prev_total) {
        double p = 100.0 * ((double) busy - (double) self->prev_busy)
                   / (double) (total - self->prev_total);
        self->last_cpu = p < 0 ? 0 : p > 100 ? 100 : p;
    }
    self->prev_busy = busy;
    self->prev_total = total;
    return self->last_cpu;
}

static int read_meminfo(sysstat_t *self, sysstat_sample_t *out)
{
    FILE *f = proc_open(self, "meminfo");
    if (!f)
        return -1;
    unsigned long long total = 0, avail = 0, free_kb = 0, buffers = 0, cached = 0;
    unsigned long long swap_total = 0, swap_free = 0;
    int have_avail = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char key[32];
        unsigned long long kb;
        if (sscanf(line, "%31[^:]: %llu", key, &kb) != 2)
            continue;
        if (strcmp(key, "MemTotal") == 0)
            total = kb;
        else if (strcmp(key, "MemAvailable") == 0) {
            avail = kb;
            have_avail = 1;
        } else if (strcmp(key, "MemFree") == 0)
            free_kb = kb;
        else if (strcmp(key, "Buffers") == 0)
            buffers = kb;
        else if (strcmp(key, "Cached") == 0)
            cached = kb;
        else if (strcmp(key, "SwapTotal") == 0)
            swap_total = kb;
        else if (strcmp(key, "SwapFree") == 0)
            swap_free = kb;
    }
    free(line);
    fclose(f);
    if (total == 0)
        return -1;
    if (!have_avail)            /* kernels before 3.14 */
        avail = free_kb + buffers + cached;
    if (avail > total)
        avail = total;
    out->mem_total_bytes = total * 1024;
    out->mem_available_bytes = avail * 1024;
    out->mem_used_bytes = (total - avail) * 1024;
    out->mem_percent = 100.0 * (double) (total - avail) / (double) total;
    out->swap_total_bytes = swap_total * 1024;
    out->swap_used_bytes = swap_free < swap_total ? (swap_total - swap_free) * 1024 : 0;
    return 0;
}

static int read_loadavg_uptime(sysstat_t *self, sysstat_sample_t *out)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;
    if (read_first_line(self, "loadavg", &line, &cap) == 0
        && sscanf(line, "%lf %lf %lf", &out->load1, &out->load5, &out->load15) == 3
        && read_first_line(self, "uptime", &line, &cap) == 0
        && sscanf(line, "%lf", &out->uptime_s) == 1)
        rc = 0;
    free(line);
    return rc;
}

static int read_net(sysstat_t *self, sysstat_sample_t *out)
{
    FILE *f = proc_open(self, "net/dev");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;           /* the two header lines */
        *colon = '\0';
        char *name = line + strspn(line, " \t");
        unsigned long long rx, tx;
        if (strcmp(name, "lo") == 0
            || sscanf(colon + 1, "%llu %*u %*u %*u %*u %*u %*u %*u %llu", &rx, &tx) != 2)
            continue;
        out->net_rx_bytes += rx;
        out->net_tx_bytes += tx;
    }
    free(line);
    fclose(f);
    return 0;
}

/* Free space as df and psutil count it: what an unprivileged user may use. */
static int read_disk(const char *path, sysstat_sample_t *out)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0)
        return -1;
    uint64_t frsize = vfs.f_frsize;
    uint64_t used = (uint64_t) (vfs.f_blocks - vfs.f_bfree) * frsize;
    out->disk_total_bytes = (uint64_t) vfs.f_blocks * frsize;
    out->disk_free_bytes = (uint64_t) vfs.f_bavail * frsize;
    uint64_t usable = used + out->disk_free_bytes;
    out->disk_percent = usable ? 100.0 * (double) used / (double) usable : 0;
    return 0;
}

int sysstat_sample(sysstat_t *self, const char *disk_path, sysstat_sample_t *out)
{
    memset(out, 0, sizeof *out);
    unsigned long long busy = 0, total = 0;
    pthread_mutex_lock(&self->lock);
    int rc = read_cpu(self, &busy, &total);
    if (rc == 0)
        out->cpu_percent = system_cpu_percent(self, busy, total);
    pthread_mutex_unlock(&self->lock);
    const char *failed = NULL;
    if (rc != 0)
        failed = "stat";
    else if (read_meminfo(self, out) != 0)
        failed = "meminfo";
    else if (read_loadavg_uptime(self, out) != 0)
        failed = "loadavg or uptime";
    else if (read_net(self, out) != 0)
        failed = "net/dev";
    if (failed) {
        log_warn("sysstat", "cannot read %s/%s", self->root, failed);
        return -1;
    }
    if (disk_path && read_disk(disk_path, out) != 0) {
        log_warn("sysstat", "statvfs %s: %s", disk_path, strerror(errno));
        return -1;
    }
    out->cpu_count = (int) sysconf(_SC_NPROCESSORS_ONLN);
    return 0;
}

/* 0; -1 silently when the process is gone; -1 with a warning on bad data. */
static int read_pid_stat(sysstat_t *self, pid_t pid, pid_stat_t *ps)
{
    char *line = NULL;
    size_t cap = 0;
    char name[32];
    snprintf(name, sizeof name, "%d/stat", (int) pid);
    if (read_first_line(self, name, &line, &cap) != 0) {
        free(line);
        return -1;
    }
    /* comm may hold spaces and ')': it ends at the last ')'. */
    char *open = strchr(line, '(');
    char *close = strrchr(line, ')');
    int n = 0;
    if (open && close && close > open) {
        size_t len = (size_t) (close - open - 1);
        if (len >= sizeof ps->name)
            len = sizeof ps->name - 1;
        memcpy(ps->name, open + 1, len);
        ps->name[len] = '\0';
        n = sscanf(close + 1,
                   " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
                   " %*d %*d %*d %*d %d %*d %llu %llu %lld",
                   &ps->state, &ps->utime, &ps->stime, &ps->threads,
                   &ps->start_ticks, &ps->vsize, &ps->rss_pages);
    }
    if (n != 7)
        log_warn("sysstat", "malformed %s/%s", self->root, name);
    free(line);
    return n == 7 ? 0 : -1;
}

static double read_uptime(sysstat_t *self)
{
    char *line = NULL;
    size_t cap = 0;
    double uptime = 0;
    if (read_first_line(self, "uptime", &line, &cap) != 0
        || sscanf(line, "%lf", &uptime) != 1)
        log_warn("sysstat", "cannot read %s/uptime", self->root);
    free(line);
    return uptime;
}

/* The entry for pid, else the least recently sampled (an empty one first). */
static proc_slot_t *slot_for(sysstat_t *self, pid_t pid)
{
    proc_slot_t *victim = &self->slots[0];
    for (int i = 0; i < PROC_SLOTS; i++) {
        proc_slot_t *slot = &self->slots[i];
        if (slot->pid == pid)
            return slot;
        double age = slot->pid ? slot->uptime : -1;
        if (age < (victim->pid ? victim->uptime : -1))
            victim = slot;
    }
    return victim;
}

/* Caller holds the lock. */
static double proc_cpu_percent(sysstat_t *self, pid_t pid, const pid_stat_t *ps,
                               double uptime)
{
    unsigned long long ticks = ps->utime + ps->stime;
    proc_slot_t *slot = slot_for(self, pid);
    bool known = slot->pid == pid && slot->start_ticks == ps->start_ticks;
    if (known && uptime <= slot->uptime)
        return slot->percent;   /* no time has passed */
    double cpu_s, wall_s;
    if (known) {
        cpu_s = ticks > slot->cpu_ticks ? (double) (ticks - slot->cpu_ticks) / self->clk_tck : 0;
        wall_s = uptime - slot->uptime;
    } else {
        cpu_s = (double) ticks / self->clk_tck;
        wall_s = uptime - (double) ps->start_ticks / self->clk_tck;
    }
    *slot = (proc_slot_t){
        .pid = pid, .start_ticks = ps->start_ticks, .cpu_ticks = ticks,
        .uptime = uptime, .percent = wall_s > 0 ? 100.0 * cpu_s / wall_s : 0,
    };
    return slot->percent;
}

int sysstat_process(sysstat_t *self, pid_t pid, sysstat_proc_t *out)
{
    memset(out, 0, sizeof *out);
    pid_stat_t ps = { .name = "" };
    if (pid <= 0 || read_pid_stat(self, pid, &ps) != 0)
        return -1;
    double uptime = read_uptime(self);
    pthread_mutex_lock(&self->lock);
    unsigned long long busy = 0, total = 0;
    int rc = self->btime > 0 || read_cpu(self, &busy, &total) == 0 ? 0 : -1;
    if (rc == 0) {
        out->cpu_percent = proc_cpu_percent(self, pid, &ps, uptime);
        out->start_time = self->btime + (double) ps.start_ticks / self->clk_tck;
    }
    pthread_mutex_unlock(&self->lock);
    if (rc != 0) {
        log_warn("sysstat", "cannot read btime from %s/stat", self->root);
        return -1;
    }
    out->pid = pid;
    memcpy(out->name, ps.name, sizeof out->name);
    out->state = ps.state;
    out->rss_bytes = ps.rss_pages > 0 ? (uint64_t) ps.rss_pages * self->page_size : 0;
    out->vms_bytes = ps.vsize;
    out->threads = ps.threads;
    return 0;
}
