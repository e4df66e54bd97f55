/*  observability: the ObservabilityHub service.  Five agents' worth of
 *  behaviour on one port (7002) and one HTTP listener (8002):
 *  HealthMonitor and PredictiveHealthMonitor (fleet.c, prober.c, tiers.c,
 *  predictor.c, optimiser.c, crossreg.c), PerformanceMonitor (perfmon.c,
 *  perffeeds.c), PerformanceLoggerAgent (perflog.c), SystemHealthManager
 *  (memsvc.c) and the prior hub's HTTP routes (pushhealth.c, alerting.c),
 *  plus the Prometheus exporter and the dashboard (dashboard.c, with its
 *  stored time series in history.c and keelstats.c).  This file wires
 *  them together and resolves the action collisions (docs/logic-preservation.md,
 *  ObservabilityHub):
 *  log_metric goes to the logger when it carries a `metric` object and to
 *  the monitor when it carries service/metric_type; ping/health/health_check
 *  answer the hub's own health with status "ok"; `request_type` requests
 *  are PHM discovery; unknown actions are answered with a "message" key.
 *
 *  Handlers run on a small worker pool, because get_system_status waits on
 *  the memory services and must not hold up anyone else's request. */
#include "pycompat.h"
#include "observability.h"
#include "alerting.h"
#include "clock.h"
#include "crossreg.h"
#include "perffeeds.h"
#include "fleet.h"
#include "hubdb.h"
#include "log.h"
#include "names.h"
#include "housekeep.h"
#include "memsvc.h"
#include "optimiser.h"
#include "perflog.h"
#include "perfmon.h"
#include "pushhealth.h"
#include "tiers.h"
#include "hostsampler.h"
#include "dashboard.h"
#include "history.h"
#include "keelstats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    service_t *svc;
    hubdb_t *db;
    hostsampler_t *sampler;
    perfmon_t *perf;
    fleet_t *fleet;
    tiers_t *tiers;
    alerting_t *alerts;
    pushhealth_t *pushed;
    crossreg_t *crossreg;
    memsvc_t *memsvc;
    optimiser_t *optimiser;
    perffeeds_t *feeds;
    housekeep_t *maintain;
    keelstats_t *keelstats;
    history_t *history;
    char db_path[4096];
} hub_t;

/* ---- ZMQ handlers ------------------------------------------------------- */

/* On ZMQ the hub answers health as BaseAgent did: "ok" for the
 * "healthy" of its HTTP dict, and a local timestamp (service_health_reply
 * writes the timestamp afresh for every reply). */
static void zmq_health(json_t *dict)
{
    if (!strcmp(json_string_value(json_object_get(dict, "status")), "healthy"))
        json_object_set_new(dict, "status", json_string("ok"));
}

static json_t *on_health(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    return service_health_reply(hub->svc, req, NULL, zmq_health);
}

/* True, with the refusal in why, when obj's string `key` is a name over
 * the limit (names.h). */
static bool refuses_name(hub_t *hub, json_t *obj, const char *key, char *why, size_t len)
{
    return names_refuse(hub->svc->metrics, "observability", key, json_string_value(json_object_get(obj, key)),
                        why, len);
}

/* Two agents' log_metric, told apart by form (the collision rule of
 * docs/logic-preservation.md); each form follows its own agent when that
 * agent is delegated. */
