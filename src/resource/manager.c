/*  manager: see manager.h.  Replies keep the original wording word for
 *  word, with Python's str() of ids and amounts; bad input that the
 *  original would have thrown on (an unhashable id, a threshold that is
 *  not a number) gets a clear error instead of a wedged socket. */
#include "manager.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "pycompat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REAP_S 1.0

#define MAX_ID 1024
/* A bound on the table, so a caller that never releases cannot exhaust memory. */
#define MAX_ALLOCATIONS 1000000

struct manager_t {
    pthread_mutex_t lock;
    alloc_thresholds_t thresholds;
    allocs_t *allocs;
    stats_t *stats;
    metrics_t *metrics;
    double default_lease_s;
    actor_t *reaper;            /* ends leases every REAP_S */
};

bool manager_check(const stats_sample_t *sample, const alloc_thresholds_t *limits)
{
    return !(sample->cpu_percent > limits->cpu || sample->memory_percent > limits->memory
             || stats_sample_gpu_percent(sample) > limits->gpu);
}

static void refused(manager_t *self, const char *reason)
{
    char labels[96];
    metrics_labels(labels, sizeof labels, "reason", reason, NULL);
    metrics_add(self->metrics, "keel_resource_refusals_total", labels, 1);
}

static void expire_locked(manager_t *self)
{
    json_t *released = json_array();
    if (allocs_expire(self->allocs, clock_mono(), released) > 0) {
        size_t i;
        json_t *id;
        json_array_foreach(released, i, id)
            log_info("resource", "lease of %s ran out: released", json_string_value(id));
        metrics_add(self->metrics, "keel_resource_expired_total", "", (double)json_array_size(released));
    }
    json_decref(released);
}

static void reap(void *arg)
{
    manager_t *self = arg;
    pthread_mutex_lock(&self->lock);
    expire_locked(self);
    pthread_mutex_unlock(&self->lock);
}

static void collect(metrics_t *metrics, void *arg)
{
    manager_t *self = arg;
    pthread_mutex_lock(&self->lock);
    metrics_set(metrics, "keel_resource_allocations", "", (double)allocs_count(self->allocs));
    pthread_mutex_unlock(&self->lock);
}

manager_t *manager_new(stats_t *stats, metrics_t *metrics,
                       const alloc_thresholds_t *thresholds, double default_lease_s)
{
    manager_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->thresholds = *thresholds;
    self->allocs = allocs_new();
    self->stats = stats;
    self->metrics = metrics;
    self->default_lease_s = default_lease_s;
    metrics_declare(metrics, "keel_resource_allocations", "Live resource allocations.",
                    METRIC_GAUGE, NULL, 0);
    metrics_declare(metrics, "keel_resource_refusals_total",
                    "Allocations refused, by reason.", METRIC_COUNTER, NULL, 0);
    metrics_declare(metrics, "keel_resource_expired_total",
                    "Allocations released because their lease ran out.", METRIC_COUNTER, NULL, 0);
    metrics_add_collector(metrics, collect, self);
    self->reaper = actor_new("rs reaper", REAP_S, reap, self);
    actor_delay_first(self->reaper);
    return self;
}

int manager_start(manager_t *self)
{
    return actor_start(self->reaper);
}

void manager_destroy(manager_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    manager_t *self = *self_p;
    actor_destroy(&self->reaper);
    allocs_destroy(&self->allocs);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void manager_vram_held(manager_t *self, double *held)
{
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < STATS_MAX_GPUS; i++)
        held[i] = allocs_held(self->allocs, ALLOC_KIND_VRAM, i);
    pthread_mutex_unlock(&self->lock);
}

alloc_thresholds_t manager_thresholds(manager_t *self)
{
    pthread_mutex_lock(&self->lock);
    alloc_thresholds_t t = self->thresholds;
    pthread_mutex_unlock(&self->lock);
    return t;
}

size_t manager_count(manager_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = allocs_count(self->allocs);
    pthread_mutex_unlock(&self->lock);
    return n;
}

static json_t *stats_json(manager_t *self, const stats_sample_t *sample)
{
    double held[STATS_MAX_GPUS];
    manager_vram_held(self, held);
    return stats_sample_json(sample, held);
}

static json_t *thresholds_json(const alloc_thresholds_t *t)
{
    return json_pack("{s:f, s:f, s:f}", "cpu", t->cpu, "memory", t->memory, "gpu", t->gpu);
}

static json_t *on_get_stats(void *ctx, wire_request_t *req)
{
    (void)req;
    manager_t *self = ctx;
    stats_sample_t sample;
    stats_sample(self->stats, &sample);
    return json_pack("{s:s, s:o}", "status", "success", "stats", stats_json(self, &sample));
}

