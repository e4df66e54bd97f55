/*  procstat: what the benches read of a server process from /proc, so
 *  that its CPU is counted without the clients' that share the machine. */
#ifndef KEEL_BENCH_PROCSTAT_H
#define KEEL_BENCH_PROCSTAT_H

/* The user and system CPU seconds process `pid` has used, or -1. */
double procstat_cpu_seconds(int pid);
#endif
