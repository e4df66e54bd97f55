/*  legacy: see legacy.h.
 *
 *  One store, two views.  A REGISTER payload is kept as sent (DISCOVER
 *  answers with exactly what was registered), and when it names a port it
 *  also becomes a registry record (name -> agent_id, ip -> host), so a
 *  BaseAgent client's get_agent_endpoint finds a service that only ever
 *  spoke the legacy protocol.  DISCOVER falls back the other way, to the
 *  registry (host -> ip), so legacy clients find modern agents too, and
 *  Keel's own names.  A REGISTER without an ip gets the address the
 *  request came from (ZMQ's Peer-Address), so DISCOVER can answer with an
 *  endpoint.  The original kept three registries that never saw each
 *  other. */
#include "legacy.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct legacy_t {
    backend_t *backend;
    registry_t *registry;
    twin_t *twin;
    metrics_t *metrics;
};

legacy_t *legacy_new(backend_t *backend, registry_t *registry, twin_t *twin, metrics_t *metrics)
{
    legacy_t *self = calloc(1, sizeof *self);
    self->metrics = metrics;
    self->backend = backend;
    self->registry = registry;
    self->twin = twin;
    return self;
}

void legacy_destroy(legacy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static json_t *upper(const char *status, const char *message)
{
    return json_pack("{s:s, s:s}", "status", status, "message", message);
}

json_t *legacy_unknown(const char *command)
{
    char text[300];
    snprintf(text, sizeof text, "Unknown command: %s", command ? command : "None");
    return upper("ERROR", text);
}

static int store(legacy_t *self, json_t *payload, char *err, size_t errlen)
{
    return backend_put(self->backend, "legacy", json_string_value(json_object_get(payload, "name")),
                       payload, err, errlen);
}

/* The registry view of a legacy payload that names a port; its name was
 * admitted (registry_admit) when the payload was stored. */
static void map_into_registry(legacy_t *self, json_t *payload)
{
    json_t *port = json_object_get(payload, "port");
    if (!port || json_is_null(port))
        return;
    const char *ip = json_string_value(json_object_get(payload, "ip"));
    const char *type = json_string_value(json_object_get(payload, "agent_type"));
    json_t *fields = json_pack("{s:O, s:s, s:s, s:O}", "agent_id", json_object_get(payload, "name"),
                               "agent_type", type ? type : "legacy",
                               "host", ip ? ip : "localhost", "port", port);
    static const char *optional[] = { "health_check_port", "capabilities" };
    for (size_t i = 0; i < 2; i++)
        if (json_object_get(payload, optional[i]))
            json_object_set(fields, optional[i], json_object_get(payload, optional[i]));
    json_object_set_new(fields, "metadata", json_pack("{s:s}", "registered_by", "legacy REGISTER"));
    char id[NAMES_BUF], err[1100];
    if (registry_register(self->registry, fields, NULL, id, sizeof id, err, sizeof err) < 0)
        log_warn("core", "legacy REGISTER of %s kept for DISCOVER only: %s",
                 json_string_value(json_object_get(payload, "name")), err);
    json_decref(fields);
}

static json_t *on_register(void *ctx, wire_request_t *req)
{
    legacy_t *self = ctx;
    const char *name = json_string_value(json_object_get(req->payload, "name"));
    if (!name || !*name)
        return upper("ERROR", "Missing required field 'name' in registration payload");
    char err[512];
    if (names_refuse(self->metrics, "core", "name", name, err, sizeof err))
        return upper("ERROR", err);
    int known = backend_has(self->backend, "legacy", name, err, sizeof err);
    if (known < 0 || (known == 0 && registry_admit(self->registry, "legacy", req->peer ? req->peer : "",
                                                   err, sizeof err) < 0))
        return upper("ERROR", err);
    /* stt_service, tts_service and the streaming agents name no ip: the
     * address their request came from is where they are. */
    json_t *payload = json_copy(req->payload);
    json_t *ip = json_object_get(payload, "ip");
    if ((!ip || json_is_null(ip)) && req->peer && *req->peer)
        json_object_set_new(payload, "ip", json_string(req->peer));
    int rc = store(self, payload, err, sizeof err);
    if (rc == 0)
        map_into_registry(self, payload);
    json_decref(payload);
    if (rc < 0)
        return upper("ERROR", err);
    return json_pack("{s:s, s:o}", "status", "SUCCESS", "message",
                     json_sprintf("Service %s registered successfully", name));
}

static json_t *on_discover(void *ctx, wire_request_t *req)
{
    legacy_t *self = ctx;
    const char *name = json_string_value(json_object_get(req->payload, "name"));
    if (!name || !*name)
        return upper("ERROR", "Missing required field 'name' in discovery payload");
    json_t *found = NULL;
    char err[512];
    int rc = backend_get(self->backend, "legacy", name, &found, err, sizeof err);
    if (rc < 0)
        return upper("ERROR", err);
    if (rc == 0) {
        json_t *rec = registry_lookup(self->registry, name, err, sizeof err);
        if (!rec && strstr(err, "not found") == NULL)
            return upper("ERROR", err);
        if (rec) {
            found = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O}", "name", name,
                              "ip", json_object_get(rec, "host"), "port", json_object_get(rec, "port"),
                              "health_check_port", json_object_get(rec, "health_check_port"),
                              "agent_type", json_object_get(rec, "agent_type"),
                              "capabilities", json_object_get(rec, "capabilities"));
            json_decref(rec);
        }
    }
    if (!found)
        return json_pack("{s:s, s:o}", "status", "NOT_FOUND", "message",
                         json_sprintf("Service '%s' not registered", name));
    return json_pack("{s:s, s:o}", "status", "SUCCESS", "payload", found);
}

