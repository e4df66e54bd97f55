/*  twin: see twin.h.
 *
 *  Three sources of metrics, chosen once at start:
 *    mock        - `metrics_source: mock`: the original's constants (25 %
 *                  CPU, 8000 MB VRAM, 16000 MB RAM, baseline latency), so
 *                  simulate_load answers exactly as it did;
 *    prometheus  - `core.prometheus_url` set: the original's four instant
 *                  queries, asked at once, each falling back to its default;
 *    real        - the default: /proc for CPU and RAM, NVML for VRAM
 *                  (0 MB without a GPU), the configured baseline latency.
 *  Samples are taken by a ticker of their own (the first at once), so a
 *  slow Prometheus never delays a request.  The history is a fixed ring of
 *  whole samples, so its five lists can never disagree in length.
 *
 *  The status table goes through the registry backend (SQLite by default),
 *  so it survives a restart like the registrations do.  Replies carry ISO
 *  texts only: the original's datetime in current_state made every
 *  get_metrics and simulate_load call wedge its socket. */
#include "twin.h"
#include "actor.h"
#include "clock.h"
#include "gpu.h"
#include "log.h"
#include "prom.h"
#include "sysstat.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)
#define PROM_TIMEOUT_S 1.0

typedef enum { SOURCE_MOCK, SOURCE_REAL, SOURCE_PROMETHEUS } source_t;

typedef struct {
    double t;
    twin_sample_t s;
} point_t;

struct twin_t {
    service_t *svc;
    backend_t *backend;
    registry_t *registry;
    source_t source;
    char prometheus_url[256];
    double interval_s, baseline_ms;
    double vram_capacity_mb, ram_capacity_mb, pc2_capacity_mb;
    char location[64];
    sysstat_t *sysstat;
    gpu_t *gpu;

    actor_t *sampler;           /* a ticker every interval_s */
    pthread_mutex_t lock;
    point_t *ring;
    size_t cap, head, count;
    json_t *vram;               /* vram_metrics */
    bool prometheus_ok;
    double cpu_percent, mem_percent;    /* health's system_metrics, from the last sample */
};

/* ---- sampling ------------------------------------------------------------ */

/* What health reports of the machine, from this machine's /proc whatever
 * the source: taken here, once a sample, not on every health request. */
static void keep_system_figures(twin_t *self, const sysstat_sample_t *st)
{
    pthread_mutex_lock(&self->lock);
    self->cpu_percent = st->cpu_percent;
    self->mem_percent = st->mem_percent;
    pthread_mutex_unlock(&self->lock);
}

static twin_sample_t fetch(twin_t *self)
{
    twin_sample_t s = { 25.0, 8000.0, 16000.0, self->baseline_ms };
    /* Health's system figures come from this machine's /proc whatever the
     * source; the real source's sample is also this one. */
    sysstat_sample_t st;
    bool sampled = sysstat_sample(self->sysstat, self->svc->data_dir, &st) == 0;
    if (sampled)
        keep_system_figures(self, &st);
    if (self->source == SOURCE_PROMETHEUS) {
        static const char *const queries[4] = { "node_cpu_utilization", "nvidia_gpu_memory_used_bytes",
                                                "node_memory_MemUsed_bytes",
                                                "network_round_trip_time_milliseconds" };
        double v[4] = { 0.0, 0.0, 0.0, self->baseline_ms };    /* each one's fallback */
        bool ok = prom_query(self->prometheus_url, queries, v, 4, PROM_TIMEOUT_S) == 4;
        s = (twin_sample_t){ v[0], v[1] / MIB, v[2] / MIB, v[3] };
        pthread_mutex_lock(&self->lock);
        self->prometheus_ok = ok;
        pthread_mutex_unlock(&self->lock);
    } else if (self->source == SOURCE_REAL) {
        if (sampled) {
            s.cpu_usage = st.cpu_percent;
            s.ram_usage_mb = (double)st.mem_used_bytes / MIB;
        }
        s.vram_usage_mb = 0.0;
        for (int i = 0; i < gpu_count(self->gpu); i++) {
            gpu_device_t d;
            if (gpu_device(self->gpu, i, &d) == 0)
                s.vram_usage_mb += (double)d.mem_used_bytes / MIB;
        }
    }
    return s;
}

