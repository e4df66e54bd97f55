/*  registry: see registry.h.
 *
 *  Validation copies pydantic v2's lax mode because that is what clients
 *  were written against: an int field takes 7100, 7100.0, "7100" and true,
 *  and refuses 12.5, "abc" and null; a str field refuses numbers.  Every
 *  problem is reported, as pydantic does, so a client fixing its message
 *  sees all of them at once.  A record is exactly the original's seven
 *  keys (`dependencies` is checked, not kept), so get_agent_endpoint
 *  replies are what BaseAgent.get_agent_endpoint expects.
 *
 *  Heartbeats live in their own table: a registration is itself a
 *  heartbeat, so the hot path stays one durable write.
 *
 *  Lookups at wire speed: with the memory and SQLite backends this process
 *  is the registry's only writer, so the text of each get_agent_endpoint
 *  reply is kept once made, until the next change to any registration
 *  (every write passes through record_change, which empties them); a
 *  lookup then costs a hash lookup and a copy.  Redis is shared with other
 *  machines that write it, so there every lookup reads it.
 *
 *  The state of each agent is not decided here.  ObservabilityHub, which
 *  probes the agents and reads these heartbeats, combines both into one
 *  state (agentstate.h) and reports it back (report_agent_states);
 *  describe_agents shows that verdict while it is fresh, and only without
 *  one applies the same rule to the heartbeats alone, saying so. */
#include "registry.h"
#include "agentstate.h"
#include "clock.h"
#include "log.h"
#include "ratelimit.h"
#include "wirejson.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANGES 1024            /* changes kept for watch_registry */

typedef struct {
    long revision;
    char op[8];                 /* "put" or "delete" */
    char agent_id[NAMES_BUF];
    double t;
} change_t;

struct registry_t {
    backend_t *backend;
    metrics_t *metrics;
    double ttl_s;
    json_t *aliases;            /* {name: [other names]}, tried after the name */
    atomic_long last_size;      /* Redis: the size seen by the last listing */
    pthread_mutex_t lock;       /* the change log and the verdicts */
    char epoch[32];             /* a new one per process: revisions restart */
    long revision;
    change_t changes[CHANGES];
    json_t *verdicts;           /* the hub's last report: {name: {state, reason, since}} */
    json_t *replies;            /* {name: get_agent_endpoint's reply text}, or NULL (Redis) */
    unsigned long replies_generation;   /* moves each time they are emptied */
    _Atomic(metrics_series_t *) lookups[3];    /* keel_core_lookups_total by outcome */
    char verdicts_from[NAMES_BUF];
    double verdicts_until;      /* wall time after which they are too old to show */
    ratelimit_t *new_names;     /* per source address */
};

/* Sources a limit remembers: far more than two machines' addresses. */
#define LIMITED_SOURCES 1024

registry_t *registry_new(backend_t *backend, metrics_t *metrics, double ttl_s, json_t *aliases)
{
    registry_t *self = calloc(1, sizeof *self);
    self->aliases = json_is_object(aliases) ? json_deep_copy(aliases) : json_object();
    self->verdicts = json_object();
    self->replies = backend_kind(backend) == BACKEND_REDIS ? NULL : json_object();
    self->backend = backend;
    self->metrics = metrics;
    self->ttl_s = ttl_s > 0 ? ttl_s : 300;
    pthread_mutex_init(&self->lock, NULL);
    snprintf(self->epoch, sizeof self->epoch, "%.6f", clock_wall());
    metrics_declare(metrics, "keel_core_registrations_total", "register_agent calls by outcome.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(metrics, "keel_core_lookups_total", "get_agent_endpoint calls by outcome.",
                    METRIC_COUNTER, NULL, 0);
    metrics_declare(metrics, "keel_core_new_names_refused_total",
                    "New names refused because their source address created too many (core.registry.new_names), "
                    "by table.", METRIC_COUNTER, NULL, 0);
    self->new_names = ratelimit_new(0, 0, LIMITED_SOURCES);
    return self;
}

void registry_destroy(registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy(&(*self_p)->lock);
    ratelimit_destroy(&(*self_p)->new_names);
    json_decref((*self_p)->aliases);
    json_decref((*self_p)->verdicts);
    json_decref((*self_p)->replies);
    free(*self_p);
    *self_p = NULL;
}

void registry_limit_new_names(registry_t *self, double burst, double per_minute)
{
    ratelimit_configure(self->new_names, burst, per_minute);
}

