/*  resource: the ResourceManager+Scheduler service, the four original
 *  agents (ResourceManager, TaskScheduler, AsyncProcessor,
 *  VRAMOptimizerAgent) on one port.  This file wires the parts together
 *  and owns the dialect rules (RS-38, RS-40): `command` is the VRAM
 *  optimizer's (UPPERCASE replies), `action` the others', and a message
 *  with neither is an AsyncProcessor task.  Handlers run on a small worker
 *  pool because a task reply waits for the task, and a slow peer in
 *  HEALTH_CHECK must not hold up anyone else, nor a forward to a delegate.
 *
 *  Any of the four agents can instead be delegated to its legacy process,
 *  and switched back and forth by a reload: the runtime does it for the
 *  routes whose table entry names that agent, and the two catch-alls that
 *  no entry can name (a bare task is AsyncProcessor's, an unknown command
 *  the VRAM optimizer's) ask wire_server_forward themselves. */
#include "resource.h"
#include "broadcast.h"
#include "clock.h"
#include "gpu.h"
#include "log.h"
#include "manager.h"
#include "pycompat.h"
#include "scheduler.h"
#include "stats.h"
#include "vram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    service_t *svc;
    gpu_t *gpu;
    stats_t *stats;
    manager_t *manager;
    vram_t *vram;
    scheduler_t *sched;
    broadcast_t *broadcast;
    bool initialized;
    char init_error[256];
} resource_t;

/* ---- replies that differ from the runtime's defaults ------------------- */

/* The same text every time: written once, not built and serialised per ping. */
static json_t *on_ping(void *ctx, wire_request_t *req)
{
    (void)ctx;
    static const char pong[] = "{\"status\":\"success\",\"message\":\"pong\"}";
    char *text = malloc(sizeof pong);
    if (!text)
        return NULL;
    memcpy(text, pong, sizeof pong);
    return wire_reply_text(req, text, sizeof pong - 1);
}

/* AsyncProcessor's health: degraded past its own fixed 80/80/80 monitor. */
static json_t *processor_health(resource_t *self, bool with_service)
{
    stats_sample_t sample;
    stats_sample(self->stats, &sample);
    alloc_thresholds_t limits = { 80, 80, 80 };
    json_t *stats = json_pack("{s:f, s:f, s:f}", "cpu_percent", sample.cpu_percent,
                              "memory_percent", sample.memory_percent, "timestamp", sample.wall);
    if (sample.ngpu > 0)
        json_object_set_new(stats, "gpu_memory_percent", json_real(stats_sample_gpu_percent(&sample)));
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    json_t *health = json_pack("{s:s, s:o, s:o, s:s}",
                               "status", manager_check(&sample, &limits) ? "ok" : "degraded",
                               "stats", stats, "queue_stats", scheduler_queue_stats(self->sched),
                               "timestamp", ts);
    if (with_service)
        json_object_set_new(health, "service", json_string("ResourceManagerScheduler"));
    return health;
}

static json_t *on_health_check(void *ctx, wire_request_t *req)
{
    (void)req;
    return processor_health(ctx, true);
}

static json_t *broadcast_frame(void *arg)
{
    return processor_health(arg, false);
}

/* The `type` route is AsyncProcessor's (its table entry names it), so the
 * runtime forwards it when that agent is delegated. */
static json_t *on_task(void *ctx, wire_request_t *req)
{
    resource_t *self = ctx;
    return scheduler_task(self->sched, req->body);
}

/* Unknown commands in the optimizer's words, unknown actions in the
 * ResourceManager's, and anything else is a legacy task. */
static json_t *on_unknown(void *ctx, wire_request_t *req)
{
    resource_t *self = ctx;
    char name[256];
    json_t *action = req->body ? json_object_get(req->body, "action") : NULL;
    /* An unknown action is nobody's; the rest are the two agents' own. */
    const char *owner = req->dialect == WIRE_COMMAND ? "VRAMOptimizerAgent"
                        : action ? NULL : "AsyncProcessor";
    json_t *forwarded = owner ? wire_server_forward(self->svc->wire, owner, req) : NULL;
    if (forwarded)
        return forwarded;
    if (req->dialect == WIRE_COMMAND) {
        json_t *command = json_object_get(req->body, "command");
        pycompat_str(command, name, sizeof name);
        return json_pack("{s:s, s:s+}", "status", "ERROR", "message", "Unknown command: ", name);
    }
    if (action)
        return pycompat_unknown_action(action, "message", "None");
    return scheduler_task(self->sched, req->body);
}

/* ---- /health ------------------------------------------------------------ */