static json_t *on_check_resources(void *ctx, wire_request_t *req)
{
    (void)req;
    manager_t *self = ctx;
    stats_sample_t sample;
    stats_sample(self->stats, &sample);
    alloc_thresholds_t t = manager_thresholds(self);
    return json_pack("{s:s, s:b}", "status", "success", "available", manager_check(&sample, &t));
}

/* The table key and the message text of a resource_id, as Python would
 * make them; NULL with *error set for ids a dict cannot hold. */
static char *id_key(json_t *value, char *shown, size_t shown_len, json_t **error)
{
    if (json_is_object(value) || json_is_array(value)) {
        *error = wire_error_key("message", "unhashable type: '%s'",
                                json_is_object(value) ? "dict" : "list");
        return NULL;
    }
    pycompat_str(value, shown, shown_len);
    if (strlen(shown) >= MAX_ID - 1) {
        *error = wire_error_key("message", "resource_id is longer than %d characters", MAX_ID - 2);
        return NULL;
    }
    if (!value || json_is_null(value))
        return strdup("null");
    if (json_is_boolean(value))
        return strdup(json_is_true(value) ? "true" : "false");
    return strdup(shown);
}

static const char *owner_of(json_t *body)
{
    static const char *keys[] = { "owner", "agent_name", "source_agent" };
    for (size_t i = 0; i < 3; i++) {
        const char *owner = json_string_value(json_object_get(body, keys[i]));
        if (owner && *owner)
            return owner;
    }
    return NULL;
}

/* lease_s (or ttl_s) of a request: >0 seconds, 0 when absent, -1 when bad. */
static double lease_of(json_t *body, double fallback)
{
    json_t *lease = json_object_get(body, "lease_s");
    if (!lease)
        lease = json_object_get(body, "ttl_s");
    if (!lease || json_is_null(lease))
        return fallback;
    if (!json_is_number(lease) || json_number_value(lease) <= 0)
        return -1;
    return json_number_value(lease);
}

static json_t *invalid_amount(json_t *amount)
{
    char text[64];
    pycompat_str(amount, text, sizeof text);
    return wire_error_key("message", "Invalid amount: %s (a number of cores or MiB, at least 0)", text);
}

/* Fills the parts of an allocation that come from the request; NULL, or
 * the error reply. */
static json_t *parse_alloc(manager_t *self, json_t *body, alloc_t *a)
{
    json_t *type = json_object_get(body, "resource_type");
    json_t *amount = json_object_get(body, "amount");
    if (!amount || json_is_null(amount))
        amount = json_real(1.0);
    else
        json_incref(amount);
    a->amount = amount;
    a->type = type ? json_incref(type) : json_null();
    if (!json_is_number(amount) || json_number_value(amount) < 0)
        return invalid_amount(amount);
    a->kind = alloc_kind(json_string_value(type));
    a->quantity = json_number_value(amount);
    json_t *device = json_object_get(body, "device");
    if (a->kind == ALLOC_KIND_VRAM && device && !json_is_null(device)) {
        if (!json_is_integer(device) || json_integer_value(device) < 0
            || json_integer_value(device) >= STATS_MAX_GPUS)
            return wire_error_key("message", "Invalid device: a GPU index from 0 to %d", STATS_MAX_GPUS - 1);
        a->device = (int)json_integer_value(device);
    }
    a->lease_s = lease_of(body, self->default_lease_s);
    if (a->lease_s < 0)
        return wire_error_key("message", "Invalid lease_s: a number of seconds above 0");
    const char *owner = owner_of(body);
    a->owner = owner ? strdup(owner) : NULL;
    return NULL;
}

static json_t *insufficient(manager_t *self, const char *reason, json_t *extra)
{
    refused(self, reason);
    json_t *reply = wire_error_key("message", "Insufficient system resources");
    json_object_set_new(reply, "reason", json_string(reason));
    if (extra)
        json_object_update(reply, extra);
    json_decref(extra);
    return reply;
}

static json_t *admit_locked(manager_t *self, alloc_t *a, const stats_sample_t *sample)
{
    double room;
    int fits = allocs_admit(self->allocs, a->kind, a->quantity, sample, &self->thresholds,
                            &a->device, &room);
    if (fits < 0)
        return insufficient(self, a->device >= 0 ? "no such GPU device" : "no GPU device", NULL);
    if (fits == 0) {
        json_t *extra = json_pack("{s:f, s:f}", "requested", a->quantity,
                                  "available", room > 0 ? room : 0.0);
        if (a->kind == ALLOC_KIND_VRAM)
            json_object_set_new(extra, "device", json_integer(a->device));
        return insufficient(self, "capacity", extra);
    }
    return NULL;
}

