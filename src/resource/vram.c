/*  vram: see vram.h.  This file is the request side: the legacy commands,
 *  the ModelManager's four requests, and the helpers the loops share. */
#include "vram_int.h"
#include "vram_policy.h"
#include "clock.h"
#include "gather.h"
#include "log.h"
#include "names.h"
#include "pycompat.h"
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bounds on TRACK_MODEL_USAGE's memory: the predictor needs more than 360
 * uses an hour, so 10000 per model loses nothing it looks at. */
#define MAX_USES 10000
#define MAX_MODELS 4096
#define MAX_IDLE_TIMEOUT_S (30 * 86400)    /* past a month an idle model is simply never unloaded */
#define MAX_VRAM_MB 1048576                 /* 1 TiB: past any GPU's memory, a typo */

/* ---- shared helpers --------------------------------------------------- */

void vram_metrics(vram_t *self, int d, vram_metrics_t *out)
{
    memset(out, 0, sizeof *out);
    gpu_device_t dev;
    bool exists = self->gpu && gpu_available(self->gpu) && d < gpu_count(self->gpu)
                  && gpu_device(self->gpu, d, &dev) == 0;
    if (exists && dev.mem_total_bytes > 0) {
        out->present = true;
        out->total_mb = floor((double)dev.mem_total_bytes / STATS_MIB);
        out->used_mb = floor((double)dev.mem_used_bytes / STATS_MIB);
        out->free_mb = floor((double)dev.mem_free_bytes / STATS_MIB);
        out->ratio = out->used_mb / out->total_mb;
        return;
    }
    /* The original's fallback: the budget as the total, nothing used; for
     * MainPC always, for PC2 only when its card exists but reports no size. */
    if (d == 0 || exists) {
        out->present = true;
        out->total_mb = out->free_mb = d == 0 ? self->config.mainpc_budget_mb
                                              : self->config.pc2_budget_mb;
    }
}

double vram_room(vram_t *self, int d, const vram_metrics_t *m)
{
    double held[STATS_MAX_GPUS];
    manager_vram_held(self->manager, held);
    pthread_mutex_lock(&self->lock);
    double critical = self->critical;
    pthread_mutex_unlock(&self->lock);
    return m->total_mb * critical - m->used_mb - held[d];
}

static bool said_success(json_t *reply)
{
    const char *status = json_string_value(json_object_get(reply, "status"));
    return status && !strcmp(status, "SUCCESS");
}

bool vram_unload(vram_t *self, wire_client_t *client, const char *model)
{
    json_t *request = json_pack("{s:s, s:s}", "command", "UNLOAD_MODEL", "model_name", model);
    char err[256];
    json_t *reply = wire_client_call(client, request, err, sizeof err);
    bool ok = said_success(reply);
    json_decref(request);
    json_decref(reply);
    if (!ok)
        log_warn("resource", "UNLOAD_MODEL %s failed: %s", model, reply ? "not SUCCESS" : err);
    pthread_mutex_lock(&self->lock);
    self->unloads += ok;
    pthread_mutex_unlock(&self->lock);
    char labels[64];
    metrics_labels(labels, sizeof labels, "outcome", ok ? "success" : "failed", NULL);
    metrics_add(self->metrics, "keel_resource_vram_unloads_total", labels, 1);
    return ok;
}

bool vram_load(vram_t *self, wire_client_t *client, const char *model, const char *device,
               const char *quantization)
{
    json_t *request = json_pack("{s:s, s:s, s:s, s:s}", "command", "LOAD_MODEL", "model_name", model,
                                "device", device, "quantization_level", quantization);
    char err[256];
    json_t *reply = wire_client_call(client, request, err, sizeof err);
    bool ok = said_success(reply);
    json_decref(request);
    json_decref(reply);
    pthread_mutex_lock(&self->lock);
    self->loads += ok;
    pthread_mutex_unlock(&self->lock);
    log_info("resource", "LOAD_MODEL %s on %s: %s", model, device, ok ? "done" : "failed");
    return ok;
}

