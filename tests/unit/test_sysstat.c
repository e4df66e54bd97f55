/*  test_sysstat: exact figures from a fake proc tree laid out in a temp
 *  dir, then smoke tests against the real /proc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "sysstat.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define BTIME 1700000000.0
#define assert_near(a, b) do { \
        double a_ = (a), b_ = (b); \
        if (!(a_ - b_ < 1e-9 && b_ - a_ < 1e-9)) \
            fail_msg("%.12f != %.12f", a_, b_); \
    } while (0)

static const char *STAT_HEAD = "cpu  100 0 100 700 100 0 0 0 0 0\n"
                               "cpu0 100 0 100 700 100 0 0 0 0 0\n";
static const char *STAT_TAIL = "intr 12345 0 0 0\nctxt 999\nbtime 1700000000\n"
                               "processes 42\nprocs_running 1\n";

typedef struct {
    char root[64];
    sysstat_t *stat;
    double clk;
} fixture_t;

static void write_file(fixture_t *fx, const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fx->root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0700);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void write_stat(fixture_t *fx, const char *cpu_line)
{
    char text[512];
    snprintf(text, sizeof text, "%s\ncpu0 1 1 1 1\n%s", cpu_line, STAT_TAIL);
    write_file(fx, "stat", text);
}

static void write_pid_stat(fixture_t *fx, int pid, const char *comm, int utime,
                           int stime, int start_ticks)
{
    char rel[32], text[512];
    snprintf(rel, sizeof rel, "%d/stat", pid);
    snprintf(text, sizeof text,
             "%d (%s) S 1 %d %d 0 -1 4194560 100 0 0 0 %d %d 0 0 20 0 7 0 %d"
             " 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1"
             " 0 0 0 0 0\n", pid, comm, pid, pid, utime, stime, start_ticks);
    write_file(fx, rel, text);
}

static void write_uptime(fixture_t *fx, const char *uptime)
{
    write_file(fx, "uptime", uptime);
}

/* Every file sysstat_sample reads, with round numbers. */
static void write_system(fixture_t *fx)
{
    char stat[512];
    snprintf(stat, sizeof stat, "%s%s", STAT_HEAD, STAT_TAIL);
    write_file(fx, "stat", stat);
    write_file(fx, "meminfo",
               "MemTotal:       16000000 kB\n"
               "MemFree:         1000000 kB\n"
               "MemAvailable:    4000000 kB\n"
               "Buffers:          200000 kB\n"
               "Cached:          2500000 kB\n"
               "SwapCached:            0 kB\n"
               "SwapTotal:       2000000 kB\n"
               "SwapFree:         500000 kB\n"
               "HugePages_Total:       0\n");
    write_file(fx, "loadavg", "0.50 1.25 2.00 1/123 4567\n");
    write_uptime(fx, "12345.67 2000.00\n");
    write_file(fx, "net/dev",
               "Inter-|   Receive                                                |  Transmit\n"
               " face |bytes    packets errs drop fifo frame compressed multicast|bytes    "
               "packets errs drop fifo colls carrier compressed\n"
               "    lo: 5000000   100    0    0    0     0          0         0  5000000   "
               "100    0    0    0     0       0          0\n"
               "  eth0: 1000   10    0    0    0     0          0         0  2000   "
               "20    0    0    0     0       0          0\n"
               "wlan0:30000000000 10    0    0    0     0          0         0 40000000000 "
               "20    0    0    0     0       0          0\n");
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->root, sizeof fx->root, "/tmp/keel-sysstat-XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    fx->stat = sysstat_new(fx->root);
    assert_non_null(fx->stat);
    fx->clk = (double) sysconf(_SC_CLK_TCK);
    *state = fx;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    sysstat_destroy(&fx->stat);
    assert_null(fx->stat);
    assert_int_equal(nftw(fx->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(fx);
    return 0;
}

static void test_cpu_percent_between_samples(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    sysstat_sample_t s;
    /* First call: since boot, busy 200 of 1000 ticks. */
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), 0);
    assert_near(s.cpu_percent, 20.0);
    /* Then +1000 ticks, of which 400 busy (user 300, system 100). */
    write_stat(fx, "cpu  400 0 200 1200 200 0 0 0 0 0");
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), 0);
    assert_near(s.cpu_percent, 40.0);
    /* No tick since: the previous figure stands. */
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), 0);
    assert_near(s.cpu_percent, 40.0);
    /* irq, softirq and steal count as busy; guest is inside user. */
    write_stat(fx, "cpu  450 0 200 1300 200 25 15 10 40 0");
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), 0);
    assert_near(s.cpu_percent, 50.0);
}

