/*  supervisor: see supervisor.h.
 *
 *  CoreOrchestrator is the only owner of child processes in Keel: every
 *  agent Keel starts is one of its core.agents, run by the child module
 *  (child.h), and whoever else wants an agent restarted asks here over the
 *  wire (ObservabilityHub's recovery tiers, ErrorBus's recovery).
 *
 *  Two actors.  The runner owns the children: it polls their output pipes
 *  (a child whose pipe fills up would block, so they are always read) and
 *  lets each child do what is due: reap, restart after its backoff, start
 *  once its dependencies run.  The monitor pings each watched agent at the
 *  health interval (a reply of "ok" or "success" is alive; the original
 *  wanted "success" only, so every BaseAgent looked dead).  Requests only
 *  change what is wanted under the lock and wake the runner, which makes it
 *  so: no request waits for a child to stop. */
#include "supervisor.h"
#include "actor.h"
#include "agentstate.h"
#include "child.h"
#include "clock.h"
#include "fsutil.h"
#include "gather.h"
#include "log.h"
#include "names.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MAX_AGENTS 64

typedef struct {
    char name[NAMES_BUF], host[128];
    int port;
    child_t *child;             /* NULL: watched only (no command) */
    int counted;                /* its starts already in the metric */
    const char *mstatus;        /* the monitor's */
    double last_seen;           /* wall, 0 = never */
} agent_t;

struct supervisor_t {
    service_t *svc;
    pthread_mutex_t lock;
    actor_t *runner, *monitor;
    agent_t agents[MAX_AGENTS];
    child_t *children[MAX_AGENTS];
    int count, nchildren;
    int wake;                   /* eventfd: cuts the runner's poll short */
    child_timing_t timing;      /* core.supervisor.*, the same for every child */
};

/* ---- configuration ---------------------------------------------------------- */

static agent_t *find(supervisor_t *self, const char *name)
{
    for (int i = 0; name && i < self->count; i++)
        if (!strcmp(self->agents[i].name, name))
            return &self->agents[i];
    return NULL;
}

static child_t *make_child(supervisor_t *self, const char *name, json_t *spec, const char *command)
{
    json_t *argv = json_pack("[s]", command);
    size_t i;
    json_t *arg;
    json_array_foreach(json_object_get(spec, "args"), i, arg)
        if (json_is_string(arg))
            json_array_append(argv, arg);
    const char *restart = json_string_value(json_object_get(spec, "restart"));
    const char *output = json_string_value(json_object_get(spec, "output"));
    char file[NAMES_BUF + 16], log_path[4096];
    snprintf(file, sizeof file, "logs/%s.log", name);
    service_path(self->svc, file, log_path, sizeof log_path);
    child_args_t args = {
        .name = name, .argv = argv, .env = json_object_get(spec, "env"),
        .cwd = json_string_value(json_object_get(spec, "cwd")),
        .output = !output || !strcmp(output, "file") ? CHILD_OUTPUT_FILE
                : !strcmp(output, "log") ? CHILD_OUTPUT_LOG : CHILD_OUTPUT_FILE | CHILD_OUTPUT_LOG,
        .log_path = log_path,
        .restart = !restart ? CHILD_RESTART_ON_FAILURE : !strcmp(restart, "always") ? CHILD_RESTART_ALWAYS
                 : !strcmp(restart, "never") || !strcmp(restart, "no") ? CHILD_RESTART_NEVER
                 : CHILD_RESTART_ON_FAILURE,
        .timing = self->timing,
        .errors = self->svc->errors,
    };
    child_t *child = child_new(&args);
    json_decref(argv);
    return child;
}