/* SDT's verdict on a large load: false only for an explicit refusal; an
 * error or silence lets the load proceed, as the original did. */
static bool sdt_allows(vram_t *self, double required_mb, int timeout_ms)
{
    if (!*self->config.sdt_endpoint)
        return true;
    json_t *request = json_pack("{s:s, s:s, s:f, s:f}", "action", "simulate_load", "load_type", "vram",
                                "value_mb", required_mb, "value", required_mb);
    char err[256];
    json_t *reply = wire_call(self->config.sdt_endpoint, request, timeout_ms, 0, err, sizeof err);
    json_decref(request);
    const char *status = json_string_value(json_object_get(reply, "status"));
    const char *verdict = json_string_value(json_object_get(reply, "recommendation"));
    bool allowed = !reply || !status || strcmp(status, "success") != 0
                   || (verdict && !strcmp(verdict, "proceed"));
    json_decref(reply);
    return allowed;
}

bool vram_can_load(vram_t *self, const char *model, double required_mb, int timeout_ms)
{
    if (required_mb < 0) {
        pthread_mutex_lock(&self->lock);
        required_mb = json_number_value(json_object_get(self->requirements, model));
        pthread_mutex_unlock(&self->lock);
    }
    if (required_mb > 2048 && !sdt_allows(self, required_mb, timeout_ms))
        return false;
    vram_metrics_t m;
    vram_metrics(self, 0, &m);
    return required_mb <= vram_room(self, 0, &m);
}

/* ---- life cycle ---------------------------------------------------------- */

vram_t *vram_new(const vram_config_t *config, gpu_t *gpu, manager_t *manager,
                 metrics_t *metrics, errpub_t *errors)
{
    vram_t *self = calloc(1, sizeof *self);
    self->config = *config;
    self->gpu = gpu;
    self->manager = manager;
    self->metrics = metrics;
    self->errors = errors;
    self->started_mono = clock_mono();
    pthread_mutex_init(&self->lock, NULL);
    const double intervals[VRAM_LOOPS] = { config->monitor_interval_s, 0, config->predict_interval_s,
                                              config->optimization_interval_s };
    actor_tick_fn *passes[VRAM_LOOPS] = { vram_monitor, NULL, vram_predict, vram_optimize };
    for (int i = 0; i < VRAM_LOOPS; i++) {
        self->loops[i] = i == VRAM_IDLE ? actor_new_runner("rs vram idle", vram_unload_idle, NULL, self)
                                           : actor_new("rs vram", intervals[i], passes[i], self);
        actor_delay_first(self->loops[i]);
        self->clients[i] = wire_client_new_agent(config->mma_endpoint, config->timeout_ms, 0);
        wire_client_cancel_on(self->clients[i], actor_stop_fd(self->loops[i]));
    }
    self->critical = config->critical;
    self->warning = config->warning;
    self->safe = config->safe;
    self->idle_timeout_s = config->idle_timeout_s;
    self->loaded_models = json_object();
    self->usage_patterns = json_object();
    self->requirements = json_object();
    self->mma = json_object();
    self->batch_sizes = json_object();
    metrics_declare(metrics, "keel_resource_vram_unloads_total",
                    "UNLOAD_MODEL requests sent to the ModelManager, by outcome.",
                    METRIC_COUNTER, NULL, 0);
    return self;
}

int vram_start(vram_t *self)
{
    for (int i = 0; i < VRAM_LOOPS; i++)
        if (actor_start(self->loops[i]) < 0)
            return -1;
    return 0;
}

