/*  prober: one health sweep over many agents at once.  Every probe of a
 *  sweep is started together (a REQ socket per ZMQ probe, a non-blocking
 *  TCP socket per HTTP probe) and one zmq_poll loop waits on all of them,
 *  so a sweep of N agents takes as long as its slowest probe, never the
 *  sum, and costs one thread however many agents there are. */
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
    const char *request;        /* ZMQ: the JSON text sent (borrowed) */
    const char *path;           /* HTTP: "/health" when NULL */
    int timeout_ms;
    hprobe_expect_t expect;
    /* out */
    hprobe_result_t result;
    double latency_s;
    json_t *details;            /* the reply, or {"http_status": n}; owned */
    char error[192];
} hprobe_t;

typedef struct prober_t prober_t;

/* max_sockets bounds the ZMQ sockets of one sweep (the context's limit). */
prober_t *prober_new(int max_sockets);
void prober_destroy(prober_t **self_p);
/* Runs every probe to its result; probes[i].details must be NULL before. */
void prober_run(prober_t *self, hprobe_t *probes, size_t n);
/* "healthy", "degraded", "unhealthy", "timeout", "error". */
const char *hprobe_result_name(hprobe_result_t r);
/* HEALTHY, DEGRADED or UNHEALTHY: what a reply object says under `expect`. */
hprobe_result_t hprobe_reply_verdict(json_t *reply, hprobe_expect_t expect);
/* The reply's own words for a record: "status 'error': degraded disk". */
char *hprobe_reply_words(json_t *reply, char *buf, size_t len);
#endif
