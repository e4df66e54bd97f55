/*  monitor: see monitor.h.  Event texts never carry a token or a password:
 *  a user name and a count are all an operator needs to act. */
#include "monitor.h"
#include "clock.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_TYPES 4
#define ERROR_TYPES 16
enum { EV_BURST, EV_LOCKOUT, EV_MISUSE, EV_TRUST };

struct monitor_t {
    service_t *svc;
    pthread_mutex_t lock;
    int burst;
    double burst_window_s, trust_drop, event_interval_s;
    double window_start;
    int window_failures;
    double last_event[EVENT_TYPES];
    struct { const char *type; double last; } errors[ERROR_TYPES];     /* types are static text */
};

monitor_t *monitor_new(service_t *svc)
{
    monitor_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    pthread_mutex_init(&self->lock, NULL);
    config_t *c = svc->config;
    self->burst = (int)config_int(c, "security.monitor.failed_login_burst", 10);
    self->burst_window_s = config_double(c, "security.monitor.burst_window_s", 60);
    self->trust_drop = config_double(c, "security.monitor.trust_drop", 0.3);
    self->event_interval_s = config_double(c, "security.monitor.event_interval_s", 10);
    for (int i = 0; i < EVENT_TYPES; i++)
        self->last_event[i] = -1e9;
    metrics_t *m = svc->metrics;
    metrics_declare(m, "keel_security_logins_total", "Login attempts by outcome.", METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_security_lockouts_total", "Locks set after repeated failed logins, by key kind.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_security_token_misuse_total",
                    "Tokens presented that were malformed, forged, expired or unknown.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_security_trust_drops_total", "Trust scores that fell sharply.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(m, "keel_security_events_total", "Security events published on the ErrorBus.",
                    METRIC_COUNTER, NULL, 0);
    return self;
}

void monitor_destroy(monitor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

/* True when an event of this kind may go out now (rate limit). */
static bool may_publish(monitor_t *self, int kind)
{
    double now = clock_mono();
    pthread_mutex_lock(&self->lock);
    bool ok = now - self->last_event[kind] >= self->event_interval_s;
    if (ok)
        self->last_event[kind] = now;
    pthread_mutex_unlock(&self->lock);
    return ok;
}

static void publish(monitor_t *self, int kind, const char *type, const char *severity,
                    json_t *details, const char *message)
{
    if (may_publish(self, kind)) {
        char labels[96];
        metrics_labels(labels, sizeof labels, "type", type, NULL);
        metrics_add(self->svc->metrics, "keel_security_events_total", labels, 1);
        errpub_report(self->svc->errors, type, severity, details, "%s", message);
        log_warn("security", "%s", message);
    }
    json_decref(details);
}

void monitor_login(monitor_t *self, const char *outcome)
{
    char labels[64];
    metrics_labels(labels, sizeof labels, "outcome", outcome, NULL);
    metrics_add(self->svc->metrics, "keel_security_logins_total", labels, 1);
    if (strcmp(outcome, "failure") != 0)
        return;
    double now = clock_mono();
    pthread_mutex_lock(&self->lock);
    if (now - self->window_start > self->burst_window_s) {
        self->window_start = now;
        self->window_failures = 0;
    }
    int count = ++self->window_failures;
    pthread_mutex_unlock(&self->lock);
    if (count >= self->burst) {
        char message[160];
        snprintf(message, sizeof message, "%d failed logins within %.0f s", count, self->burst_window_s);
        publish(self, EV_BURST, "SECURITY_LOGIN_BURST", "warning",
                json_pack("{s:i, s:f}", "failures", count, "window_s", self->burst_window_s), message);
    }
}

void monitor_lockout(monitor_t *self, const char *kind, double lock_s)
{
    char labels[64];
    metrics_labels(labels, sizeof labels, "kind", kind, NULL);
    metrics_add(self->svc->metrics, "keel_security_lockouts_total", labels, 1);
    char message[160];
    snprintf(message, sizeof message, "a %s was locked for %.0f s after repeated failed logins", kind, lock_s);
    publish(self, EV_LOCKOUT, "SECURITY_LOCKOUT", "warning",
            json_pack("{s:s, s:f}", "kind", kind, "lock_s", lock_s), message);
}

/* What the dashboard shows, by the label values the functions above count
 * under: a kind counted nowhere else is still named, with 0. */
static const struct {
    const char *key, *family, *label;
    const char *const values[5];
} shown[] = {
    { "logins", "keel_security_logins_total", "outcome", { "success", "failure", "locked", NULL } },
    { "lockouts", "keel_security_lockouts_total", "kind", { "user", "source", NULL } },
    { "token_misuse", "keel_security_token_misuse_total", "kind",
      { "malformed", "expired", "forged", "unknown", NULL } },
};

json_t *monitor_counters(monitor_t *self)
{
    json_t *reply = json_pack("{s:s}", "status", "success");
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        json_t *by_kind = json_object();
        for (size_t k = 0; shown[i].values[k]; k++) {
            char labels[64];
            metrics_labels(labels, sizeof labels, shown[i].label, shown[i].values[k], NULL);
            double count = metrics_value(self->svc->metrics, shown[i].family, labels);
            json_object_set_new(by_kind, shown[i].values[k], json_integer((json_int_t)count));
        }
        json_object_set_new(reply, shown[i].key, by_kind);
    }
    return reply;
}

void monitor_name_too_long(monitor_t *self)
{
    char labels[64];
    metrics_labels(labels, sizeof labels, "service", "security", "reason", "name_too_long", NULL);
    metrics_add(self->svc->metrics, "keel_bad_requests_total", labels, 1);
}

void monitor_token_misuse(monitor_t *self, const char *kind)
{
    char labels[64];
    metrics_labels(labels, sizeof labels, "kind", kind, NULL);
    metrics_add(self->svc->metrics, "keel_security_token_misuse_total", labels, 1);
    if (strcmp(kind, "unknown") == 0)
        return;     /* an unknown well-formed token is a normal answer (logged-out sessions) */
    char message[128];
    snprintf(message, sizeof message, "%s token presented", kind);
    publish(self, EV_MISUSE, "SECURITY_TOKEN_MISUSE", "warning", json_pack("{s:s}", "kind", kind), message);
}

void monitor_trust(monitor_t *self, const char *model_id, double before, double after)
{
    if (before - after <= self->trust_drop)
        return;
    metrics_add(self->svc->metrics, "keel_security_trust_drops_total", "", 1);
    char message[256];
    snprintf(message, sizeof message, "trust score of %.100s fell from %.3f to %.3f", model_id, before, after);
    publish(self, EV_TRUST, "SECURITY_TRUST_DROP", "warning",
            json_pack("{s:s, s:f, s:f}", "model_id", model_id, "before", before, "after", after), message);
}

/* Internal errors are rate-limited per type too: a flood of garbage
 * requests must not become a flood on the bus. */
void monitor_error(monitor_t *self, const char *type, const char *message)
{
    double now = clock_mono();
    bool ok = false;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < ERROR_TYPES; i++) {
        if (self->errors[i].type && strcmp(self->errors[i].type, type))
            continue;
        if (!self->errors[i].type || now - self->errors[i].last >= self->event_interval_s) {
            self->errors[i].type = type;
            self->errors[i].last = now;
            ok = true;
        }
        break;
    }
    pthread_mutex_unlock(&self->lock);
    if (ok)
        errpub_report(self->svc->errors, type, "ERROR", NULL, "%s", message);
}
