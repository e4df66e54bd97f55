/*  errorbus: the ErrorBus service definition, and the order its parts come
 *  up and go down in.  Data flows ingress -> store (its writer) ->
 *  fan-out (PUB 7151, NATS); the heartbeat monitor, the analyser and the
 *  log scanner feed the same store.  Start builds every part before any
 *  loop runs, so a bind failure leaves nothing half-started; stop
 *  silences the producers first, then lets the writer drain its queue and
 *  the fan-out send what was stored, so a clean stop loses nothing.
 *
 *  Configuration keys read here (all optional, under errorbus.):
 *  nats_url, nats_subject_prefix, retention_days, retention_interval_s,
 *  rcvhwm, queue_max, fanout_queue_max, max_event_bytes, heartbeat_interval_s,
 *  heartbeat_timeout_s, max_missed_heartbeats, recovery_poll_s,
 *  recovery_max_attempts, recovery_endpoint, correlation_interval_s,
 *  correlation_window_s, alert_interval_s, alert_window_s,
 *  rate_alert_per_min, logs_dir, log_scan_interval_s, error_patterns,
 *  legacy_config (ErrorBusService's YAML; Keel's keys win over it). */
#include "errorbus.h"
#include "bus.h"
#include "legacyconf.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double cfg_double(config_t *c, const char *key, double fallback)
{
    char full[128];
    snprintf(full, sizeof full, "errorbus.%s", key);
    return config_double(c, full, fallback);
}

static void endpoint_for(service_t *svc, const char *key, int base, char *buf, size_t len)
{
    char full[128];
    snprintf(full, sizeof full, "errorbus.%s", key);
    const char *given = config_str(svc->config, full, "");
    if (*given)
        snprintf(buf, len, "%s", given);
    else
        config_local_endpoint(svc->config, base, buf, len);
}

static void bus_destroy(bus_t **bus_p)
{
    bus_t *bus = *bus_p;
    if (!bus)
        return;
    ingress_destroy(&bus->ingress);
    logscan_destroy(&bus->logscan);
    analysis_destroy(&bus->analysis);
    recovery_destroy(&bus->recovery);
    if (bus->nats)
        natsbridge_unsubscribe(bus->nats);
    evstore_destroy(&bus->store);
    fanout_destroy(&bus->fanout);
    natsbridge_destroy(&bus->nats);
    free(bus);
    *bus_p = NULL;
}

static int build_parts(bus_t *bus, service_t *svc)
{
    config_t *c = svc->config;
    char path[4096], endpoint[256], err[512];
    service_path(svc, "error_system.db", path, sizeof path);
    /* Two batches (evstore.c): one being written while the next fills.
     * More only holds a burst in memory, where a kill -9 loses it and its
     * pages are faulted in and given back again, rather than in the
     * sockets behind the ingress. */
    bus->store = evstore_new(path, svc->metrics, svc->liveness, (size_t)cfg_double(c, "queue_max", 32768),
                             err, sizeof err);
    if (!bus->store) {
        log_error("errorbus", "cannot open %s: %s", path, err);
        return -1;
    }
    evstore_set_retention(bus->store, cfg_double(c, "retention_days", 30),
                          cfg_double(c, "retention_interval_s", 3600));
    service_bind_endpoint(svc, 7151, endpoint, sizeof endpoint);
    bus->fanout = fanout_new(endpoint, svc->metrics,
                             (size_t)cfg_double(c, "fanout_queue_max", 250000));
    if (!bus->fanout)
        return -1;
    evstore_set_sink(bus->store, fanout_events, bus->fanout);
    const char *nats_url = config_str(c, "errorbus.nats_url", "");
    if (*nats_url) {
        bus->nats = natsbridge_new(nats_url, config_str(c, "errorbus.nats_subject_prefix",
                                                        "keel.errors"),
                                   bus->store, svc->metrics);
        if (!bus->nats)
            return -1;
        fanout_set_bridge(bus->fanout, natsbridge_publish, bus->nats);
    }
    endpoint_for(svc, "recovery_endpoint", 7000, endpoint, sizeof endpoint);
    recovery_config_t rc = {
        .heartbeat_interval_s = cfg_double(c, "heartbeat_interval_s", 15),
        .heartbeat_timeout_s = cfg_double(c, "heartbeat_timeout_s", 45),
        .max_missed = (int)cfg_double(c, "max_missed_heartbeats", 3),
        .poll_s = cfg_double(c, "recovery_poll_s", 1),
        .max_attempts = (int)cfg_double(c, "recovery_max_attempts", 3),
        .core_endpoint = endpoint,
        .keys = svc->config,
        .call_timeout_ms = (int)(cfg_double(c, "recovery_timeout_s", 5) * 1000),
    };
    bus->recovery = recovery_new(&rc, bus->store, bus->fanout, svc->liveness);
    analysis_config_t ac = {
        .correlation_interval_s = cfg_double(c, "correlation_interval_s", 300),
        .correlation_window_s = cfg_double(c, "correlation_window_s", 60),
        .correlation_rows = (int)cfg_double(c, "correlation_rows", 100),
        .alert_interval_s = cfg_double(c, "alert_interval_s", 60),
        .alert_window_s = cfg_double(c, "alert_window_s", 3600),
        .rate_alert_per_min = cfg_double(c, "rate_alert_per_min", 600),
    };
    bus->analysis = analysis_new(&ac, bus->store, bus->fanout, bus->recovery, svc->liveness);
    json_t *legacy = legacyconf_load(config_str(c, "errorbus.legacy_config",
        "documentation/error_management/error_bus_config.yaml"));
    json_t *management = json_object_get(legacy, "error_management");
    json_t *patterns = config_get(c, "errorbus.error_patterns");
    if (!patterns)
        patterns = json_object_get(management, "error_patterns");
    const char *logs_dir = config_str(c, "errorbus.logs_dir",
        json_string_value(json_object_get(management, "logs_dir")) ?: "logs");
    json_t *legacy_interval = json_object_get(management, "scan_interval");
    double interval = cfg_double(c, "log_scan_interval_s",
                                 json_is_number(legacy_interval) ? json_number_value(legacy_interval)
                                                                 : 60);
    bus->logscan = logscan_new(bus->store, logs_dir, interval, patterns);
    json_decref(legacy);
    service_bind_endpoint(svc, 7150, endpoint, sizeof endpoint);
    bus->ingress = ingress_new(endpoint, bus->store, svc->metrics, svc->liveness,
                               (int)cfg_double(c, "rcvhwm", 100000),
                               (size_t)cfg_double(c, "max_event_bytes", 1 << 20));
    return bus->recovery && bus->analysis && bus->logscan && bus->ingress ? 0 : -1;
}