static void record(twin_t *self, twin_sample_t s)
{
    pthread_mutex_lock(&self->lock);
    self->ring[self->head] = (point_t){ clock_wall(), s };
    self->head = (self->head + 1) % self->cap;
    if (self->count < self->cap)
        self->count++;
    pthread_mutex_unlock(&self->lock);
}

static void sample(void *arg)
{
    twin_t *self = arg;
    record(self, fetch(self));
}

/* ---- lifecycle ---------------------------------------------------------------- */

static json_t *initial_vram(twin_t *self)
{
    char ts[40];
    return json_pack("{s:f, s:i, s:f, s:f, s:i, s:f, s:{}, s:s}",
                     "mainpc_vram_total_mb", self->vram_capacity_mb, "mainpc_vram_used_mb", 0,
                     "mainpc_vram_free_mb", self->vram_capacity_mb,
                     "pc2_vram_total_mb", self->pc2_capacity_mb, "pc2_vram_used_mb", 0,
                     "pc2_vram_free_mb", self->pc2_capacity_mb, "loaded_models",
                     "last_update", clock_iso_local(clock_wall(), ts, sizeof ts));
}

twin_t *twin_new(service_t *svc, backend_t *backend, registry_t *registry)
{
    config_t *cfg = svc->config;
    twin_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    self->backend = backend;
    self->registry = registry;
    snprintf(self->prometheus_url, sizeof self->prometheus_url, "%s",
             config_str(cfg, "core.prometheus_url", ""));
    if (!strcmp(config_str(cfg, "metrics_source", "real"), "mock"))
        self->source = SOURCE_MOCK;
    else
        self->source = *self->prometheus_url ? SOURCE_PROMETHEUS : SOURCE_REAL;
    self->interval_s = config_double(cfg, "core.twin.poll_interval_s", 5.0);
    if (!(self->interval_s >= 0.05))
        self->interval_s = 0.05;
    self->baseline_ms = config_double(cfg, "core.twin.network_baseline_ms", 50.0);
    self->vram_capacity_mb = config_double(cfg, "core.twin.vram_capacity_mb", 24000.0);
    self->ram_capacity_mb = config_double(cfg, "core.twin.ram_capacity_mb", 32000.0);
    self->pc2_capacity_mb = config_double(cfg, "core.twin.pc2_vram_capacity_mb", 12000.0);
    snprintf(self->location, sizeof self->location, "%s", config_str(cfg, "core.location", "MainPC"));
    long cap = config_int(cfg, "core.twin.history_length", 60);
    self->cap = cap < 1 ? 1 : (size_t)cap;
    self->ring = calloc(self->cap, sizeof *self->ring);
    self->sysstat = sysstat_new("/proc");
    self->gpu = gpu_new();
    pthread_mutex_init(&self->lock, NULL);
    self->sampler = actor_new("core twin sampler", self->interval_s, sample, self);
    /* A pass asks Prometheus its four queries at once, PROM_TIMEOUT_S at most. */
    actor_watch(self->sampler, svc->liveness, self->interval_s + PROM_TIMEOUT_S);
    self->vram = initial_vram(self);
    metrics_declare(svc->metrics, "keel_core_events_total", "publish_event and report_error calls accepted.",
                    METRIC_COUNTER, NULL, 0);
    char err[256];
    twin_set_status(self, "CoreOrchestrator", "HEALTHY", self->location, NULL, err, sizeof err);
    twin_set_status(self, "SystemDigitalTwin", "HEALTHY", self->location, NULL, err, sizeof err);
    return self;
}

int twin_start(twin_t *self)
{
    return actor_start(self->sampler);
}