int registry_admit(registry_t *self, const char *table, const char *source, char *err, size_t errlen)
{
    if (!source || ratelimit_take(self->new_names, source, clock_mono()))
        return 0;
    char limit[96], labels[64];
    snprintf(err, errlen, "Too many new names from %s: %s per address (core.registry.new_names); "
             "try again later", *source ? source : "an unknown address",
             ratelimit_describe(self->new_names, limit, sizeof limit));
    metrics_labels(labels, sizeof labels, "table", table, NULL);
    metrics_add(self->metrics, "keel_core_new_names_refused_total", labels, 1);
    return -1;
}

/* Every change gets the next revision, so a watcher can resume (etcd's
 * lesson); the log keeps the last CHANGES of them. */
static void record_change(registry_t *self, const char *op, const char *id)
{
    pthread_mutex_lock(&self->lock);
    if (self->replies) {
        json_object_clear(self->replies);
        self->replies_generation++;
    }
    long rev = ++self->revision;
    change_t *c = &self->changes[rev % CHANGES];
    c->revision = rev;
    snprintf(c->op, sizeof c->op, "%s", op);
    snprintf(c->agent_id, sizeof c->agent_id, "%s", id);
    c->t = clock_wall();
    pthread_mutex_unlock(&self->lock);
}

/* ---- validation ---------------------------------------------------------- */

typedef struct {
    char text[1024];
    size_t len;
    int count;
} problems_t;

static void problem(problems_t *p, const char *field, const char *msg)
{
    p->count++;
    if (p->len < sizeof p->text)
        p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, "\n%s\n  %s", field, msg);
}

/* pydantic's lax int: ints, integral floats, digit strings and bools. */
static int lax_int(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d == floor(d) && fabs(d) < 9e15) {
            *out = (long long)d;
            return 0;
        }
        return -1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (isspace((unsigned char)*s))
            s++;
        char *end;
        long long n = strtoll(s, &end, 10);
        if (end == s || (!isdigit((unsigned char)s[0]) && !isdigit((unsigned char)s[1])))
            return -1;
        while (isspace((unsigned char)*end))
            end++;
        if (*end)
            return -1;
        *out = n;
        return 0;
    }
    return -1;
}

static void check_str(problems_t *p, json_t *fields, const char *key, bool required)
{
    json_t *v = json_object_get(fields, key);
    if (!v && required)
        problem(p, key, "Field required [type=missing]");
    else if (v && !json_is_string(v))
        problem(p, key, "Input should be a valid string [type=string_type]");
}

static void check_port(problems_t *p, json_t *fields, const char *key, bool required, json_t *rec)
{
    json_t *v = json_object_get(fields, key);
    long long n;
    if (!v) {
        if (required)
            problem(p, key, "Field required [type=missing]");
        else
            json_object_set_new(rec, key, json_null());
    } else if (json_is_null(v) && !required) {
        json_object_set_new(rec, key, json_null());
    } else if (lax_int(v, &n) < 0) {
        problem(p, key, "Input should be a valid integer [type=int_parsing]");
    } else if (n < 0 || n > 65535) {
        problem(p, key, "Input should be a port number between 0 and 65535 [type=port_range]");
    } else {
        json_object_set_new(rec, key, json_integer(n));
    }
}

static void check_str_list(problems_t *p, json_t *fields, const char *key, json_t *rec)
{
    json_t *v = json_object_get(fields, key);
    if (!v) {
        if (rec)
            json_object_set_new(rec, key, json_array());
        return;
    }
    if (!json_is_array(v)) {
        problem(p, key, "Input should be a valid list [type=list_type]");
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        if (!json_is_string(item)) {
            char field[96];
            snprintf(field, sizeof field, "%s.%zu", key, i);
            problem(p, field, "Input should be a valid string [type=string_type]");
            return;
        }
    }
    if (rec)
        json_object_set(rec, key, v);
}

