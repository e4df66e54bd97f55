/*  clock: the two clocks Keel uses and the timestamp texts the original
 *  Python agents produced.  Monotonic time measures intervals (timeouts,
 *  breakers, TTLs); wall time stamps records.  iso_local is Python's
 *  datetime.now().isoformat(): no zone, microseconds left out when 0. */
#ifndef KEEL_CLOCK_H
#define KEEL_CLOCK_H
#include <pthread.h>
#include <stddef.h>
#include <time.h>

double clock_mono(void);          /* seconds, CLOCK_MONOTONIC */
double clock_wall(void);          /* unix seconds, CLOCK_REALTIME */
/* Writes the text into buf; returns buf. */
char *clock_iso_local(double unix_s, char *buf, size_t len);
char *clock_iso_utc(double unix_s, char *buf, size_t len);   /* ends in Z */
/* Parses ISO-8601 ("2025-07-16T10:00:00[.ffffff][Z|+hh:mm]"); no zone is
 * local time.  Returns 0 and sets *unix_s, or -1. */
int clock_parse_iso(const char *text, double *unix_s);

/* Timed waits (an actor's, a queue's) use a condition that measures its
 * timeouts on the monotonic clock, so a wall-clock jump neither stalls nor
 * hurries them. */
void clock_cond_init(pthread_cond_t *cond);
/* The monotonic time `seconds` from now, for pthread_cond_timedwait on a
 * condition made by clock_cond_init. */
void clock_deadline(double seconds, struct timespec *until);
#endif