static json_t *allocated_reply(alloc_t *a, const char *shown)
{
    char amount[64], type[256];
    pycompat_str(a->amount, amount, sizeof amount);
    pycompat_str(a->type, type, sizeof type);
    json_t *reply = json_pack("{s:s, s:s}", "status", "success", "resource_id", shown);
    char message[400];
    snprintf(message, sizeof message, "Allocated %s %s", amount, type);
    json_object_set_new(reply, "message", json_string(message));
    if (a->kind == ALLOC_KIND_VRAM)
        json_object_set_new(reply, "device", json_integer(a->device));
    if (a->lease_s > 0)
        json_object_set_new(reply, "lease_s", json_real(a->lease_s));
    return reply;
}

/* The resource_id field as the original echoed it back. */
static json_t *echo_id(json_t *body)
{
    json_t *id = json_object_get(body, "resource_id");
    return id ? json_incref(id) : json_null();
}

static json_t *on_allocate(void *ctx, wire_request_t *req)
{
    manager_t *self = ctx;
    char shown[MAX_ID];
    json_t *error = NULL;
    char *key = id_key(json_object_get(req->body, "resource_id"), shown, sizeof shown, &error);
    if (!key)
        return error;
    alloc_t *a = alloc_new(key);
    free(key);
    if ((error = parse_alloc(self, req->body, a))) {
        alloc_free(a);
        return error;
    }
    stats_sample_t sample;
    stats_sample(self->stats, &sample);
    pthread_mutex_lock(&self->lock);
    expire_locked(self);
    if (allocs_count(self->allocs) >= MAX_ALLOCATIONS && !allocs_find(self->allocs, a->id)) {
        pthread_mutex_unlock(&self->lock);
        alloc_free(a);
        refused(self, "table_full");
        return wire_error_key("message", "Too many allocations (%d); release some first",
                              MAX_ALLOCATIONS);
    }
    if (allocs_find(self->allocs, a->id)) {
        pthread_mutex_unlock(&self->lock);
        alloc_free(a);
        refused(self, "duplicate");
        return wire_error_key("message", "Resource ID %s already allocated", shown);
    }
    if (!manager_check(&sample, &self->thresholds))
        error = insufficient(self, "threshold", NULL);
    else
        error = admit_locked(self, a, &sample);
    if (error) {
        pthread_mutex_unlock(&self->lock);
        alloc_free(a);
        return error;
    }
    a->allocated_at = clock_wall();
    a->expires_mono = a->lease_s > 0 ? clock_mono() + a->lease_s : 0;
    allocs_add(self->allocs, a);
    json_t *reply = allocated_reply(a, shown);
    pthread_mutex_unlock(&self->lock);
    json_object_set_new(reply, "resource_id", echo_id(req->body));
    return reply;
}

static json_t *on_release(void *ctx, wire_request_t *req)
{
    manager_t *self = ctx;
    char shown[MAX_ID];
    json_t *error = NULL;
    char *key = id_key(json_object_get(req->body, "resource_id"), shown, sizeof shown, &error);
    if (!key)
        return error;
    pthread_mutex_lock(&self->lock);
    alloc_t *a = allocs_remove(self->allocs, key);
    pthread_mutex_unlock(&self->lock);
    free(key);
    if (!a)
        return wire_error_key("message", "Resource ID %s not found", shown);
    alloc_free(a);
    return json_pack("{s:s, s:o, s:s}", "status", "success", "resource_id", echo_id(req->body),
                     "message", "Resources released successfully");
}

static json_t *on_renew(void *ctx, wire_request_t *req)
{
    manager_t *self = ctx;
    char shown[MAX_ID];
    json_t *error = NULL;
    char *key = id_key(json_object_get(req->body, "resource_id"), shown, sizeof shown, &error);
    if (!key)
        return error;
    pthread_mutex_lock(&self->lock);
    expire_locked(self);
    alloc_t *a = allocs_find(self->allocs, key);
    free(key);
    double lease = a ? lease_of(req->body, a->lease_s) : 0;
    if (!a || lease <= 0) {
        pthread_mutex_unlock(&self->lock);
        return !a ? wire_error_key("message", "Resource ID %s not found", shown)
                  : wire_error_key("message", "Invalid lease_s: a number of seconds above 0");
    }
    a->lease_s = lease;
    allocs_set_expiry(self->allocs, a, clock_mono() + lease);
    pthread_mutex_unlock(&self->lock);
    char ts[40];
    clock_iso_local(clock_wall() + lease, ts, sizeof ts);
    return json_pack("{s:s, s:o, s:f, s:s}", "status", "success", "resource_id",
                     echo_id(req->body), "lease_s", lease, "expires_at", ts);
}

