/*  dashboard: see dashboard.h.
 *
 *  The page polls /api/dashboard every second.  Every viewer of that
 *  second gets the same document: it is built at most once a second (the
 *  first viewer builds it under the refresh lock while the others wait
 *  for that build, not for one of their own), so a room full of viewers
 *  never multiplies the calls to the other services nor the rendering of
 *  a thousand agents.  The other services are asked with a 300 ms budget
 *  for all of them together (dashpeers.h); one that does not answer is
 *  shown as unavailable and never breaks the page.
 *
 *  The hub's stop hook tears down what it made and knows nothing of the
 *  dashboard, so the dashboard's state is one static record per process
 *  (keeld runs one hub): a restarted hub rebinds it to its new parts, and
 *  there is nothing to free.  The HTTP server is stopped before the hub's
 *  parts are destroyed, so no request can use them after that. */
#include "dashboard.h"
#include "agentstate.h"
#include "clock.h"
#include "dashpeers.h"
#include "log.h"
#include "web_assets.h"
#include "wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_TIMEOUT_MS 300
#define ACTION_TIMEOUT_MS 2000
#define CACHE_S 1.0
#define FEED_ERRORS 100

typedef struct {
    service_t *svc;
    fleet_t *fleet;
    alerting_t *alerts;
    hubdb_t *db;
    history_t *history;
    pthread_mutex_t refresh;        /* one build at a time; guards the cache */
    char *document;                 /* the last /api/dashboard body */
    double built_at;                /* monotonic */
} dashboard_t;

static dashboard_t board = { .refresh = PTHREAD_MUTEX_INITIALIZER };

enum { CORE = 7000, RESOURCE = 7001, ERRORBUS = 7003, SECURITY = 7005 };

/* ---- the page ------------------------------------------------------------ */

static const web_asset_t *asset_for(const char *path)
{
    if (!strcmp(path, "/"))
        path = "/index.html";
    else if (!strcmp(path, "/favicon.ico"))
        path = "/favicon.svg";
    else if (!strncmp(path, "/ui/", 4))
        path += 3;
    for (const web_asset_t *a = web_assets; a->path; a++)
        if (!strcmp(a->path, path))
            return a;
    return NULL;
}

static void http_asset(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)ctx;
    const web_asset_t *a = asset_for(req->path);
    if (!a) {
        http_reply_json(reply, 404, json_pack("{s:s, s:s}", "status", "error", "error", "Not found"));
        return;
    }
    free(reply->body);
    reply->body = malloc(a->len + 1);
    memcpy(reply->body, a->data, a->len + 1);
    reply->body_len = a->len;
    reply->content_type = a->content_type;
    reply->status = 200;
}

/* ---- the fleet, worst first ------------------------------------------------ */

static int worst_first(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    int ra = agentstate_rank(agentstate_from_name(json_string_value(json_object_get(a, "state"))));
    int rb = agentstate_rank(agentstate_from_name(json_string_value(json_object_get(b, "state"))));
    if (ra != rb)
        return ra - rb;
    double fa = json_number_value(json_object_get(a, "failure_probability"));
    double fb = json_number_value(json_object_get(b, "failure_probability"));
    if (fa != fb)
        return fa < fb ? 1 : -1;
    return strcmp(json_string_value(json_object_get(a, "name")),
                  json_string_value(json_object_get(b, "name")));
}

/* One row: the hub's record without the probe's reply details. */
static json_t *fleet_row(agent_t *a)
{
    json_t *row = fleet_agent_record(a);
    json_object_del(row, "details");
    json_object_set_new(row, "name", json_string(a->name));
    json_object_set_new(row, "host", json_string(a->host));
    json_object_set_new(row, "port", json_integer(a->port));
    json_object_set_new(row, "state_since", json_real(a->state_since));
    return row;
}

static json_t *fleet_rows(fleet_t *fleet)
{
    fleet_lock(fleet);
    size_t n = fleet_count(fleet), k = 0;
    json_t **rows = malloc((n + 1) * sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        agent_t *a = fleet_agent(fleet, i);
        if (a && !a->removed)
            rows[k++] = fleet_row(a);
    }
    fleet_unlock(fleet);
    qsort(rows, k, sizeof *rows, worst_first);
    json_t *array = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(array, rows[i]);
    free(rows);
    return array;
}

/* ---- the other services ------------------------------------------------------ */

typedef struct {
    const char *service, *key;
    int port;
    const char *request;
} question_t;