void vram_destroy(vram_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vram_t *self = *self_p;
    actor_stop_all(self->loops, VRAM_LOOPS);
    for (int i = 0; i < VRAM_LOOPS; i++) {
        actor_destroy(&self->loops[i]);
        wire_client_destroy(&self->clients[i]);
    }
    json_decref(self->loaded_models);
    json_decref(self->usage_patterns);
    json_decref(self->requirements);
    json_decref(self->mma);
    json_decref(self->batch_sizes);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- legacy commands ------------------------------------------------------ */

/* A command's field: top level, as the original read it, else in payload. */
static json_t *field(wire_request_t *req, const char *key)
{
    json_t *v = json_object_get(req->body, key);
    return v ? v : json_object_get(req->payload, key);
}

static json_t *upper(const char *status, const char *fmt, const char *arg)
{
    char message[512];
    snprintf(message, sizeof message, fmt, arg);
    return json_pack("{s:s, s:s}", "status", status, "message", message);
}

static json_t *on_track(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    json_t *id = field(req, "model_id");
    if (!pycompat_truthy(id) || json_is_object(id) || json_is_array(id))
        return upper("ERROR", "%s", "Missing model_id parameter");
    char name[NAMES_BUF];
    if (names_refuse(self->metrics, "resource", "model_id", json_string_value(id), name, sizeof name))
        return upper("ERROR", "%s", name);
    pycompat_str(id, name, sizeof name);
    double now = clock_wall();
    pthread_mutex_lock(&self->lock);
    json_t *times = json_object_get(self->usage_patterns, name);
    json_t *kept = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(times, i, t)
        if (now - json_real_value(t) < self->config.prediction_window_s)
            json_array_append(kept, t);
    json_array_append_new(kept, json_real(now));
    while (json_array_size(kept) > MAX_USES)
        json_array_remove(kept, 0);
    bool room = times || json_object_size(self->usage_patterns) < MAX_MODELS;
    if (room)
        json_object_set_new(self->usage_patterns, name, kept);
    else
        json_decref(kept);
    pthread_mutex_unlock(&self->lock);
    if (!room)
        return upper("ERROR", "Too many tracked models; %s not tracked", name);
    return upper("SUCCESS", "Tracked usage of model %s", name);
}

static json_t *metrics_json(const vram_metrics_t *m)
{
    if (!m->present)
        return json_null();
    return json_pack("{s:f, s:f, s:f, s:f}", "total_mb", m->total_mb, "used_mb", m->used_mb,
                     "free_mb", m->free_mb, "usage_ratio", m->ratio);
}

static json_t *thresholds_json(vram_t *self)
{
    return json_pack("{s:f, s:f, s:f}", "critical", self->critical, "warning", self->warning,
                     "safe", self->safe);
}

static json_t *on_vram_status(void *ctx, wire_request_t *req)
{
    (void)req;
    vram_t *self = ctx;
    vram_metrics_t m[VRAM_DEVICES];
    for (int d = 0; d < VRAM_DEVICES; d++)
        vram_metrics(self, d, &m[d]);
    pthread_mutex_lock(&self->lock);
    json_t *reply = json_pack("{s:s, s:o, s:o, s:O, s:o}", "status", "SUCCESS",
                              "mainpc_vram", metrics_json(&m[0]), "pc2_vram", metrics_json(&m[1]),
                              "loaded_models", self->loaded_models,
                              "thresholds", thresholds_json(self));
    pthread_mutex_unlock(&self->lock);
    json_t *copy = json_deep_copy(reply);
    json_decref(reply);
    return copy;
}

static json_t *on_idle_timeout(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    json_t *v = field(req, "timeout_seconds");
    bool as_true = json_is_true(v);
    if (!as_true && !(json_is_integer(v) && json_integer_value(v) > 0))
        return upper("ERROR", "%s", "Invalid timeout parameter");
    if (!as_true && json_integer_value(v) > MAX_IDLE_TIMEOUT_S) {
        char why[96];
        snprintf(why, sizeof why, "Invalid timeout parameter: at most %d seconds", MAX_IDLE_TIMEOUT_S);
        return upper("ERROR", "%s", why);
    }
    char text[32];
    pycompat_str(v, text, sizeof text);
    pthread_mutex_lock(&self->lock);
    self->idle_timeout_s = as_true ? 1.0 : (double)json_integer_value(v);
    pthread_mutex_unlock(&self->lock);
    char message[96];
    snprintf(message, sizeof message, "Idle timeout set to %s seconds", text);
    return json_pack("{s:s, s:s}", "status", "SUCCESS", "message", message);
}

static json_t *on_threshold(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    const char *kind = json_string_value(field(req, "threshold_type"));
    json_t *v = field(req, "value");
    double value = json_number_value(v);
    double *slot = NULL;
    if (kind && !strcmp(kind, "critical"))
        slot = &self->critical;
    else if (kind && !strcmp(kind, "warning"))
        slot = &self->warning;
    else if (kind && !strcmp(kind, "safe"))
        slot = &self->safe;
    if (!slot || !json_is_number(v) || !(value > 0 && value < 1))
        return upper("ERROR", "%s", "Invalid threshold parameters");
    pthread_mutex_lock(&self->lock);
    *slot = value;
    pthread_mutex_unlock(&self->lock);
    char text[64], message[128];
    pycompat_str(v, text, sizeof text);
    snprintf(message, sizeof message, "VRAM threshold %s set to %s", kind, text);
    return json_pack("{s:s, s:s}", "status", "SUCCESS", "message", message);
}

/* The four peers are asked at once (gather.h), and with a shorter timeout
 * than other requests, so the answer comes within a caller's usual 5 s,
 * not after the original's four 5 s timeouts in a row.  A peer with no
 * endpoint configured is simply unreachable. */
static json_t *on_health_check(void *ctx, wire_request_t *req)
{
    (void)req;
    vram_t *self = ctx;
    static const struct { const char *request, *want; } asked[4] = {
        { "{\"command\":\"PING\"}", "SUCCESS" },
        { "{\"command\":\"HEALTH_CHECK\"}", "SUCCESS" },
        { "{\"action\":\"ping\"}", "success" },
        { "{\"command\":\"HEALTH_CHECK\"}", "SUCCESS" },
    };
    const char *endpoints[4] = { self->config.sdt_endpoint, self->config.mma_endpoint,
                                 self->config.rc_endpoint, self->config.mef_endpoint };
    /* SystemDigitalTwin is CoreOrchestrator's main port; the other three
     * are the agents' own (or an absorbed agent's old port, served for them). */
    const bool agent[4] = { false, true, true, true };
    gather_call_t calls[4];
    for (int i = 0; i < 4; i++)
        calls[i] = (gather_call_t){ .url = endpoints[i], .body = asked[i].request,
                                    .body_len = strlen(asked[i].request), .agent = agent[i] };
    gather_run(calls, 4, self->config.probe_timeout_ms);
    bool reachable[4];
    for (int i = 0; i < 4; i++) {
        json_t *reply = gather_reply_json(&calls[i]);
        const char *status = json_string_value(json_object_get(reply, "status"));
        reachable[i] = status && !strcmp(status, asked[i].want);
        json_decref(reply);
    }
    gather_clear(calls, 4);
    bool all = reachable[0] && reachable[1] && reachable[2] && reachable[3];
    return json_pack("{s:s, s:{s:s, s:b, s:b, s:b, s:b, s:i, s:{s:b, s:b, s:b, s:b}}}",
                     "status", "SUCCESS", "health_status", "status", all ? "HEALTHY" : "UNHEALTHY",
                     "sdt_reachable", reachable[0], "mma_reachable", reachable[1],
                     "rc_reachable", reachable[2], "mef_reachable", reachable[3],
                     "uptime_seconds", (int)(clock_mono() - self->started_mono),
                     "connected_services", "SystemDigitalTwin", reachable[0],
                     "ModelManagerAgent", reachable[1],
                     "RequestCoordinator", reachable[2],
                     "ModelEvaluationFramework", reachable[3]);
}

/* ---- the ModelManager's requests ------------------------------------------ */

static json_t *mma_error(const char *fmt, const char *arg)
{
    return wire_error_key("message", fmt, arg);
}

/* A required positive number field; NULL with *error set otherwise. */
static bool positive(json_t *body, const char *key, double *out, json_t **error)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_number(v) || json_number_value(v) < 0) {
        *error = mma_error("Invalid %s: a number of MiB, at least 0", key);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* Device index named by a request's optional `device` ("MainPC", "PC2" or
 * an index); 0 (MainPC, where the ModelManager runs) when absent. */
