/*  prober: see prober.h.  A ZMQ probe whose reply is not JSON, or an HTTP
 *  probe answered with another status than 200, is the agent's fault and
 *  said in its words; a probe that got no answer keeps gather's words for
 *  why ("Request timed out"). */
#include "prober.h"
#include "agentstate.h"
#include "gather.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "http://" or "tcp://", the host, the port and "/health". */
#define PROBE_URL (NAMES_BUF + 32)

const char *hprobe_result_name(hprobe_result_t r)
{
    switch (r) {
    case HPROBE_HEALTHY: return "healthy";
    case HPROBE_DEGRADED: return "degraded";
    case HPROBE_UNHEALTHY: return "unhealthy";
    case HPROBE_TIMEOUT: return "timeout";
    case HPROBE_ERROR: return "error";
    default: return "unknown";
    }
}

hprobe_result_t hprobe_reply_verdict(json_t *reply, hprobe_expect_t expect)
{
    if (expect == HPROBE_EXPECT_SUCCESS) {
        const char *status = json_string_value(json_object_get(reply, "status"));
        return status && !strcmp(status, "success") && !json_is_false(json_object_get(reply, "healthy"))
               ? HPROBE_HEALTHY : HPROBE_UNHEALTHY;
    }
    switch (agentstate_of_reply(reply)) {
    case AGENTSTATE_UP: return HPROBE_HEALTHY;
    case AGENTSTATE_DEGRADED: return HPROBE_DEGRADED;
    default: return HPROBE_UNHEALTHY;
    }
}

char *hprobe_reply_words(json_t *reply, char *buf, size_t len)
{
    static const char *const keys[] = { "message", "error", "status_reason", "reason" };
    const char *status = json_string_value(json_object_get(reply, "status"));
    const char *said = NULL;
    for (size_t i = 0; !said && i < sizeof keys / sizeof keys[0]; i++)
        said = json_string_value(json_object_get(reply, keys[i]));
    if (!json_is_object(reply))
        snprintf(buf, len, "reply is not a JSON object");
    else if (!status)
        snprintf(buf, len, "reply has no status%s%s", said ? ": " : "", said ? said : "");
    else
        snprintf(buf, len, "status '%s'%s%s", status, said ? ": " : "", said ? said : "");
    return buf;
}

/* One probe's result from its call. */
static void read_answer(hprobe_t *p, const gather_call_t *call)
{
    p->latency_s = call->latency_s;
    p->error[0] = '\0';
    if (call->state == GATHER_UNSENT) {
        p->result = HPROBE_PENDING;     /* not probed: nothing learnt */
        snprintf(p->error, sizeof p->error, "%s", call->error);
    } else if (call->state != GATHER_OK) {
        p->result = call->state == GATHER_TIMEOUT ? HPROBE_TIMEOUT : HPROBE_ERROR;
        snprintf(p->error, sizeof p->error, "%s", call->error);
    } else if (p->kind == HPROBE_HTTP) {
        p->details = json_pack("{s:i}", "http_status", (int)call->http_status);
        p->result = call->http_status == 200 ? HPROBE_HEALTHY : HPROBE_UNHEALTHY;
        if (p->result != HPROBE_HEALTHY)
            snprintf(p->error, sizeof p->error, "HTTP status %ld", call->http_status);
    } else if (!(p->details = gather_reply_json(call))) {
        p->result = HPROBE_ERROR;
        snprintf(p->error, sizeof p->error, "Unexpected error: reply is not JSON");
    } else {
        p->result = hprobe_reply_verdict(p->details, p->expect);
        if (p->result != HPROBE_HEALTHY)
            hprobe_reply_words(p->details, p->error, sizeof p->error);
    }
}

void prober_run(hprobe_t *probes, size_t n, int cancel_fd)
{
    gather_call_t *calls = calloc(n ? n : 1, sizeof *calls);
    char (*urls)[PROBE_URL] = calloc(n ? n : 1, sizeof *urls);
    int longest = 0;
    for (size_t i = 0; i < n; i++) {
        hprobe_t *p = &probes[i];
        bool zmq = p->kind == HPROBE_ZMQ;
        snprintf(urls[i], sizeof urls[i], zmq ? "tcp://%s:%d" : "http://%s:%d/health", p->host, p->port);
        calls[i] = (gather_call_t){ .url = urls[i], .body = zmq ? p->request : NULL,
                                    .body_len = zmq ? strlen(p->request) : 0, .timeout_ms = p->timeout_ms,
                                    .agent = true };
        longest = p->timeout_ms > longest ? p->timeout_ms : longest;
    }
    gather_run_until(calls, n, longest, cancel_fd);
    for (size_t i = 0; i < n; i++)
        read_answer(&probes[i], &calls[i]);
    gather_clear(calls, n);
    free(calls);
    free(urls);
}