void twin_destroy(twin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    twin_t *self = *self_p;
    actor_destroy(&self->sampler);
    sysstat_destroy(&self->sysstat);
    gpu_destroy(&self->gpu);
    json_decref(self->vram);
    free(self->ring);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- state --------------------------------------------------------------------- */

static json_t *state_json(const twin_sample_t *s, double t)
{
    char ts[40];
    return json_pack("{s:f, s:f, s:f, s:f, s:s}", "cpu_usage", s->cpu_usage,
                     "vram_usage_mb", s->vram_usage_mb, "ram_usage_mb", s->ram_usage_mb,
                     "network_latency_ms", s->network_latency_ms,
                     "timestamps", clock_iso_local(t, ts, sizeof ts));
}

static int latest(twin_t *self, point_t *out)
{
    pthread_mutex_lock(&self->lock);
    int found = self->count > 0;
    if (found)
        *out = self->ring[(self->head + self->cap - 1) % self->cap];
    pthread_mutex_unlock(&self->lock);
    if (!found)
        *out = (point_t){ clock_wall(), fetch(self) };
    return 0;
}

json_t *twin_current_state(twin_t *self)
{
    point_t p;
    latest(self, &p);
    return state_json(&p.s, p.t);
}

static json_t *history(twin_t *self)
{
    json_t *ts = json_array(), *cpu = json_array(), *vram = json_array(), *ram = json_array(),
           *net = json_array();
    pthread_mutex_lock(&self->lock);
    size_t start = (self->head + self->cap - self->count) % self->cap;
    for (size_t i = 0; i < self->count; i++) {
        point_t *p = &self->ring[(start + i) % self->cap];
        char buf[40];
        json_array_append_new(ts, json_string(clock_iso_local(p->t, buf, sizeof buf)));
        json_array_append_new(cpu, json_real(p->s.cpu_usage));
        json_array_append_new(vram, json_real(p->s.vram_usage_mb));
        json_array_append_new(ram, json_real(p->s.ram_usage_mb));
        json_array_append_new(net, json_real(p->s.network_latency_ms));
    }
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "timestamps", ts, "cpu_usage", cpu,
                     "vram_usage_mb", vram, "ram_usage_mb", ram, "network_latency_ms", net);
}

int twin_set_status(twin_t *self, const char *name, const char *status, const char *location,
                    const char *source, char *err, size_t errlen)
{
    json_t *old = NULL;
    int found = backend_get(self->backend, "status", name, &old, err, errlen);
    if (found < 0 || (!found && registry_admit(self->registry, "status", source, err, errlen) < 0))
        return -1;
    const char *loc = location ? location
                    : old ? json_string_value(json_object_get(old, "location")) : NULL;
    char ts[40];
    json_t *row = json_pack("{s:s, s:s, s:s}", "location", loc ? loc : "Unknown", "status", status,
                            "last_seen", clock_iso_local(clock_wall(), ts, sizeof ts));
    json_decref(old);
    int rc = backend_put(self->backend, "status", name, row, err, errlen);
    json_decref(row);
    return rc < 0 ? -1 : !found;
}

json_t *twin_status_map(twin_t *self)
{
    char err[256];
    json_t *all = backend_all(self->backend, "status", err, sizeof err);
    return all ? all : json_object();
}

/* A JSON number as a double; -1 for anything else. */
static int number_of(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    return -1;
}

static json_t *num(double v)
{
    return v == floor(v) && fabs(v) < 9e15 ? json_integer((json_int_t)v) : json_real(v);
}

int twin_update_vram(twin_t *self, json_t *payload, char *err, size_t errlen)
{
    if (!json_is_object(payload)) {
        snprintf(err, errlen, "payload must be an object");
        return -1;
    }
    json_t *models = json_object_get(payload, "loaded_models");
    if (models && !json_is_null(models) && !json_is_object(models)) {
        snprintf(err, errlen, "loaded_models must be an object");
        return -1;
    }
    double total = 0, used = 0, pc2_used = 0;
    json_t *t = json_object_get(payload, "total_vram_mb"), *u = json_object_get(payload, "total_vram_used_mb");
    if ((t && !json_is_null(t) && number_of(t, &total) < 0) || (u && !json_is_null(u) && number_of(u, &used) < 0)) {
        snprintf(err, errlen, "total_vram_mb and total_vram_used_mb must be numbers");
        return -1;
    }
    const char *key;
    json_t *m;
    json_object_foreach(models, key, m) {
        double mb = 0;
        if (!strcmp(json_string_value(json_object_get(m, "device")) ? json_string_value(json_object_get(m, "device")) : "", "PC2")
            && number_of(json_object_get(m, "vram_usage_mb"), &mb) == 0)
            pc2_used += mb;
    }
    pthread_mutex_lock(&self->lock);
    if (!t || json_is_null(t))
        total = json_number_value(json_object_get(self->vram, "mainpc_vram_total_mb"));
    double pc2_total = json_number_value(json_object_get(self->vram, "pc2_vram_total_mb"));
    json_object_set_new(self->vram, "mainpc_vram_total_mb", num(total));
    json_object_set_new(self->vram, "mainpc_vram_used_mb", num(used));
    json_object_set_new(self->vram, "mainpc_vram_free_mb", num(total - used));
    json_object_update(json_object_get(self->vram, "loaded_models"), models);
    json_object_set_new(self->vram, "pc2_vram_used_mb", num(pc2_used));
    json_object_set_new(self->vram, "pc2_vram_free_mb", num(pc2_total - pc2_used));
    char ts[40];
    json_object_set_new(self->vram, "last_update", json_string(clock_iso_local(clock_wall(), ts, sizeof ts)));
    pthread_mutex_unlock(&self->lock);
    const char *agent = json_string_value(json_object_get(payload, "agent_name"));
    log_debug("core", "VRAM report from %s: %.0f of %.0f MB used", agent ? agent : "ModelManagerAgent",
              used, total);
    return 0;
}