static json_t *on_agent_dead(void *ctx, wire_request_t *req)
{
    manager_t *self = ctx;
    const char *agent = json_string_value(json_object_get(req->body, "agent_name"));
    if (!agent)
        agent = json_string_value(json_object_get(req->body, "agent"));
    if (!agent || !*agent)
        return wire_error_key("message", "Missing agent_name parameter");
    json_t *released = json_array();
    pthread_mutex_lock(&self->lock);
    allocs_release_owner(self->allocs, agent, released);
    pthread_mutex_unlock(&self->lock);
    if (json_array_size(released))
        log_info("resource", "agent %s reported dead: released %zu allocations", agent,
                 json_array_size(released));
    return json_pack("{s:s, s:s, s:o}", "status", "success", "agent_name", agent, "released", released);
}

static json_t *on_get_status(void *ctx, wire_request_t *req)
{
    (void)req;
    manager_t *self = ctx;
    stats_sample_t sample;
    stats_sample(self->stats, &sample);
    json_t *stats = stats_json(self, &sample);
    pthread_mutex_lock(&self->lock);
    expire_locked(self);
    json_t *allocs = allocs_json(self->allocs);
    alloc_thresholds_t t = self->thresholds;
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o, s:o, s:b, s:o}", "status", "success", "current_stats", stats,
                     "allocated_resources", allocs, "resources_available", manager_check(&sample, &t),
                     "thresholds", thresholds_json(&t));
}

static json_t *on_set_thresholds(void *ctx, wire_request_t *req)
{
    manager_t *self = ctx;
    static const char *keys[] = { "cpu_threshold", "memory_threshold", "gpu_threshold" };
    json_t *values[3];
    /* Every value is checked before any is set: a refused request changes
     * nothing.  0 or less would refuse every allocation (usage > threshold). */
    for (int i = 0; i < 3; i++) {
        values[i] = json_object_get(req->body, keys[i]);
        if (values[i] && !json_is_null(values[i]) && !json_is_number(values[i]))
            return wire_error_key("message", "Invalid %s: must be a number (percent)", keys[i]);
        double v = json_number_value(values[i]);
        if (json_is_number(values[i]) && !(v > 0 && v <= 100))
            return wire_error_key("message", "Invalid %s: %g is not a percentage above 0 and at most 100",
                                  keys[i], v);
    }
    pthread_mutex_lock(&self->lock);
    double *fields[3] = { &self->thresholds.cpu, &self->thresholds.memory, &self->thresholds.gpu };
    for (int i = 0; i < 3; i++)
        if (values[i] && !json_is_null(values[i]))
            *fields[i] = json_number_value(values[i]);
    alloc_thresholds_t t = self->thresholds;
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "thresholds", thresholds_json(&t));
}

int manager_reserve_vram(manager_t *self, const char *id, double mb, int device,
                         double lease_s, const char *owner)
{
    alloc_t *a = alloc_new(id);
    a->type = json_string("vram");
    a->amount = json_real(mb);
    a->kind = ALLOC_KIND_VRAM;
    a->quantity = mb;
    a->device = device;
    a->lease_s = lease_s;
    a->owner = owner ? strdup(owner) : NULL;
    a->allocated_at = clock_wall();
    a->expires_mono = lease_s > 0 ? clock_mono() + lease_s : 0;
    pthread_mutex_lock(&self->lock);
    alloc_t *old = allocs_remove(self->allocs, id);
    allocs_add(self->allocs, a);
    pthread_mutex_unlock(&self->lock);
    alloc_free(old);
    return 0;
}

int manager_release(manager_t *self, const char *id)
{
    pthread_mutex_lock(&self->lock);
    alloc_t *a = allocs_remove(self->allocs, id);
    pthread_mutex_unlock(&self->lock);
    alloc_free(a);
    return a ? 0 : -1;
}

#define RM "ResourceManager"

/* Reads are public.  No kept agent asks ResourceManager for anything but
 * its health (the inventory, RS-n in docs/logic-preservation.md: "no production caller of
 * allocate_resources exists"), so every change is an administrator's. */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "get_stats", on_get_stats, RM, ROUTE_PUBLIC },
    { WIRE_ACTION, "check_resources", on_check_resources, RM, ROUTE_PUBLIC },
    { WIRE_ACTION, "allocate_resources", on_allocate, RM, ROUTE_ADMIN },    /* no kept agent sends it */
    { WIRE_ACTION, "release_resources", on_release, RM, ROUTE_ADMIN },      /* no kept agent sends it */
    { WIRE_ACTION, "renew_resources", on_renew, RM, ROUTE_ADMIN },          /* no kept agent sends it */
    { WIRE_ACTION, "agent_dead", on_agent_dead, RM, ROUTE_ADMIN },          /* no kept agent sends it */
    { WIRE_ACTION, "get_status", on_get_status, RM, ROUTE_PUBLIC },
    { WIRE_ACTION, "set_thresholds", on_set_thresholds, RM, ROUTE_ADMIN },  /* no kept agent sends it */
    { 0 },
};

void manager_attach(manager_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}