static void load_agent(supervisor_t *self, json_t *spec)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    char why[128];
    if (!name || !*name || self->count == MAX_AGENTS) {
        log_warn("core", "core.agents: an entry without a name (or too many) is ignored");
        return;
    }
    if (names_refuse(NULL, NULL, "core.agents[].name", name, why, sizeof why)) {
        log_error("core", "core.agents: %s; the entry is ignored", why);
        return;
    }
    agent_t *a = &self->agents[self->count++];
    snprintf(a->name, sizeof a->name, "%s", name);
    const char *host = json_string_value(json_object_get(spec, "host"));
    snprintf(a->host, sizeof a->host, "%s", host ? host : "127.0.0.1");
    a->port = (int)json_integer_value(json_object_get(spec, "port"));
    a->mstatus = "unknown";
    const char *command = json_string_value(json_object_get(spec, "command"));
    if (command && *command)
        a->child = self->children[self->nchildren++] = make_child(self, name, spec, command);
}

/* depends_on names agents, or Keel services and agents Keel does not run,
 * which it cannot wait for: only the supervised ones order the start. */
static void link_dependencies(supervisor_t *self, json_t *agents)
{
    size_t i, k;
    json_t *spec, *dep;
    json_array_foreach(agents, i, spec) {
        agent_t *a = find(self, json_string_value(json_object_get(spec, "name")));
        json_array_foreach(json_object_get(spec, "depends_on"), k, dep) {
            agent_t *d = find(self, json_string_value(dep));
            if (a && a->child && d && d->child && child_depends_on(a->child, d->child) < 0)
                log_error("core", "core.agents: %s depends on %s, which depends on it: that dependency is ignored",
                          a->name, d->name);
        }
    }
}

supervisor_t *supervisor_new(service_t *svc)
{
    supervisor_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    config_t *cfg = svc->config;
    self->timing = (child_timing_t){ config_double(cfg, "core.supervisor.backoff_base_s", 1.0),
                                     config_double(cfg, "core.supervisor.backoff_max_s", 60.0),
                                     config_double(cfg, "core.supervisor.stable_s", 60.0),
                                     config_double(cfg, "core.supervisor.stop_grace_s", 5.0),
                                     (int)config_int(cfg, "core.supervisor.max_restarts", 5) };
    pthread_mutex_init(&self->lock, NULL);
    self->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    json_t *agents = config_get(svc->config, "core.agents");
    size_t i;
    json_t *spec;
    json_array_foreach(agents, i, spec)
        load_agent(self, spec);
    link_dependencies(self, agents);
    json_array_foreach(agents, i, spec) {
        agent_t *a = find(self, json_string_value(json_object_get(spec, "name")));
        if (a && a->child && !json_is_false(json_object_get(spec, "autostart")))
            child_start(a->child);
    }
    char logs[4096];
    service_path(svc, "logs", logs, sizeof logs);
    if (self->nchildren && fs_mkdirs(logs) < 0)
        log_warn("core", "cannot create %s", logs);
    metrics_declare(svc->metrics, "keel_core_agent_restarts_total", "Supervised agent (re)starts by agent.",
                    METRIC_COUNTER, NULL, 0);
    return self;
}

/* ---- the actors ---------------------------------------------------------------- */

/* Call with the lock held. */
static void count_starts(supervisor_t *self, agent_t *a)
{
    int starts = child_starts(a->child);
    if (starts == a->counted)
        return;
    char labels[NAMES_LABELS_BUF];
    metrics_labels(labels, sizeof labels, "agent", a->name, NULL);
    metrics_add(self->svc->metrics, "keel_core_agent_restarts_total", labels, starts - a->counted);
    a->counted = starts;
}

static void wake_runner(void *arg)
{
    supervisor_t *self = arg;
    uint64_t one = 1;
    if (write(self->wake, &one, sizeof one) < 0)
        log_warn("core", "cannot wake the supervisor's runner: %s", strerror(errno));
}