json_t *registry_validate(json_t *fields, char *id, size_t idlen, char *err, size_t errlen)
{
    problems_t p = { .len = 0, .count = 0 };
    json_t *rec = json_object();
    check_str(&p, fields, "agent_id", true);
    check_str(&p, fields, "agent_type", true);
    check_str(&p, fields, "host", true);
    if (!names_fit(json_string_value(json_object_get(fields, "host"))))
        problem(&p, "host", "String should have at most 255 bytes [type=string_too_long]");
    json_object_set(rec, "host", json_object_get(fields, "host"));
    check_port(&p, fields, "port", true, rec);
    check_port(&p, fields, "health_check_port", false, rec);
    json_object_set(rec, "agent_type", json_object_get(fields, "agent_type"));
    check_str_list(&p, fields, "capabilities", rec);
    check_str_list(&p, fields, "dependencies", NULL);
    json_t *meta = json_object_get(fields, "metadata");
    if (meta && !json_is_object(meta))
        problem(&p, "metadata", "Input should be a valid dictionary [type=dict_type]");
    json_object_set_new(rec, "metadata", meta && json_is_object(meta) ? json_deep_copy(meta) : json_object());
    const char *agent_id = json_string_value(json_object_get(fields, "agent_id"));
    if (p.count == 0 && agent_id && !*agent_id)
        problem(&p, "agent_id", "String should have at least 1 character [type=string_too_short]");
    if (!names_fit(agent_id)) {
        char why[96];
        snprintf(why, sizeof why, "String should have at most %d bytes [type=string_too_long]", NAMES_MAX);
        problem(&p, "agent_id", why);
    }
    if (p.count) {
        snprintf(err, errlen, "%d validation error%s for AgentRegistration%s", p.count,
                 p.count > 1 ? "s" : "", p.text);
        json_decref(rec);
        return NULL;
    }
    snprintf(id, idlen, "%s", json_string_value(json_object_get(fields, "agent_id")));
    return rec;
}

/* ---- operations ------------------------------------------------------------ */

static void count(registry_t *self, const char *family, const char *outcome)
{
    char labels[64];
    metrics_labels(labels, sizeof labels, "outcome", outcome, NULL);
    metrics_add(self->metrics, family, labels, 1);
}

int registry_register(registry_t *self, json_t *fields, const char *source, char *id, size_t idlen,
                      char *err, size_t errlen)
{
    json_t *rec = registry_validate(fields, id, idlen, err, errlen);
    if (!rec) {
        char why[96];   /* validation already said it: only the count is wanted */
        names_refuse(self->metrics, "core", "agent_id", json_string_value(json_object_get(fields, "agent_id")),
                     why, sizeof why);
        count(self, "keel_core_registrations_total", "invalid");
        return -1;
    }
    if (source) {
        int known = backend_has(self->backend, "agents", id, err, errlen);
        if (known < 0 || (known == 0 && registry_admit(self, "agents", source, err, errlen) < 0)) {
            json_decref(rec);
            count(self, "keel_core_registrations_total", known < 0 ? "error" : "refused");
            return -1;
        }
    }
    char ts[40];
    json_object_set_new(rec, "last_registered", json_string(clock_iso_utc(clock_wall(), ts, sizeof ts)));
    int rc = backend_put(self->backend, "agents", id, rec, err, errlen);
    json_decref(rec);
    if (rc == 0)
        record_change(self, "put", id);
    count(self, "keel_core_registrations_total", rc == 0 ? "ok" : "error");
    return rc;
}

enum { LOOKUP_FOUND, LOOKUP_NOT_FOUND, LOOKUP_ERROR };

static void count_lookup(registry_t *self, int outcome)
{
    static const char *const outcomes[] = { "found", "not_found", "error" };
    metrics_series_t *series = atomic_load(&self->lookups[outcome]);
    if (!series) {
        char labels[64];
        metrics_labels(labels, sizeof labels, "outcome", outcomes[outcome], NULL);
        series = metrics_series(self->metrics, "keel_core_lookups_total", labels);
        atomic_store(&self->lookups[outcome], series);
    }
    metrics_series_add(self->metrics, series, 1);
}

void registry_reverted(registry_t *self, const char *id)
{
    char err[256];
    int present = backend_has(self->backend, "agents", id, err, sizeof err);
    record_change(self, present == 0 ? "delete" : "put", id);
}

/* The name as asked first, then each of its aliases in order. */
json_t *registry_lookup(registry_t *self, const char *name, char *err, size_t errlen)
{
    json_t *rec = NULL;
    int rc = backend_get(self->backend, "agents", name, &rec, err, errlen);
    json_t *others = json_object_get(self->aliases, name);
    size_t i;
    json_t *other;
    json_array_foreach(others, i, other) {
        if (rc != 0 || !json_is_string(other))
            break;
        rc = backend_get(self->backend, "agents", json_string_value(other), &rec, err, errlen);
    }
    if (rc == 0)
        snprintf(err, errlen, "Agent %s not found", name);
    count_lookup(self, rc == 1 ? LOOKUP_FOUND : rc == 0 ? LOOKUP_NOT_FOUND : LOOKUP_ERROR);
    return rc == 1 ? rec : NULL;
}

