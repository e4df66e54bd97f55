/*  query: the actions of the ErrorBus port (7003).  The union of what the
 *  originals answered (ErrorBusService: health_check, get_recent_errors,
 *  get_agent_health; EMS: heartbeat, get_system_status; UnifiedErrorAgent:
 *  report_error, get_error_stats) in their exact reply shapes, plus the
 *  queries the originals lacked (by agent, severity and time range, groups,
 *  correlations, statistics, alerts, quarantine, recovery history).
 *  Parameters sit under `data`, as in the originals; a parameter of the
 *  wrong type gets an error naming it, never a guess.  Every read goes to
 *  the database, so what a query shows is what survives a kill -9. */
#include "pycompat.h"
#include "bus.h"
#include "clock.h"
#include "names.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIMIT 10000

static json_t *fail(const char *fmt, const char *arg)
{
    return wire_error_key("message", fmt, arg);
}

static json_t *ok_data(json_t *data)
{
    if (!data)
        return wire_error_key("message", "%s", "database query failed");
    return json_pack("{s:s, s:o}", "status", "success", "data", data);
}

/* `data` of the request: an object, or an empty one when absent. */
static json_t *data_of(wire_request_t *req, json_t **error)
{
    json_t *data = json_object_get(req->body, "data");
    if (!data || json_is_null(data))
        return NULL;
    if (!json_is_object(data))
        *error = fail("%s must be an object", "data");
    return data;
}

static int limit_of(json_t *data, int fallback, json_t **error)
{
    json_t *v = json_object_get(data, "limit");
    if (!v || json_is_null(v))
        return fallback;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        *error = fail("%s must be a positive integer", "limit");
        return 0;
    }
    json_int_t n = json_integer_value(v);
    return n > MAX_LIMIT ? MAX_LIMIT : (int)n;
}

static const char *string_of(json_t *data, const char *key, json_t **error)
{
    json_t *v = json_object_get(data, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *error = fail("%s must be a string", key);
        return NULL;
    }
    return json_string_value(v);
}

/* A time bound: epoch seconds or an ISO-8601 string. */
static double time_of(json_t *data, const char *key, const char *alias, double fallback,
                      json_t **error)
{
    json_t *v = json_object_get(data, key);
    if (!v || json_is_null(v))
        v = json_object_get(data, alias);
    if (!v || json_is_null(v))
        return fallback;
    double t;
    if (json_is_number(v) && isfinite(json_number_value(v)))
        return json_number_value(v);
    if (json_is_string(v) && clock_parse_iso(json_string_value(v), &t) == 0)
        return t;
    *error = fail("%s must be epoch seconds or an ISO-8601 time", key);
    return fallback;
}

typedef struct {
    const char *agent, *level;
    double since, until;
    int limit;
    long after_id;
} filter_t;

static int filter_of(wire_request_t *req, filter_t *f, int default_limit, json_t **error)
{
    json_t *data = data_of(req, error);
    if (*error)
        return -1;
    f->agent = string_of(data, "agent", error);
    const char *severity = *error ? NULL : string_of(data, "severity", error);
    f->level = NULL;
    if (severity && !(f->level = normalise_level(severity)))
        *error = fail("Unknown severity: %s", severity);
    f->since = *error ? 0 : time_of(data, "since", "start", -1e300, error);
    f->until = *error ? 0 : time_of(data, "until", "end", 1e300, error);
    f->limit = *error ? 0 : limit_of(data, default_limit, error);
    json_t *after = json_object_get(data, "after_id");
    f->after_id = -1;
    if (!*error && after && !json_is_null(after)) {
        if (!json_is_integer(after))
            *error = fail("%s must be an integer", "after_id");
        else
            f->after_id = (long)json_integer_value(after);
    }
    return *error ? -1 : 0;
}

/* Two spellings of one filter: with an agent the condition is a plain
 * equality, so SQLite walks the (agent, timestamp) index instead of every
 * row; without one, ?1 is bound to null and the condition is always true. */
