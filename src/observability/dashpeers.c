/*  dashpeers: see dashpeers.h.  Not wire_call in a loop: its calls are
 *  sequential, so four services down would cost four timeouts on every
 *  refresh.  What SecurityGateway counts is asked as any other figure
 *  (get_security_counters), never read out of its Prometheus text. */
#include "dashpeers.h"
#include "gather.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENDPOINT_BUF 256

void dashpeers_call(config_t *config, dashpeer_call_t *calls, size_t n, int timeout_ms)
{
    gather_call_t *asked = calloc(n ? n : 1, sizeof *asked);
    char (*endpoints)[ENDPOINT_BUF] = calloc(n ? n : 1, sizeof *endpoints);
    for (size_t i = 0; i < n; i++) {
        config_local_endpoint(config, calls[i].port, endpoints[i], sizeof endpoints[i]);
        asked[i] = (gather_call_t){ .url = endpoints[i], .request = calls[i].request };
    }
    gather_run(asked, n, timeout_ms);
    for (size_t i = 0; i < n; i++) {
        calls[i].reply = gather_reply_json(&asked[i]);
        if (asked[i].state == GATHER_TIMEOUT)
            snprintf(calls[i].error, sizeof calls[i].error, "no reply within %d ms", timeout_ms);
        else if (!calls[i].reply)
            snprintf(calls[i].error, sizeof calls[i].error, "%s",
                     asked[i].state == GATHER_OK ? "reply is not JSON" : asked[i].error);
        json_decref(calls[i].request);
        calls[i].request = NULL;
    }
    gather_clear(asked, n);
    free(asked);
    free(endpoints);
}

void dashpeers_url(config_t *config, int http_port, const char *path, char *buf, size_t len)
{
    char endpoint[ENDPOINT_BUF];
    config_local_endpoint(config, http_port, endpoint, sizeof endpoint);
    snprintf(buf, len, "http://%s%s", endpoint + strlen("tcp://"), path);
}