static void resource_health(service_t *svc, json_t *dict)
{
    resource_t *self = svc->impl;
    if (!self)
        return;
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    json_object_set_new(dict, "status", json_string(self->initialized ? "ok" : "initializing"));
    json_object_set_new(dict, "initialization_status",
                        json_string(self->initialized ? "complete" : "in_progress"));
    json_object_set_new(dict, "port", json_integer(config_port(svc->config, svc->def->zmq_port)));
    json_object_set_new(dict, "health_port", json_integer(config_port(svc->config, svc->def->http_port)));
    json_object_set_new(dict, "timestamp", json_string(ts));
    if (*self->init_error)
        json_object_set_new(dict, "initialization_error", json_string(self->init_error));
    json_object_set_new(dict, "queue_stats", scheduler_queue_stats(self->sched));
    json_object_set_new(dict, "allocations", json_integer((json_int_t)manager_count(self->manager)));
    json_object_set_new(dict, "stats_samples", json_integer((json_int_t)stats_history(self->stats)));
    json_object_set_new(dict, "vram", vram_snapshot(self->vram));
    json_object_set_new(dict, "delegated", wire_server_delegation(svc->wire));
}

/* ---- configuration ------------------------------------------------------ */

static void endpoint_or(config_t *cfg, const char *key, int keel_port, char *buf, size_t len)
{
    const char *value = config_str(cfg, key, "");
    if (*value)
        snprintf(buf, len, "%s", value);
    else if (keel_port)
        config_local_endpoint(cfg, keel_port, buf, len);
    else
        buf[0] = '\0';
}

static void vram_config(config_t *cfg, vram_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->mma_endpoint, sizeof c->mma_endpoint, "%s",
             config_str(cfg, "resource.model_manager_endpoint", "tcp://127.0.0.1:5570"));
    endpoint_or(cfg, "resource.vram.sdt_endpoint", 7000, c->sdt_endpoint, sizeof c->sdt_endpoint);
    endpoint_or(cfg, "resource.vram.rc_endpoint", 0, c->rc_endpoint, sizeof c->rc_endpoint);
    endpoint_or(cfg, "resource.vram.mef_endpoint", 0, c->mef_endpoint, sizeof c->mef_endpoint);
    c->critical = config_double(cfg, "resource.vram.critical_threshold", 0.9);
    c->warning = config_double(cfg, "resource.vram.warning_threshold", 0.75);
    c->safe = config_double(cfg, "resource.vram.safe_threshold", 0.5);
    c->idle_timeout_s = config_double(cfg, "resource.vram.idle_timeout", 900);
    c->defrag_threshold = config_double(cfg, "resource.vram.defragmentation_threshold", 0.70);
    c->monitor_interval_s = config_double(cfg, "resource.vram.monitor_interval", 5);
    c->idle_check_interval_s = config_double(cfg, "resource.vram.idle_check_interval", 60);
    c->optimization_interval_s = config_double(cfg, "resource.vram.optimization_interval", 300);
    c->predict_interval_s = config_double(cfg, "resource.vram.prediction_interval", 60);
    c->prediction_window_s = config_double(cfg, "resource.vram.prediction_window", 3600);
    c->unload_pause_s = config_double(cfg, "resource.vram.unload_pause", 1.0);
    c->predictive_loading = config_bool(cfg, "resource.vram.predictive_loading_enabled", true);
    c->mainpc_budget_mb = config_double(cfg, "resource.vram.mainpc_vram_budget_mb", 20000);
    c->pc2_budget_mb = config_double(cfg, "resource.vram.pc2_vram_budget_mb", 10000);
    c->timeout_ms = (int)config_int(cfg, "resource.vram.timeout_ms", 5000);
    c->admission_timeout_ms = (int)config_int(cfg, "resource.vram.admission_timeout_ms", 1500);
    c->probe_timeout_ms = (int)config_int(cfg, "resource.vram.health_probe_timeout_ms", 2000);
    c->load_reservation_s = config_double(cfg, "resource.vram.load_reservation_s", 120);
    json_t *names = config_get(cfg, "resource.vram.device_names");
    for (int d = 0; d < 2; d++) {
        const char *name = json_string_value(json_array_get(names, (size_t)d));
        snprintf(c->device_names[d], sizeof c->device_names[d], "%s",
                 name ? name : d == 0 ? "MainPC" : "PC2");
    }
}

static void sched_config(service_t *svc, resource_t *self, scheduler_config_t *c)
{
    config_t *cfg = svc->config;
    int gpus = gpu_available(self->gpu) ? gpu_count(self->gpu) : 0;
    memset(c, 0, sizeof *c);
    c->queue_size = (size_t)config_int(cfg, "resource.scheduler.queue_size", 1000);
    c->workers = (int)config_int(cfg, "resource.scheduler.workers", gpus > 0 ? gpus : 1);
    c->timeout_s = config_double(cfg, "resource.scheduler.timeout_s", 30);
    c->max_retries = (int)config_int(cfg, "resource.scheduler.max_retries", 3);
    c->backoff_s = config_double(cfg, "resource.scheduler.retry_backoff_s", 1.0);
    c->backoff_max_s = config_double(cfg, "resource.scheduler.retry_backoff_max_s", 30);
    c->reply_wait_s = config_double(cfg, "resource.scheduler.reply_wait_s", 60);
    c->handlers = config_get(cfg, "resource.scheduler.handlers");
    c->durable = config_bool(cfg, "resource.scheduler.durable", true);
    c->service_state = &svc->state;
    c->stopping_state = SERVICE_STOPPING;
}

