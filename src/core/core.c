/*  core: the CoreOrchestrator service: one port (7000) for what four agents
 *  served on four (ServiceRegistry, SystemDigitalTwin, RequestCoordinator,
 *  UnifiedSystemAgent).  This file wires the modules together and owns the
 *  few actions two of them both claimed (CO-8, CO-12..CO-14, CO-26): register_agent, whose
 *  three forms are told apart by their keys; get_agent_info (`agent_name`
 *  is the twin's, a bare `agent` the supervisor's); ping (SDT's pong plus
 *  the health keys); and the raw frames `ping` and `GET_ALL_STATUS`.
 *
 *  At start the service writes its own name and the four old names into
 *  its registry at once (announce.h keeps them there afterwards, as it
 *  does every service's names), so an unmodified agent that looks up
 *  SystemDigitalTwin or ServiceRegistry lands here from the first request;
 *  with `legacy_ports` it also listens on their old ports, each serving
 *  every route (an unmodified BaseAgent registers on 7120 and resolves on
 *  7100).
 *
 *  Delegation (the migration and rollback path) is the runtime's: each
 *  module's route table names the old agent a route came from, and
 *  service_reload swaps `modules.<Agent>.mode` on SIGHUP without a restart.
 *  The two merged actions name no module, since each belongs to two agents
 *  by its form, so their handlers ask wire_server_forward for the agent the
 *  form names. */
#include "pycompat.h"
#include "core.h"
#include "announce.h"
#include "backend.h"
#include "clock.h"
#include "coordinator.h"
#include "legacy.h"
#include "log.h"
#include "registry.h"
#include "supervisor.h"
#include "twin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    service_t *svc;
    backend_t *backend;
    registry_t *registry;
    twin_t *twin;
    legacy_t *legacy;
    coordinator_t *coordinator;
    supervisor_t *supervisor;
} core_t;

/* The four absorbed agents.  Their old main ports are bound here, served
 * like 7000 (legacy_port 0 keeps the runtime from serving them with one
 * module's routes only); the runtime binds their health ports, which
 * answer any frame with the health dict, as BaseAgent's health loop did. */
static const service_module_t modules[] = {
    { .name = "ServiceRegistry", .legacy_health_port = 8100 },
    { .name = "SystemDigitalTwin", .legacy_health_port = 7121 },
    { .name = "RequestCoordinator", .legacy_health_port = 26003 },
    { .name = "UnifiedSystemAgent", .legacy_health_port = 8125 },
    { .name = NULL },
};
static const int legacy_main_ports[] = { 7100, 7120, 26002, 7125 };

/* ---- merged actions --------------------------------------------------------- */

/* Where a request came from, for the limit on new names: a client without
 * a TCP address shares the bucket of unknown addresses. */
static const char *source_of(const wire_request_t *req)
{
    return req->peer ? req->peer : "";
}

static json_t *on_register_agent(void *ctx, wire_request_t *req)
{
    core_t *self = ctx;
    json_t *data = json_object_get(req->body, "registration_data");
    bool registry_form = (data && json_object_size(data)) || json_object_get(req->body, "agent_id");
    json_t *forwarded = wire_server_forward(self->svc->wire,
                                            registry_form ? "ServiceRegistry" : "SystemDigitalTwin", req);
    if (forwarded)
        return forwarded;
    /* The original used registration_data only when truthy, so {} falls
     * through to the flat form; anything but an object is refused. */
    if (data && !json_is_object(data))
        return wire_error("Invalid registration_data, expected dictionary");
    if (data && !json_object_size(data))
        data = NULL;
    if (!data && !json_object_get(req->body, "agent_id"))
        return twin_register_simple(self->twin, req->body, source_of(req));
    char id[NAMES_BUF], err[1100];
    if (registry_register(self->registry, data ? data : req->body, source_of(req), id, sizeof id,
                          err, sizeof err) < 0)
        return wire_error("%s", err);
    if (data) {
        json_t *meta = json_object_get(data, "metadata");
        const char *loc = json_string_value(json_object_get(meta, "location"));
        if (!loc)
            loc = json_string_value(json_object_get(req->body, "location"));
        twin_set_status(self->twin, id, "HEALTHY", loc ? loc : "MainPC", NULL, err, sizeof err);
        return json_pack("{s:s, s:o, s:s}", "status", "success", "message",
                         json_sprintf("Successfully registered %s", id), "agent_id", id);
    }
    return wire_success();
}