#define WHERE_REST " AND (?2 IS NULL OR level = ?2) AND timestamp >= ?3 AND timestamp <= ?4"
#define WHERE_AGENT " WHERE agent = ?1" WHERE_REST
#define WHERE_ANY " WHERE ?1 IS NULL" WHERE_REST

/* EB-16, EB-17: the ErrorBusService row shape, newest first. */
static json_t *on_recent(void *ctx, wire_request_t *req)
{
    bus_t *bus = ctx;
    json_t *error = NULL;
    filter_t f;
    if (filter_of(req, &f, 100, &error) < 0)
        return error;
#define RECENT "SELECT id, timestamp, agent, error_type, message, severity, context FROM errors"
    return ok_data(evstore_query(bus->store, f.agent
        ? RECENT WHERE_AGENT " ORDER BY timestamp DESC, id DESC LIMIT ?5"
        : RECENT WHERE_ANY " ORDER BY timestamp DESC, id DESC LIMIT ?5", "ssddi",
        f.agent, f.level, f.since, f.until, (long)f.limit));
}

#define FULL_COLUMNS "SELECT id, error_id, timestamp, received, agent, error_type, message," \
                     " severity, level, fingerprint, grouping_version, framing, context FROM errors"

static json_t *filtered(bus_t *bus, filter_t *f)
{
    if (f->after_id >= 0)
        return ok_data(evstore_query(bus->store, f->agent
            ? FULL_COLUMNS WHERE_AGENT " AND id > ?6 ORDER BY id LIMIT ?5"
            : FULL_COLUMNS WHERE_ANY " AND id > ?6 ORDER BY id LIMIT ?5", "ssddii",
            f->agent, f->level, f->since, f->until, (long)f->limit, f->after_id));
    return ok_data(evstore_query(bus->store, f->agent
        ? FULL_COLUMNS WHERE_AGENT " ORDER BY timestamp DESC, id DESC LIMIT ?5"
        : FULL_COLUMNS WHERE_ANY " ORDER BY timestamp DESC, id DESC LIMIT ?5", "ssddi",
        f->agent, f->level, f->since, f->until, (long)f->limit));
}

static json_t *on_errors(void *ctx, wire_request_t *req)
{
    json_t *error = NULL;
    filter_t f;
    if (filter_of(req, &f, 100, &error) < 0)
        return error;
    return filtered(ctx, &f);
}

static json_t *on_by_agent(void *ctx, wire_request_t *req)
{
    json_t *error = NULL;
    filter_t f;
    if (filter_of(req, &f, 100, &error) < 0)
        return error;
    if (!f.agent)
        return fail("Missing %s", "agent");
    return filtered(ctx, &f);
}

static json_t *on_by_severity(void *ctx, wire_request_t *req)
{
    json_t *error = NULL;
    filter_t f;
    if (filter_of(req, &f, 100, &error) < 0)
        return error;
    if (!f.level)
        return fail("Missing %s", "severity");
    return filtered(ctx, &f);
}

static json_t *on_by_time(void *ctx, wire_request_t *req)
{
    json_t *error = NULL;
    filter_t f;
    if (filter_of(req, &f, 100, &error) < 0)
        return error;
    if (f.since == -1e300 && f.until == 1e300)
        return fail("Missing %s", "since or until");
    return filtered(ctx, &f);
}

/* EB-14, EB-15: errors_collected is the row count the writer keeps (a
 * count(*) would rescan millions of rows on every health check), after a
 * probe query proves the table answers; -1 when it does not. */
static json_t *on_health_check(void *ctx, wire_request_t *req)
{
    (void)req;
    bus_t *bus = ctx;
    evstore_stats_t st;
    evstore_stats(bus->store, &st);
    double n = evstore_scalar(bus->store, -1, "SELECT count(*) FROM (SELECT 1 FROM errors LIMIT 1)",
                              "") < 0 ? -1 : (double)st.total;
    return json_pack("{s:s, s:{s:s, s:f, s:I, s:s}}", "status", "success", "data",
                     "status", "ok", "uptime", service_uptime(bus->svc),
                     "errors_collected", (json_int_t)n, "db_path", evstore_path(bus->store));
}