json_t *twin_vram(twin_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *copy = json_deep_copy(self->vram);
    pthread_mutex_unlock(&self->lock);
    return copy;
}

/* ---- simulate_load --------------------------------------------------------- */

json_t *twin_simulate(const twin_sample_t *current, json_t *current_state, const char *load_type,
                      double value, double vram_capacity_mb, double ram_capacity_mb)
{
    char ts[40], reason[160];
    json_t *r = json_pack("{s:s, s:s, s:O, s:s, s:f, s:s}", "status", "success",
                          "timestamp", clock_iso_local(clock_wall(), ts, sizeof ts),
                          "current_state", current_state, "load_type", load_type,
                          "requested_value", value, "recommendation", "proceed");
    const char *verdict = NULL;
    if (!strcmp(load_type, "vram")) {
        double projected = current->vram_usage_mb + value;
        json_object_set_new(r, "projected_vram_mb", json_real(projected));
        json_object_set_new(r, "vram_capacity_mb", num(vram_capacity_mb));
        if (projected > vram_capacity_mb * 0.95) {
            verdict = "deny_insufficient_resources";
            snprintf(reason, sizeof reason, "Projected VRAM (%.2fMB) exceeds 95%% of capacity.", projected);
        }
    } else if (!strcmp(load_type, "cpu")) {
        double projected = fmin(100.0, current->cpu_usage + value);
        json_object_set_new(r, "projected_cpu_percent", json_real(projected));
        if (projected > 90.0) {
            verdict = "caution_high_cpu";
            snprintf(reason, sizeof reason, "Projected CPU (%.2f%%) exceeds 90%%.", projected);
        }
    } else if (!strcmp(load_type, "ram")) {
        double projected = current->ram_usage_mb + value;
        json_object_set_new(r, "projected_ram_mb", json_real(projected));
        json_object_set_new(r, "ram_capacity_mb", num(ram_capacity_mb));
        if (projected > ram_capacity_mb * 0.9) {
            verdict = "deny_insufficient_resources";
            snprintf(reason, sizeof reason, "Projected RAM (%.2fMB) exceeds 90%% of capacity.", projected);
        }
    } else {
        json_object_set_new(r, "status", json_string("error"));
        char text[300];
        snprintf(text, sizeof text, "Unknown load type: %s", load_type);
        json_object_set_new(r, "error", json_string(text));
        json_object_set_new(r, "recommendation", json_string("error_invalid_request"));
    }
    if (verdict) {
        json_object_set_new(r, "recommendation", json_string(verdict));
        json_object_set_new(r, "reason", json_string(reason));
    }
    return r;
}

/* Python's float(): numbers, bools, and numeric text. */
static int py_float(json_t *v, double *out)
{
    if (!v || json_is_null(v)) {
        *out = 0.0;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_number(v))
        return number_of(v, out);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        *out = strtod(s, &end);
        while (isspace((unsigned char)*end))
            end++;
        return end != s && !*end ? 0 : -1;
    }
    return -1;
}

static json_t *on_simulate(void *ctx, wire_request_t *req)
{
    twin_t *self = ctx;
    json_t *lt = json_object_get(req->body, "load_type");
    if (!json_is_string(lt))
        return wire_error("load_type must be a string");
    double value;
    if (py_float(json_object_get(req->body, "value"), &value) < 0)
        return wire_error("value must be a number");
    point_t p;
    latest(self, &p);
    json_t *state = state_json(&p.s, p.t);
    json_t *r = twin_simulate(&p.s, state, json_string_value(lt), value,
                              self->vram_capacity_mb, self->ram_capacity_mb);
    json_decref(state);
    return r;
}

/* ---- handlers -------------------------------------------------------------- */

static json_t *on_get_metrics(void *ctx, wire_request_t *req)
{
    (void)req;
    return json_pack("{s:s, s:o}", "status", "success", "metrics", twin_current_state(ctx));
}