static int device_of(vram_t *self, json_t *body)
{
    json_t *v = json_object_get(body, "device");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < VRAM_DEVICES)
        return (int)json_integer_value(v);
    const char *name = json_string_value(v);
    for (int d = 0; name && d < VRAM_DEVICES; d++)
        if (!strcmp(name, self->config.device_names[d]))
            return d;
    return 0;
}

static json_t *on_register_mm(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    json_t *budget = json_object_get(req->body, "vram_budget_mb");
    json_t *idle = json_object_get(req->body, "idle_timeout");
    if ((budget && !json_is_number(budget)) || (idle && !json_is_null(idle) && !json_is_number(idle)))
        return mma_error("%s", "Invalid registration: vram_budget_mb and idle_timeout must be numbers");
    double mb = json_number_value(budget), idle_s = json_number_value(idle);
    if ((budget && !(mb > 0 && mb <= MAX_VRAM_MB)) || !(idle_s >= 0 && idle_s <= MAX_IDLE_TIMEOUT_S))
        return mma_error("%s", "Invalid registration: vram_budget_mb must be above 0 and at most 1048576 MiB,"
                               " idle_timeout from 0 to 2592000 seconds");
    pthread_mutex_lock(&self->lock);
    if (budget)
        json_object_set(self->mma, "vram_budget_mb", budget);
    if (idle)
        json_object_set(self->mma, "idle_timeout", idle);
    json_object_set_new(self->mma, "registered_at", json_real(clock_wall()));
    json_t *thresholds = thresholds_json(self);
    pthread_mutex_unlock(&self->lock);
    log_info("resource", "ModelManager registered (budget %.0f MiB)", json_number_value(budget));
    return json_pack("{s:s, s:s, s:o, s:f}", "status", "ok", "message", "ModelManager registered",
                     "thresholds", thresholds, "idle_timeout", self->idle_timeout_s);
}