static json_t *on_log_metric(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    json_t *metric = json_object_get(req->body, "metric");
    json_t *forwarded = wire_server_forward(hub->svc->wire, json_is_object(metric) ? "PerformanceLoggerAgent"
                                                                                   : "PerformanceMonitor", req);
    if (forwarded)
        return forwarded;
    char why[320];
    if (json_is_object(metric))
        return refuses_name(hub, metric, "agent", why, sizeof why)
            ? json_pack("{s:s, s:s}", "status", "error", "message", why) : perflog_log_metric(hub->db, metric);
    const char *service = json_string_value(json_object_get(req->body, "service"));
    const char *type = json_string_value(json_object_get(req->body, "metric_type"));
    json_t *value = json_object_get(req->body, "value");
    if (!service || !type || !value || json_is_null(value))
        return json_pack("{s:s, s:s}", "status", "error", "message", "Missing required parameters");
    if (!json_is_number(value))
        return json_pack("{s:s, s:s}", "status", "error", "message", "value must be a number");
    if (names_refuse(hub->svc->metrics, "observability", "service", service, why, sizeof why))
        return json_pack("{s:s, s:o}", "status", "error", "message",
                         json_sprintf("Metric could not be logged: %s", why));
    perf_outcome_t outcome = perfmon_log(hub->perf, service, type, json_number_value(value), req->peer,
                                         why, sizeof why);
    if (outcome == PERF_LOGGED)
        return json_pack("{s:s, s:s}", "status", "success", "message", "Metric logged");
    /* A refused new name is the caller's to act on, and junk would flood
     * the bus; only a table that real services fill is the hub's fault. */
    if (outcome != PERF_REFUSED_RATE)
        errpub_report(hub->svc->errors, "metric_logging_error", "ERROR", NULL,
                      "cannot log %s for %s: %s", type, service, why);
    return json_pack("{s:s, s:o}", "status", "error", "message",
                     json_sprintf("Metric could not be logged: %s", why));
}

static json_t *on_get_metrics(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    json_t *service = json_object_get(req->body, "service");
    if (service && !json_is_null(service)) {
        if (!json_is_string(service)) {
            errpub_report(hub->svc->errors, "service_metrics_error", "ERROR", NULL,
                          "get_metrics with a service that is not a string");
            return json_pack("{s:s, s:s}", "status", "error", "message", "service must be a string");
        }
        return json_pack("{s:s, s:o}", "status", "success", "metrics",
                         perfmon_service_metrics(hub->perf, json_string_value(service)));
    }
    return json_pack("{s:s, s:o}", "status", "success", "metrics", perfmon_metrics(hub->perf));
}

static json_t *on_get_alerts(void *ctx, wire_request_t *req)
{
    (void)req;
    hub_t *hub = ctx;
    return json_pack("{s:s, s:o}", "status", "success", "alerts", perfmon_alerts(hub->perf));
}

static json_t *on_performance_health(void *ctx, wire_request_t *req)
{
    (void)req;
    hub_t *hub = ctx;
    return perfmon_health(hub->perf, service_uptime(hub->svc));
}

static json_t *on_log_resource_usage(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    char why[160];
    if (refuses_name(hub, json_object_get(req->body, "usage"), "agent", why, sizeof why))
        return json_pack("{s:s, s:s}", "status", "error", "message", why);
    return perflog_log_resource_usage(hub->db, req->body);
}

static json_t *on_get_agent_metrics(void *ctx, wire_request_t *req)
{
    return perflog_get_agent_metrics(((hub_t *)ctx)->db, req->body);
}

static json_t *on_get_agent_resource_usage(void *ctx, wire_request_t *req)
{
    return perflog_get_agent_resource_usage(((hub_t *)ctx)->db, req->body);
}

static json_t *on_agents_health(void *ctx, wire_request_t *req)
{
    (void)req;
    return json_pack("{s:s, s:o}", "status", "ok", "agents", fleet_agents_health(((hub_t *)ctx)->fleet));
}

static json_t *on_services_health(void *ctx, wire_request_t *req)
{
    (void)req;
    return json_pack("{s:s, s:o}", "status", "ok", "services", memsvc_records(((hub_t *)ctx)->memsvc));
}

static json_t *on_system_health(void *ctx, wire_request_t *req)
{
    (void)req;
    hub_t *hub = ctx;
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    return json_pack("{s:s, s:{s:s, s:o, s:o, s:s, s:o}}", "status", "ok", "system",
                     "timestamp", ts, "agents", fleet_agents_health(hub->fleet),
                     "services", memsvc_records(hub->memsvc), "overall_status", fleet_overall(hub->fleet),
                     "machines", fleet_machines(hub->fleet));
}