static json_t *on_get_agent_info(void *ctx, wire_request_t *req)
{
    core_t *self = ctx;
    json_t *name = json_object_get(req->body, "agent_name");
    json_t *agent = json_object_get(req->body, "agent");
    bool usa_form = (!name || json_is_null(name)) && agent;
    json_t *forwarded = wire_server_forward(self->svc->wire,
                                            usa_form ? "UnifiedSystemAgent" : "SystemDigitalTwin", req);
    if (forwarded)
        return forwarded;
    if (usa_form)
        return supervisor_agent_info(self->supervisor, agent);
    return twin_agent_info(self->twin, req->body);
}

/* SDT's pong, plus the health keys BaseAgent's ping returned. */
static json_t *on_ping(void *ctx, wire_request_t *req)
{
    core_t *self = ctx;
    return service_health_reply(self->svc, req, "pong", NULL);
}

static json_t *on_raw(void *ctx, wire_request_t *req)
{
    core_t *self = ctx;
    if (wire_is_raw_ping(req->raw, req->raw_len))
        return service_health_reply(self->svc, req, NULL, NULL);
    size_t len = req->raw_len;
    while (len && (req->raw[len - 1] == ' ' || req->raw[len - 1] == '\r' || req->raw[len - 1] == '\n'))
        len--;
    if (len == 14 && !memcmp(req->raw, "GET_ALL_STATUS", 14))
        return twin_status_map(self->twin);
    char labels[96];
    metrics_labels(labels, sizeof labels, "service", "core", "reason", "invalid_json", NULL);
    metrics_add(self->svc->metrics, "keel_bad_requests_total", labels, 1);
    return wire_error("Invalid JSON request");
}

static const wire_route_t routes[] = {
    /* sent by common/core/base_agent.py (_register_with_digital_twin) */
    { WIRE_ACTION, "register_agent", on_register_agent, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "get_agent_info", on_get_agent_info, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "ping", on_ping, NULL, ROUTE_PUBLIC },
    { WIRE_RAW, NULL, on_raw, NULL, ROUTE_PUBLIC },        /* ping and GET_ALL_STATUS: reads */
    { 0 },
};

static json_t *on_unknown(void *ctx, wire_request_t *req)
{
    (void)ctx;
    if (req->dialect == WIRE_COMMAND)
        return legacy_unknown(req->name);
    return pycompat_unknown_action(json_object_get(req->body, "action"), "error", "None");
}

/* ---- lifecycle ----------------------------------------------------------------- */

/* The registry is this service: its names need no trip over the wire. */
static void register_own_names(core_t *self)
{
    json_t *records = announce_records(self->svc);
    size_t i;
    json_t *fields;
    json_array_foreach(records, i, fields) {
        char id[NAMES_BUF], err[1100];
        if (registry_register(self->registry, fields, NULL, id, sizeof id, err, sizeof err) < 0)
            log_warn("core", "cannot register %s: %s", json_string_value(json_object_get(fields, "agent_id")), err);
    }
    json_decref(records);
}

static void begin_batch(void *ctx)
{
    core_t *self = ctx;
    backend_defer(self->backend);
}

static void undone(void *arg, const char *table, const char *key)
{
    core_t *self = arg;
    if (!strcmp(table, "agents"))
        registry_reverted(self->registry, key);
}

static int end_batch(void *ctx, char *err, size_t errlen)
{
    core_t *self = ctx;
    return backend_commit(self->backend, err, errlen, undone, self);
}

static int open_backend(core_t *self)
{
    config_t *cfg = self->svc->config;
    const char *kind = config_str(cfg, "core.registry.backend", "sqlite");
    const char *env = getenv("SERVICE_REGISTRY_BACKEND");
    if (env && *env)
        kind = env;
    const char *url = getenv("SERVICE_REGISTRY_REDIS_URL");
    const char *prefix = getenv("SERVICE_REGISTRY_REDIS_PREFIX");
    char path[4096], err[512];
    service_path(self->svc, "registry.db", path, sizeof path);
    if (!url || !*url)
        url = config_str(cfg, "core.registry.redis_url", "redis://127.0.0.1:6379/0");
    self->backend = backend_new(kind, path, url,
                                prefix && *prefix ? prefix : config_str(cfg, "core.registry.prefix", "service_registry:"),
                                config_bool(cfg, "core.registry.fsync", false), err, sizeof err);
    if (!self->backend) {
        log_error("core", "registry backend: %s", err);
        return -1;
    }
    backend_set_errors(self->backend, self->svc->errors);
    log_info("core", "registry backend: %s", backend_kind_name(self->backend));
    return 0;
}

static int bind_legacy_ports(core_t *self)
{
    char endpoint[256];
    for (size_t i = 0; i < sizeof legacy_main_ports / sizeof legacy_main_ports[0]; i++) {
        service_bind_endpoint(self->svc, legacy_main_ports[i], endpoint, sizeof endpoint);
        if (wire_server_listen_all(self->svc->wire, endpoint) < 0)
            return -1;
    }
    return 0;
}

