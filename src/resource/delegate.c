/*  delegate: see delegate.h.  The frame is forwarded as received, so the
 *  legacy agent sees exactly what its caller sent. */
#include "delegate.h"
#include "breaker.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rs_delegate_t {
    service_t *svc;
    char module[64], endpoint[256];
    int timeout_ms;
    breaker_t *breaker;
};

rs_delegate_t *rs_delegate_new(service_t *svc, const char *module)
{
    char key[128];
    snprintf(key, sizeof key, "modules.%s.mode", module);
    if (strcmp(config_str(svc->config, key, "unified"), "delegate") != 0)
        return NULL;
    snprintf(key, sizeof key, "modules.%s.delegate_to", module);
    const char *endpoint = config_str(svc->config, key, "");
    if (!*endpoint) {
        log_error("resource", "modules.%s: mode delegate needs delegate_to; serving it in C", module);
        return NULL;
    }
    rs_delegate_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    snprintf(self->module, sizeof self->module, "%s", module);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    snprintf(key, sizeof key, "modules.%s.timeout_ms", module);
    self->timeout_ms = (int)config_int(svc->config, key, 5000);
    self->breaker = breaker_new(module, 3, 30.0);
    metrics_declare(svc->metrics, "keel_resource_delegated_total",
                    "Requests forwarded to legacy agents, by module and outcome.", METRIC_COUNTER, NULL, 0);
    log_info("resource", "%s delegated to %s", module, endpoint);
    return self;
}

void rs_delegate_destroy(rs_delegate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    breaker_destroy(&(*self_p)->breaker);
    free(*self_p);
    *self_p = NULL;
}

static void count(rs_delegate_t *self, const char *outcome)
{
    char labels[128];
    metrics_labels(labels, sizeof labels, "module", self->module, "outcome", outcome, NULL);
    metrics_add(self->svc->metrics, "keel_resource_delegated_total", labels, 1);
}

json_t *rs_delegate_forward(rs_delegate_t *self, wire_request_t *req)
{
    if (!breaker_allow(self->breaker, clock_mono())) {
        count(self, "breaker_open");
        return wire_error("%s delegate at %s is unavailable (circuit open)", self->module, self->endpoint);
    }
    char err[512];
    size_t len = 0;
    wire_client_t *client = wire_client_new(self->endpoint, self->timeout_ms, 0);
    char *text = wire_client_call_raw(client, req->raw, req->raw_len, &len, err, sizeof err);
    wire_client_destroy(&client);
    json_t *reply = text ? json_loadb(text, len, JSON_DECODE_ANY, NULL) : NULL;
    free(text);
    if (!reply) {
        breaker_record_failure(self->breaker, clock_mono());
        count(self, "error");
        if (text)
            snprintf(err, sizeof err, "reply is not JSON");
        errpub_report(self->svc->errors, "delegate_unavailable", "ERROR", NULL, "%s delegate at %s: %s",
                      self->module, self->endpoint, err);
        return wire_error("%s delegate at %s failed: %s", self->module, self->endpoint, err);
    }
    breaker_record_success(self->breaker, clock_mono());
    count(self, "ok");
    return reply;
}

json_t *rs_delegate_handler(void *ctx, wire_request_t *req)
{
    return rs_delegate_forward(ctx, req);
}
