/*  sysstat: system statistics read from /proc and statvfs, the figures the
 *  originals took from psutil.  CPU percent is computed between two
 *  samples, so a sysstat_t keeps the previous /proc/stat reading; the first
 *  call primes it (and returns the average since boot).  Thread-safe. */
#ifndef KEEL_SYSSTAT_H
#define KEEL_SYSSTAT_H
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    double cpu_percent;          /* all cores, 0..100 */
    int cpu_count;
    double load1, load5, load15;
    uint64_t mem_total_bytes, mem_available_bytes, mem_used_bytes;
    double mem_percent;          /* (total - available) / total * 100 */
    uint64_t swap_total_bytes, swap_used_bytes;
    uint64_t disk_total_bytes, disk_free_bytes;  /* of the path given */
    double disk_percent;
    uint64_t net_rx_bytes, net_tx_bytes;          /* all interfaces but lo */
    double uptime_s;
} sysstat_sample_t;

typedef struct {
    pid_t pid;
    char name[64];
    char state;                  /* R, S, D, Z ... */
    double cpu_percent;          /* since the previous call for this pid, else since start */
    uint64_t rss_bytes, vms_bytes;
    int threads;
    double start_time;           /* unix seconds */
} sysstat_proc_t;

typedef struct sysstat_t sysstat_t;

/* proc_root is "/proc" in production; tests point it at a fake tree. */
sysstat_t *sysstat_new(const char *proc_root);
void sysstat_destroy(sysstat_t **self_p);
/* disk_path: the filesystem to report (the data dir).  0 or -1. */
int sysstat_sample(sysstat_t *self, const char *disk_path, sysstat_sample_t *out);
/* 0, or -1 when the process does not exist. */
int sysstat_process(sysstat_t *self, pid_t pid, sysstat_proc_t *out);
#endif