json_t *registry_list(registry_t *self, char *err, size_t errlen)
{
    json_t *all = backend_all(self->backend, "agents", err, errlen);
    if (!all)
        return NULL;
    json_t *ids = json_array();
    const char *key;
    json_t *value;
    json_object_foreach(all, key, value)
        json_array_append_new(ids, json_string(key));
    self->last_size = (long)json_array_size(ids);
    json_decref(all);
    return ids;
}

/* The hub's verdict on `name` while its report is fresh; else the same
 * rule (agentstate_combine) applied to the heartbeat alone. */
static void state_of(registry_t *self, json_t *row, const char *name, double beat, double now)
{
    pthread_mutex_lock(&self->lock);
    json_t *verdict = now <= self->verdicts_until ? json_object_get(self->verdicts, name) : NULL;
    if (verdict) {
        json_object_set(row, "state", json_object_get(verdict, "state"));
        json_object_set(row, "reason", json_object_get(verdict, "reason"));
        json_object_set(row, "state_since", json_object_get(verdict, "since"));
        json_object_set_new(row, "state_source", json_string(self->verdicts_from));
    }
    pthread_mutex_unlock(&self->lock);
    if (verdict)
        return;
    char reason[256], text[320];
    agentstate_evidence_t e = { .probe = AGENTSTATE_PROBE_NONE, .heartbeat_at = beat,
                                .ttl_s = self->ttl_s, .now = now };
    agentstate_t state = agentstate_combine(&e, reason, sizeof reason);
    snprintf(text, sizeof text, "%s; no verdict from ObservabilityHub", reason);
    json_object_set_new(row, "state", json_string(agentstate_name(state)));
    json_object_set_new(row, "reason", json_string(text));
    json_object_set_new(row, "state_source", json_string("registry"));
}

json_t *registry_describe(registry_t *self, char *err, size_t errlen)
{
    json_t *all = backend_all(self->backend, "agents", err, errlen);
    if (!all)
        return NULL;
    json_t *beats = backend_all(self->backend, "beats", err, errlen);
    json_t *out = json_array();
    double now = clock_wall();
    const char *key;
    json_t *rec;
    json_object_foreach(all, key, rec) {
        double seen = 0, beat = json_number_value(json_object_get(beats, key));
        clock_parse_iso(json_string_value(json_object_get(rec, "last_registered")), &seen);
        if (beat > seen)
            seen = beat;
        char ts[40];
        json_t *row = json_deep_copy(rec);
        json_object_set_new(row, "agent_id", json_string(key));
        json_object_set_new(row, "last_heartbeat", json_string(clock_iso_utc(seen, ts, sizeof ts)));
        json_object_set_new(row, "heartbeat_age_s", json_real(now - seen));
        if (beat > 0)
            json_object_set_new(row, "beat_age_s", json_real(now - beat));
        state_of(self, row, key, seen, now);
        json_array_append_new(out, row);
    }
    self->last_size = (long)json_array_size(out);
    json_decref(all);
    json_decref(beats);
    return out;
}

long registry_size(registry_t *self)
{
    long n = backend_count(self->backend, "agents");
    return n >= 0 ? n : self->last_size;
}

/* ---- handlers -------------------------------------------------------------- */

/* The agent name of a request: agent_name, else agent_id.  NULL when
 * missing, empty or not a string. */
static const char *name_of(json_t *body)
{
    json_t *v = json_object_get(body, "agent_name");
    if (!v || json_is_null(v))
        v = json_object_get(body, "agent_id");
    const char *name = json_string_value(v);
    return name && *name ? name : NULL;
}

