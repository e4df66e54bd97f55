/*  vram_loops: the optimizer's four loops (actor.h), each with its own
 *  REQ client to the ModelManager (a REQ socket belongs to one thread; the
 *  client makes a new one after a timeout, so one silent reply never
 *  disables unloads for good, as it did in the original).  Each first
 *  runs one interval after start.
 *
 *  monitor (5 s): refresh the model table, then per device, MainPC before
 *  PC2: at or above critical unload the largest model (the second largest
 *  if that fails, nothing more that cycle); at or above warning unload the
 *  single least recently used model idle past the timeout.
 *  idle (60 s): unload every idle model, MainPC then PC2, oldest first,
 *  pausing between requests.
 *  predictor (60 s): preload one model the coordinator's queue asks for
 *  and one the usage pattern predicts, each only if admission allows.
 *  optimizer (300 s): defragment when most of the memory the ModelManager
 *  holds is not held by any loaded model (the original's reserved versus
 *  allocated ratio, seen from the process that owns the memory), and tune
 *  batch sizes when MainPC is below half.
 *
 *  Models whose device is not exactly one of the two names are never
 *  touched.  The lock is taken only to copy the table in or out. */
#include "vram_int.h"
#include "vram_policy.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static json_t *models_copy(vram_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *copy = json_deep_copy(self->loaded_models);
    pthread_mutex_unlock(&self->lock);
    return copy;
}

static void refresh_models(vram_t *self, wire_client_t *mma)
{
    json_t *request = json_pack("{s:s}", "command", "GET_LOADED_MODELS_STATUS");
    char err[256];
    json_t *reply = wire_client_call(mma, request, err, sizeof err);
    json_decref(request);
    const char *status = json_string_value(json_object_get(reply, "status"));
    json_t *models = json_object_get(reply, "loaded_models");
    json_t *used = json_object_get(reply, "total_vram_used_mb");
    json_t *table = status && !strcmp(status, "SUCCESS") && json_is_object(models)
                    ? json_deep_copy(models) : json_object();
    const char *name;
    json_t *entry;
    pthread_mutex_lock(&self->lock);
    json_decref(self->loaded_models);
    self->loaded_models = table;
    if (json_is_number(used))
        self->mma_used_mb = json_number_value(used);
    json_decref(reply);
    json_object_foreach(table, name, entry) {
        json_t *size = json_object_get(entry, "vram_usage_mb");
        if (json_is_number(size) && json_number_value(size) > 0)
            json_object_set_new(self->requirements, name, json_real(json_number_value(size)));
    }
    pthread_mutex_unlock(&self->lock);
}

static void relieve(vram_t *self, wire_client_t *mma, int d, double ratio)
{
    const char *device = self->config.device_names[d];
    pthread_mutex_lock(&self->lock);
    double critical = self->critical, warning = self->warning, idle = self->idle_timeout_s;
    pthread_mutex_unlock(&self->lock);
    json_t *models = models_copy(self);
    if (ratio >= critical) {
        json_t *picks = vram_pick_critical(models, device, "vram_usage_mb");
        if (json_array_size(picks) == 0)
            log_warn("resource", "%s VRAM critical (%.2f) and no model to unload", device, ratio);
        size_t i;
        json_t *name;
        json_array_foreach(picks, i, name)
            if (vram_unload(self, mma, json_string_value(name)))
                break;
        json_decref(picks);
    } else if (ratio >= warning) {
        json_t *candidates = vram_idle(models, device, clock_wall(), idle);
        if (json_array_size(candidates))
            vram_unload(self, mma, json_string_value(json_array_get(candidates, 0)));
        json_decref(candidates);
    }
    json_decref(models);
}

void vram_monitor(void *arg)
{
    vram_t *self = arg;
    wire_client_t *mma = self->clients[VRAM_MONITOR];
    refresh_models(self, mma);
    for (int d = 0; d < VRAM_DEVICES; d++) {
        vram_metrics_t m;
        vram_metrics(self, d, &m);
        if (m.present)
            relieve(self, mma, d, m.ratio);
    }
}

void vram_unload_idle(actor_t *actor, void *arg)
{
    vram_t *self = arg;
    wire_client_t *mma = self->clients[VRAM_IDLE];
    while (actor_wait(actor, self->config.idle_check_interval_s)) {
        json_t *models = models_copy(self);
        pthread_mutex_lock(&self->lock);
        double idle = self->idle_timeout_s;
        pthread_mutex_unlock(&self->lock);
        bool running = true;
        for (int d = 0; d < VRAM_DEVICES && running; d++) {
            json_t *candidates = vram_idle(models, self->config.device_names[d], clock_wall(), idle);
            size_t i;
            json_t *name;
            json_array_foreach(candidates, i, name) {
                vram_unload(self, mma, json_string_value(name));
                if (!(running = actor_wait(actor, self->config.unload_pause_s)))
                    break;
            }
            json_decref(candidates);
        }
        json_decref(models);
    }
}