static json_t *on_get_status(void *ctx, wire_request_t *req)
{
    (void)req;
    hub_t *hub = ctx;
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    return json_pack("{s:s, s:o, s:s}", "status", "success", "agent_status",
                     fleet_agents_health(hub->fleet), "timestamp", ts);
}

static json_t *on_system_status(void *ctx, wire_request_t *req)
{
    (void)req;
    return memsvc_system_status(((hub_t *)ctx)->memsvc);
}

static json_t *on_health_events(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    json_t *agent = json_object_get(req->body, "agent_name");
    json_t *limit = json_object_get(req->body, "limit");
    if ((agent && !json_is_string(agent)) || (limit && !json_is_integer(limit)))
        return json_pack("{s:s, s:s}", "status", "error", "message",
                         "agent_name must be a string and limit an integer");
    int n = limit ? (int)json_integer_value(limit) : 100;
    return json_pack("{s:s, s:o}", "status", "success", "events",
                     hubdb_events(hub->db, json_string_value(agent), n < 1 ? 1 : n > 1000 ? 1000 : n));
}

static int parse_tier(json_t *strategy)
{
    const char *s = json_string_value(strategy);
    if (!strategy)
        return 1;
    if (s && !strncmp(s, "tier", 4) && s[4] >= '1' && s[4] <= '4' && !s[5])
        return s[4] - '0';
    return 0;
}

static json_t *on_trigger_recovery(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    const char *agent = json_string_value(json_object_get(req->body, "agent_name"));
    int tier = parse_tier(json_object_get(req->body, "strategy"));
    if (!agent || !*agent)
        return json_pack("{s:s, s:s}", "status", "error", "message", "Missing agent_name");
    if (!tier)
        return json_pack("{s:s, s:s}", "status", "error", "message", "strategy must be tier1..tier4");
    return tiers_trigger(hub->tiers, agent, tier);
}

static json_t *on_crossreg(void *ctx, wire_request_t *req)
{
    return crossreg_handle(((hub_t *)ctx)->crossreg, req->body);
}

/* A request_type the registry does not know gets its answer there. */
static json_t *on_unknown(void *ctx, wire_request_t *req)
{
    hub_t *hub = ctx;
    if (req->body && json_object_get(req->body, "request_type"))
        return crossreg_handle(hub->crossreg, req->body);
    return pycompat_unknown_action(req->body ? json_object_get(req->body, "action") : NULL, "message", "None");
}

/* ---- HTTP routes -------------------------------------------------------- */

static json_t *parse_body(const http_request_t *req, http_reply_t *reply)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "detail",
                                              "request body must be a JSON object"));
        return NULL;
    }
    return body;
}

/* Answers 400 and returns true when one of the body's `keys` (a
 * NULL-terminated list) is a name over the limit. */
static bool refused_names(hub_t *hub, json_t *body, const char *const *keys, http_reply_t *reply)
{
    char why[160];
    for (size_t i = 0; keys[i]; i++)
        if (refuses_name(hub, body, keys[i], why, sizeof why)) {
            http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "detail", why));
            return true;
        }
    return false;
}

static void http_update_health(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    hub_t *hub = ctx;
    json_t *body = parse_body(req, reply);
    if (!body)
        return;
    static const char *const names[] = { "agent_name", NULL };
    if (refused_names(hub, body, names, reply)) {
        json_decref(body);
        return;
    }
    const char *why = NULL;
    json_t *result = pushhealth_update(hub->pushed, body, &why);
    json_decref(body);
    if (result)
        http_reply_json(reply, 200, result);
    else
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "detail", why));
}