/* Whether the configuration names any of the four agents: only then may
 * one be delegated, now or after a reload. */
static bool may_delegate(config_t *config)
{
    for (const service_module_t *m = modules; m->name; m++) {
        char key[96];
        snprintf(key, sizeof key, "modules.%s", m->name);
        if (config_get(config, key))
            return true;
    }
    return false;
}

static void collect(metrics_t *metrics, void *arg)
{
    core_t *self = arg;
    metrics_set(metrics, "keel_core_registry_agents", NULL, (double)registry_size(self->registry));
}

static void core_stop(service_t *svc);

static int core_start(service_t *svc)
{
    core_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    svc->impl = self;
    if (open_backend(self) < 0)
        return -1;
    self->registry = registry_new(self->backend, svc->metrics,
                                  config_double(svc->config, "core.registry.ttl_s", 300),
                                  config_get(svc->config, "core.aliases"));
    registry_limit_new_names(self->registry,
                             config_double(svc->config, "core.registry.new_names.burst", 256),
                             config_double(svc->config, "core.registry.new_names.per_minute", 60));
    self->twin = twin_new(svc, self->backend, self->registry);
    self->legacy = legacy_new(self->backend, self->registry, self->twin, svc->metrics);
    self->coordinator = coordinator_new(svc, self->registry);
    self->supervisor = supervisor_new(svc);
    register_own_names(self);
    metrics_declare(svc->metrics, "keel_core_registry_agents", "Records in the agent registry.",
                    METRIC_GAUGE, NULL, 0);
    metrics_add_collector(svc->metrics, collect, self);

    wire_server_t *wire = svc->wire;
    /* Every handler is thread-safe (each module locks its own state), so
     * core.workers may run them in parallel; the default is the wire
     * thread alone, since each handler takes microseconds and the hop to a
     * worker costs more than it saves (bench/core.sh). */
    int workers = (int)config_int(svc->config, "core.workers", 0);
    registry_attach(self->registry, wire);
    twin_attach(self->twin, wire);
    legacy_attach(self->legacy, wire);
    coordinator_attach(self->coordinator, wire);
    supervisor_attach(self->supervisor, wire);
    wire_server_attach(wire, routes, self);
    wire_server_answer_inline(wire, WIRE_ACTION, "ping");     /* health from its cache */
    wire_server_on_unknown(wire, on_unknown, self);
    /* Forwarding waits on a legacy agent: never on the one wire thread.
     * Workers are fixed at start, so a module that a reload may delegate
     * (one named under `modules`) gets them from the first request. */
    if (may_delegate(svc->config) && workers < 4)
        workers = 4;
    wire_server_set_workers(wire, workers);
    /* Group commit: the registrations of a batch share one commit, and no
     * reply of the batch leaves before it (workers commit each their own). */
    if (workers == 0 && backend_kind(self->backend) == BACKEND_SQLITE)
        wire_server_set_batch(wire, begin_batch, end_batch, self);

    if ((config_bool(svc->config, "legacy_ports", false) && bind_legacy_ports(self) < 0)
        || twin_start(self->twin) < 0 || coordinator_start(self->coordinator) < 0
        || supervisor_start(self->supervisor) < 0) {
        core_stop(svc);
        return -1;
    }
    return 0;
}

static void core_stop(service_t *svc)
{
    core_t *self = svc->impl;
    if (!self)
        return;
    supervisor_destroy(&self->supervisor);
    coordinator_destroy(&self->coordinator);
    twin_destroy(&self->twin);
    legacy_destroy(&self->legacy);
    registry_destroy(&self->registry);
    backend_destroy(&self->backend);
    free(self);
    svc->impl = NULL;
}

static void core_health(service_t *svc, json_t *dict)
{
    core_t *self = svc->impl;
    if (!self)
        return;
    json_object_set_new(dict, "registry_size", json_integer(registry_size(self->registry)));
    json_object_set_new(dict, "registry_backend", json_string(backend_kind_name(self->backend)));
    twin_health(self->twin, dict);
    coordinator_health(self->coordinator, dict);
    supervisor_health(self->supervisor, dict);
    json_object_set_new(dict, "delegated", wire_server_delegation(svc->wire));
    /* Redis is a dependency only when it was chosen; its absence degrades. */
    if (backend_kind(self->backend) == BACKEND_REDIS && !backend_up(self->backend))
        json_object_set_new(dict, "status", json_string("degraded"));
}

const service_def_t core_service = {
    .name = "core",
    .title = "CoreOrchestrator",
    .zmq_port = 7000,
    .http_port = 8000,
    .start = core_start,
    .stop = core_stop,
    .health = core_health,
    .modules = modules,
};