static json_t *on_get_endpoint(void *ctx, wire_request_t *req)
{
    registry_t *self = ctx;
    wire_request_reads_only(req);       /* a cached health reply stays true */
    json_t *v = json_object_get(req->body, "agent_name");
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
        return wire_error("Missing 'agent_name'");
    if (!json_is_string(v))
        return wire_error("Invalid 'agent_name': expected a string");
    char err[512];
    const char *name = json_string_value(v);
    if (names_refuse(self->metrics, "core", "agent_name", name, err, sizeof err))
        return wire_error("%s", err);
    unsigned long generation = 0;
    if (self->replies) {
        pthread_mutex_lock(&self->lock);
        json_t *kept = json_object_get(self->replies, name);
        size_t len = json_string_length(kept);
        char *text = kept ? malloc(len + 1) : NULL;
        if (text)
            memcpy(text, json_string_value(kept), len + 1);
        generation = self->replies_generation;
        pthread_mutex_unlock(&self->lock);
        if (text) {
            count_lookup(self, LOOKUP_FOUND);
            return wire_reply_text(req, text, len);
        }
    }
    json_t *rec = registry_lookup(self, name, err, sizeof err);
    if (!rec)
        return wire_error("%s", err);
    /* The record's own keys, then status, as json_object_set_new puts it;
     * a record carrying a status of its own is answered as it is built. */
    bool plain = !json_object_get(rec, "status");
    json_object_set_new(rec, "status", json_string("success"));
    size_t len;
    char *text = self->replies && plain ? wirejson_dump(rec, &len) : NULL;
    if (!text)
        return rec;
    json_decref(rec);
    pthread_mutex_lock(&self->lock);
    if (generation == self->replies_generation)     /* no change since the record was read */
        json_object_set_new_nocheck(self->replies, name, json_stringn_nocheck(text, len));
    pthread_mutex_unlock(&self->lock);
    return wire_reply_text(req, text, len);
}

static json_t *on_list(void *ctx, wire_request_t *req)
{
    (void)req;
    char err[512];
    json_t *ids = registry_list(ctx, err, sizeof err);
    if (!ids)
        return wire_error("%s", err);
    return json_pack("{s:s, s:o}", "status", "success", "agents", ids);
}

/* The agent a request names, or NULL with the error reply in *error. */
static const char *agent_named(registry_t *self, wire_request_t *req, json_t **error)
{
    const char *name = name_of(req->body);
    char err[512];
    if (!name)
        *error = wire_error("Missing 'agent_name'");
    else if (names_refuse(self->metrics, "core", "agent_name", name, err, sizeof err))
        *error = wire_error("%s", err);
    else
        return name;
    return NULL;
}

static json_t *on_unregister(void *ctx, wire_request_t *req)
{
    registry_t *self = ctx;
    json_t *error = NULL;
    const char *name = agent_named(self, req, &error);
    if (!name)
        return error;
    char err[512];
    int rc = backend_del(self->backend, "agents", name, err, sizeof err);
    if (rc < 0)
        return wire_error("%s", err);
    if (rc == 0)
        return wire_error("Agent %s not found", name);
    record_change(self, "delete", name);
    backend_del(self->backend, "beats", name, err, sizeof err);
    return json_pack("{s:s, s:s}", "status", "success", "message", "Agent unregistered");
}

static json_t *on_heartbeat(void *ctx, wire_request_t *req)
{
    registry_t *self = ctx;
    json_t *error = NULL;
    const char *name = agent_named(self, req, &error);
    if (!name)
        return error;
    char err[512];
    int rc = backend_has(self->backend, "agents", name, err, sizeof err);
    if (rc < 0)
        return wire_error("%s", err);
    if (rc == 0)
        return wire_error("Agent %s not found", name);
    json_t *now = json_real(clock_wall());
    rc = backend_put(self->backend, "beats", name, now, err, sizeof err);
    json_decref(now);
    if (rc < 0)
        return wire_error("%s", err);
    return json_pack("{s:s, s:f}", "status", "success", "ttl_s", self->ttl_s);
}

static json_t *on_describe(void *ctx, wire_request_t *req)
{
    (void)req;
    registry_t *self = ctx;
    char err[512];
    json_t *rows = registry_describe(self, err, sizeof err);
    if (!rows)
        return wire_error("%s", err);
    pthread_mutex_lock(&self->lock);
    json_t *reply = json_pack("{s:s, s:o, s:f, s:s, s:s, s:I}", "status", "success", "agents", rows,
                              "ttl_s", self->ttl_s, "backend", backend_kind_name(self->backend),
                              "epoch", self->epoch, "revision", (json_int_t)self->revision);
    pthread_mutex_unlock(&self->lock);
    return reply;
}

/* ObservabilityHub's verdicts, replacing the previous report whole; they
 * are shown for valid_s (the hub says how often it reports). */