static void http_add_rule(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    hub_t *hub = ctx;
    json_t *body = parse_body(req, reply);
    if (!body)
        return;
    static const char *const names[] = { "rule_id", "metric_name", NULL };
    if (refused_names(hub, body, names, reply)) {
        json_decref(body);
        return;
    }
    const char *why = NULL;
    json_t *result = alerting_add_rule(hub->alerts, body, &why);
    json_decref(body);
    if (result)
        http_reply_json(reply, 200, result);
    else
        http_reply_json(reply, 400, json_pack("{s:s, s:s+}", "status", "error", "detail",
                                              "missing or invalid: ", why));
}

static void http_acknowledge(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    hub_t *hub = ctx;
    json_t *body = parse_body(req, reply);
    if (!body)
        return;
    const char *why = NULL;
    json_t *result = alerting_acknowledge(hub->alerts, body, &why);
    json_decref(body);
    if (result)
        http_reply_json(reply, 200, result);
    else
        http_reply_json(reply, strncmp(why, "no such", 7) ? 400 : 404,
                        json_pack("{s:s, s:s}", "status", "error", "detail", why));
}

static void http_trigger_recovery(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    hub_t *hub = ctx;
    json_t *body = parse_body(req, reply);
    if (!body)
        return;
    wire_request_t wreq = { .dialect = WIRE_ACTION, .name = "trigger_recovery", .body = body,
                            .payload = body };
    json_t *result = on_trigger_recovery(hub, &wreq);
    json_decref(body);
    const char *status = json_string_value(json_object_get(result, "status"));
    bool bad = json_object_get(result, "message") != NULL;
    http_reply_json(reply, bad ? 400 : status && !strcmp(status, "success") ? 200 : 502, result);
}

static void http_alerts(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    http_reply_json(reply, 200, alerting_view(((hub_t *)ctx)->alerts));
}

static void http_alert_rules(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    http_reply_json(reply, 200, json_pack("{s:s, s:o}", "status", "success", "rules",
                                          alerting_rules(((hub_t *)ctx)->alerts)));
}

static void http_anomalies(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    http_reply_json(reply, 200, alerting_anomalies(((hub_t *)ctx)->alerts));
}

static void http_metrics_json(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    http_reply_json(reply, 200, alerting_metrics_json(((hub_t *)ctx)->alerts));
}

static void http_health_summary(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    http_reply_json(reply, 200, pushhealth_summary(((hub_t *)ctx)->pushed));
}

static void http_fleet(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    hub_t *hub = ctx;
    wire_request_t wreq = { .dialect = WIRE_ACTION, .name = "get_system_health" };
    (void)req;
    http_reply_json(reply, 200, on_system_health(hub, &wreq));
}

static void http_performance(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    hub_t *hub = ctx;
    const char *name = req->path + strlen("/performance_metrics/");
    if (!*name) {
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "detail",
                                              "agent name missing"));
        return;
    }
    http_reply_json(reply, 200, json_pack("{s:s, s:s, s:o}", "status", "success", "agent_name", name,
                                          "metrics", perfmon_service_metrics(hub->perf, name)));
}

/* ---- Prometheus --------------------------------------------------------- */

/* Prometheus conventions: counters end in _total, base units (seconds,
 * bytes, ratios 0..1), one family per quantity; `agent` always names an
 * agent, `service` always one of Keel's five. */