/* The refusal of a report naming a model over the limit (names.h), or
 * NULL when every name fits. */
static json_t *long_model_name(vram_t *self, json_t *models)
{
    const char *name;
    json_t *entry;
    char why[160];
    json_object_foreach(models, name, entry)
        if (names_refuse(self->metrics, "resource", "loaded_models key", name, why, sizeof why))
            return mma_error("Invalid loaded_models: %s", why);
    return NULL;
}

/* Remembers sizes the ModelManager reports and drops the load
 * reservations of models that have now arrived. */
static void learn_models(vram_t *self, json_t *models, const char *size_key)
{
    const char *name;
    json_t *entry;
    json_object_foreach(models, name, entry) {
        json_t *size = json_object_get(entry, size_key);
        if (json_is_number(size) && json_number_value(size) > 0) {
            pthread_mutex_lock(&self->lock);
            json_object_set_new(self->requirements, name, json_real(json_number_value(size)));
            pthread_mutex_unlock(&self->lock);
        }
        char id[NAMES_BUF + 8];
        snprintf(id, sizeof id, "model:%s", name);
        manager_release(self->manager, id);
    }
}

static json_t *on_update_vram(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    double current, total;
    json_t *error = NULL;
    if (!positive(req->body, "current_vram_mb", &current, &error)
        || !positive(req->body, "total_vram_mb", &total, &error))
        return error;
    json_t *models = json_object_get(req->body, "loaded_models");
    if (models && !json_is_object(models))
        return mma_error("%s", "Invalid loaded_models: an object of model entries");
    if (models && (error = long_model_name(self, models)))
        return error;
    if (models)
        learn_models(self, models, "vram_mb");
    pthread_mutex_lock(&self->lock);
    json_object_set_new(self->mma, "current_vram_mb", json_real(current));
    self->mma_used_mb = current;
    json_object_set_new(self->mma, "total_vram_mb", json_real(total));
    json_object_set_new(self->mma, "updated_at", json_real(clock_wall()));
    double ratio = total > 0 ? current / total : 0.0;
    double critical = self->critical, warning = self->warning, idle = self->idle_timeout_s;
    pthread_mutex_unlock(&self->lock);
    json_t *unload;
    if (models && ratio >= critical) {
        json_t *picks = vram_pick_critical(models, NULL, "vram_mb");
        unload = json_array();
        if (json_array_size(picks))
            json_array_append(unload, json_array_get(picks, 0));
        json_decref(picks);
    } else if (models && ratio >= warning) {
        json_t *idle_models = vram_idle(models, NULL, clock_wall(), idle);
        unload = json_array();
        if (json_array_size(idle_models))
            json_array_append(unload, json_array_get(idle_models, 0));
        json_decref(idle_models);
    } else {
        unload = json_array();
    }
    return json_pack("{s:s, s:f, s:o}", "status", "ok", "usage_ratio", ratio, "unload_models", unload);
}