static const question_t questions[] = {
    { "resource", "status", RESOURCE, "{\"action\":\"get_status\"}" },
    { "resource", "vram", RESOURCE, "{\"command\":\"GET_VRAM_STATUS\"}" },
    { "resource", "policy", RESOURCE, "{\"action\":\"get_vram_policy\"}" },
    { "resource", "tasks", RESOURCE, "{\"action\":\"list_tasks\",\"limit\":20}" },
    { "errorbus", "errors", ERRORBUS, "{\"action\":\"get_errors\",\"data\":{\"limit\":100}}" },
    { "errorbus", "groups", ERRORBUS, "{\"action\":\"get_error_groups\",\"data\":{\"limit\":20}}" },
    { "errorbus", "correlations", ERRORBUS, "{\"action\":\"get_correlations\",\"data\":{\"limit\":20}}" },
    { "errorbus", "statistics", ERRORBUS, "{\"action\":\"get_statistics\"}" },
    { "core", "health", CORE, "{\"action\":\"health\"}" },
    { "core", "agents", CORE, "{\"action\":\"get_agent_status\"}" },
    { "security", "health", SECURITY, "{\"action\":\"health\"}" },
    { "security", "scores", SECURITY, "{\"action\":\"get_agent_scores\"}" },
    { "security", "counters", SECURITY, "{\"action\":\"get_security_counters\"}" },
};
#define QUESTIONS (sizeof questions / sizeof questions[0])

/* {service: {available, error?, <key>: reply|null, ...}} */
static json_t *ask_services(config_t *config)
{
    dashpeer_call_t calls[QUESTIONS];
    for (size_t i = 0; i < QUESTIONS; i++)
        calls[i] = (dashpeer_call_t){ .port = questions[i].port,
                                      .request = json_loads(questions[i].request, 0, NULL) };
    dashpeers_call(config, calls, QUESTIONS, PEER_TIMEOUT_MS);
    json_t *services = json_object();
    for (size_t i = 0; i < QUESTIONS; i++) {
        json_t *svc = json_object_get(services, questions[i].service);
        if (!svc) {
            svc = json_pack("{s:b}", "available", 0);
            json_object_set_new(services, questions[i].service, svc);
        }
        if (calls[i].reply)
            json_object_set_new(svc, "available", json_true());
        else
            json_object_set_new(svc, "error", json_string(calls[i].error));
        json_object_set_new(svc, questions[i].key, calls[i].reply ? calls[i].reply : json_null());
    }
    return services;
}

/* CoreOrchestrator runs an agent when its get_agent_status entry has a
 * process: only such an agent can be restarted from the page.  Without
 * CoreOrchestrator's answer no agent is. */
static bool supervised(json_t *core_agents, const char *name)
{
    return json_object_get(json_object_get(json_object_get(core_agents, "agents"), name), "process") != NULL;
}

static char *build_document(dashboard_t *self)
{
    char ts[40];
    double sweep_s;
    long sweeps;
    fleet_sweep_stats(self->fleet, &sweep_s, &sweeps);
    json_t *services = ask_services(self->svc->config);
    json_t *core_agents = json_object_get(json_object_get(services, "core"), "agents");
    json_t *rows = fleet_rows(self->fleet);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
        json_object_set_new(row, "supervised", json_boolean(supervised(core_agents,
                            json_string_value(json_object_get(row, "name")))));
    json_t *doc = json_pack("{s:s, s:f, s:o, s:o, s:o, s:o, s:{s:f, s:I}}",
        "generated_at", clock_iso_local(clock_wall(), ts, sizeof ts), "generated_ts", clock_wall(),
        "fleet", rows, "machines", fleet_machines(self->fleet),
        "alerts", alerting_view(self->alerts), "services", services,
        "hub", "last_sweep_s", sweep_s, "sweeps", (json_int_t)sweeps);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void http_dashboard(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    dashboard_t *self = ctx;
    pthread_mutex_lock(&self->refresh);
    if (!self->document || clock_mono() - self->built_at >= CACHE_S) {
        char *fresh = build_document(self);
        if (fresh) {
            free(self->document);
            self->document = fresh;
            self->built_at = clock_mono();
        }
    }
    char *copy = self->document ? strdup(self->document) : NULL;
    pthread_mutex_unlock(&self->refresh);
    if (!copy) {
        http_reply_json(reply, 500, json_pack("{s:s, s:s}", "status", "error", "error",
                                              "cannot build the dashboard"));
        return;
    }
    free(reply->body);
    reply->body = copy;
    reply->body_len = strlen(copy);
    reply->content_type = "application/json";
    reply->status = 200;
}

/* ---- one agent ---------------------------------------------------------------- */

/* The samples agents logged with log_metric, stored in perf_samples:
 * {metric_type: [[unix s, value], ...]} oldest first. */
static json_t *stored_series(hubdb_t *db, const char *name)
{
    json_t *series = json_object();
    hubdb_lock(db);
    sqlite3_stmt *st = store_prepare(db->store,
        "SELECT metric_type, value, ts FROM (SELECT metric_type, value, ts, id FROM perf_samples"
        " WHERE service = ?1 ORDER BY id DESC LIMIT 600) ORDER BY id");
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *type = (const char *)sqlite3_column_text(st, 0);
            json_t *points = json_object_get(series, type ? type : "");
            if (!points) {
                points = json_array();
                json_object_set_new(series, type ? type : "", points);
            }
            json_array_append_new(points, json_pack("[f,f]", sqlite3_column_double(st, 2),
                                                    sqlite3_column_double(st, 1)));
        }
        sqlite3_reset(st);
    }
    hubdb_unlock(db);
    return series;
}

