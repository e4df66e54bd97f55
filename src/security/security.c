/*  security: the SecurityGateway service.  It hosts AuthenticationAgent
 *  (auth.c) and AgentTrustScorer (trust.c) on one port, 7005, and with
 *  legacy_ports also on their old ports 7116 and 7122.  Handlers run on
 *  four workers: an Argon2id login takes tens of milliseconds and must not
 *  hold up the token validations other services make on every request.
 *
 *  The sweeper, a ticker (actor.h), runs every sweep_interval_s (300 s, the
 *  original's cleanup period) to delete expired sessions and stale lockout
 *  rows, and to checkpoint the databases. */
#include "pycompat.h"
#include "security.h"
#include "clock.h"
#include "gateway.h"
#include "log.h"
#include "sessions.h"
#include "token.h"
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 4

static void gateway_config(gateway_t *gw, config_t *c)
{
    gw->pw.opslimit = (unsigned long long)config_int(c, "security.argon2.opslimit", 3);
    gw->pw.memlimit = (size_t)config_int(c, "security.argon2.memlimit_kib", 65536) * 1024;
    if (gw->pw.opslimit < crypto_pwhash_OPSLIMIT_MIN)
        gw->pw.opslimit = crypto_pwhash_OPSLIMIT_MIN;
    if (gw->pw.memlimit < crypto_pwhash_MEMLIMIT_MIN)
        gw->pw.memlimit = crypto_pwhash_MEMLIMIT_MIN;
    gw->lockout.failures = (int)config_int(c, "security.lockout.failures", 5);
    gw->lockout.source_failures = (int)config_int(c, "security.lockout.source_failures",
                                                  4 * gw->lockout.failures);
    gw->lockout.window_s = config_double(c, "security.lockout.window_s", 900);
    gw->lockout.base_lock_s = config_double(c, "security.lockout.base_lock_s", 60);
    gw->lockout.max_lock_s = config_double(c, "security.lockout.max_lock_s", 86400);
    gw->session_ttl_s = config_double(c, "security.session_ttl_s", 86400);
    gw->max_sessions = (int)config_int(c, "security.max_sessions_per_user", 20);
    gw->allow_registration = config_bool(c, "security.allow_registration", false);
    gw->sweep_interval_s = config_double(c, "security.sweep_interval_s", 300);
    gw->max_user_len = (size_t)config_int(c, "security.max_user_id_bytes", 128);
    gw->max_password_len = (size_t)config_int(c, "security.max_password_bytes", 1024);
}

/* ---- the sweeper --------------------------------------------------------- */

static void sweep_once(void *arg)
{
    gateway_t *gw = arg;
    double now = clock_wall();
    pthread_mutex_lock(&gw->db_lock);
    int removed = sessions_sweep(gw->sessions, now);
    int rows = lockout_sweep(gw->db, &gw->lockout, now);
    store_maintain(gw->db);
    pthread_mutex_unlock(&gw->db_lock);
    if (removed < 0 || rows < 0)
        monitor_error(gw->monitor, "CLEANUP_ERROR", "the session sweep failed");
    else if (removed > 0)
        log_info("security", "%d expired session(s) removed", removed);
}

/* ---- replies in the agents' words ------------------------------------ */

/* AuthenticationAgent's unknown action: "message" key, "" for a missing action;
 * AgentTrustScorer (ctx set) printed a missing action as None. */
static json_t *on_unknown(void *ctx, wire_request_t *req)
{
    return pycompat_unknown_action(json_object_get(req->body, "action"), "message", ctx ? "None" : "");
}

/* A frame that is not JSON: the agent's run() loop answered it. */
static json_t *on_raw(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    if (wire_is_raw_ping(req->raw, req->raw_len))
        return service_health_reply(gw->svc, req, NULL, NULL);
    char labels[96];
    metrics_labels(labels, sizeof labels, "service", "security", "reason", "invalid_json", NULL);
    metrics_add(gw->svc->metrics, "keel_bad_requests_total", labels, 1);
    monitor_error(gw->monitor, "PROCESSING_ERROR", "a request that is not JSON was refused");
    return wire_error_key("message", "Internal server error: Invalid JSON request");
}

static void add_health(gateway_t *gw, json_t *dict)
{
    long sessions = sessions_active(gw->sessions, clock_wall());
    pthread_mutex_lock(&gw->db_lock);
    long users = users_count(gw->db);
    pthread_mutex_unlock(&gw->db_lock);
    json_object_set_new(dict, "agent_type", json_string("authentication"));
    json_object_set_new(dict, "active_sessions", json_integer(sessions));
    json_object_set_new(dict, "registered_users", json_integer(users));
    json_object_set_new(dict, "cleanup_thread_alive", json_boolean(actor_running(gw->sweeper)));
    json_object_set_new(dict, "uptime_seconds", json_real(service_uptime(gw->svc)));
}

static void security_health(service_t *svc, json_t *dict)
{
    if (svc->impl)
        add_health(svc->impl, dict);
}

/* health_check: AuthenticationAgent's fields plus AgentTrustScorer's. */
static json_t *on_health_check(void *ctx, wire_request_t *req)
{
    (void)req;
    gateway_t *gw = ctx;
    json_t *dict = service_health(gw->svc);
    json_object_set_new(dict, "service", json_string("AgentTrustScorer"));
    json_object_set_new(dict, "additional_info", json_object());
    return dict;
}

/* The figures the dashboard shows, asked over the wire rather than read
 * out of /metrics text. */