static void declare_metrics(metrics_t *m)
{
    static const struct { const char *name, *help; metric_type_t type; } families[] = {
        { "keel_agent_up", "1 when the agent's state is up, else 0.", METRIC_GAUGE },
        { "keel_agent_check_latency_seconds", "Duration of the agent's last health probe.", METRIC_GAUGE },
        { "keel_agent_failure_probability", "Predicted probability that the agent fails (0..1).",
          METRIC_GAUGE },
        { "keel_agent_recovery_tier", "Recovery tier in progress for the agent (0 = none, 1..4).",
          METRIC_GAUGE },
        { "keel_agent_state", "Agent state: 0 unknown, 1 up, 2 degraded, 3 down.", METRIC_GAUGE },
        { "keel_health_sweep_duration_seconds", "Duration of the last health sweep over all agents.",
          METRIC_GAUGE },
        { "keel_health_sweeps_total", "Health sweeps completed since start.", METRIC_COUNTER },
        { "keel_perf_response_time_seconds", "Mean of the agent's last 10 response times (log_metric).",
          METRIC_GAUGE },
        { "keel_perf_response_time_average_seconds", "Mean of the agent's retained response times.",
          METRIC_GAUGE },
        { "keel_perf_error_ratio", "Errors divided by requests (at least 1) the agent logged.",
          METRIC_GAUGE },
        { "keel_perf_queue_size", "Mean of the agent's last 10 queue sizes.", METRIC_GAUGE },
        { "keel_perf_errors_total", "Errors the agent logged with log_metric.", METRIC_COUNTER },
        { "keel_perf_requests_total", "Requests the agent logged with log_metric.", METRIC_COUNTER },
        { "keel_host_cpu_usage_ratio", "Host CPU in use (0..1), sampled by the hub.", METRIC_GAUGE },
        { "keel_host_memory_usage_ratio", "Host memory in use (0..1).", METRIC_GAUGE },
        { "keel_host_memory_available_bytes", "Host memory available.", METRIC_GAUGE },
        { "keel_host_disk_usage_ratio", "Data directory's disk in use (0..1).", METRIC_GAUGE },
        { "keel_gpu_utilization_ratio", "GPU busy (0..1), by device, from NVML.", METRIC_GAUGE },
        { "keel_gpu_memory_usage_ratio", "GPU memory (VRAM) in use (0..1), by device, from NVML.",
          METRIC_GAUGE },
        { "keel_alerts_active", "Alert rules currently firing.", METRIC_GAUGE },
        { "keel_anomalies_recent", "Anomalies among the last 100 detections kept.", METRIC_GAUGE },
        /* the bounded tables (fleet.h, perfmon.h) */
        { "keel_watched_agents_evicted_total",
          "Agents the full table stopped watching to make room for a name that ranked above them.",
          METRIC_COUNTER },
        { "keel_watched_agents_refused_total",
          "Registry names the full table did not watch, each counted once until watched.", METRIC_COUNTER },
        { "keel_unwatched_agents", "Registry names not watched now because the table is full.", METRIC_GAUGE },
        { "keel_perf_agents_evicted_total",
          "Agents the full performance table dropped, with their rows, for a new name (log_metric).",
          METRIC_COUNTER },
        { "keel_perf_agents_refused_total",
          "New names log_metric refused: rate_limited (their source created too many) or table_full "
          "(every agent in the table keeps reporting).", METRIC_COUNTER },
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        metrics_declare(m, families[i].name, families[i].help, families[i].type, NULL, 0);
}

static void collect(metrics_t *metrics, void *arg)
{
    hub_t *hub = arg;
    fleet_export(hub->fleet, metrics);
    perfmon_export(hub->perf, metrics);
    alerting_export(hub->alerts, metrics);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void observability_health(service_t *svc, json_t *dict)
{
    hub_t *hub = svc->impl;
    if (!hub)
        return;
    char ts[40];
    clock_iso_utc(clock_wall(), ts, sizeof ts);
    json_object_set_new(dict, "status", json_string("healthy"));
    json_object_set_new(dict, "timestamp", json_string(ts));
    config_t *cfg = svc->config;
    json_object_set_new(dict, "unified_services", json_pack("{s:b, s:b, s:b}",
        "health", config_bool(cfg, "observability.unified.health", true),
        "performance", config_bool(cfg, "observability.unified.performance", true),
        "prediction", config_bool(cfg, "observability.unified.prediction", true)));
    int total, healthy, unhealthy;
    fleet_counts(hub->fleet, &total, &healthy, &unhealthy);
    struct stat st;
    double db_mb = stat(hub->db_path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0;
    double sweep_s;
    long sweeps;
    fleet_sweep_stats(hub->fleet, &sweep_s, &sweeps);
    json_object_set_new(dict, "agent_specific_metrics", json_pack(
        "{s:o, s:i, s:i, s:i, s:f, s:b, s:b, s:f, s:i}", "system_metrics",
        hostsampler_system_metrics(hub->sampler), "monitored_agents_count", total,
        "healthy_agents_count", healthy, "unhealthy_agents_count", unhealthy,
        "database_size_mb", db_mb, "model_loaded", 0, "optimization_thread_alive",
        optimiser_alive(hub->optimiser), "last_sweep_seconds", sweep_s, "sweeps", (int)sweeps));
}

static void hub_free(hub_t *hub)
{
    housekeep_destroy(&hub->maintain);
    history_destroy(&hub->history);
    keelstats_destroy(&hub->keelstats);
    perffeeds_destroy(&hub->feeds);
    fleet_stop(hub->fleet);
    tiers_destroy(&hub->tiers);
    fleet_destroy(&hub->fleet);
    optimiser_destroy(&hub->optimiser);
    memsvc_destroy(&hub->memsvc);
    alerting_destroy(&hub->alerts);
    perfmon_destroy(&hub->perf);
    pushhealth_destroy(&hub->pushed);
    crossreg_destroy(&hub->crossreg);
    hostsampler_destroy(&hub->sampler);
    hubdb_destroy(&hub->db);
    free(hub);
}

#define PM "PerformanceMonitor"
#define HM "HealthMonitor"
#define PLA "PerformanceLoggerAgent"

/* Reads are public.  log_metric is an agent's: the kept agents' telemetry
 * reaches PerformanceLoggerAgent's port with it (issue 15); it belongs to
 * two agents by its form, so it names no module and its handler forwards
 * each form to its own agent when that one is delegated.  No kept agent
 * logs resource usage or asks for a recovery (grep of main_pc_code,
 * pc2_code, common and scripts: only the absorbed agents themselves handle
 * log_resource_usage and the cross-machine registry), so those are an
 * administrator's. */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "ping", on_health, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "health", on_health, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "health_check", on_health, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "log_metric", on_log_metric, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "get_metrics", on_get_metrics, PM, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_alerts", on_get_alerts, PM, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_performance_health", on_performance_health, PM, ROUTE_PUBLIC },
    { WIRE_ACTION, "log_resource_usage", on_log_resource_usage, PLA, ROUTE_ADMIN }, /* no kept agent sends it */
    { WIRE_ACTION, "get_agent_metrics", on_get_agent_metrics, PLA, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_agent_resource_usage", on_get_agent_resource_usage, PLA, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_agents_health", on_agents_health, HM, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_services_health", on_services_health, HM, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_system_health", on_system_health, HM, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_status", on_get_status, HM, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_system_status", on_system_status, "SystemHealthManager", ROUTE_PUBLIC },
    { WIRE_ACTION, "get_health_events", on_health_events, HM, ROUTE_PUBLIC },
    { WIRE_ACTION, "trigger_recovery", on_trigger_recovery, HM, ROUTE_ADMIN },  /* no kept agent sends it */
    /* PredictiveHealthMonitor's cross-machine registry: its writes came from
     * the other machine's PredictiveHealthMonitor, absorbed; no kept agent */
    { WIRE_REQUEST_TYPE, "register", on_crossreg, "PredictiveHealthMonitor", ROUTE_ADMIN },
    { WIRE_REQUEST_TYPE, "unregister", on_crossreg, "PredictiveHealthMonitor", ROUTE_ADMIN },
    { WIRE_REQUEST_TYPE, "heartbeat", on_crossreg, "PredictiveHealthMonitor", ROUTE_ADMIN },
    { WIRE_REQUEST_TYPE, "get_status", on_crossreg, "PredictiveHealthMonitor", ROUTE_PUBLIC },
    { 0 },
};

/* The same four writes over HTTP, an administrator's as on ZMQ (the
 * phase-1 deploy script, not an agent, posted update_agent_health). */
static const http_route_t http_routes[] = {
    { "GET", "/metrics.json", http_metrics_json, ROUTE_PUBLIC, 0 },
    { "GET", "/health_summary", http_health_summary, ROUTE_PUBLIC, 0 },
    { "GET", "/alerts", http_alerts, ROUTE_PUBLIC, 0 },
    { "GET", "/alert_rules", http_alert_rules, ROUTE_PUBLIC, 0 },
    { "GET", "/anomalies", http_anomalies, ROUTE_PUBLIC, 0 },
    { "GET", "/fleet", http_fleet, ROUTE_PUBLIC, 0 },
    { "GET", "/performance_metrics/*", http_performance, ROUTE_PUBLIC, 0 },
    { "POST", "/update_agent_health", http_update_health, ROUTE_ADMIN, 0 },
    { "POST", "/add_alert_rule", http_add_rule, ROUTE_ADMIN, 0 },
    { "POST", "/trigger_recovery", http_trigger_recovery, ROUTE_ADMIN, 0 },
    { "POST", "/acknowledge_alert", http_acknowledge, ROUTE_ADMIN, 0 },
    { 0 },
};

static void attach_routes(service_t *svc, hub_t *hub)
{
    wire_server_attach(svc->wire, routes, hub);
    static const char *const health[] = { "ping", "health", "health_check" };
    for (size_t i = 0; i < 3; i++)      /* from the health cache: no worker needed */
        wire_server_answer_inline(svc->wire, WIRE_ACTION, health[i]);
    /* Served on a second agent's old port too, because kept agents dial it
     * there (issue 15): the PerformanceLogger form of log_metric on 7128,
     * and get_system_health on PredictiveHealthMonitor's 5613, where
     * main_pc_code/check_health.py asks for it. */
    static const struct { const char *module, *action; } shared[] = {
        { PM, "log_metric" }, { PLA, "log_metric" }, { "PredictiveHealthMonitor", "get_system_health" },
    };
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        wire_server_share(svc->wire, shared[i].module, shared[i].action);
    wire_server_on_unknown(svc->wire, on_unknown, hub);
    wire_server_set_workers(svc->wire, (int)config_int(svc->config, "observability.workers", 4));
    httpd_attach(svc->http, http_routes, hub);
}

static int start_feeds(service_t *svc, hub_t *hub)
{
    config_t *cfg = svc->config;
    if (!config_bool(cfg, "observability.performance_feeds", config_bool(cfg, "legacy_ports", false)))
        return 0;
    char metrics_ep[256], health_ep[256];
    service_bind_endpoint(svc, (int)config_int(cfg, "observability.performance_metrics_port", 5619),
                          metrics_ep, sizeof metrics_ep);
    service_bind_endpoint(svc, (int)config_int(cfg, "observability.performance_health_port", 5620),
                          health_ep, sizeof health_ep);
    long ms = config_int(cfg, "observability.broadcast_interval_ms", 5000);
    hub->feeds = perffeeds_new(hub->perf, svc->errors, metrics_ep, health_ep, ms / 1000.0, svc->started_mono);
    return hub->feeds ? perffeeds_start(hub->feeds) : 0;
}

static int observability_start(service_t *svc)
{
    config_t *cfg = svc->config;
    hub_t *hub = calloc(1, sizeof *hub);
    hub->svc = svc;
    service_path(svc, "observability.db", hub->db_path, sizeof hub->db_path);
    hub->db = hubdb_new(hub->db_path);
    if (!hub->db) {
        free(hub);
        return -1;
    }
    hub->sampler = hostsampler_new(config_str(cfg, "observability.proc_root", "/proc"), svc->data_dir,
                               config_double(cfg, "observability.sample_interval_s", 1.0));
    hub->perf = perfmon_new(cfg, hub->db, hub->sampler);
    hub->pushed = pushhealth_new(hub->db, config_double(cfg, "observability.stale_after_s", 300));
    hub->crossreg = crossreg_new(config_double(cfg, "observability.stale_after_s", 300), svc->metrics);
    hub->alerts = alerting_new(cfg, hub->db, hub->sampler, svc->errors);
    hub->memsvc = memsvc_new(cfg, svc->errors);
    hub->optimiser = optimiser_new(cfg, hub->sampler, hub->db, svc->errors);
    char status_ep[256], registry[256];
    service_bind_endpoint(svc, (int)config_int(cfg, "observability.status_port", 6584),
                          status_ep, sizeof status_ep);
    config_local_endpoint(cfg, 7000, registry, sizeof registry);
    const char *common = config_str(cfg, "registry_endpoint", "");
    const char *reg = config_str(cfg, "observability.registry_endpoint", *common ? common : registry);
    bool discover = config_bool(cfg, "observability.discover", true) && *reg;
    fleet_args_t args = { cfg, hub->db, status_ep, discover ? reg : NULL, svc->liveness };
    hub->fleet = fleet_new(&args);
    hub->tiers = tiers_new(cfg, hub->fleet, hub->db, svc->errors, *reg ? reg : registry);
    fleet_on_sweep(hub->fleet, tiers_kick, hub->tiers);
    hub->keelstats = keelstats_new(cfg);
    hub->history = history_new(cfg, hub->db, hub->fleet, hub->keelstats, svc->metrics);
    svc->impl = hub;
    declare_metrics(svc->metrics);
    metrics_add_collector(svc->metrics, collect, hub);
    attach_routes(svc, hub);
    dashboard_attach(svc, hub->fleet, hub->alerts, hub->db, hub->history);
    hub->maintain = housekeep_new(cfg, hub->db, hub->perf, hub->pushed);
    if (hostsampler_start(hub->sampler) < 0 || tiers_start(hub->tiers) < 0 || fleet_start(hub->fleet) < 0
        || history_start(hub->history) < 0 || housekeep_start(hub->maintain) < 0
        || alerting_start(hub->alerts) < 0 || memsvc_start(hub->memsvc) < 0
        || optimiser_start(hub->optimiser) < 0 || start_feeds(svc, hub) < 0) {
        log_error("observability", "cannot start the hub's loops");
        return -1;
    }
    return 0;
}

/* SIGHUP: the performance thresholds may change while serving; sockets,
 * ports and the agent list need a restart. */
static void observability_reload(service_t *svc, config_t *fresh)
{
    hub_t *hub = svc->impl;
    if (hub)
        perfmon_configure(hub->perf, fresh);
}

static void observability_stop(service_t *svc)
{
    hub_t *hub = svc->impl;
    if (!hub)
        return;
    svc->impl = NULL;
    hub_free(hub);
}

static const service_module_t modules[] = {
    { .name = "PerformanceMonitor", .legacy_port = 7103, .legacy_health_port = 8103 },
    { .name = "HealthMonitor", .legacy_port = 7114, .legacy_health_port = 8114 },
    /* 5632: where LearningAdjusterAgent (pc2_code/agents) looks for it by default. */
    { .name = "PerformanceLoggerAgent", .legacy_port = 7128, .legacy_health_port = 8128, .client_port = 5632 },
    { .name = "SystemHealthManager", .legacy_port = 7117, .legacy_health_port = 8117 },
    { .name = "PredictiveHealthMonitor", .legacy_port = 5613, .legacy_health_port = 6613 },
    { .name = NULL },
};

const service_def_t observability_service = {
    .name = "observability",
    .title = "ObservabilityHub",
    .zmq_port = 7002,
    .http_port = 8002,
    .start = observability_start,
    .stop = observability_stop,
    .health = observability_health,
    .reload = observability_reload,
    .modules = modules,
    .serves_browsers = true,        /* the dashboard */
};