static json_t *recovery_rows(hubdb_t *db, const char *name)
{
    json_t *rows = json_array();
    hubdb_lock(db);
    sqlite3_stmt *st = store_prepare(db->store,
        "SELECT action_type, success, error_message, timestamp FROM recovery_actions"
        " WHERE agent_name = ?1 ORDER BY id DESC LIMIT 50");
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *error = (const char *)sqlite3_column_text(st, 2);
            const char *ts = (const char *)sqlite3_column_text(st, 3);
            json_array_append_new(rows, json_pack("{s:s, s:b, s:s?, s:s}",
                "action", (const char *)sqlite3_column_text(st, 0), "success", sqlite3_column_int(st, 1),
                "error", error, "timestamp", ts ? ts : ""));
        }
        sqlite3_reset(st);
    }
    hubdb_unlock(db);
    return rows;
}

static void http_agent(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    dashboard_t *self = ctx;
    const char *name = http_query(req, "name");
    if (!name || !*name) {
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "error", "Missing name"));
        return;
    }
    fleet_lock(self->fleet);
    agent_t *a = fleet_find(self->fleet, name);
    json_t *record = a ? fleet_row(a) : NULL;
    fleet_unlock(self->fleet);
    if (!record) {
        http_reply_json(reply, 404, json_pack("{s:s, s:s}", "status", "error", "error", "Unknown agent"));
        return;
    }
    dashpeer_call_t calls[2] = {
        { .port = ERRORBUS, .request = json_pack("{s:s, s:{s:s, s:i}}", "action", "get_errors_by_agent",
                                                 "data", "agent", name, "limit", 50) },
        { .port = CORE, .request = json_pack("{s:s}", "action", "get_agent_status") },
    };
    dashpeers_call(self->svc->config, calls, 2, PEER_TIMEOUT_MS);
    json_t *errors = json_object_get(calls[0].reply, "data");
    json_t *process = json_object_get(json_object_get(json_object_get(calls[1].reply, "agents"), name),
                                      "process");
    json_object_set_new(record, "supervised", json_boolean(process != NULL));
    json_t *doc = json_pack("{s:s, s:o, s:o, s:o, s:o, s:O?, s:O?, s:s?}", "status", "success",
        "agent", record, "series", stored_series(self->db, name),
        "events", hubdb_events(self->db, name, 50), "recovery", recovery_rows(self->db, name),
        "errors", errors, "process", process,
        "errors_unavailable", calls[0].reply ? NULL : calls[0].error);
    json_decref(calls[0].reply);
    json_decref(calls[1].reply);
    http_reply_json(reply, 200, doc);
}

/* ---- charts ------------------------------------------------------------------------ */

/* GET /api/history?range=15m|1h|24h[&agent=NAME]: one agent's probe
 * latency and failures, or (without agent) Keel's services and ErrorBus's
 * events by level, as stored by history.c. */
static void http_history(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    dashboard_t *self = ctx;
    static const struct { const char *word; double seconds; } ranges[] = {
        { "15m", 900 }, { "1h", 3600 }, { "24h", 86400 },
    };
    const char *word = http_query(req, "range");
    double range_s = 0;
    for (size_t i = 0; i < 3; i++)
        if (word && !strcmp(word, ranges[i].word))
            range_s = ranges[i].seconds;
    const char *agent = http_query(req, "agent");
    if (!range_s || (agent && (!*agent || strlen(agent) > 200))) {
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "error",
                                              "range must be 15m, 1h or 24h, agent a name"));
        return;
    }
    char names[KEELSTATS_SERVICES * KEELSTATS_FIGURES + KEELSTATS_LEVELS][256];
    const char *list[KEELSTATS_SERVICES * KEELSTATS_FIGURES + KEELSTATS_LEVELS];
    size_t n = 0;
    if (agent) {
        for (size_t k = 0; k < HISTORY_AGENT_FIGURES; k++)
            snprintf(names[n++], sizeof names[0], "agent/%s/%s", agent, history_agent_figures[k]);
    } else {
        for (size_t i = 0; i < KEELSTATS_SERVICES; i++)
            for (size_t k = 0; k < KEELSTATS_FIGURES; k++)
                snprintf(names[n++], sizeof names[0], "service/%s/%s", keelstats_services[i],
                         keelstats_figures[k]);
        for (size_t i = 0; i < KEELSTATS_LEVELS; i++)
            snprintf(names[n++], sizeof names[0], "errorbus/%s/per_min", keelstats_levels[i]);
    }
    for (size_t i = 0; i < n; i++)
        list[i] = names[i];
    double now = clock_wall(), step_s;
    json_t *series = history_query(self->history, list, n, range_s, now, &step_s);
    http_reply_json(reply, 200, json_pack("{s:s, s:f, s:f, s:f, s:o}", "status", "success",
                                          "now", now, "range_s", range_s, "step_s", step_s,
                                          "series", series));
}

