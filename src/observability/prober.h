/*  prober: one health sweep over many agents at once, and what their
 *  answers mean.  The probes of a sweep are one gather (gather.h), so a
 *  sweep of N agents takes as long as its slowest probe, never the sum,
 *  and costs one thread however many agents there are; what is left here
 *  is reading a health reply in the words the kept agents write it. */
#ifndef OBS_PROBER_H
#define OBS_PROBER_H
#include <jansson.h>
#include <stdbool.h>

#include "names.h"

typedef enum { HPROBE_ZMQ, HPROBE_HTTP } hprobe_kind_t;
/* DEGRADED: the agent answered, alive but saying it is not (yet) well. */
typedef enum { HPROBE_PENDING, HPROBE_HEALTHY, HPROBE_DEGRADED, HPROBE_UNHEALTHY, HPROBE_TIMEOUT,
               HPROBE_ERROR } hprobe_result_t;
/* What a healthy ZMQ reply says: a status in any of the words the kept
 * agents write (HealthMonitor, PHM, BaseAgent's loop and its overrides), or
 * exactly "success" (SystemHealthManager's memory services). */
typedef enum { HPROBE_EXPECT_OK, HPROBE_EXPECT_SUCCESS } hprobe_expect_t;

typedef struct {
    /* in */
    hprobe_kind_t kind;
    char host[NAMES_BUF];       /* a registry's host is limited like a name (names.h) */
    int port;
    const char *request;        /* ZMQ: the JSON text sent (borrowed); HTTP asks GET /health */
    int timeout_ms;
    hprobe_expect_t expect;
    /* out */
    hprobe_result_t result;
    double latency_s;
    json_t *details;            /* the reply, or {"http_status": n}; owned */
    char error[192];
} hprobe_t;

/* Runs every probe to its result; probes[i].details must be NULL before.
 * A readable cancel_fd (the sweeper's stop descriptor; -1: none) ends the
 * probes still running, as errors. */
void prober_run(hprobe_t *probes, size_t n, int cancel_fd);
/* "healthy", "degraded", "unhealthy", "timeout", "error". */
const char *hprobe_result_name(hprobe_result_t r);
/* HEALTHY, DEGRADED or UNHEALTHY: what a reply object says under `expect`. */
hprobe_result_t hprobe_reply_verdict(json_t *reply, hprobe_expect_t expect);
/* The reply's own words for a record: "status 'error': degraded disk". */
char *hprobe_reply_words(json_t *reply, char *buf, size_t len);
#endif
