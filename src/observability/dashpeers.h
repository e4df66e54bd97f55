/*  dashpeers: what the dashboard needs from the other four services,
 *  asked all at once.  Each question is a REQ socket of its own; they are
 *  all sent, then polled together against one deadline, so a page refresh
 *  costs at most one timeout however many services are down, and a
 *  service that does not answer is simply absent from the result. */
#ifndef OBS_DASHPEERS_H
#define OBS_DASHPEERS_H
#include <jansson.h>

#include "config.h"

typedef struct {
    int port;               /* Keel base port (7001), moved by port_offset */
    json_t *request;        /* owned; freed by dashpeers_call */
    json_t *reply;          /* new reference, or NULL when none came */
    char error[96];         /* why there is no reply */
} dashpeer_call_t;

/* Sends every request (the first 32; later ones get an error), then waits
 * at most timeout_ms for all the replies together. */
void dashpeers_call(config_t *config, dashpeer_call_t *calls, size_t n, int timeout_ms);
/* The body of GET `path` on one Keel service's HTTP port (base port,
 * moved by port_offset), NUL-terminated: a new string, or NULL when the
 * service does not answer 200 within timeout_ms. */
char *dashpeers_get(config_t *config, int http_port, const char *path, int timeout_ms);
/* Counters of one Keel service's /metrics whose names start with one of
 * `families` (NULL-terminated): {family: {label value: count}}.  NULL
 * when the service does not answer within timeout_ms. */
json_t *dashpeers_counters(config_t *config, int http_port, const char *const *families,
                           int timeout_ms);
#endif
