/*  analysis: see analysis.h.
 *
 *  Correlation keeps the EMS definition on purpose (every cross-source pair
 *  of the 100 newest errors less than 60 s apart): it is crude, but it is
 *  what operators were promised, and it is bounded (at most 4950 pairs).
 *  Pairs are stored once (unique on the two ids), so a pass that finds
 *  nothing new enqueues no new investigation.  Timestamps are always
 *  numbers here, because the normaliser parsed them on the way in; a row
 *  without one is skipped rather than aborting the pass as the original
 *  did.
 *
 *  Alert thresholds are the UnifiedErrorAgent's (count >= 1, 3, 5, 10 for
 *  critical, high, medium, low), counted over alert_window_s (at most an
 *  hour, from the writer's in-memory counts, so a pass costs the same at
 *  any event rate) rather than over all history, and an alert for one subject is not raised again
 *  inside the window: the original logged the same alert every minute
 *  forever. */
#include "analysis.h"
#include "actor.h"
#include "clock.h"
#include "log.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct analysis_t {
    analysis_config_t config;
    evstore_t *store;
    fanout_t *fanout;
    recovery_t *recovery;
    json_t *fired;              /* "kind\x1fsubject" -> time of the last alert */
    atomic_long investigations;
    /* One ticker runs both passes, so they never race over `fired`; it
     * sleeps until the sooner is due. */
    actor_t *ticker;
    double next_correlation, next_alerts;   /* the ticker's own, monotonic */
};

static actor_tick_fn analysis_pass;

analysis_t *analysis_new(const analysis_config_t *config, evstore_t *store, fanout_t *fanout,
                         recovery_t *recovery, liveness_t *liveness)
{
    analysis_t *self = calloc(1, sizeof *self);
    self->config = *config;
    self->store = store;
    self->fanout = fanout;
    self->recovery = recovery;
    self->fired = json_object();
    self->ticker = actor_new("errorbus analysis", 0, analysis_pass, self);
    actor_watch(self->ticker, liveness, fmax(config->correlation_interval_s, config->alert_interval_s));
    return self;
}

void analysis_destroy(analysis_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    analysis_t *self = *self_p;
    actor_destroy(&self->ticker);
    json_decref(self->fired);
    free(self);
    *self_p = NULL;
}

int analysis_threshold(const char *severity)
{
    if (!strcmp(severity, "critical"))
        return 1;
    if (!strcmp(severity, "high"))
        return 3;
    if (!strcmp(severity, "medium"))
        return 5;
    return 10;
}

void analysis_raise(evstore_t *store, fanout_t *fanout, const char *kind, const char *subject,
                    const char *severity, long count, const char *message)
{
    double now = clock_wall();
    log_warn("errorbus", "alert %s for %s: %s", kind, subject, message);
    evstore_exec(store, "INSERT INTO alerts(timestamp, kind, subject, severity, count, message)"
                 " VALUES(?,?,?,?,?,?)", "dsssis", now, kind, subject, severity, count, message);
    json_t *alert = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:f}", "type", kind,
                              "kind", kind, "subject", subject, "severity", severity,
                              "count", (json_int_t)count, "message", message, "timestamp", now);
    fanout_alert(fanout, alert);
    json_decref(alert);
}

int analysis_correlate(analysis_t *self, double now)
{
    json_t *rows = evstore_query(self->store, "SELECT error_id, source, timestamp FROM error_log"
                                 " ORDER BY timestamp DESC LIMIT ?", "i",
                                 (long)self->config.correlation_rows);
    if (!rows)
        return 0;
    size_t n = json_array_size(rows);
    int found = 0, fresh = 0;
    json_t *sample = json_array();
    evstore_exec(self->store, "BEGIN IMMEDIATE", "");
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(rows, i);
        json_t *ta = json_object_get(a, "timestamp");
        if (!json_is_number(ta))
            continue;
        for (size_t j = i + 1; j < n; j++) {
            json_t *b = json_array_get(rows, j);
            json_t *tb = json_object_get(b, "timestamp");
            const char *sa = json_string_value(json_object_get(a, "source"));
            const char *sb = json_string_value(json_object_get(b, "source"));
            if (!json_is_number(tb) || !sa || !sb || !strcmp(sa, sb))
                continue;
            double dt = fabs(json_number_value(ta) - json_number_value(tb));
            if (!(dt > 0 && dt < self->config.correlation_window_s))
                continue;
            found++;
            const char *ia = json_string_value(json_object_get(a, "error_id"));
            const char *ib = json_string_value(json_object_get(b, "error_id"));
            bool swap = strcmp(ia, ib) > 0;
            int added = evstore_exec(self->store, "INSERT OR IGNORE INTO correlations(error_id_a, error_id_b,"
                         " source_a, source_b, delta_s, detected_at) VALUES(?,?,?,?,?,?)",
                         "ssssdd", swap ? ib : ia, swap ? ia : ib, swap ? sb : sa, swap ? sa : sb,
                         dt, now);
            if (added > 0) {
                fresh++;
                if (json_array_size(sample) < 50)
                    json_array_append_new(sample, json_pack("[O,O]", a, b));
            }
        }
    }
    evstore_exec(self->store, "COMMIT", "");
    json_decref(rows);
    if (fresh > 0) {
        json_t *details = json_pack("{s:o, s:[]}", "correlations", sample, "anomalies");
        recovery_enqueue(self->recovery, "investigate", "SystemOperator",
                         "Correlated errors or anomalies detected.", details);
        json_decref(details);
        self->investigations++;
        log_info("errorbus", "%d correlated error pairs (%d new)", found, fresh);
    } else {
        json_decref(sample);
    }
    return found;
}