static int errorbus_start(service_t *svc)
{
    bus_t *bus = calloc(1, sizeof *bus);
    bus->svc = svc;
    if (build_parts(bus, svc) < 0
        || evstore_start(bus->store) < 0 || fanout_start(bus->fanout) < 0
        || recovery_start(bus->recovery) < 0 || analysis_start(bus->analysis) < 0
        || logscan_start(bus->logscan) < 0 || ingress_start(bus->ingress) < 0) {
        bus_destroy(&bus);
        return -1;
    }
    query_attach(bus, svc->wire);
    svc->impl = bus;
    return 0;
}

static void errorbus_stop(service_t *svc)
{
    bus_t *bus = svc->impl;
    bus_destroy(&bus);
    svc->impl = NULL;
}

static void errorbus_health(service_t *svc, json_t *dict)
{
    bus_t *bus = svc->impl;
    if (!bus)
        return;
    evstore_stats_t st;
    evstore_stats(bus->store, &st);
    json_object_set_new(dict, "ingress", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "received", (json_int_t)ingress_received(bus->ingress), "stored", (json_int_t)st.stored,
        "errors_collected", (json_int_t)st.total, "queued", (json_int_t)st.queued,
        "dropped", (json_int_t)st.dropped, "quarantined", (json_int_t)st.quarantined,
        "duplicates", (json_int_t)st.duplicates));
    if (!bus->nats)
        return;
    json_object_set_new(dict, "nats", natsbridge_status(bus->nats));
    /* Events are still stored while NATS is away, but the other machine
     * does not see them: say so instead of "ok". */
    if (!natsbridge_connected(bus->nats))
        json_object_set_new(dict, "status", json_string("degraded"));
}

/* The absorbed agents, for `modules.<name>.mode: delegate` (forward their
 * routes to the still-running original).  None keeps a legacy port:
 * ErrorBusService's 7150 is the ingress now, EMS's 7125 belongs to
 * UnifiedSystemAgent, and UnifiedErrorAgent was never deployed. */
static const service_module_t modules[] = {
    { .name = "ErrorBusService" },
    { .name = "ErrorManagementSystem" },
    { .name = "UnifiedErrorAgent" },
    { .name = NULL },
};

const service_def_t errorbus_service = {
    .name = "errorbus",
    .title = "ErrorBus",
    .zmq_port = 7003,
    .http_port = 8003,
    .start = errorbus_start,
    .stop = errorbus_stop,
    .health = errorbus_health,
    .modules = modules,
};