/* The four agents' old main ports, when legacy_ports is on, each serving
 * every route like 7001 (their health ports are the runtime's: modules). */
static void bind_legacy(service_t *svc)
{
    static const int ports[] = { 7113, 7115, 7101, 5572 };
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        char endpoint[128];
        service_bind_endpoint(svc, ports[i], endpoint, sizeof endpoint);
        wire_server_listen_all(svc->wire, endpoint);
    }
}

/* ---- life cycle --------------------------------------------------------- */

static const wire_route_t routes[] = {
    { WIRE_ACTION, "ping", on_ping, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "health_check", on_health_check, "AsyncProcessor", ROUTE_PUBLIC },
    /* no kept agent sends a bare task: TaskScheduler, absorbed, was its caller */
    { WIRE_TYPE, NULL, on_task, "AsyncProcessor", ROUTE_ADMIN },
    { 0 },
};

static void attach_routes(resource_t *self, wire_server_t *wire)
{
    manager_attach(self->manager, wire);
    vram_attach(self->vram, wire);
    scheduler_attach(self->sched, wire);
    wire_server_attach(wire, routes, self);
    wire_server_answer_inline(wire, WIRE_ACTION, "ping");     /* a constant: no worker needed */
    wire_server_on_unknown(wire, on_unknown, self);
}

static void resource_stop(service_t *svc);

static int resource_start(service_t *svc)
{
    config_t *cfg = svc->config;
    resource_t *self = calloc(1, sizeof *self);
    svc->impl = self;
    self->svc = svc;
    self->gpu = gpu_new();
    if (!gpu_available(self->gpu))
        log_info("resource", "no GPU (%s): VRAM figures use the documented fallbacks",
                 gpu_error(self->gpu));
    self->stats = stats_new(config_str(cfg, "resource.proc_root", "/proc"), self->gpu,
                            config_double(cfg, "resource.stats_cache_s", 0.1));
    stats_sample_t first;
    if (stats_sample(self->stats, &first) == 0)
        self->initialized = true;
    else
        snprintf(self->init_error, sizeof self->init_error, "cannot read system statistics");
    alloc_thresholds_t t = {
        config_double(cfg, "resource.thresholds.cpu", 80),
        config_double(cfg, "resource.thresholds.memory", 80),
        config_double(cfg, "resource.thresholds.gpu", 80),
    };
    self->manager = manager_new(self->stats, svc->metrics, &t,
                                config_double(cfg, "resource.allocation_lease_s", 0));
    vram_config_t vc;
    vram_config(cfg, &vc);
    self->vram = vram_new(&vc, self->gpu, self->manager, svc->metrics, svc->errors);
    scheduler_config_t sc;
    sched_config(svc, self, &sc);
    char path[4096], err[256];
    service_path(svc, "tasks.db", path, sizeof path);
    self->sched = scheduler_new(&sc, path, svc->metrics, svc->errors, err, sizeof err);
    if (!self->sched) {
        log_error("resource", "task journal %s: %s", path, err);
        resource_stop(svc);
        return -1;
    }
    attach_routes(self, svc->wire);
    wire_server_set_workers(svc->wire, (int)config_int(cfg, "resource.wire_workers", 16));
    if (config_bool(cfg, "legacy_ports", false))
        bind_legacy(svc);
    int port = (int)config_int(cfg, "resource.health_broadcast_port", 0);
    if (port > 0) {
        char endpoint[128];
        service_bind_endpoint(svc, port, endpoint, sizeof endpoint);
        self->broadcast = broadcast_new(endpoint,
                                        config_double(cfg, "resource.health_broadcast_interval_s", 30),
                                        broadcast_frame, self);
    }
    if (manager_start(self->manager) < 0 || scheduler_start(self->sched) < 0
        || vram_start(self->vram) < 0 || (self->broadcast && broadcast_start(self->broadcast) < 0)) {
        resource_stop(svc);
        return -1;
    }
    return 0;
}

static void resource_stop(service_t *svc)
{
    resource_t *self = svc->impl;
    if (!self)
        return;
    broadcast_destroy(&self->broadcast);
    vram_destroy(&self->vram);
    scheduler_destroy(&self->sched);
    manager_destroy(&self->manager);
    stats_destroy(&self->stats);
    gpu_destroy(&self->gpu);
    free(self);
    svc->impl = NULL;
}

/* The four absorbed agents and their old health ports; legacy_port is 0
 * because bind_legacy serves every route on each of their main ports. */
static const service_module_t modules[] = {
    { .name = "ResourceManager", .legacy_health_port = 8113 },
    { .name = "TaskScheduler", .legacy_health_port = 8115 },
    { .name = "AsyncProcessor", .legacy_health_port = 8101 },
    { .name = "VRAMOptimizerAgent", .legacy_health_port = 6572 },
    { .name = NULL },
};

const service_def_t resource_service = {
    .name = "resource",
    .title = "ResourceManager",
    .zmq_port = 7001,
    .http_port = 8001,
    .start = resource_start,
    .stop = resource_stop,
    .health = resource_health,
    .modules = modules,
};
