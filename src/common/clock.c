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

static char *format_iso(double unix_s, bool utc, char *buf, size_t len)
{
    time_t secs = (time_t)unix_s;
    long micros = (long)((unix_s - (double)secs) * 1e6 + 0.5);
    if (micros >= 1000000) {
        secs++;
        micros -= 1000000;
    }
    struct tm tm;
    if (utc)
        gmtime_r(&secs, &tm);
    else
        localtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0) {       /* strftime leaves a short buffer unterminated */
        if (len)
            buf[0] = '\0';
        return buf;
    }
    if (micros && n < len)
        n += snprintf(buf + n, len - n, ".%06ld", micros);
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