static void run_children(actor_t *actor, void *arg)
{
    supervisor_t *self = arg;
    struct pollfd fds[2 * MAX_AGENTS + 1];
    while (actor_running(actor)) {
        uint64_t woken;
        while (read(self->wake, &woken, sizeof woken) > 0)
            ;       /* the pass below answers every wake so far */
        fds[0] = (struct pollfd){ self->wake, POLLIN, 0 };
        int n = 1;
        pthread_mutex_lock(&self->lock);
        for (int i = 0; i < self->count; i++) {
            agent_t *a = &self->agents[i];
            if (!a->child)
                continue;
            child_run(a->child);
            count_starts(self, a);
            n += child_fds(a->child, fds + n);
        }
        pthread_mutex_unlock(&self->lock);
        poll(fds, (nfds_t)n, 100);
        actor_alive(actor);
    }
}

/* Every agent with a port at once under one deadline (gather.h), so a
 * sweep costs the slowest agent's second, not a second for each; a stop
 * cuts it short. */
static void ping_agents(void *arg)
{
    static const char PING[] = "{\"action\":\"ping\"}";
    supervisor_t *self = arg;
    char endpoints[MAX_AGENTS][NAMES_BUF + 32];
    gather_call_t calls[MAX_AGENTS];
    int which[MAX_AGENTS], n = 0;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++) {
        agent_t *a = &self->agents[i];
        if (a->port <= 0)
            continue;
        snprintf(endpoints[n], sizeof endpoints[n], "tcp://%s:%d", a->host, a->port);
        calls[n] = (gather_call_t){ .url = endpoints[n], .body = PING, .body_len = sizeof PING - 1,
                                    .agent = true };
        which[n++] = i;
    }
    pthread_mutex_unlock(&self->lock);
    gather_run_until(calls, (size_t)n, 1000, actor_stop_fd(self->monitor));
    pthread_mutex_lock(&self->lock);
    for (int k = 0; k < n && actor_running(self->monitor); k++) {
        agent_t *a = &self->agents[which[k]];
        json_t *reply = gather_reply_json(&calls[k]);
        bool alive = agentstate_of_reply(reply) != AGENTSTATE_DOWN;
        if (!alive && !strcmp(a->mstatus, "active")) {
            json_t *details = json_pack("{s:s, s:s}", "agent", a->name, "endpoint", endpoints[k]);
            errpub_report(self->svc->errors, "health_check", "medium", details, "%s: %s", a->name,
                          reply ? "unhealthy reply" : calls[k].error);
            json_decref(details);
        }
        a->mstatus = alive ? "active" : "inactive";
        a->last_seen = alive ? clock_wall() : 0;
        json_decref(reply);
    }
    pthread_mutex_unlock(&self->lock);
    gather_clear(calls, (size_t)n);
}

int supervisor_start(supervisor_t *self)
{
    double interval = config_double(self->svc->config, "core.supervisor.health_interval_s", 30.0);
    self->runner = actor_new_runner("core-children", run_children, wake_runner, self);
    self->monitor = actor_new("core-monitor", interval, ping_agents, self);
    actor_watch(self->runner, self->svc->liveness, 1.0);
    /* A sweep waits up to a second. */
    actor_watch(self->monitor, self->svc->liveness, interval + 1.0);
    return actor_start(self->runner) < 0 || actor_start(self->monitor) < 0 ? -1 : 0;
}

void supervisor_destroy(supervisor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    supervisor_t *self = *self_p;
    actor_destroy(&self->monitor);
    actor_destroy(&self->runner);
    child_stop_all(self->children, (size_t)self->nchildren);
    for (int i = 0; i < self->nchildren; i++)
        child_destroy(&self->children[i]);
    close(self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- replies ----------------------------------------------------------------- */

/* Call with the lock held. */
static json_t *status_entry(agent_t *a)
{
    char ts[40];
    json_t *e = json_pack("{s:s, s:o, s:o}", "status", a->mstatus,
                          "last_seen", a->last_seen > 0 ? json_string(clock_iso_local(a->last_seen, ts, sizeof ts)) : json_null(),
                          "port", a->port > 0 ? json_integer(a->port) : json_null());
    if (a->child)
        json_object_set_new(e, "process", child_status(a->child));
    return e;
}

static json_t *on_get_agent_status(void *ctx, wire_request_t *req)
{
    (void)req;
    supervisor_t *self = ctx;
    json_t *agents = json_object();
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++)
        json_object_set_new(agents, self->agents[i].name, status_entry(&self->agents[i]));
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "agents", agents);
}