static json_t *on_report_vram(void *ctx, wire_request_t *req)
{
    legacy_t *self = ctx;
    char err[256];
    if (twin_update_vram(self->twin, req->payload, err, sizeof err) < 0)
        return upper("ERROR", err);
    return upper("SUCCESS", "VRAM metrics updated successfully");
}

static json_t *on_get_metrics(void *ctx, wire_request_t *req)
{
    legacy_t *self = ctx;
    json_t *wanted = json_object_get(req->payload, "metrics");
    if (wanted && !json_is_array(wanted))
        return upper("ERROR", "metrics must be a list");
    json_t *state = twin_current_state(self->twin);
    if (!json_array_size(wanted))
        return json_pack("{s:s, s:o}", "status", "SUCCESS", "payload", state);
    json_t *out = json_object();
    size_t i;
    json_t *item;
    json_array_foreach(wanted, i, item) {
        const char *m = json_string_value(item);
        if (m && !strcmp(m, "vram_usage")) {
            json_t *vram = twin_vram(self->twin);
            json_object_del(vram, "loaded_models");
            json_object_update(out, vram);
            json_decref(vram);
        } else if (m && !strcmp(m, "cpu_usage")) {
            json_object_set(out, "cpu_usage", json_object_get(state, "cpu_usage"));
        }
    }
    json_decref(state);
    return json_pack("{s:s, s:o}", "status", "SUCCESS", "payload", out);
}

static const wire_route_t routes[] = {
    /* sent by main_pc_code/utils/service_discovery_client.py (register_service) */
    { WIRE_COMMAND, "REGISTER", on_register, "SystemDigitalTwin", ROUTE_AGENT },
    { WIRE_COMMAND, "DISCOVER", on_discover, "SystemDigitalTwin", ROUTE_PUBLIC },
    /* sent by main_pc_code/agents/model_manager_agent_fixed.py (ModelManagerAgent) */
    { WIRE_COMMAND, "REPORT_MODEL_VRAM", on_report_vram, "SystemDigitalTwin", ROUTE_AGENT },
    { WIRE_COMMAND, "GET_METRICS", on_get_metrics, "SystemDigitalTwin", ROUTE_PUBLIC },
    { 0 },
};

void legacy_attach(legacy_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}