static json_t *on_report_states(void *ctx, wire_request_t *req)
{
    registry_t *self = ctx;
    json_t *states = json_object_get(req->body, "states");
    json_t *valid = json_object_get(req->body, "valid_s");
    const char *from = json_string_value(json_object_get(req->body, "source_agent"));
    if (!json_is_object(states) || (valid && (!json_is_number(valid) || json_number_value(valid) <= 0)))
        return wire_error("'states' must be an object of {state, reason} and 'valid_s' a positive number");
    char why[128];
    if (names_refuse(self->metrics, "core", "source_agent", from, why, sizeof why))
        return wire_error("%s", why);
    json_t *kept = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(states, name, v) {
        const char *state = json_string_value(json_object_get(v, "state"));
        const char *reason = json_string_value(json_object_get(v, "reason"));
        if (!state || !reason || strcmp(agentstate_name(agentstate_from_name(state)), state)) {
            json_decref(kept);
            return wire_error("Invalid state for %s: expected {state: up|degraded|down|unknown, reason}", name);
        }
        if (names_refuse(self->metrics, "core", "a name in states", name, why, sizeof why)) {
            json_decref(kept);
            return wire_error("%s", why);
        }
        json_object_set_new(kept, name, json_pack("{s:s, s:s, s:O?}", "state", state, "reason", reason,
                                                  "since", json_object_get(v, "since")));
    }
    pthread_mutex_lock(&self->lock);
    json_decref(self->verdicts);
    self->verdicts = kept;
    snprintf(self->verdicts_from, sizeof self->verdicts_from, "%s", from ? from : "ObservabilityHub");
    self->verdicts_until = clock_wall() + (valid ? json_number_value(valid) : self->ttl_s);
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:I}", "status", "success", "accepted", (json_int_t)json_object_size(kept));
}

/* Changes after revision `since`.  complete is false when the log no
 * longer reaches back that far, or the epoch changed (a restart): the
 * watcher then lists everything again. */
static json_t *on_watch(void *ctx, wire_request_t *req)
{
    registry_t *self = ctx;
    json_t *since_v = json_object_get(req->body, "since");
    if (since_v && !json_is_integer(since_v))
        return wire_error("'since' must be an integer revision");
    long since = (long)json_integer_value(since_v);
    const char *epoch = json_string_value(json_object_get(req->body, "epoch"));
    json_t *changes = json_array();
    pthread_mutex_lock(&self->lock);
    bool complete = (!epoch || !strcmp(epoch, self->epoch)) && since >= 0 && since <= self->revision
                    && self->revision - since <= CHANGES;
    for (long r = complete ? since + 1 : self->revision + 1; r <= self->revision; r++) {
        change_t *c = &self->changes[r % CHANGES];
        char ts[40];
        json_array_append_new(changes, json_pack("{s:I, s:s, s:s, s:s}", "revision", (json_int_t)c->revision,
                              "op", c->op, "agent_id", c->agent_id, "timestamp", clock_iso_utc(c->t, ts, sizeof ts)));
    }
    json_t *reply = json_pack("{s:s, s:s, s:I, s:b, s:o}", "status", "success", "epoch", self->epoch,
                              "revision", (json_int_t)self->revision, "complete", complete, "changes", changes);
    pthread_mutex_unlock(&self->lock);
    return reply;
}

/* Reads are public.  A heartbeat only renews a registration, which an
 * agent may make anyway (register_agent is AGENT), so it is an agent's
 * too; so are the hub's verdicts (report_agent_states, Keel's own, sent
 * from the other machine in the two-machine layout).  Unregistering is an
 * administrator's: no kept agent sends it (grep of main_pc_code, pc2_code,
 * common and scripts; pc2_code/agents/agent_utils.py's unregister_agent is
 * a `request_type` to its own discovery service). */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "report_agent_states", on_report_states, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "watch_registry", on_watch, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_agent_endpoint", on_get_endpoint, "ServiceRegistry", ROUTE_PUBLIC },
    { WIRE_ACTION, "list_agents", on_list, "ServiceRegistry", ROUTE_PUBLIC },
    { WIRE_ACTION, "unregister_agent", on_unregister, NULL, ROUTE_ADMIN },  /* no kept agent sends it */
    { WIRE_ACTION, "heartbeat", on_heartbeat, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "describe_agents", on_describe, NULL, ROUTE_PUBLIC },
    { 0 },
};

void registry_attach(registry_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}