/* EB-18 */
static json_t *on_agent_health(void *ctx, wire_request_t *req)
{
    (void)req;
    bus_t *bus = ctx;
    return ok_data(evstore_query(bus->store, "SELECT id, agent, status, last_heartbeat,"
                                 " error_count FROM agent_health ORDER BY last_heartbeat DESC", ""));
}

/* EB-23: the agent name is nested under data, as EMS had it. */
static json_t *on_heartbeat(void *ctx, wire_request_t *req)
{
    bus_t *bus = ctx;
    json_t *error = NULL;
    json_t *data = data_of(req, &error);
    if (error)
        return error;
    const char *name = string_of(data, "agent_name", &error);
    if (error)
        return error;
    if (!name || !*name)
        return fail("Missing %s", "agent_name");
    if (recovery_heartbeat(bus->recovery, name) < 0)
        return fail("%s", "Too many agents registered");
    return json_pack("{s:s, s:s}", "status", "success", "message", "Heartbeat received.");
}

/* EB-24 */
static json_t *on_system_status(void *ctx, wire_request_t *req)
{
    (void)req;
    bus_t *bus = ctx;
    json_t *recent = evstore_query(bus->store, "SELECT error_id, source, error_type, message,"
                                   " severity, timestamp, details FROM error_log"
                                   " ORDER BY timestamp DESC LIMIT 20", "");
    if (!recent)
        return fail("%s", "database query failed");
    return json_pack("{s:s, s:o, s:o}", "status", "success", "agents",
                     recovery_agents(bus->recovery), "recent_errors", recent);
}

/* EB-50: UnifiedErrorAgent's report_error (fields at the top level, or
 * BaseAgent's {"error": ErrorReport}).  Acknowledged only once stored. */
static json_t *on_report_error(void *ctx, wire_request_t *req)
{
    bus_t *bus = ctx;
    json_t *payload = json_object_get(req->body, "error");
    if (!json_is_object(payload))
        payload = req->body;
    char reason[128];
    event_t *e = normalise_payload(payload, FRAMING_REQUEST, clock_wall(), "low",
                                   reason, sizeof reason);
    if (!e)
        return fail("%s", reason);
    char why[256];
    if (names_refuse(bus->svc->metrics, "errorbus", "agent", e->agent, why, sizeof why)) {
        event_destroy(&e);
        return fail("%s", why);
    }
    json_t *id = json_string(e->error_id);      /* the store takes the event */
    if (evstore_submit_wait(bus->store, e, 5000, why, sizeof why) < 0) {
        json_decref(id);
        return fail("Error could not be stored: %s", why);
    }
    return json_pack("{s:s, s:s, s:o}", "status", "success",
                     "message", "Error reported successfully", "error_id", id);
}

static const char *rank_word(json_int_t rank)
{
    static const char *words[] = { "low", "low", "medium", "high", "critical" };
    return rank >= 0 && rank <= 4 ? words[rank] : "low";
}