/* True (and remembered) when kind/subject has not fired within the window. */
static bool may_fire(analysis_t *self, const char *kind, const char *subject, double now)
{
    /* An error type has no length limit: the whole of it is the key, or two
     * long types would silence each other's alerts. */
    size_t len = strlen(kind) + strlen(subject) + 2;
    char *key = malloc(len);
    snprintf(key, len, "%s\x1f%s", kind, subject);
    json_t *last = json_object_get(self->fired, key);
    bool fire = !last || now - json_number_value(last) >= self->config.alert_window_s;
    if (fire)
        json_object_set_new(self->fired, key, json_real(now));
    free(key);
    return fire;
}

static void forget_old(analysis_t *self, double now)
{
    const char *key;
    json_t *value, *tmp;
    json_object_foreach_safe(self->fired, tmp, key, value)
        if (now - json_number_value(value) >= self->config.alert_window_s)
            json_object_del(self->fired, key);
}

static int type_alerts(analysis_t *self, double now)
{
    json_t *types = evstore_rates(self->store, RATES_TYPE, now, self->config.alert_window_s);
    static const char *words[] = { "low", "low", "medium", "high", "critical" };
    int raised = 0;
    const char *type;
    json_t *row;
    json_object_foreach(types, type, row) {
        json_int_t rank = json_integer_value(json_object_get(row, "rank"));
        const char *severity = words[rank >= 1 && rank <= 4 ? rank : 1];
        json_int_t count = json_integer_value(json_object_get(row, "count"));
        if (count < analysis_threshold(severity) || !may_fire(self, "error_threshold", type, now))
            continue;
        char message[512];
        snprintf(message, sizeof message, "%lld %s errors of type %s",
                 (long long)count, severity, type);
        analysis_raise(self->store, self->fanout, "error_threshold", type, severity, (long)count,
                       message);
        raised++;
    }
    json_decref(types);
    return raised;
}

static int rate_alerts(analysis_t *self, double now)
{
    if (self->config.rate_alert_per_min <= 0)
        return 0;
    json_t *agents = evstore_rates(self->store, RATES_AGENT, now, 60);
    int raised = 0;
    const char *agent;
    json_t *row;
    json_object_foreach(agents, agent, row) {
        json_int_t count = json_integer_value(json_object_get(row, "count"));
        if (count < self->config.rate_alert_per_min || !may_fire(self, "error_rate", agent, now))
            continue;
        char message[512];
        snprintf(message, sizeof message, "%s reported %lld errors in the last minute (limit %.0f)",
                 agent, (long long)count, self->config.rate_alert_per_min);
        analysis_raise(self->store, self->fanout, "error_rate", agent, "high", (long)count, message);
        raised++;
    }
    json_decref(agents);
    return raised;
}

long analysis_investigations(analysis_t *self)
{
    return atomic_load(&self->investigations);
}

int analysis_alerts(analysis_t *self, double now)
{
    forget_old(self, now);
    return type_alerts(self, now) + rate_alerts(self, now);
}

static void analysis_pass(void *arg)
{
    analysis_t *self = arg;
    double now = clock_mono();
    if (now >= self->next_correlation) {
        analysis_correlate(self, clock_wall());
        self->next_correlation = clock_mono() + self->config.correlation_interval_s;
    }
    if (now >= self->next_alerts) {
        analysis_alerts(self, clock_wall());
        self->next_alerts = clock_mono() + self->config.alert_interval_s;
    }
    actor_set_interval(self->ticker, fmax(0, fmin(self->next_correlation, self->next_alerts) - clock_mono()));
}

int analysis_start(analysis_t *self)
{
    self->next_correlation = clock_mono();      /* immediately, as EMS did */
    self->next_alerts = self->next_correlation + self->config.alert_interval_s;
    return actor_start(self->ticker);
}
