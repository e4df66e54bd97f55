/*  procmetrics: see procmetrics.h.  The figures are the ones the Go and
 *  Python clients read: /proc/self/stat for CPU time, sizes and start time
 *  (in clock ticks since boot, so /proc/stat's btime turns it into Unix
 *  time), /proc/self/fd for open descriptors, RLIMIT_NOFILE for the most. */
#include "procmetrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[256];
    double btime = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lf", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;                   /* less the descriptor of the listing itself */
}

static void collect(metrics_t *metrics, void *arg)
{
    (void)arg;
    FILE *f = fopen("/proc/self/stat", "r");
    char text[1024];
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[len] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime, start, vsize;
    long long rss;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                           "%*d %*d %llu %llu %lld", &utime, &stime, &start, &vsize, &rss) == 5) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        metrics_set(metrics, "process_cpu_seconds_total", "", (double)(utime + stime) / tick);
        metrics_set(metrics, "process_start_time_seconds", "", boot_time() + (double)start / tick);
        metrics_set(metrics, "process_virtual_memory_bytes", "", (double)vsize);
        metrics_set(metrics, "process_resident_memory_bytes", "",
                    (double)rss * (double)sysconf(_SC_PAGESIZE));
    }
    int fds = open_fds();
    if (fds >= 0)
        metrics_set(metrics, "process_open_fds", "", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_set(metrics, "process_max_fds", "", (double)rl.rlim_cur);
}

void procmetrics_attach(metrics_t *metrics, const char *version)
{
    static const struct { const char *name, *help; metric_type_t type; } families[] = {
        { "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", METRIC_COUNTER },
        { "process_resident_memory_bytes", "Resident memory size in bytes.", METRIC_GAUGE },
        { "process_virtual_memory_bytes", "Virtual memory size in bytes.", METRIC_GAUGE },
        { "process_open_fds", "Number of open file descriptors.", METRIC_GAUGE },
        { "process_max_fds", "Maximum number of open file descriptors.", METRIC_GAUGE },
        { "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          METRIC_GAUGE },
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        metrics_declare(metrics, families[i].name, families[i].help, families[i].type, NULL, 0);
    metrics_declare(metrics, "keel_build_info", "Always 1; the Keel version running, as a label.",
                    METRIC_GAUGE, NULL, 0);
    char labels[64];
    metrics_labels(labels, sizeof labels, "version", version, NULL);
    metrics_set(metrics, "keel_build_info", labels, 1);
    metrics_add_collector(metrics, collect, NULL);
}