static json_t *on_get_history(void *ctx, wire_request_t *req)
{
    (void)req;
    return json_pack("{s:s, s:o}", "status", "success", "history", history(ctx));
}

static json_t *on_get_all_agents(void *ctx, wire_request_t *req)
{
    (void)req;
    return json_pack("{s:s, s:o}", "status", "success", "agents", twin_status_map(ctx));
}

static json_t *on_get_registered_agents(void *ctx, wire_request_t *req)
{
    (void)req;
    twin_t *self = ctx;
    json_t *map = twin_status_map(self), *list = json_array();
    const char *name;
    json_t *row;
    json_object_foreach(map, name, row) {
        json_t *item = json_pack("{s:s, s:O, s:O, s:O}", "name", name,
                                 "status", json_object_get(row, "status"),
                                 "location", json_object_get(row, "location"),
                                 "last_updated", json_object_get(row, "last_seen"));
        char err[256];
        json_t *rec = registry_lookup(self->registry, name, err, sizeof err);
        if (rec) {
            static const char *keys[] = { "host", "port", "health_check_port", "agent_type", "capabilities" };
            for (size_t i = 0; i < 5; i++)
                json_object_set(item, keys[i], json_object_get(rec, keys[i]));
            const char *script = json_string_value(json_object_get(json_object_get(rec, "metadata"), "script_path"));
            json_object_set_new(item, "script_path", json_string(script ? script : ""));
            json_decref(rec);
        }
        json_array_append_new(list, item);
    }
    json_decref(map);
    return json_pack("{s:s, s:o}", "status", "success", "agents", list);
}

json_t *twin_agent_info(twin_t *self, json_t *body)
{
    const char *name = json_string_value(json_object_get(body, "agent_name"));
    if (!name || !*name)
        return wire_error("Missing or invalid agent_name parameter");
    json_t *row = NULL;
    char err[256];
    int rc = backend_get(self->backend, "status", name, &row, err, sizeof err);
    if (rc < 0)
        return wire_error("%s", err);
    if (rc == 0)
        return wire_error("Agent %s not found in registry", name);
    json_t *rec = registry_lookup(self->registry, name, err, sizeof err);
    if (rec) {
        static const char *keys[] = { "host", "port", "health_check_port" };
        for (size_t i = 0; i < 3; i++)
            json_object_set(row, keys[i], json_object_get(rec, keys[i]));
        json_t *script = json_object_get(json_object_get(rec, "metadata"), "script_path");
        if (json_is_string(script))
            json_object_set(row, "script_path", script);
        json_decref(rec);
    }
    return json_pack("{s:s, s:o}", "status", "success", "agent_info", row);
}

json_t *twin_register_simple(twin_t *self, json_t *body, const char *source)
{
    const char *name = json_string_value(json_object_get(body, "agent_name"));
    const char *status = json_string_value(json_object_get(body, "status"));
    const char *location = json_string_value(json_object_get(body, "location"));
    if (!name || !*name)
        return wire_error("Missing or invalid agent_name parameter");
    if (!status || !*status)
        return wire_error("Missing or invalid status parameter");
    char err[512];
    if (names_refuse(self->svc->metrics, "core", "agent_name", name, err, sizeof err))
        return wire_error("Invalid agent_name: %s", err);
    int created = twin_set_status(self, name, status, location, source, err, sizeof err);
    if (created < 0)
        return wire_error("%s", err);
    json_t *message = created ? json_sprintf("Registered new agent %s at %s with status %s", name,
                                             location ? location : "Unknown", status)
                              : json_sprintf("Updated %s status to %s", name, status);
    return json_pack("{s:s, s:o, s:s}", "status", "success", "message", message, "agent", name);
}

static json_t *on_get_ok_agents(void *ctx, wire_request_t *req)
{
    (void)req;
    json_t *map = twin_status_map(ctx), *names = json_array();
    const char *name;
    json_t *row;
    json_object_foreach(map, name, row) {
        const char *status = json_string_value(json_object_get(row, "status"));
        if (status && !strcasecmp(status, "ok"))
            json_array_append_new(names, json_string(name));
    }
    json_decref(map);
    return json_pack("{s:s, s:I, s:o}", "status", "success", "count",
                     (json_int_t)json_array_size(names), "agents", names);
}