/* EB-51: over the newest 1000 events, as the original's capped history. */
static json_t *on_error_stats(void *ctx, wire_request_t *req)
{
    (void)req;
    bus_t *bus = ctx;
    json_t *rows = evstore_query(bus->store,
        "SELECT error_type, count(*) AS count, max(timestamp) AS last,"
        " max(CASE level WHEN 'critical' THEN 4 WHEN 'error' THEN 3 WHEN 'warning' THEN 2"
        " ELSE 1 END) AS rank FROM (SELECT error_type, timestamp, level FROM errors"
        " ORDER BY id DESC LIMIT 1000) GROUP BY error_type", "");
    json_t *recent = evstore_query(bus->store,
        "SELECT error_type AS type, message, severity, timestamp, agent AS source, context AS details"
        " FROM errors ORDER BY id DESC LIMIT 10", "");
    if (!rows || !recent) {
        json_decref(rows);
        json_decref(recent);
        return fail("%s", "database query failed");
    }
    json_t *patterns = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        char iso[40];
        clock_iso_local(json_number_value(json_object_get(row, "last")), iso, sizeof iso);
        json_object_set_new(patterns, json_string_value(json_object_get(row, "error_type")) ?: "",
                            json_pack("{s:O, s:s, s:s}", "count", json_object_get(row, "count"),
                                      "last_occurrence", iso, "severity",
                                      rank_word(json_integer_value(json_object_get(row, "rank")))));
    }
    json_decref(rows);
    json_array_foreach(recent, i, row) {
        char iso[40];
        clock_iso_local(json_number_value(json_object_get(row, "timestamp")), iso, sizeof iso);
        json_object_set_new(row, "timestamp", json_string(iso));
    }
    evstore_stats_t st;
    evstore_stats(bus->store, &st);
    return json_pack("{s:s, s:o, s:I, s:o}", "status", "success", "error_patterns", patterns,
                     "total_errors", (json_int_t)st.total, "recent_errors", recent);
}

static json_t *on_groups(void *ctx, wire_request_t *req)
{
    bus_t *bus = ctx;
    json_t *error = NULL;
    json_t *data = data_of(req, &error);
    int limit = error ? 0 : limit_of(data, 50, &error);
    json_t *across = json_object_get(data, "across_sources");
    if (!error && across && !json_is_boolean(across))
        error = fail("%s must be true or false", "across_sources");
    if (error)
        return error;
    if (json_is_true(across))
        return ok_data(evstore_query(bus->store,
            "SELECT signature, error_type, pattern, sum(count) AS count, count(*) AS sources,"
            " group_concat(agent, ',') AS agents, min(first_seen) AS first_seen,"
            " max(last_seen) AS last_seen, max(grouping_version) AS grouping_version"
            " FROM error_groups GROUP BY signature ORDER BY count DESC, last_seen DESC LIMIT ?",
            "i", (long)limit));
    return ok_data(evstore_query(bus->store,
        "SELECT fingerprint, signature, grouping_version, agent, error_type, pattern, sample,"
        " level, count, first_seen, last_seen FROM error_groups"
        " ORDER BY count DESC, last_seen DESC LIMIT ?", "i", (long)limit));
}

/* A table's newest rows: correlations, alerts, quarantine, recovery. */
static json_t *newest(wire_request_t *req, bus_t *bus, const char *sql)
{
    json_t *error = NULL;
    json_t *data = data_of(req, &error);
    int limit = error ? 0 : limit_of(data, 100, &error);
    if (error)
        return error;
    return ok_data(evstore_query(bus->store, sql, "i", (long)limit));
}

static json_t *on_correlations(void *ctx, wire_request_t *req)
{
    return newest(req, ctx, "SELECT * FROM correlations ORDER BY id DESC LIMIT ?");
}

static json_t *on_alerts(void *ctx, wire_request_t *req)
{
    return newest(req, ctx, "SELECT * FROM alerts ORDER BY id DESC LIMIT ?");
}

static json_t *on_quarantine(void *ctx, wire_request_t *req)
{
    return newest(req, ctx, "SELECT * FROM quarantine ORDER BY id DESC LIMIT ?");
}

static json_t *on_recovery_actions(void *ctx, wire_request_t *req)
{
    return newest(req, ctx, "SELECT * FROM recovery_actions ORDER BY timestamp DESC LIMIT ?");
}

static int by_last_minute(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "last_minute"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "last_minute"));
    return (y > x) - (y < x);
}

/* Counters of the pipeline, events per level over the last hour, and the
 * error rate of each agent over the last minute and five minutes (events
 * per minute), by the time the bus stored them. */