/* The ModelManager's own budget, when it registered one and reported use. */
static bool within_mma_budget(vram_t *self, double vram_mb)
{
    pthread_mutex_lock(&self->lock);
    json_t *budget = json_object_get(self->mma, "vram_budget_mb");
    json_t *current = json_object_get(self->mma, "current_vram_mb");
    bool ok = !json_is_number(budget) || !json_is_number(current)
              || json_number_value(current) + vram_mb <= json_number_value(budget);
    pthread_mutex_unlock(&self->lock);
    return ok;
}

static json_t *on_can_accommodate(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    double vram_mb;
    json_t *error = NULL;
    if (!positive(req->body, "vram_mb", &vram_mb, &error))
        return error;
    int d = device_of(self, req->body);
    vram_metrics_t m;
    vram_metrics(self, d, &m);
    double room = m.present ? vram_room(self, d, &m) : 0.0;
    bool fits = m.present && vram_mb <= room && within_mma_budget(self, vram_mb)
                && (vram_mb <= 2048 || sdt_allows(self, vram_mb, self->config.admission_timeout_ms));
    const char *model = json_string_value(json_object_get(req->body, "model_name"));
    if (!model)
        model = json_string_value(json_object_get(req->body, "model_id"));
    char why[160];
    if (names_refuse(self->metrics, "resource", "model_name", model, why, sizeof why))
        return mma_error("%s", why);
    json_t *reply = json_pack("{s:s, s:b, s:f, s:s}", "status", "ok", "can_accommodate", fits,
                              "free_mb", room > 0 ? room : 0.0, "device", self->config.device_names[d]);
    if (fits && model && *model) {
        char id[NAMES_BUF + 8];
        snprintf(id, sizeof id, "model:%s", model);
        manager_reserve_vram(self->manager, id, vram_mb, d, self->config.load_reservation_s,
                             "ModelManagerAgent");
        json_object_set_new(reply, "reservation_id", json_string(id));
    }
    return reply;
}

static json_t *on_make_room(void *ctx, wire_request_t *req)
{
    vram_t *self = ctx;
    double vram_mb;
    json_t *error = NULL;
    if (!positive(req->body, "vram_mb", &vram_mb, &error))
        return error;
    json_t *models = json_object_get(req->body, "loaded_models");
    if (models && !json_is_object(models))
        return mma_error("%s", "Invalid loaded_models: an object of model entries");
    int d = device_of(self, req->body);
    vram_metrics_t m;
    vram_metrics(self, d, &m);
    double need = vram_mb - (m.present ? vram_room(self, d, &m) : 0.0);
    json_t *own = NULL;
    const char *size_key = "vram_mb";
    if (!models) {
        pthread_mutex_lock(&self->lock);
        own = json_deep_copy(self->loaded_models);
        pthread_mutex_unlock(&self->lock);
        models = own;
        size_key = "vram_usage_mb";
    }
    double freed = 0;
    json_t *unload = need > 0 ? vram_make_room(models, need, size_key, &freed) : json_array();
    bool success = need <= 0 || json_array_size(unload) > 0;
    json_decref(own);
    return json_pack("{s:s, s:b, s:o, s:f, s:f}", "status", "ok", "success", success,
                     "unload_models", unload, "needed_mb", need > 0 ? need : 0.0, "freed_mb", freed);
}