static json_t *on_counters(void *ctx, wire_request_t *req)
{
    (void)req;
    return monitor_counters(((gateway_t *)ctx)->monitor);
}

/* POST /jwt/rotate (administrators): a new signing key, the previous one
 * still accepted, for rotation without downtime. */
static void on_http_rotate(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    gateway_t *gw = ctx;
    if (token_keys_rotate(gw->svc->config) < 0) {
        http_reply_json(reply, 500, json_pack("{s:s, s:s}", "status", "error", "error", "cannot rotate the key"));
        return;
    }
    http_reply_json(reply, 200, json_pack("{s:s, s:s}", "status", "success", "message", "Signing key rotated"));
}

/* ---- lifecycle ---------------------------------------------------------- */

static const wire_route_t routes[] = {
    { WIRE_ACTION, "health_check", on_health_check, NULL, ROUTE_PUBLIC },
    /* Public: the same counts are on the public /metrics, and anyone who
     * can connect may read what a dashboard shows (docs/reliability.md). */
    { WIRE_ACTION, "get_security_counters", on_counters, NULL, ROUTE_PUBLIC },
    { WIRE_RAW, NULL, on_raw, NULL, ROUTE_PUBLIC },             /* a ping, or an error */
    { 0 },
};

static const http_route_t http_routes[] = {
    { "POST", "/jwt/rotate", on_http_rotate, ROUTE_ADMIN, 0 },
    { 0 },
};

/* An administrator's token, checked against this service's own tables: a
 * wire call to itself from its own workers could wait on itself. */
static bool is_admin(void *ctx, const char *token)
{
    return auth_is_admin(ctx, token);
}

static void attach_routes(gateway_t *gw, service_t *svc)
{
    wire_server_t *wire = svc->wire;
    wire_server_set_workers(wire, WORKERS);
    wire_server_set_max_request(wire, (size_t)config_int(svc->config, "security.max_request_bytes", 65536));
    privilege_set_admin_check(svc->privilege, is_admin, gw);
    /* AuthenticationAgent printed a missing action as nothing, the trust
     * scorer as None (the ctx tells them apart). */
    wire_server_on_unknown(wire, on_unknown, NULL);
    wire_server_on_module_unknown(wire, "AgentTrustScorer", on_unknown, gw);
    wire_server_attach(wire, routes, gw);
    wire_server_answer_inline(wire, WIRE_RAW, NULL);      /* raw pings: health from its cache */
    auth_attach(gw, wire);
    accounts_attach(gw, wire);
    trust_attach(gw->trust, wire);
    httpd_attach(svc->http, http_routes, gw);
}

static int open_stores(gateway_t *gw)
{
    char path[4200], err[256];
    gw->db = users_open(service_path(gw->svc, "security.db", path, sizeof path), err, sizeof err);
    if (!gw->db) {
        log_error("security", "cannot open %s: %s", path, err);
        return -1;
    }
    gw->sessions = sessions_new(gw->db, clock_wall());
    if (!gw->sessions) {
        log_error("security", "cannot load the sessions from %s", path);
        return -1;
    }
    gw->trust = trust_new(service_path(gw->svc, "agent_trust_scores.db", path, sizeof path),
                          gw->monitor, err, sizeof err);
    if (!gw->trust) {
        log_error("security", "cannot open %s: %s", path, err);
        return -1;
    }
    return 0;
}

static void security_stop(service_t *svc);

static int security_start(service_t *svc)
{
    if (sodium_init() < 0) {
        log_error("security", "libsodium cannot initialise");
        return -1;
    }
    gateway_t *gw = calloc(1, sizeof *gw);
    svc->impl = gw;
    gw->svc = svc;
    pthread_mutex_init(&gw->db_lock, NULL);
    gateway_config(gw, svc->config);
    gw->sweeper = actor_new("security sweeper", gw->sweep_interval_s, sweep_once, gw);
    actor_watch(gw->sweeper, svc->liveness, 0);
    gw->monitor = monitor_new(svc);
    if (open_stores(gw) < 0 || token_keys_ensure(svc->config) < 0
        || passwd_decoy(&gw->pw, gw->decoy_hash) < 0) {
        security_stop(svc);
        return -1;
    }
    log_info("security", "Argon2id opslimit %llu, memlimit %zu KiB", gw->pw.opslimit, gw->pw.memlimit / 1024);
    attach_routes(gw, svc);
    return actor_start(gw->sweeper);
}

static void security_stop(service_t *svc)
{
    gateway_t *gw = svc->impl;
    if (!gw)
        return;
    actor_destroy(&gw->sweeper);
    trust_destroy(&gw->trust);
    sessions_destroy(&gw->sessions);
    store_destroy(&gw->db);
    monitor_destroy(&gw->monitor);
    sodium_memzero(gw->decoy_hash, sizeof gw->decoy_hash);
    pthread_mutex_destroy(&gw->db_lock);
    free(gw);
    svc->impl = NULL;
}

/* The two absorbed agents and their old ports (legacy_ports). */
static const service_module_t modules[] = {
    { .name = "AuthenticationAgent", .legacy_port = 7116, .legacy_health_port = 8116 },
    /* 5628: where LearningAdjusterAgent (pc2_code/agents) looks for it by default. */
    { .name = "AgentTrustScorer", .legacy_port = 7122, .legacy_health_port = 8122, .client_port = 5628 },
    { .name = NULL },
};

const service_def_t security_service = {
    .name = "security",
    .title = "SecurityGateway",
    .zmq_port = 7005,
    .http_port = 8005,
    .start = security_start,
    .stop = security_stop,
    .health = security_health,
    .modules = modules,
};
