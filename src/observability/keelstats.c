/*  keelstats: see keelstats.h.
 *
 *  The hub reads the other services' /metrics over HTTP as anyone else
 *  would, its own included, so the five are read the same way whether they
 *  run in one keeld or in five, and all five at once (gather.h).  Only the few families
 *  charted are parsed, line by line, summed over their other labels:
 *  the dashboard shows a service's traffic, not each action's. */
#include "keelstats.h"
#include "dashpeers.h"
#include "gather.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAPE_TIMEOUT_MS 1000

const char *const keelstats_services[KEELSTATS_SERVICES] = {
    "core", "resource", "observability", "errorbus", "security",
};
static const int http_ports[KEELSTATS_SERVICES] = { 8000, 8001, 8002, 8003, 8005 };

const char *const keelstats_figures[KEELSTATS_FIGURES] = { "requests_per_s", "p99_ms", "errors_per_s" };
enum { REQUESTS, P99, ERRORS };

const char *const keelstats_levels[KEELSTATS_LEVELS] = {
    "debug", "info", "warning", "error", "critical",
};

struct keelstats_t {
    config_t *config;
    keelstats_reading_t last[KEELSTATS_SERVICES];
    double last_at;
};

keelstats_t *keelstats_new(config_t *config)
{
    keelstats_t *self = calloc(1, sizeof *self);
    self->config = config;
    return self;
}

void keelstats_destroy(keelstats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* ---- reading the text ------------------------------------------------------ */

/* The value of label `key` in `{a="1",b="2"}` (labels borrowed) into buf;
 * false when absent. */
static bool label_value(const char *labels, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = labels; p && *p && *p != '}'; ) {
        if (*p == '{' || *p == ',') {
            p++;
            continue;
        }
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"')
            return false;
        const char *end = eq + 2;
        while (*end && *end != '"')
            end += end[0] == '\\' && end[1] ? 2 : 1;
        if (!*end)
            return false;
        if ((size_t)(eq - p) == klen && !strncmp(p, key, klen)) {
            snprintf(buf, len, "%.*s", (int)(end - eq - 2), eq + 2);
            return true;
        }
        p = end + 1;
    }
    return false;
}

/* Adds `value` to the bucket of bound `le`, keeping the bounds sorted. */
static void add_bucket(keelstats_reading_t *out, double le, double value)
{
    size_t i = 0;
    while (i < out->buckets && out->le[i] < le)
        i++;
    if (i < out->buckets && out->le[i] == le) {
        out->count[i] += value;
        return;
    }
    if (out->buckets == KEELSTATS_BUCKETS)
        return;
    memmove(&out->le[i + 1], &out->le[i], (out->buckets - i) * sizeof *out->le);
    memmove(&out->count[i + 1], &out->count[i], (out->buckets - i) * sizeof *out->count);
    out->le[i] = le;
    out->count[i] = value;
    out->buckets++;
}

static void take_line(const char *line, keelstats_reading_t *out)
{
    static const char requests[] = "keel_requests_total";
    static const char buckets[] = "keel_request_duration_seconds_bucket";
    static const char events[] = "keel_errorbus_events_total";
    size_t name_len = strcspn(line, "{ ");
    const char *labels = line[name_len] == '{' ? line + name_len : NULL;
    const char *value_at = labels ? strchr(labels, '}') : line + name_len;
    if (!value_at)
        return;
    char *end;
    double value = strtod(value_at + (labels ? 1 : 0), &end);
    if (end == value_at || !isfinite(value))
        return;
    char label[64];
    if (name_len == sizeof requests - 1 && !strncmp(line, requests, name_len)) {
        out->requests += value;
        if (label_value(labels, "outcome", label, sizeof label) && !strcmp(label, "error"))
            out->errors += value;
    } else if (name_len == sizeof buckets - 1 && !strncmp(line, buckets, name_len)) {
        if (label_value(labels, "le", label, sizeof label))
            add_bucket(out, !strcmp(label, "+Inf") ? INFINITY : strtod(label, NULL), value);
    } else if (name_len == sizeof events - 1 && !strncmp(line, events, name_len)) {
        if (label_value(labels, "level", label, sizeof label))
            for (int i = 0; i < KEELSTATS_LEVELS; i++)
                if (!strcmp(label, keelstats_levels[i]))
                    out->levels[i] += value;
    }
}