/* ---- actions (an administrator's routes) --------------------------------------- */

static json_t *body_object(const http_request_t *req, http_reply_t *reply)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "error",
                                              "request body must be a JSON object"));
        return NULL;
    }
    return body;
}

/* CoreOrchestrator runs the agents it supervises, so it restarts them;
 * the attempt is recorded with the hub's recovery actions. */
static void http_restart(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    dashboard_t *self = ctx;
    json_t *body = body_object(req, reply);
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "agent_name"));
    if (!name || !*name || strlen(name) > 200) {
        json_decref(body);
        http_reply_json(reply, 400, json_pack("{s:s, s:s}", "status", "error", "error",
                                              "agent_name must be a non-empty string"));
        return;
    }
    char endpoint[256], err[128];
    config_local_endpoint(self->svc->config, CORE, endpoint, sizeof endpoint);
    /* The operator's own token: CoreOrchestrator checks it again. */
    json_t *request = json_pack("{s:s, s:s, s:s}", "action", "restart_agent", "agent_name", name,
                                "auth_token", req->bearer);
    json_t *answer = wire_call(endpoint, request, ACTION_TIMEOUT_MS, 0, err, sizeof err);
    json_decref(request);
    const char *status = json_string_value(json_object_get(answer, "status"));
    bool ok = status && !strcmp(status, "success");
    const char *why = answer ? json_string_value(json_object_get(answer, "error")) : err;
    if (!why)
        why = json_string_value(json_object_get(answer, "message"));
    hubdb_recovery_action(self->db, name, "dashboard_restart", ok, ok ? NULL : why);
    log_info("observability", "dashboard: restart of %s %s", name, ok ? "requested" : "refused");
    json_decref(body);
    if (!answer)
        http_reply_json(reply, 502, json_pack("{s:s, s:s+}", "status", "error", "error",
                                              "CoreOrchestrator: ", err));
    else
        http_reply_json(reply, ok ? 200 : 400, answer);
}

static void http_ack(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    dashboard_t *self = ctx;
    json_t *body = body_object(req, reply);
    if (!body)
        return;
    const char *why = NULL;
    json_t *result = alerting_acknowledge(self->alerts, body, &why);
    json_decref(body);
    if (result)
        http_reply_json(reply, 200, result);
    else
        http_reply_json(reply, 404, json_pack("{s:s, s:s}", "status", "error", "error",
                                              why ? why : "No such alert"));
}

/* The page, its data and its charts are public; restarting an agent and
 * acknowledging an alert are an operator's, with the same token on the wire. */
static const http_route_t routes[] = {
    { "GET", "/", http_asset, ROUTE_PUBLIC, 0 },
    { "GET", "/ui/*", http_asset, ROUTE_PUBLIC, 0 },
    { "GET", "/favicon.ico", http_asset, ROUTE_PUBLIC, 0 },
    { "GET", "/api/history", http_history, ROUTE_PUBLIC, 0 },
    { "GET", "/api/dashboard", http_dashboard, ROUTE_PUBLIC, 0 },
    { "GET", "/api/agent", http_agent, ROUTE_PUBLIC, 0 },
    { "POST", "/api/restart", http_restart, ROUTE_ADMIN, 0 },
    { "POST", "/api/ack", http_ack, ROUTE_ADMIN, 0 },
    { 0 },
};

void dashboard_attach(service_t *svc, fleet_t *fleet, alerting_t *alerts, hubdb_t *db,
                      history_t *history)
{
    dashboard_t *self = &board;
    pthread_mutex_lock(&self->refresh);
    self->svc = svc;
    self->fleet = fleet;
    self->alerts = alerts;
    self->db = db;
    self->history = history;
    free(self->document);
    self->document = NULL;
    pthread_mutex_unlock(&self->refresh);
    httpd_attach(svc->http, routes, self);
}
