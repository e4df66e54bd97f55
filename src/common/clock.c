/*  clock: see clock.h. */
#include "clock.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

double clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The "%Y-%m-%dT%H:%M:%S" of a second, kept per thread and per kind:
 * localtime_r and strftime cost more than everything else in a timestamp,
 * and replies stamped in the same second share it.  Keyed by the second
 * itself, so a new second (a time-zone change included) is computed
 * afresh. */
typedef struct {
    time_t secs;
    bool valid;
    size_t n;
    char text[32];
} second_t;

static const second_t *second_of(time_t secs, bool utc)
{
    static _Thread_local second_t seconds[2];
    second_t *s = &seconds[utc];
    if (s->valid && s->secs == secs)
        return s;
    struct tm tm;
    if (utc)
        gmtime_r(&secs, &tm);
    else
        localtime_r(&secs, &tm);
    s->n = strftime(s->text, sizeof s->text, "%Y-%m-%dT%H:%M:%S", &tm);
    s->secs = secs;
    s->valid = s->n > 0;
    return s;
}

static char *format_iso(double unix_s, bool utc, char *buf, size_t len)
{
    time_t secs = (time_t)unix_s;
    long micros = (long)((unix_s - (double)secs) * 1e6 + 0.5);
    if (micros >= 1000000) {
        secs++;
        micros -= 1000000;
    }
    const second_t *second = second_of(secs, utc);
    size_t n = second->n;
    if (n == 0 || n + 1 > len) {      /* nothing, or a short buffer: as strftime would */
        if (len)
            buf[0] = '\0';
        return buf;
    }
    memcpy(buf, second->text, n);
    buf[n] = '\0';
    if (micros && n + 7 < len) {
        buf[n] = '.';
        for (int i = 6; i >= 1; i--) {
            buf[n + (size_t)i] = (char)('0' + micros % 10);
            micros /= 10;
        }
        n += 7;
        buf[n] = '\0';
    }
    if (utc && n + 1 < len) {
        buf[n++] = 'Z';
        buf[n] = '\0';
    }
    return buf;
}

char *clock_iso_local(double unix_s, char *buf, size_t len)
{
    return format_iso(unix_s, false, buf, len);
}

char *clock_iso_utc(double unix_s, char *buf, size_t len)
{
    return format_iso(unix_s, true, buf, len);
}

int clock_parse_iso(const char *text, double *unix_s)
{
    if (!text)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(text, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return -1;
    double frac = 0;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        p = end;
    }
    double result;
    if (*p == '\0') {
        tm.tm_isdst = -1;
        result = (double)mktime(&tm);
    } else if (*p == 'Z' && p[1] == '\0') {
        result = (double)timegm(&tm);
    } else if ((*p == '+' || *p == '-') && strlen(p) >= 5) {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 && sscanf(p + 1, "%2d%2d", &hh, &mm) != 2)
            return -1;
        int offset = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
        result = (double)timegm(&tm) - offset;
    } else {
        return -1;
    }
    *unix_s = result + frac;
    return 0;
}

void clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

void clock_deadline(double seconds, struct timespec *until)
{
    clock_gettime(CLOCK_MONOTONIC, until);
    double t = (double)until->tv_sec + until->tv_nsec / 1e9 + (seconds > 0 ? seconds : 0);
    until->tv_sec = (time_t)t;
    until->tv_nsec = (long)((t - (double)until->tv_sec) * 1e9);
}