void keelstats_parse(const char *text, keelstats_reading_t *out)
{
    memset(out, 0, sizeof *out);
    out->ok = true;
    for (const char *line = text; line && *line; ) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (*line != '#' && len > 0 && len < 1024) {
            char copy[1024];
            memcpy(copy, line, len);
            copy[len] = '\0';
            take_line(copy, out);
        }
        line = eol ? eol + 1 : NULL;
    }
}

double keelstats_quantile(const double *le, const double *count, size_t n, double q)
{
    if (n == 0 || count[n - 1] <= 0)
        return -1;
    double rank = q * count[n - 1];
    for (size_t i = 0; i < n; i++) {
        if (count[i] < rank)
            continue;
        if (isinf(le[i]))
            return i > 0 ? le[i - 1] : 0;
        double lower = i > 0 ? le[i - 1] : 0, below = i > 0 ? count[i - 1] : 0;
        double inside = count[i] - below;
        return inside > 0 ? lower + (le[i] - lower) * (rank - below) / inside : le[i];
    }
    return le[n - 1];
}

/* ---- the step ------------------------------------------------------------------ */

static void add_point(json_t *points, const char *a, const char *b, const char *c, double value)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s/%s", a, b, c);
    json_object_set_new(points, name, json_real(value));
}

/* The interval's figures of one service from two readings. */
static void add_service(json_t *points, int i, const keelstats_reading_t *was,
                        const keelstats_reading_t *now, double seconds)
{
    const char *name = keelstats_services[i];
    if (now->requests < was->requests || now->errors < was->errors)
        return;
    add_point(points, "service", name, keelstats_figures[REQUESTS], (now->requests - was->requests) / seconds);
    add_point(points, "service", name, keelstats_figures[ERRORS], (now->errors - was->errors) / seconds);
    /* A bound the earlier reading lacked (its first request) counted 0 then. */
    double delta[KEELSTATS_BUCKETS];
    for (size_t k = 0; k < now->buckets; k++) {
        delta[k] = now->count[k];
        for (size_t j = 0; j < was->buckets; j++)
            if (was->le[j] == now->le[k])
                delta[k] -= was->count[j];
    }
    double p99 = keelstats_quantile(now->le, delta, now->buckets, 0.99);
    if (p99 >= 0)
        add_point(points, "service", name, keelstats_figures[P99], p99 * 1000.0);
    if (!strcmp(name, "errorbus"))
        for (int k = 0; k < KEELSTATS_LEVELS; k++)
            if (now->levels[k] >= was->levels[k])
                add_point(points, "errorbus", keelstats_levels[k], "per_min",
                          (now->levels[k] - was->levels[k]) * 60.0 / seconds);
}

void keelstats_step(keelstats_t *self, double now, json_t *points, int cancel_fd)
{
    double seconds = now - self->last_at;
    char urls[KEELSTATS_SERVICES][300];
    gather_call_t calls[KEELSTATS_SERVICES];
    for (int i = 0; i < KEELSTATS_SERVICES; i++) {
        dashpeers_url(self->config, http_ports[i], "/metrics", urls[i], sizeof urls[i]);
        calls[i] = (gather_call_t){ .url = urls[i] };
    }
    gather_run_until(calls, KEELSTATS_SERVICES, SCRAPE_TIMEOUT_MS, cancel_fd);
    for (int i = 0; i < KEELSTATS_SERVICES; i++) {
        keelstats_reading_t reading = { 0 };
        if (calls[i].state == GATHER_OK && calls[i].http_status == 200)
            keelstats_parse(calls[i].reply, &reading);
        if (reading.ok && self->last[i].ok && self->last_at > 0 && seconds > 0.5)
            add_service(points, i, &self->last[i], &reading, seconds);
        self->last[i] = reading;
    }
    gather_clear(calls, KEELSTATS_SERVICES);
    self->last_at = now;
}