json_t *vram_snapshot(vram_t *self)
{
    vram_metrics_t m[VRAM_DEVICES];
    double held[STATS_MAX_GPUS];
    for (int d = 0; d < VRAM_DEVICES; d++)
        vram_metrics(self, d, &m[d]);
    manager_vram_held(self->manager, held);
    json_t *devices = json_object();
    for (int d = 0; d < VRAM_DEVICES; d++) {
        json_t *dev = metrics_json(&m[d]);
        if (json_is_object(dev))
            json_object_set_new(dev, "reserved_mb", json_real(held[d]));
        json_object_set_new(devices, self->config.device_names[d], dev);
    }
    pthread_mutex_lock(&self->lock);
    json_t *snap = json_pack("{s:o, s:O, s:o, s:f, s:O, s:O, s:f, s:I, s:I, s:I}",
                             "devices", devices, "loaded_models", self->loaded_models,
                             "thresholds", thresholds_json(self), "idle_timeout", self->idle_timeout_s,
                             "batch_sizes", self->batch_sizes, "model_manager", self->mma,
                             "fragmentation", self->fragmentation,
                             "unloads", (json_int_t)self->unloads, "loads", (json_int_t)self->loads,
                             "defrags", (json_int_t)self->defrags);
    json_t *uses = json_object();
    const char *name;
    json_t *times;
    json_object_foreach(self->usage_patterns, name, times)
        json_object_set_new(uses, name, json_integer((json_int_t)json_array_size(times)));
    json_object_set_new(snap, "usage_patterns", uses);
    pthread_mutex_unlock(&self->lock);
    json_t *copy = json_deep_copy(snap);
    json_decref(snap);
    return copy;
}

static json_t *on_get_vram_policy(void *ctx, wire_request_t *req)
{
    (void)req;
    json_t *snap = vram_snapshot(ctx);
    json_object_set_new(snap, "status", json_string("success"));
    return snap;
}

#define VO "VRAMOptimizerAgent"

/* The commands were only ever sent by test_vram_optimizer.py, a test;
 * ModelManagerAgent's action-style calls (main_pc_code/agents/
 * model_manager_agent_fixed.py) are the agent traffic. */
static const wire_route_t routes[] = {
    { WIRE_COMMAND, "TRACK_MODEL_USAGE", on_track, VO, ROUTE_ADMIN },         /* no kept agent sends it */
    { WIRE_COMMAND, "GET_VRAM_STATUS", on_vram_status, VO, ROUTE_PUBLIC },
    { WIRE_COMMAND, "SET_IDLE_TIMEOUT", on_idle_timeout, VO, ROUTE_ADMIN },   /* no kept agent sends it */
    { WIRE_COMMAND, "SET_VRAM_THRESHOLD", on_threshold, VO, ROUTE_ADMIN },    /* no kept agent sends it */
    { WIRE_COMMAND, "HEALTH_CHECK", on_health_check, VO, ROUTE_PUBLIC },
    { WIRE_ACTION, "register_model_manager", on_register_mm, VO, ROUTE_AGENT },   /* sent by ModelManagerAgent */
    { WIRE_ACTION, "update_vram_status", on_update_vram, VO, ROUTE_AGENT },       /* sent by ModelManagerAgent */
    { WIRE_ACTION, "can_accommodate_model", on_can_accommodate, VO, ROUTE_PUBLIC },
    { WIRE_ACTION, "make_room_for_model", on_make_room, VO, ROUTE_AGENT },        /* sent by ModelManagerAgent */
    { WIRE_ACTION, "get_vram_policy", on_get_vram_policy, NULL, ROUTE_PUBLIC },
    { 0 },
};

void vram_attach(vram_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}