static void test_memory_load_uptime_net(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    sysstat_sample_t s;
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), 0);
    assert_true(s.mem_total_bytes == 16000000ULL * 1024);
    assert_true(s.mem_available_bytes == 4000000ULL * 1024);
    assert_true(s.mem_used_bytes == 12000000ULL * 1024);
    assert_near(s.mem_percent, 75.0);
    assert_true(s.swap_total_bytes == 2000000ULL * 1024);
    assert_true(s.swap_used_bytes == 1500000ULL * 1024);
    assert_near(s.load1, 0.5);
    assert_near(s.load5, 1.25);
    assert_near(s.load15, 2.0);
    assert_near(s.uptime_s, 12345.67);
    assert_true(s.net_rx_bytes == 30000001000ULL);
    assert_true(s.net_tx_bytes == 40000002000ULL);
    assert_int_equal(s.cpu_count, (int) sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(s.disk_total_bytes == 0);
}

static void test_meminfo_without_available(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    write_file(fx, "meminfo",
               "MemTotal: 10000 kB\nMemFree: 1000 kB\nBuffers: 500 kB\nCached: 1500 kB\n"
               "SwapTotal: 0 kB\nSwapFree: 0 kB\n");
    sysstat_sample_t s;
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), 0);
    assert_true(s.mem_available_bytes == 3000ULL * 1024);
    assert_near(s.mem_percent, 70.0);
    assert_true(s.swap_used_bytes == 0);
}

static void test_disk_of_path(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    sysstat_sample_t s;
    assert_int_equal(sysstat_sample(fx->stat, fx->root, &s), 0);
    struct statvfs vfs;
    assert_int_equal(statvfs(fx->root, &vfs), 0);
    assert_true(s.disk_total_bytes == (uint64_t) vfs.f_blocks * vfs.f_frsize);
    assert_true(s.disk_free_bytes <= s.disk_total_bytes);
    assert_true(s.disk_percent >= 0 && s.disk_percent <= 100);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/no/such/dir", fx->root);
    assert_int_equal(sysstat_sample(fx->stat, missing, &s), -1);
}

static void test_missing_files_fail(void **state)
{
    fixture_t *fx = *state;
    sysstat_sample_t s;
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), -1);
    write_system(fx);
    char path[128];
    snprintf(path, sizeof path, "%s/meminfo", fx->root);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sysstat_sample(fx->stat, NULL, &s), -1);
}

static void test_process_fields(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    write_uptime(fx, "1000.00 500.00\n");
    write_pid_stat(fx, 4242, "my (weird) proc) name", 250, 150, 12345);
    sysstat_proc_t p;
    assert_int_equal(sysstat_process(fx->stat, 4242, &p), 0);
    assert_int_equal(p.pid, 4242);
    assert_string_equal(p.name, "my (weird) proc) name");
    assert_int_equal(p.state, 'S');
    assert_int_equal(p.threads, 7);
    assert_true(p.vms_bytes == 104857600);
    assert_true(p.rss_bytes == 2560ULL * (uint64_t) sysconf(_SC_PAGESIZE));
    assert_near(p.start_time, BTIME + 12345 / fx->clk);
    /* First sight: since start, 400 ticks over (uptime - start) seconds. */
    assert_near(p.cpu_percent, 100.0 * (400 / fx->clk) / (1000.0 - 12345 / fx->clk));
}

static void test_process_cpu_between_calls(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    write_uptime(fx, "1000.00 500.00\n");
    write_pid_stat(fx, 77, "worker", 250, 150, 100);
    sysstat_proc_t p;
    assert_int_equal(sysstat_process(fx->stat, 77, &p), 0);
    /* 500 more ticks over 10 s. */
    write_uptime(fx, "1010.00 505.00\n");
    write_pid_stat(fx, 77, "worker", 650, 250, 100);
    assert_int_equal(sysstat_process(fx->stat, 77, &p), 0);
    assert_near(p.cpu_percent, 100.0 * (500 / fx->clk) / 10.0);
    /* No time passed: the previous figure stands. */
    write_pid_stat(fx, 77, "worker", 900, 250, 100);
    assert_int_equal(sysstat_process(fx->stat, 77, &p), 0);
    assert_near(p.cpu_percent, 100.0 * (500 / fx->clk) / 10.0);
    /* The pid recycled (other starttime): since its own start again. */
    write_uptime(fx, "1020.00 505.00\n");
    write_pid_stat(fx, 77, "other", 30, 10, 100000);
    assert_int_equal(sysstat_process(fx->stat, 77, &p), 0);
    assert_string_equal(p.name, "other");
    assert_near(p.cpu_percent, 100.0 * (40 / fx->clk) / (1020.0 - 100000 / fx->clk));
}

