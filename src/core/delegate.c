/*  delegate: see delegate.h.
 *
 *  A breaker per delegated agent (3 failures, 30 s, one probe) keeps a dead
 *  legacy agent from costing every caller the full timeout.  Forwarding
 *  blocks the handler for up to the timeout, so core.c gives the wire
 *  server worker threads whenever any module is delegated. */
#include "delegate.h"
#include "breaker.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct delegate_t {
    service_t *svc;
    char module[64];
    char endpoint[256];
    int timeout_ms;
    breaker_t *breaker;
};

delegate_t *core_delegate_new(service_t *svc, const char *module)
{
    char key[128];
    snprintf(key, sizeof key, "modules.%s.mode", module);
    if (strcmp(config_str(svc->config, key, "unified"), "delegate") != 0)
        return NULL;
    snprintf(key, sizeof key, "modules.%s.delegate_to", module);
    const char *endpoint = config_str(svc->config, key, "");
    if (!*endpoint) {
        log_error("core", "modules.%s: mode delegate needs delegate_to; serving it in C", module);
        return NULL;
    }
    delegate_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    snprintf(self->module, sizeof self->module, "%s", module);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    snprintf(key, sizeof key, "modules.%s.timeout_ms", module);
    self->timeout_ms = (int)config_int(svc->config, key, 5000);
    snprintf(key, sizeof key, "modules.%s.breaker_reset_s", module);
    self->breaker = breaker_new(module, 3, config_double(svc->config, key, 30.0));
    metrics_declare(svc->metrics, "keel_core_delegated_total", "Requests forwarded to legacy agents by outcome.",
                    METRIC_COUNTER, NULL, 0);
    log_info("core", "%s delegated to %s", module, endpoint);
    return self;
}

void core_delegate_destroy(delegate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    breaker_destroy(&(*self_p)->breaker);
    free(*self_p);
    *self_p = NULL;
}

static void count(delegate_t *self, const char *outcome)
{
    char labels[128];
    metrics_labels(labels, sizeof labels, "module", self->module, "outcome", outcome, NULL);
    metrics_add(self->svc->metrics, "keel_core_delegated_total", labels, 1);
}

json_t *core_delegate_forward(delegate_t *self, json_t *request)
{
    if (!breaker_allow(self->breaker, clock_mono())) {
        count(self, "breaker_open");
        return wire_error("%s delegate at %s is unavailable (circuit open)", self->module, self->endpoint);
    }
    char err[512];
    json_t *reply = wire_call(self->endpoint, request, self->timeout_ms, 0, err, sizeof err);
    if (!reply) {
        breaker_record_failure(self->breaker, clock_mono());
        count(self, "error");
        errpub_report(self->svc->errors, "delegate_unavailable", "high", NULL, "%s delegate at %s: %s",
                      self->module, self->endpoint, err);
        return wire_error("%s delegate at %s failed: %s", self->module, self->endpoint, err);
    }
    breaker_record_success(self->breaker, clock_mono());
    count(self, "ok");
    return reply;
}

json_t *core_delegate_handler(void *ctx, wire_request_t *req)
{
    return core_delegate_forward(ctx, req->body);
}

json_t *core_delegate_status(delegate_t *self)
{
    return json_pack("{s:s, s:s}", "endpoint", self->endpoint, "breaker",
                     breaker_state_name(breaker_state(self->breaker, clock_mono())));
}