json_t *supervisor_agent_info(supervisor_t *self, json_t *agent)
{
    const char *name = json_string_value(agent);
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    json_t *reply = a ? json_pack("{s:s, s:{s:s, s:o, s:o}}", "status", "success", "agent", "name", a->name,
                                  "port", a->port > 0 ? json_integer(a->port) : json_null(), "status", status_entry(a))
                      : NULL;
    pthread_mutex_unlock(&self->lock);
    if (reply)
        return reply;
    char *text = name ? NULL : json_dumps(agent, JSON_ENCODE_ANY | JSON_COMPACT);
    reply = wire_error_key("message", "Unknown agent: %s", name ? name : text ? text : "None");
    free(text);
    return reply;
}

static json_t *on_get_system_info(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct utsname u;
    uname(&u);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return json_pack("{s:s, s:{s:s, s:s, s:i, s:I}}", "status", "success", "system_info", "hostname", host,
                     "platform", u.sysname, "cpu_count", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "memory_total", (json_int_t)pages * page);
}

static const char *agent_name_of(json_t *body)
{
    static const char *keys[] = { "agent", "agent_name", "name" };
    for (size_t i = 0; i < 3; i++) {
        const char *n = json_string_value(json_object_get(body, keys[i]));
        if (n && *n)
            return n;
    }
    return NULL;
}

typedef enum { OP_START, OP_STOP, OP_RESTART } op_t;

static void apply(child_t *child, op_t op)
{
    if (op == OP_START)
        child_start(child);
    else if (op == OP_STOP)
        child_stop(child);
    else
        child_restart(child);
}

static json_t *agent_op(supervisor_t *self, wire_request_t *req, op_t op)
{
    static const char *verbs[] = { "start", "stop", "restart" };
    const char *name = agent_name_of(req->body);
    if (!name)
        return wire_error("Missing 'agent' (the name of a configured agent)");
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    json_t *reply;
    char why[300];
    if (!a) {
        reply = wire_error("Agent %s is not supervised by Keel (it is not in core.agents), so Keel cannot"
                           " %s it: %s it where it runs", name, verbs[op], verbs[op]);
        json_object_set_new(reply, "supervised", json_false());
    } else if (!a->child) {
        reply = wire_error("Agent %s is watched but not supervised by Keel: it has no command in"
                           " core.agents, so Keel cannot %s it", name, verbs[op]);
        json_object_set_new(reply, "supervised", json_false());
    } else if (op != OP_STOP && child_check(a->child, why, sizeof why) < 0) {
        /* Said now, to the caller, rather than found by the runner later. */
        reply = wire_error("Agent %s cannot be started: %s", name, why);
    } else {
        apply(a->child, op);
        wake_runner(self);
        char message[300];
        snprintf(message, sizeof message, "Agent %s: %s requested", name, verbs[op]);
        reply = json_pack("{s:s, s:s, s:s, s:o}", "status", "success", "message", message, "agent", name,
                          "process", status_entry(a));
    }
    pthread_mutex_unlock(&self->lock);
    return reply;
}

static json_t *on_start_agent(void *ctx, wire_request_t *req) { return agent_op(ctx, req, OP_START); }
static json_t *on_stop_agent(void *ctx, wire_request_t *req) { return agent_op(ctx, req, OP_STOP); }
static json_t *on_restart_agent(void *ctx, wire_request_t *req) { return agent_op(ctx, req, OP_RESTART); }