static json_t *on_statistics(void *ctx, wire_request_t *req)
{
    (void)req;
    bus_t *bus = ctx;
    double now = clock_wall();
    evstore_stats_t st;
    evstore_stats(bus->store, &st);
    json_t *levels = evstore_rates(bus->store, RATES_LEVEL, now, 3600);
    json_t *minute = evstore_rates(bus->store, RATES_AGENT, now, 60);
    json_t *five = evstore_rates(bus->store, RATES_AGENT, now, 300);
    json_t *by_level = json_object();
    const char *key;
    json_t *row;
    json_object_foreach(levels, key, row)
        json_object_set(by_level, key, json_object_get(row, "count"));
    size_t n = 0;
    json_t **items = malloc((json_object_size(five) + 1) * sizeof *items);
    json_object_foreach(five, key, row) {
        json_int_t last = json_integer_value(json_object_get(json_object_get(minute, key), "count"));
        items[n++] = json_pack("{s:s, s:I, s:f}", "agent", key, "last_minute", last,
                               "per_minute_5m",
                               (double)json_integer_value(json_object_get(row, "count")) / 5.0);
    }
    qsort(items, n, sizeof *items, by_last_minute);
    json_t *rates = json_array();
    for (size_t i = 0; i < n; i++) {
        if (i < 100)
            json_array_append(rates, items[i]);
        json_decref(items[i]);
    }
    free(items);
    json_decref(levels);
    json_decref(minute);
    json_decref(five);
    json_t *data = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I}",
        "received", (json_int_t)ingress_received(bus->ingress), "stored", (json_int_t)st.stored,
        "total", (json_int_t)st.total, "queued", (json_int_t)st.queued,
        "dropped", (json_int_t)st.dropped, "quarantined", (json_int_t)st.quarantined,
        "duplicates", (json_int_t)st.duplicates, "write_failed", (json_int_t)st.write_failed,
        "batches", (json_int_t)st.batches, "by_level_last_hour", by_level,
        "error_rates", rates, "recovery_queue", (json_int_t)recovery_queue_length(bus->recovery),
        "investigations", (json_int_t)analysis_investigations(bus->analysis));
    if (bus->nats)
        json_object_set_new(data, "nats", natsbridge_status(bus->nats));
    return ok_data(data);
}

/* EB-19: ErrorBusService's words, with `message` rather than `error`. */
static json_t *on_unknown(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return pycompat_unknown_action(json_object_get(req->body, "action"), "message", "None");
}

#define EBS "ErrorBusService"
#define EMS "ErrorManagementSystem"

/* Reads are public (errors themselves arrive on the PUB/SUB ingress, which
 * has no routes).  The two writes on this port: */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "health_check", on_health_check, EBS, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_recent_errors", on_recent, EBS, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_agent_health", on_agent_health, EBS, ROUTE_PUBLIC },
    /* no kept agent sends it (only Error_Management_System.py, absorbed, handles it) */
    { WIRE_ACTION, "heartbeat", on_heartbeat, EMS, ROUTE_ADMIN },
    { WIRE_ACTION, "get_system_status", on_system_status, EMS, ROUTE_PUBLIC },
    /* sent by main_pc_code/agents/translation_service.py (to UnifiedErrorAgent) */
    { WIRE_ACTION, "report_error", on_report_error, "UnifiedErrorAgent", ROUTE_AGENT },
    { WIRE_ACTION, "get_error_stats", on_error_stats, "UnifiedErrorAgent", ROUTE_PUBLIC },
    { WIRE_ACTION, "get_errors", on_errors, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_errors_by_agent", on_by_agent, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_errors_by_severity", on_by_severity, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_errors_by_time_range", on_by_time, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_error_groups", on_groups, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_correlations", on_correlations, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_statistics", on_statistics, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_alerts", on_alerts, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_quarantine", on_quarantine, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_recovery_actions", on_recovery_actions, NULL, ROUTE_PUBLIC },
    { 0 },
};

void query_attach(bus_t *bus, wire_server_t *wire)
{
    wire_server_attach(wire, routes, bus);
    wire_server_on_unknown(wire, on_unknown, bus);
}