static json_t *on_update_vram(void *ctx, wire_request_t *req)
{
    json_t *payload = json_object_get(req->body, "payload");
    json_t *empty = payload ? NULL : json_object();
    char err[256];
    int rc = twin_update_vram(ctx, payload ? payload : empty, err, sizeof err);
    json_decref(empty);
    if (rc < 0)
        return wire_error("%s", err);
    return json_pack("{s:s, s:s}", "status", "success", "message", "VRAM metrics updated successfully");
}

/* ---- events and error reports ------------------------------------------------ */

typedef enum { F_STR, F_OBJ, F_BOOL, F_INT, F_TIME, F_STR_NULL, F_BOOL_NULL, F_SEVERITY } ftype_t;

typedef struct {
    const char *key;
    ftype_t type;
    bool required;
} field_t;

static const char *field_problem(json_t *v, ftype_t type)
{
    switch (type) {
    case F_STR:
        return json_is_string(v) ? NULL : "Input should be a valid string";
    case F_STR_NULL:
        return json_is_string(v) || json_is_null(v) ? NULL : "Input should be a valid string";
    case F_OBJ:
        return json_is_object(v) ? NULL : "Input should be a valid dictionary";
    case F_BOOL:
        return json_is_boolean(v) ? NULL : "Input should be a valid boolean";
    case F_BOOL_NULL:
        return json_is_boolean(v) || json_is_null(v) ? NULL : "Input should be a valid boolean";
    case F_INT:
        return json_is_integer(v) ? NULL : "Input should be a valid integer";
    case F_TIME: {
        double t;
        return json_is_number(v) || (json_is_string(v) && clock_parse_iso(json_string_value(v), &t) == 0)
            ? NULL : "Input should be a valid datetime";
    }
    case F_SEVERITY: {
        const char *s = json_string_value(v);
        return s && (!strcmp(s, "info") || !strcmp(s, "warning") || !strcmp(s, "error") || !strcmp(s, "critical"))
            ? NULL : "Input should be 'info', 'warning', 'error' or 'critical'";
    }
    }
    return NULL;
}

/* pydantic-like validation of a model: 0, or -1 with the text in err. */
static int validate_model(json_t *obj, const char *model, const field_t *fields, size_t n,
                          char *err, size_t errlen)
{
    char text[1024] = "";
    size_t len = 0;
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, fields[i].key);
        const char *why = !v ? (fields[i].required ? "Field required" : NULL) : field_problem(v, fields[i].type);
        if (!why)
            continue;
        count++;
        if (len < sizeof text)
            len += (size_t)snprintf(text + len, sizeof text - len, "\n%s\n  %s", fields[i].key, why);
    }
    if (!count)
        return 0;
    snprintf(err, errlen, "%d validation error%s for %s%s", count, count > 1 ? "s" : "", model, text);
    return -1;
}

static const field_t event_fields[] = {
    { "event_id", F_STR, true }, { "event_type", F_STR, true }, { "source_agent", F_STR, true },
    { "timestamp", F_TIME, false }, { "data", F_OBJ, false }, { "propagate", F_BOOL, false },
    { "ttl", F_INT, false },
};

static const field_t error_fields[] = {
    { "error_id", F_STR, true }, { "agent_id", F_STR, true }, { "severity", F_SEVERITY, true },
    { "error_type", F_STR, true }, { "message", F_STR, true }, { "timestamp", F_TIME, false },
    { "context", F_OBJ, false }, { "stack_trace", F_STR_NULL, false },
    { "related_task_id", F_STR_NULL, false }, { "recovery_attempted", F_BOOL, false },
    { "recovery_successful", F_BOOL_NULL, false },
};

static void count_event(twin_t *self, const char *kind)
{
    char labels[64];
    metrics_labels(labels, sizeof labels, "kind", kind, NULL);
    metrics_add(self->svc->metrics, "keel_core_events_total", labels, 1);
}

static json_t *on_publish_event(void *ctx, wire_request_t *req)
{
    twin_t *self = ctx;
    json_t *event = json_object_get(req->body, "event");
    if (!event || json_is_null(event) || (json_is_object(event) && !json_object_size(event)))
        return wire_error("Missing required parameter: event");
    char err[1100];
    if (!json_is_object(event))
        return wire_error("Invalid event data: event must be an object");
    if (validate_model(event, "SystemEvent", event_fields, sizeof event_fields / sizeof event_fields[0],
                       err, sizeof err) < 0)
        return wire_error("Invalid event data: %s", err);
    const char *id = json_string_value(json_object_get(event, "event_id"));
    log_info("core", "event %s (%s) from %s", id, json_string_value(json_object_get(event, "event_type")),
             json_string_value(json_object_get(event, "source_agent")));
    count_event(self, "event");
    char message[512];
    snprintf(message, sizeof message, "Event %s published successfully", id);
    return json_pack("{s:s, s:s, s:s}", "status", "success", "message", message, "event_id", id);
}