/* Variant B's service actions: its reply texts, acting for real on a
 * configured agent of that name. */
static json_t *service_op(supervisor_t *self, wire_request_t *req, op_t op)
{
    static const char *words[] = { "Started", "Stopped", "Restarted" };
    const char *name = json_string_value(json_object_get(req->body, "service_name"));
    if (!name)
        name = "";
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    if (a && a->child) {
        apply(a->child, op);
        wake_runner(self);
    }
    pthread_mutex_unlock(&self->lock);
    char message[300];
    snprintf(message, sizeof message, "%s service %s", words[op], name);
    return json_pack("{s:s, s:s}", "status", "success", "message", message);
}

static json_t *on_start_service(void *ctx, wire_request_t *req) { return service_op(ctx, req, OP_START); }
static json_t *on_stop_service(void *ctx, wire_request_t *req) { return service_op(ctx, req, OP_STOP); }
static json_t *on_restart_service(void *ctx, wire_request_t *req) { return service_op(ctx, req, OP_RESTART); }

static json_t *on_list_services(void *ctx, wire_request_t *req)
{
    (void)req;
    supervisor_t *self = ctx;
    json_t *services = json_object();
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++)
        if (self->agents[i].child)
            json_object_set_new(services, self->agents[i].name, status_entry(&self->agents[i]));
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "services", services);
}

static json_t *on_get_service_status(void *ctx, wire_request_t *req)
{
    supervisor_t *self = ctx;
    const char *name = json_string_value(json_object_get(req->body, "service_name"));
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    json_t *info = a ? status_entry(a) : json_object();
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:s, s:o}", "status", "success", "service", name ? name : "", "info", info);
}

static json_t *on_cleanup_system(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    return json_pack("{s:s, s:s}", "status", "success", "message", "System cleanup completed");
}

#define USA "UnifiedSystemAgent"

/* Process control is an administrator's: no kept agent sends any of it.
 * Keel's own callers (ObservabilityHub's recovery tiers, ErrorBus's
 * recovery) sign themselves an administrator's JWT from the shared key
 * file (token_issue_service) rather than being trusted by address. */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "get_agent_status", on_get_agent_status, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_system_info", on_get_system_info, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "start_agent", on_start_agent, NULL, ROUTE_ADMIN },          /* no kept agent sends it */
    { WIRE_ACTION, "stop_agent", on_stop_agent, NULL, ROUTE_ADMIN },            /* no kept agent sends it */
    { WIRE_ACTION, "restart_agent", on_restart_agent, NULL, ROUTE_ADMIN },      /* no kept agent sends it */
    { WIRE_ACTION, "start_service", on_start_service, USA, ROUTE_ADMIN },       /* no kept agent sends it */
    { WIRE_ACTION, "stop_service", on_stop_service, USA, ROUTE_ADMIN },         /* no kept agent sends it */
    { WIRE_ACTION, "restart_service", on_restart_service, USA, ROUTE_ADMIN },   /* no kept agent sends it */
    { WIRE_ACTION, "list_services", on_list_services, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_service_status", on_get_service_status, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "cleanup_system", on_cleanup_system, USA, ROUTE_ADMIN },     /* no kept agent sends it */
    { 0 },
};

void supervisor_attach(supervisor_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}

void supervisor_health(supervisor_t *self, json_t *dict)
{
    int running = 0, failed = 0;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->nchildren; i++) {
        running += child_pid(self->children[i]) > 0;
        failed += child_failed(self->children[i]);
    }
    pthread_mutex_unlock(&self->lock);
    json_object_set_new(dict, "supervisor", json_pack("{s:i, s:i, s:i, s:i}", "agents", self->count,
                        "managed", self->nchildren, "running", running, "failed", failed));
    /* An agent given up on needs a person: say so, without a 503. */
    if (failed)
        json_object_set_new(dict, "status", json_string("degraded"));
}