static void test_process_table_evicts_oldest(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    write_uptime(fx, "1000.00 500.00\n");
    write_pid_stat(fx, 5, "first", 100, 0, 100);
    sysstat_proc_t p;
    assert_int_equal(sysstat_process(fx->stat, 5, &p), 0);
    write_uptime(fx, "1005.00 500.00\n");
    for (int pid = 1000; pid < 1200; pid++) {
        write_pid_stat(fx, pid, "filler", 1, 1, 100);
        assert_int_equal(sysstat_process(fx->stat, pid, &p), 0);
    }
    /* pid 5's sample was the oldest and is gone: since start, not since 1000. */
    write_uptime(fx, "1010.00 500.00\n");
    write_pid_stat(fx, 5, "first", 600, 0, 100);
    assert_int_equal(sysstat_process(fx->stat, 5, &p), 0);
    assert_near(p.cpu_percent, 100.0 * (600 / fx->clk) / (1010.0 - 100 / fx->clk));
}

static void test_process_long_and_bad_comm(void **state)
{
    fixture_t *fx = *state;
    write_system(fx);
    char comm[101];
    memset(comm, 'x', 100);
    comm[100] = '\0';
    write_pid_stat(fx, 9, comm, 1, 1, 1);
    sysstat_proc_t p;
    assert_int_equal(sysstat_process(fx->stat, 9, &p), 0);
    assert_int_equal(strlen(p.name), sizeof p.name - 1);
    assert_int_equal(p.threads, 7);

    write_file(fx, "10/stat", "10 no-parentheses S 1 2 3\n");
    assert_int_equal(sysstat_process(fx->stat, 10, &p), -1);
    write_file(fx, "11/stat", "11 (cut) S 1 2\n");
    assert_int_equal(sysstat_process(fx->stat, 11, &p), -1);
    assert_int_equal(sysstat_process(fx->stat, 12, &p), -1);
    assert_int_equal(sysstat_process(fx->stat, 0, &p), -1);
    assert_int_equal(sysstat_process(fx->stat, -5, &p), -1);
}

static void test_real_proc(void **state)
{
    (void) state;
    sysstat_t *stat = sysstat_new("/proc");
    assert_non_null(stat);
    sysstat_sample_t s;
    assert_int_equal(sysstat_sample(stat, "/", &s), 0);
    assert_true(s.cpu_percent >= 0 && s.cpu_percent <= 100);
    assert_true(s.cpu_count >= 1);
    assert_true(s.mem_total_bytes > 0);
    assert_true(s.mem_used_bytes <= s.mem_total_bytes);
    assert_true(s.mem_percent > 0 && s.mem_percent <= 100);
    assert_true(s.disk_total_bytes > 0);
    assert_true(s.uptime_s > 0);

    sysstat_proc_t p;
    assert_int_equal(sysstat_process(stat, getpid(), &p), 0);
    assert_int_equal(p.pid, getpid());
    assert_true(p.rss_bytes > 0);
    assert_true(p.vms_bytes >= p.rss_bytes);
    assert_true(p.threads >= 1);
    assert_int_equal(p.state, 'R');
    assert_true(strlen(p.name) > 0);
    assert_true(p.cpu_percent >= 0);
    double now = clock_wall();
    assert_true(p.start_time > now - 3600 && p.start_time < now + 2);
    assert_int_equal(sysstat_process(stat, INT_MAX, &p), -1);
    sysstat_destroy(&stat);
    sysstat_destroy(&stat);
    sysstat_destroy(NULL);
    assert_null(stat);
}

static void *sample_loop(void *arg)
{
    sysstat_t *stat = arg;
    for (int i = 0; i < 50; i++) {
        sysstat_sample_t s;
        sysstat_proc_t p;
        if (sysstat_sample(stat, NULL, &s) != 0 || s.cpu_percent < 0 || s.cpu_percent > 100
            || sysstat_process(stat, getpid(), &p) != 0)
            return (void *) 1;
    }
    return NULL;
}

static void test_real_proc_threads(void **state)
{
    (void) state;
    sysstat_t *stat = sysstat_new("/proc");
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, sample_loop, stat), 0);
    for (int i = 0; i < 4; i++) {
        void *failed;
        assert_int_equal(pthread_join(threads[i], &failed), 0);
        assert_null(failed);
    }
    sysstat_destroy(&stat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cpu_percent_between_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_load_uptime_net, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meminfo_without_available, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_of_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_cpu_between_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_table_evicts_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_long_and_bad_comm, setup, teardown),
        cmocka_unit_test(test_real_proc),
        cmocka_unit_test(test_real_proc_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