/* ErrorReport severities in the ErrorBus vocabulary. */
static const char *bus_severity(const char *s)
{
    return !strcmp(s, "critical") ? "critical" : !strcmp(s, "error") ? "high"
         : !strcmp(s, "warning") ? "medium" : "low";
}

static json_t *on_report_error(void *ctx, wire_request_t *req)
{
    twin_t *self = ctx;
    json_t *error = json_object_get(req->body, "error");
    if (!error || json_is_null(error) || (json_is_object(error) && !json_object_size(error)))
        return wire_error("Missing required parameter: error");
    char err[1100];
    if (!json_is_object(error))
        return wire_error("Invalid error report data: error must be an object");
    if (validate_model(error, "ErrorReport", error_fields, sizeof error_fields / sizeof error_fields[0],
                       err, sizeof err) < 0)
        return wire_error("Invalid error report data: %s", err);
    const char *id = json_string_value(json_object_get(error, "error_id"));
    errpub_report(self->svc->errors, json_string_value(json_object_get(error, "error_type")),
                  bus_severity(json_string_value(json_object_get(error, "severity"))), error, "%s",
                  json_string_value(json_object_get(error, "message")));
    count_event(self, "error_report");
    char message[512];
    snprintf(message, sizeof message, "Error %s recorded successfully", id);
    return json_pack("{s:s, s:s, s:s}", "status", "success", "message", message, "error_id", id);
}

#define SDT "SystemDigitalTwin"

/* simulate_load computes a prediction and changes nothing: a read. */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "get_metrics", on_get_metrics, SDT, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_history", on_get_history, SDT, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_all_agents", on_get_all_agents, SDT, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_registered_agents", on_get_registered_agents, SDT, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_ok_agents", on_get_ok_agents, SDT, ROUTE_PUBLIC },
    { WIRE_ACTION, "simulate_load", on_simulate, SDT, ROUTE_PUBLIC },
    /* no kept agent sends it */
    { WIRE_ACTION, "update_vram_metrics", on_update_vram, SDT, ROUTE_ADMIN },
    /* sent by common/core/base_agent.py (BaseAgent.send_event) */
    { WIRE_ACTION, "publish_event", on_publish_event, SDT, ROUTE_AGENT },
    /* sent by common/core/base_agent.py (BaseAgent.report_error) */
    { WIRE_ACTION, "report_error", on_report_error, SDT, ROUTE_AGENT },
    { 0 },
};

void twin_attach(twin_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}

/* The system figures are the sampler's latest (core.twin.poll_interval_s,
 * 5 s by default): reading /proc on every health request cost a third of
 * a ping, for figures that only say something over seconds anyway. */
void twin_health(twin_t *self, json_t *dict)
{
    pthread_mutex_lock(&self->lock);
    bool prom = self->source == SOURCE_PROMETHEUS && self->prometheus_ok;
    double cpu_percent = self->cpu_percent, mem_percent = self->mem_percent;
    pthread_mutex_unlock(&self->lock);
    bool running = actor_running(self->sampler);
    bool redis = backend_kind(self->backend) == BACKEND_REDIS && backend_up(self->backend);
    long agents = backend_count(self->backend, "status");
    json_object_set_new(dict, "agent_specific_metrics",
        json_pack("{s:s, s:I, s:b, s:{s:f, s:f}, s:b, s:b, s:b, s:s}",
                  "twin_status", running ? "active" : "inactive",
                  "registered_agents_count", (json_int_t)(agents < 0 ? 0 : agents),
                  "prometheus_connected", prom,
                  "system_metrics", "cpu_percent", cpu_percent, "memory_percent", mem_percent,
                  "db_connected", backend_kind(self->backend) == BACKEND_SQLITE,
                  "redis_connected", redis, "zmq_ready", true,
                  "metrics_source", self->source == SOURCE_MOCK ? "mock"
                                    : self->source == SOURCE_PROMETHEUS ? "prometheus" : "real"));
}
