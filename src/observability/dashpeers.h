/*  dashpeers: what the dashboard needs from the other four services,
 *  asked all at once (gather.h), so a page refresh costs at most one
 *  timeout however many services are down, and a service that does not
 *  answer is simply absent from the result. */
#ifndef OBS_DASHPEERS_H
#define OBS_DASHPEERS_H
#include <jansson.h>
#include <stddef.h>

#include "config.h"

typedef struct {
    int port;               /* Keel base port (7001), moved by port_offset */
    json_t *request;        /* owned; freed by dashpeers_call */
    json_t *reply;          /* new reference, or NULL when none came */
    char error[96];         /* why there is no reply */
} dashpeer_call_t;

/* Sends every request, then waits at most timeout_ms for all the replies
 * together. */
void dashpeers_call(config_t *config, dashpeer_call_t *calls, size_t n, int timeout_ms);
/* "http://host:port/path" of a Keel service's HTTP port (base port, moved
 * by port_offset), on the host where its ZMQ port is asked. */
void dashpeers_url(config_t *config, int http_port, const char *path, char *buf, size_t len);
#endif