/* The coordinator's queue, when one is configured. */
static json_t *coordinator_queue(vram_t *self)
{
    if (!*self->config.rc_endpoint)
        return NULL;
    json_t *request = json_pack("{s:s}", "action", "get_queue_status");
    char err[256];
    json_t *reply = wire_call_agent(self->config.rc_endpoint, request, self->config.timeout_ms, 0,
                                    err, sizeof err);
    json_decref(request);
    json_t *queue = json_incref(json_object_get(reply, "queue"));
    json_decref(reply);
    return queue;
}

static void preload(vram_t *self, wire_client_t *mma, const char *model)
{
    if (vram_can_load(self, model, -1, self->config.timeout_ms))
        vram_load(self, mma, model, self->config.device_names[0], "FP16");
    else
        log_info("resource", "predicted model %s not loaded: admission refused", model);
}

void vram_predict(void *arg)
{
    vram_t *self = arg;
    wire_client_t *mma = self->clients[VRAM_PREDICTOR];
    if (!self->config.predictive_loading)
        return;
    json_t *loaded = models_copy(self);
    json_t *queue = coordinator_queue(self);
    const char *wanted = queue ? vram_predict_queue(queue, loaded) : NULL;
    if (wanted)
        preload(self, mma, wanted);
    pthread_mutex_lock(&self->lock);
    json_t *patterns = json_deep_copy(self->usage_patterns);
    pthread_mutex_unlock(&self->lock);
    wanted = vram_predict_pattern(patterns, loaded, clock_wall(),
                                  self->config.prediction_window_s);
    if (wanted)
        preload(self, mma, wanted);
    json_decref(patterns);
    json_decref(queue);
    json_decref(loaded);
}

/* Unload and reload a device's idle models so the driver can pack them
 * again; each reload goes through admission like any other load. */
static void defragment(vram_t *self, wire_client_t *mma, int d)
{
    const char *device = self->config.device_names[d];
    json_t *models = models_copy(self);
    const char *name;
    json_t *entry;
    log_info("resource", "defragmenting %s", device);
    json_object_foreach(models, name, entry) {
        const char *on = json_string_value(json_object_get(entry, "device"));
        if (!on || strcmp(on, device) || json_is_true(json_object_get(entry, "is_active")))
            continue;
        if (!vram_unload(self, mma, name))
            continue;
        const char *q = json_string_value(json_object_get(entry, "quantization"));
        double size = json_number_value(json_object_get(entry, "vram_usage_mb"));
        if (vram_can_load(self, name, size, self->config.timeout_ms))
            vram_load(self, mma, name, device, q ? q : "FP16");
    }
    json_decref(models);
    pthread_mutex_lock(&self->lock);
    self->defrags++;
    pthread_mutex_unlock(&self->lock);
}

static void tune_batches(vram_t *self, const vram_metrics_t *m)
{
    json_t *models = models_copy(self);
    json_t *sizes = json_object();
    const char *name;
    json_t *entry;
    pthread_mutex_lock(&self->lock);
    json_object_foreach(models, name, entry) {
        const char *on = json_string_value(json_object_get(entry, "device"));
        if (!on || strcmp(on, self->config.device_names[0]))
            continue;
        json_t *need = json_object_get(self->requirements, name);
        double per_sample = json_is_number(need) ? json_number_value(need) : 1.0;
        json_object_set_new(sizes, name, json_integer(vram_batch_size(m->free_mb, per_sample)));
    }
    json_decref(self->batch_sizes);
    self->batch_sizes = sizes;
    pthread_mutex_unlock(&self->lock);
    json_decref(models);
}

void vram_optimize(void *arg)
{
    vram_t *self = arg;
    json_t *models = models_copy(self);
    pthread_mutex_lock(&self->lock);
    double frag = vram_fragmentation(self->mma_used_mb,
                                     vram_models_mb(models, NULL, "vram_usage_mb"));
    self->fragmentation = frag;
    pthread_mutex_unlock(&self->lock);
    json_decref(models);
    for (int d = 0; d < VRAM_DEVICES && frag > self->config.defrag_threshold; d++)
        defragment(self, self->clients[VRAM_OPTIMIZER], d);
    vram_metrics_t m;
    vram_metrics(self, 0, &m);
    if (m.ratio < 0.5)
        tune_batches(self, &m);
}
