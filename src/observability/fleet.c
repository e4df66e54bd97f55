/*  fleet: see fleet.h.
 *
 *  Two actors (actor.h): the sweeper, a runner, sweeps every interval, and
 *  the discovery ticker asks the registry for agents, so a registry that is
 *  down (the hub may start before CoreOrchestrator) never delays a sweep.
 *  The sweeper is the only one that frees agents: discovery marks an
 *  agent removed and the next sweep drops it, so no agent disappears while
 *  a sweep is probing it without the lock held.
 *
 *  The default interval is 2 s, not the original's 30: with 2 failures of
 *  3 turning an agent down, a dead agent is down at most two intervals and
 *  one probe timeout (6 s) after it died, where 30 s took over a minute.
 *  A probe costs the hub about half a millisecond of CPU (a REQ socket,
 *  connection and handshake each), so a fleet of 85 agents costs it some
 *  2 % of a core and 1,000 agents a quarter (docs/dashboard.md); a Python
 *  agent answers one health request every 2 s. */
#include "fleet.h"
#include "actor.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "predictor.h"
#include "wire.h"
#include "zsocket.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define LATENCY_HISTORY 100

struct fleet_t {
    config_t *config;
    hubdb_t *db;
    pthread_mutex_t lock;
    agent_t **agents;
    size_t count;
    void *pub;
    char *registry;
    double interval_s, discovery_s;
    int n_fail, m_window, partition_min;
    double partition_ratio;
    char *machine;              /* the hub's own machine */
    liveness_t *liveness;
    actor_t *sweeper;           /* watched by the service's liveness */
    actor_t *discovery;         /* NULL without a registry */
    fleet_sweep_fn *on_sweep;
    void *on_sweep_arg;
    double last_sweep_s;
    long sweeps;
    long evicted, refused;      /* by the table's bound, since start */
    json_t *unwatched;          /* {name: true}: registry names not watched at the last discovery */
};

static const char *HM_REQUEST = "{\"action\":\"health_check\"}";
static const char *PHM_REQUEST = "{\"action\":\"health\"}";
static const char *SHM_REQUEST = "{\"action\":\"health_check\",\"data\":{}}";

static int popcount_window(unsigned bits, int window)
{
    int n = 0;
    for (int i = 0; i < window; i++)
        n += (bits >> i) & 1;
    return n;
}

agent_state_t fleet_next_state(agent_state_t state, unsigned outcomes, int probes,
                               int n_fail, int m_window)
{
    int window = probes < m_window ? probes : m_window;
    int failures = popcount_window(outcomes, window);
    bool last_failed = outcomes & 1;
    if (failures >= n_fail)
        return AGENT_DOWN;
    if (!last_failed && (state == AGENT_UNKNOWN || window - failures >= n_fail))
        return AGENT_UP;
    return state;
}

static void agent_free(agent_t *a)
{
    free(a->name);
    free(a->host);
    free(a->machine);
    free(a->source);
    free(a->request);
    json_decref(a->dependencies);
    json_decref(a->details);
    ring_destroy(&a->latency);
    free(a);
}

static int tier_of(const char *text)
{
    if (text && !strncmp(text, "tier", 4) && text[4] >= '1' && text[4] <= '4' && !text[5])
        return text[4] - '0';
    return 1;
}

/* An agent from a configuration entry or a registry record. */
static agent_t *agent_new(fleet_t *self, json_t *entry, const char *source)
{
    const char *name = json_string_value(json_object_get(entry, "name"));
    if (!name || !*name)
        return NULL;
    agent_t *a = calloc(1, sizeof *a);
    a->name = strdup(name);
    const char *host = json_string_value(json_object_get(entry, "host"));
    a->host = strdup(host && *host ? host : "127.0.0.1");
    const char *machine = json_string_value(json_object_get(entry, "machine"));
    a->machine = strdup(machine && *machine ? machine
                                            : config_str(self->config, "observability.machine", "local"));
    a->source = strdup(source);
    int port = (int)json_integer_value(json_object_get(entry, "port"));
    int health_port = (int)json_integer_value(json_object_get(entry, "health_port"));
    a->port = health_port > 0 ? health_port : port;
    const char *check = json_string_value(json_object_get(entry, "check"));
    a->zmq_check = !check || !strcmp(check, "zmq") || !strcmp(check, "both");
    a->http_check = check && (!strcmp(check, "http") || !strcmp(check, "both"));
    int http_port = (int)json_integer_value(json_object_get(entry, "http_port"));
    a->http_port = a->http_check ? (http_port > 0 ? http_port : port + 1) : 0;
    const char *probe = json_string_value(json_object_get(entry, "probe"));
    const char *expect = json_string_value(json_object_get(entry, "expect"));
    a->expect = expect && !strcmp(expect, "success") ? HPROBE_EXPECT_SUCCESS : HPROBE_EXPECT_OK;
    a->request = strdup(probe && !strcmp(probe, "health") ? PHM_REQUEST
                        : a->expect == HPROBE_EXPECT_SUCCESS ? SHM_REQUEST : HM_REQUEST);
    json_t *t = json_object_get(entry, "timeout_ms");
    a->timeout_ms = json_is_integer(t) ? (int)json_integer_value(t)
                                       : (int)config_int(self->config, "observability.timeout_ms", 2000);
    json_t *req = json_object_get(entry, "required");
    a->required = req ? json_is_true(req) : true;
    json_t *ar = json_object_get(entry, "auto_recover");
    a->auto_recover = ar ? json_is_true(ar) : config_bool(self->config, "observability.auto_recover", false);
    a->strategy = tier_of(json_string_value(json_object_get(entry, "recovery_strategy")));
    json_t *deps = json_object_get(entry, "dependencies");
    a->dependencies = json_is_array(deps) ? json_deep_copy(deps) : json_array();
    a->latency = ring_new(LATENCY_HISTORY);
    a->probe_state = AGENT_UNKNOWN;
    a->state = AGENTSTATE_UNKNOWN;
    a->state_since = clock_wall();
    snprintf(a->reason, sizeof a->reason, "not checked yet");
    if (a->port <= 0 && !a->http_check)
        a->required = false;
    return a;
}

static void add_agent(fleet_t *self, agent_t *a)
{
    self->agents = realloc(self->agents, (self->count + 1) * sizeof *self->agents);
    self->agents[self->count++] = a;
}

static actor_run_fn sweep_loop;
static actor_tick_fn discover;

fleet_t *fleet_new(const fleet_args_t *args)
{
    fleet_t *self = calloc(1, sizeof *self);
    self->config = args->config;
    self->db = args->db;
    self->liveness = args->liveness;
    pthread_mutex_init(&self->lock, NULL);
    config_t *cfg = args->config;
    long interval_ms = config_int(cfg, "observability.interval_ms",
                                  config_int(cfg, "observability.interval_s", 2) * 1000);
    self->interval_s = (interval_ms > 10 ? interval_ms : 10) / 1000.0;
    /* Discovery keeps the 30 s it had before sweeps became fast: a new
     * agent is watched within half a minute, and the registry is not asked
     * for its whole list every 2 s. */
    self->discovery_s = config_int(cfg, "observability.discovery_interval_ms", 30000) / 1000.0;
    if (self->discovery_s < 0.05)
        self->discovery_s = 0.05;
    self->n_fail = (int)config_int(cfg, "observability.flap.failures", 2);
    self->m_window = (int)config_int(cfg, "observability.flap.window", 3);
    if (self->m_window < 1 || self->m_window > 32)
        self->m_window = 3;
    if (self->n_fail < 1 || self->n_fail > self->m_window)
        self->n_fail = self->m_window;
    self->partition_min = (int)config_int(cfg, "observability.partition.min_agents", 3);
    self->partition_ratio = config_double(cfg, "observability.partition.ratio", 0.8);
    self->machine = strdup(config_str(cfg, "observability.machine", "local"));
    self->unwatched = json_object();
    size_t i;
    json_t *entry;
    json_array_foreach(config_get(cfg, "observability.agents"), i, entry) {
        char why[128];
        if (names_refuse(NULL, NULL, "name", json_string_value(json_object_get(entry, "name")), why, sizeof why)) {
            log_error("observability", "observability.agents[%zu]: %s; ignored", i, why);
            continue;
        }
        agent_t *a = agent_new(self, entry, "config");
        if (!a) {
            log_warn("observability", "observability.agents[%zu] has no name: ignored", i);
        } else if (fleet_find(self, a->name)) {
            log_warn("observability", "observability.agents[%zu]: %s is listed twice: ignored", i, a->name);
            agent_free(a);
        } else {
            if (!a->required && json_object_get(entry, "required") == NULL)
                log_warn("observability", "observability.agents[%zu]: %s has no port: not probed", i, a->name);
            add_agent(self, a);
        }
    }
    if (args->status_endpoint) {
        self->pub = zsocket_new(ZMQ_PUB, ZSOCKET_SERVER, 0);
        if (self->pub && zmq_bind(self->pub, args->status_endpoint) != 0) {
            log_warn("observability", "status PUB cannot bind %s: %s", args->status_endpoint,
                     zmq_strerror(zmq_errno()));
            zmq_close(self->pub);
            self->pub = NULL;
        }
    }
    self->registry = args->registry_endpoint ? strdup(args->registry_endpoint) : NULL;
    self->sweeper = actor_new_runner("observability health sweep", sweep_loop, NULL, self);
    if (self->registry)
        self->discovery = actor_new("obs discovery", self->discovery_s, discover, self);
    return self;
}

void fleet_destroy(fleet_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fleet_t *self = *self_p;
    actor_destroy(&self->sweeper);
    actor_destroy(&self->discovery);
    for (size_t i = 0; i < self->count; i++)
        agent_free(self->agents[i]);
    free(self->agents);
    if (self->pub)
        zmq_close(self->pub);
    json_decref(self->unwatched);
    free(self->registry);
    free(self->machine);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void fleet_on_sweep(fleet_t *self, fleet_sweep_fn *fn, void *arg)
{
    self->on_sweep = fn;
    self->on_sweep_arg = arg;
}

void fleet_lock(fleet_t *self)
{
    pthread_mutex_lock(&self->lock);
}

void fleet_unlock(fleet_t *self)
{
    pthread_mutex_unlock(&self->lock);
}

size_t fleet_count(fleet_t *self)
{
    return self->count;
}

agent_t *fleet_agent(fleet_t *self, size_t i)
{
    return i < self->count ? self->agents[i] : NULL;
}

agent_t *fleet_find(fleet_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (!self->agents[i]->removed && !strcmp(self->agents[i]->name, name))
            return self->agents[i];
    return NULL;
}

void fleet_clear_history(fleet_t *self, agent_t *a)
{
    (void)self;
    ring_clear(a->latency);
    a->outcomes = 0;
    a->probes = 0;
    a->predicted = false;
    a->failure_probability = 0;
}

static void publish(fleet_t *self, json_t *event)
{
    if (!self->pub)
        return;
    char *text = json_dumps(event, JSON_COMPACT);
    if (text)
        zmq_send(self->pub, text, strlen(text), ZMQ_DONTWAIT);
    free(text);
}

/* ---- sweeping ------------------------------------------------------------ */

typedef struct {
    agent_t *agent;
    hprobe_t zmq, http;
} target_t;

/* The agents to probe, in the order gather sends them (GATHER_IN_FLIGHT
 * at a time): first those whose last probe did not fail, then the failing
 * ones the last sweep skipped, then the other failing ones.  The likely
 * dead each hold their place until their timeout; sent last, they keep a
 * live agent's probe from being sent before the sweep's deadline at most
 * once (when many die together), and each of them is probed in its turn. */
static int probe_rank(const agent_t *a)
{
    return !(a->outcomes & 1) ? 0 : a->skipped ? 1 : 2;
}

static target_t *collect(fleet_t *self, size_t *n_out)
{
    target_t *targets = calloc(self->count ? self->count : 1, sizeof *targets);
    size_t n = 0;
    for (size_t k = 0; k < 3 * self->count; k++) {
        agent_t *a = self->agents[k % self->count];
        if (a->removed || !a->required || probe_rank(a) != (int)(k / self->count))
            continue;
        target_t *t = &targets[n++];
        t->agent = a;
        t->zmq = (hprobe_t){ .kind = HPROBE_ZMQ, .port = a->port, .request = a->request,
                            .timeout_ms = a->timeout_ms, .expect = a->expect };
        snprintf(t->zmq.host, sizeof t->zmq.host, "%s", a->host);
        t->http = (hprobe_t){ .kind = HPROBE_HTTP, .port = a->http_port, .timeout_ms = a->timeout_ms };
        snprintf(t->http.host, sizeof t->http.host, "%s", a->host);
    }
    *n_out = n;
    return targets;
}

static hprobe_t *combine(target_t *t)
{
    agent_t *a = t->agent;
    if (!a->http_check)
        return &t->zmq;
    if (!a->zmq_check)
        return &t->http;
    return t->zmq.result != HPROBE_HEALTHY ? &t->zmq : &t->http;
}

static void change_state(fleet_t *self, agent_t *a, agentstate_t next)
{
    if (next == a->state)
        return;
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    json_t *event = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type", "agent_status",
                              "agent", a->name, "machine", a->machine,
                              "previous", agentstate_name(a->state), "status", agentstate_name(next),
                              "reason", a->reason, "timestamp", ts);
    publish(self, event);
    log_info("observability", "agent %s: %s -> %s (%s)", a->name, agentstate_name(a->state),
             agentstate_name(next), a->reason);
    a->state = next;
    a->state_since = clock_wall();
    json_decref(event);
}

static void apply(fleet_t *self, target_t *t, double now, double started, json_t *events)
{
    agent_t *a = t->agent;
    hprobe_t *p = combine(t);
    /* A probe the sweep's deadline left unsent says nothing of the agent:
     * it keeps its state and outcomes, and collect() sends it earlier
     * next time. */
    a->skipped = p->result == HPROBE_PENDING;
    if (a->skipped)
        return;
    a->result = p->result;
    a->last_checked = now;
    a->probe_started = started;
    a->latency_s = p->latency_s;
    json_decref(a->details);
    a->details = p->details ? json_incref(p->details) : NULL;
    snprintf(a->error, sizeof a->error, "%s", p->error);
    ring_push(a->latency, now, p->latency_s);
    /* A degraded answer is an answer: the agent is alive, so not a failure. */
    bool failed = p->result != HPROBE_HEALTHY && p->result != HPROBE_DEGRADED;
    if (p->result == HPROBE_HEALTHY || p->result == HPROBE_DEGRADED || p->result == HPROBE_UNHEALTHY)
        a->answered_at = now;
    if (failed && !(a->outcomes & 1))
        a->failing_since = now;
    a->span_probes++;
    a->span_failures += failed;
    if (p->result == HPROBE_HEALTHY || p->result == HPROBE_UNHEALTHY || p->result == HPROBE_DEGRADED) {
        a->span_answered++;
        a->span_latency_s += p->latency_s;
    }
    a->outcomes = (a->outcomes << 1) | failed;
    a->probes += a->probes < 32;
    int window = a->probes < self->m_window ? a->probes : self->m_window;
    a->failure_probability = predictor_failure(a->latency, popcount_window(a->outcomes, window),
                                             self->m_window, a->timeout_ms / 1000.0);
    agent_state_t next = fleet_next_state(a->probe_state, a->outcomes, a->probes, self->n_fail,
                                          self->m_window);
    if (next == AGENT_DOWN && a->probe_state != AGENT_DOWN)
        json_array_append_new(events, json_pack("{s:s, s:s}", "agent", a->name, "error",
                                                *a->error ? a->error : hprobe_result_name(a->result)));
    a->probe_state = next;
}

/* Eureka's lesson: many agents of another machine failing at once suggests
 * the link, so they are marked partitioned (unknown, not restarted) instead
 * of down; agentstate_partition_suspected is the rule.  The hub's own
 * machine is reached over loopback: no link to suspect, so its agents
 * failing together are really down and get recovered. */
static void detect_partitions(fleet_t *self)
{
    json_t *machines = json_object();
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (a->removed || !a->required || !a->last_checked)
            continue;
        json_t *m = json_object_get(machines, a->machine);
        if (!m) {
            m = json_pack("[i,i]", 0, 0);
            json_object_set_new(machines, a->machine, m);
        }
        json_array_set_new(m, 0, json_integer(json_integer_value(json_array_get(m, 0)) + 1));
        if (a->outcomes & 1)
            json_array_set_new(m, 1, json_integer(json_integer_value(json_array_get(m, 1)) + 1));
    }
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        json_t *m = json_object_get(machines, a->machine);
        a->partitioned = m && a->probe_state == AGENT_DOWN
            && agentstate_partition_suspected((int)json_integer_value(json_array_get(m, 0)),
                                              (int)json_integer_value(json_array_get(m, 1)),
                                              self->partition_min, self->partition_ratio,
                                              !strcmp(a->machine, self->machine));
    }
    json_decref(machines);
}

/* The agent's one state from everything known about it now. */
static void assess(fleet_t *self, agent_t *a, double now)
{
    /* An answer is quoted as it was given; a silence is named. */
    char words[224] = "";
    if (a->last_checked && (a->result == HPROBE_DEGRADED || a->result == HPROBE_UNHEALTHY))
        snprintf(words, sizeof words, "%s", *a->error ? a->error : hprobe_result_name(a->result));
    else if (a->last_checked && a->result != HPROBE_HEALTHY)
        snprintf(words, sizeof words, "%s: %s", hprobe_result_name(a->result), a->error);
    agentstate_evidence_t e = {
        .probe = a->probe_state == AGENT_DOWN ? AGENTSTATE_PROBE_FAILING
               : a->probe_state == AGENT_UNKNOWN ? AGENTSTATE_PROBE_NONE
               : a->result == HPROBE_DEGRADED ? AGENTSTATE_PROBE_DEGRADED : AGENTSTATE_PROBE_PASSING,
        .probe_words = *words ? words : NULL,
        .failing_since = a->failing_since,
        .heartbeat_at = a->heartbeat_at,
        .ttl_s = a->ttl_s,
        .partitioned = a->partitioned,
        .machine = a->machine,
        .now = now,
    };
    agentstate_t next = agentstate_combine(&e, a->reason, sizeof a->reason);
    change_state(self, a, next);
}

static void sweep(fleet_t *self)
{
    for (size_t i = 0; i < self->count;) {
        if (self->agents[i]->removed) {
            agent_free(self->agents[i]);
            self->agents[i] = self->agents[--self->count];
        } else {
            i++;
        }
    }
    size_t n;
    target_t *targets = collect(self, &n);
    pthread_mutex_unlock(&self->lock);

    double started = clock_mono();
    hprobe_t *probes = calloc(n * 2 + 1, sizeof *probes);
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (targets[i].agent->zmq_check)
            probes[np++] = targets[i].zmq;
        if (targets[i].agent->http_check)
            probes[np++] = targets[i].http;
    }
    prober_run(probes, np, actor_stop_fd(self->sweeper));
    np = 0;
    for (size_t i = 0; i < n; i++) {
        if (targets[i].agent->zmq_check)
            targets[i].zmq = probes[np++];
        if (targets[i].agent->http_check)
            targets[i].http = probes[np++];
    }
    free(probes);
    double elapsed = clock_mono() - started;
    bool cut_short = !actor_running(self->sweeper);     /* by a stop: it proves nothing */

    json_t *events = json_array();
    pthread_mutex_lock(&self->lock);
    double now = clock_wall();
    for (size_t i = 0; i < n && !cut_short; i++)
        apply(self, &targets[i], now, started, events);
    detect_partitions(self);
    for (size_t i = 0; i < self->count; i++)
        if (!self->agents[i]->removed)
            assess(self, self->agents[i], now);
    self->last_sweep_s = elapsed;
    self->sweeps++;
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < n; i++) {
        json_decref(targets[i].zmq.details);
        json_decref(targets[i].http.details);
    }
    free(targets);
    size_t k;
    json_t *e;
    json_array_foreach(events, k, e) {
        json_t *details = json_pack("{s:O}", "error", json_object_get(e, "error"));
        hubdb_event(self->db, json_string_value(json_object_get(e, "agent")), "health_check_failed",
                    details);
        json_decref(details);
    }
    json_decref(events);
    if (self->on_sweep)
        self->on_sweep(self->on_sweep_arg);
    pthread_mutex_lock(&self->lock);
}

static void sweep_loop(actor_t *actor, void *arg)
{
    fleet_t *self = arg;
    while (actor_running(actor)) {
        double started = clock_mono();
        pthread_mutex_lock(&self->lock);
        sweep(self);
        pthread_mutex_unlock(&self->lock);
        /* libzmq's per-connection buffers (tens of kB each) are freed by
         * its reaper thread shortly after the sweep closed the sockets;
         * hand them back then, or a sweep's peak would stay resident. */
        double rest = self->interval_s - (clock_mono() - started);
        if (!actor_wait(actor, rest > 0.2 ? 0.2 : rest > 0 ? rest : 0.001))
            break;
        malloc_trim(0);
        rest = self->interval_s - (clock_mono() - started);
        if (rest > 0)
            actor_wait(actor, rest);
    }
}

/* ---- registry discovery -------------------------------------------------- */

static json_t *registry_call(fleet_t *self, json_t *request)
{
    char err[128];
    json_t *reply = wire_call(self->registry, request,
                              (int)config_int(self->config, "observability.registry_timeout_ms", 1000),
                              0, err, sizeof err);
    json_decref(request);
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (!reply || !status || strcasecmp(status, "success")) {
        json_decref(reply);
        return NULL;
    }
    return reply;
}

/* A describe_agents row as a configuration-like entry. */
static json_t *registry_entry(const char *name, json_t *rec)
{
    json_t *meta = json_object_get(rec, "metadata");
    const char *machine = json_string_value(json_object_get(rec, "machine"));
    if (!machine)
        machine = json_string_value(json_object_get(meta, "machine"));
    if (!machine)
        machine = json_string_value(json_object_get(meta, "location"));
    json_t *entry = json_pack("{s:s}", "name", name);
    static const char *const keys[][2] = { { "host", "host" }, { "port", "port" },
                                           { "health_check_port", "health_port" } };
    for (size_t i = 0; i < 3; i++)
        if (json_object_get(rec, keys[i][0]))
            json_object_set(entry, keys[i][1], json_object_get(rec, keys[i][0]));
    if (machine)
        json_object_set_new(entry, "machine", json_string(machine));
    return entry;
}

/* A registry agent that registered again elsewhere is probed there. */
static void follow(agent_t *a, json_t *row)
{
    const char *host = json_string_value(json_object_get(row, "host"));
    int port = (int)json_integer_value(json_object_get(row, "port"));
    int health_port = (int)json_integer_value(json_object_get(row, "health_check_port"));
    if (health_port > 0)
        port = health_port;
    if (host && *host && strcmp(host, a->host)) {
        free(a->host);
        a->host = strdup(host);
    }
    if (port > 0)
        a->port = port;
}

/* ---- the table's bound -------------------------------------------------------- */

static double ttl_or_default(double ttl_s)
{
    return ttl_s > 0 ? ttl_s : 300;
}

/* Configured agents, and agents whose own heartbeats the registry saw
 * within its TTL, are never evicted. */
static bool always_watched(const agent_t *a, double now)
{
    return !strcmp(a->source, "config") || (a->beat_at > 0 && now - a->beat_at < ttl_or_default(a->ttl_s));
}

typedef struct {
    json_t *row;
    const char *name;
    double seen;                /* wall time of its last registration or heartbeat */
    double beat_at;
    bool always;
} newcomer_t;

typedef struct {
    agent_t *agent;
    double seen;                /* its last registration, heartbeat or answer */
    bool answered;              /* answered a probe within the TTL */
} victim_t;

/* Best first: the always-watched, then the most recently seen. */
static int by_rank_desc(const void *x, const void *y)
{
    const newcomer_t *a = x, *b = y;
    if (a->always != b->always)
        return a->always ? -1 : 1;
    return a->seen > b->seen ? -1 : a->seen < b->seen;
}

/* Weakest first: silent ones (no answer within the TTL), then the least
 * recently seen. */
static int by_rank_asc(const void *x, const void *y)
{
    const victim_t *a = x, *b = y;
    if (a->answered != b->answered)
        return a->answered ? 1 : -1;
    return a->seen < b->seen ? -1 : a->seen > b->seen;
}

/* A newcomer has answered nothing yet, so it outranks only a silent agent
 * seen less recently than itself, unless it is always watched. */
static bool outranks(const newcomer_t *n, const victim_t *v)
{
    return n->always || (!v->answered && n->seen > v->seen);
}

static victim_t *evictable(fleet_t *self, double now, size_t *n_out, size_t *active_out)
{
    victim_t *victims = calloc(self->count ? self->count : 1, sizeof *victims);
    size_t n = 0, active = 0;
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (a->removed)
            continue;
        active++;
        if (always_watched(a, now))
            continue;
        double ttl = ttl_or_default(a->ttl_s);
        victims[n++] = (victim_t){ a, a->answered_at > a->heartbeat_at ? a->answered_at : a->heartbeat_at,
                                   a->answered_at > 0 && now - a->answered_at < ttl };
    }
    qsort(victims, n, sizeof *victims, by_rank_asc);
    *n_out = n;
    *active_out = active;
    return victims;
}

static agent_t *watch(fleet_t *self, const newcomer_t *n, double ttl_s)
{
    json_t *entry = registry_entry(n->name, n->row);
    agent_t *a = agent_new(self, entry, "registry");
    json_decref(entry);
    if (!a)
        return NULL;
    add_agent(self, a);
    a->heartbeat_at = n->seen;
    a->beat_at = n->beat_at;
    a->ttl_s = ttl_s;
    log_info("observability", "watching %s (%s:%d) from the registry", n->name, a->host, a->port);
    return a;
}

/* Watches the registry's names that the table lacks, best first, while
 * there is room or a weaker agent to evict.  Newcomers come best first and
 * victims weakest first, so the first newcomer that cannot displace the
 * weakest remaining victim ends the evictions.  A name refused is counted
 * once, until it is watched again; an evicted one is not counted again
 * as refused.  Caller locks. */
static void admit(fleet_t *self, newcomer_t *fresh, size_t nfresh, double now, double ttl_s)
{
    size_t max = (size_t)config_int(self->config, "observability.max_agents", 4096);
    qsort(fresh, nfresh, sizeof *fresh, by_rank_desc);
    size_t nvictims, active;
    victim_t *victims = evictable(self, now, &nvictims, &active);
    json_t *unwatched = json_object();
    size_t v = 0;
    for (size_t i = 0; i < nfresh; i++) {
        if (active < max) {
            active += watch(self, &fresh[i], ttl_s) != NULL;
        } else if (v < nvictims && outranks(&fresh[i], &victims[v])) {
            agent_t *gone = victims[v++].agent;
            gone->removed = true;
            self->evicted++;
            json_object_set_new(unwatched, gone->name, json_true());
            log_warn("observability", "agent table full (%zu): %s evicted for %s", max, gone->name, fresh[i].name);
            watch(self, &fresh[i], ttl_s);
        } else {
            if (!json_object_get(self->unwatched, fresh[i].name)) {
                self->refused++;
                log_warn("observability", "agent table full (%zu): %s not watched", max, fresh[i].name);
            }
            json_object_set_new(unwatched, fresh[i].name, json_true());
        }
    }
    free(victims);
    json_decref(self->unwatched);
    self->unwatched = unwatched;
}

/* Learns the registry's agents and their heartbeats: follows the moved,
 * marks the unregistered removed, admits the new.  The registry's ages
 * are turned into this clock's instants, so the two machines' clocks need
 * not agree. */
static void learn(fleet_t *self, json_t *rows, double ttl_s)
{
    double now = clock_wall();
    json_t *listed = json_object();     /* name: its row */
    size_t k;
    json_t *row;
    json_array_foreach(rows, k, row) {
        const char *name = json_string_value(json_object_get(row, "agent_id"));
        if (name)
            json_object_set(listed, name, row);
    }
    pthread_mutex_lock(&self->lock);
    json_t *watched = json_object();    /* name: the agent's index, for a lookup per row */
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        bool known = json_object_get(listed, a->name) != NULL;
        if (!known)
            a->heartbeat_at = a->beat_at = 0;
        if (!strcmp(a->source, "registry"))
            a->removed = a->removed || !known;
        if (!a->removed)
            json_object_set_new(watched, a->name, json_integer((json_int_t)i));
    }
    newcomer_t *fresh = calloc(json_object_size(listed) + 1, sizeof *fresh);
    size_t nfresh = 0;
    const char *name;
    json_object_foreach(listed, name, row) {
        json_t *beat = json_object_get(row, "beat_age_s");
        double seen = now - json_number_value(json_object_get(row, "heartbeat_age_s"));
        double beat_at = json_is_number(beat) ? now - json_number_value(beat) : 0;
        json_t *index = json_object_get(watched, name);
        agent_t *a = index ? self->agents[json_integer_value(index)] : NULL;
        if (!a) {
            fresh[nfresh++] = (newcomer_t){ row, name, seen, beat_at,
                                            beat_at > 0 && now - beat_at < ttl_or_default(ttl_s) };
            continue;
        }
        if (!strcmp(a->source, "registry"))
            follow(a, row);
        a->heartbeat_at = seen;
        a->beat_at = beat_at;
        a->ttl_s = ttl_s;
    }
    admit(self, fresh, nfresh, now, ttl_s);
    pthread_mutex_unlock(&self->lock);
    free(fresh);
    json_decref(watched);
    json_decref(listed);
}

/* Sends every agent's state to the registry, which shows it in
 * describe_agents (keelctl agents) until valid_s passes without another. */
static void report(fleet_t *self)
{
    json_t *states = json_object();
    char ts[40];
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (!a->removed)
            json_object_set_new(states, a->name, json_pack("{s:s, s:s, s:s}", "state", agentstate_name(a->state),
                                "reason", a->reason, "since", clock_iso_utc(a->state_since, ts, sizeof ts)));
    }
    double valid_s = 3 * (self->discovery_s > self->interval_s ? self->discovery_s : self->interval_s);
    pthread_mutex_unlock(&self->lock);
    json_decref(registry_call(self, json_pack("{s:s, s:s, s:f, s:o}", "action", "report_agent_states",
                                              "source_agent", "ObservabilityHub", "valid_s", valid_s,
                                              "states", states)));
}

static void discover(void *arg)
{
    fleet_t *self = arg;
    json_t *reply = registry_call(self, json_pack("{s:s}", "action", "describe_agents"));
    json_t *rows = json_object_get(reply, "agents");
    if (json_is_array(rows)) {
        learn(self, rows, json_number_value(json_object_get(reply, "ttl_s")));
        report(self);
    }
    json_decref(reply);
}

/* A sweep probes every agent at once, so it lasts about the longest probe
 * timeout: a turn of the health loop takes at most that plus the interval. */
static double longest_turn_s(fleet_t *self)
{
    int longest = (int)config_int(self->config, "observability.timeout_ms", 2000);
    for (size_t i = 0; i < self->count; i++)
        if (self->agents[i]->timeout_ms > longest)
            longest = self->agents[i]->timeout_ms;
    return self->interval_s + longest / 1000.0;
}

int fleet_start(fleet_t *self)
{
    actor_watch(self->sweeper, self->liveness, longest_turn_s(self));
    if (actor_start(self->sweeper) < 0)
        return -1;
    if (self->discovery)
        actor_start(self->discovery);
    return 0;
}

void fleet_stop(fleet_t *self)
{
    actor_stop_all((actor_t *[]){ self->sweeper, self->discovery }, 2);
}

/* ---- views ---------------------------------------------------------------- */

json_t *fleet_agent_record(agent_t *a)
{
    char ts[40];
    json_t *rec;
    if (!a->last_checked) {
        rec = json_pack("{s:s, s:n}", "status", a->required ? "unknown" : "not_checked",
                        "last_checked");
    } else {
        clock_iso_local(a->last_checked, ts, sizeof ts);
        rec = json_pack("{s:s, s:s}", "status", hprobe_result_name(a->result), "last_checked", ts);
        if (a->result == HPROBE_HEALTHY || a->result == HPROBE_DEGRADED || a->result == HPROBE_UNHEALTHY)
            json_object_set_new(rec, "details", a->details ? json_incref(a->details) : json_object());
        else
            json_object_set_new(rec, "error", json_string(a->error));
    }
    json_object_set_new(rec, "state", json_string(agentstate_name(a->state)));
    json_object_set_new(rec, "reason", json_string(a->reason));
    json_object_set_new(rec, "machine", json_string(a->machine));
    json_object_set_new(rec, "source", json_string(a->source));
    if (a->heartbeat_at > 0)
        json_object_set_new(rec, "heartbeat_age_s", json_real(clock_wall() - a->heartbeat_at));
    json_object_set_new(rec, "latency_ms", json_real(a->latency_s * 1000.0));
    json_object_set_new(rec, "failure_probability", json_real(a->failure_probability));
    json_object_set_new(rec, "recovery_tier", json_integer(a->tier));
    return rec;
}

json_t *fleet_agents_health(fleet_t *self)
{
    json_t *agents = json_object();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++)
        if (!self->agents[i]->removed)
            json_object_set_new(agents, self->agents[i]->name, fleet_agent_record(self->agents[i]));
    pthread_mutex_unlock(&self->lock);
    return agents;
}

static void bump(json_t *counts, const char *key)
{
    json_object_set_new(counts, key, json_integer(json_integer_value(json_object_get(counts, key)) + 1));
}

json_t *fleet_machines(fleet_t *self)
{
    json_t *machines = json_object();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (a->removed)
            continue;
        json_t *m = json_object_get(machines, a->machine);
        if (!m) {
            m = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "agents", 0, "up", 0, "degraded", 0, "down", 0,
                          "unknown", 0, "partitioned", 0);
            json_object_set_new(machines, a->machine, m);
        }
        bump(m, "agents");
        bump(m, agentstate_name(a->state));
        if (a->partitioned)
            bump(m, "partitioned");
    }
    pthread_mutex_unlock(&self->lock);
    const char *name;
    json_t *m;
    json_object_foreach(machines, name, m) {
        json_int_t total = json_integer_value(json_object_get(m, "agents"));
        const char *status = json_integer_value(json_object_get(m, "partitioned")) ? "partitioned"
                             : json_integer_value(json_object_get(m, "up")) == total ? "healthy"
                             : json_integer_value(json_object_get(m, "down")) == total ? "down" : "degraded";
        json_object_set_new(m, "status", json_string(status));
    }
    return machines;
}

void fleet_counts(fleet_t *self, int *total, int *healthy, int *unhealthy)
{
    *total = *healthy = *unhealthy = 0;
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (a->removed)
            continue;
        (*total)++;
        if (a->state == AGENTSTATE_UP)
            (*healthy)++;
        else if (a->state == AGENTSTATE_DEGRADED || a->state == AGENTSTATE_DOWN)
            (*unhealthy)++;
    }
    pthread_mutex_unlock(&self->lock);
}

const char *fleet_overall(fleet_t *self)
{
    bool healthy = true;
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (!a->removed && (!a->last_checked || a->result != HPROBE_HEALTHY))
            healthy = false;
    }
    pthread_mutex_unlock(&self->lock);
    return healthy ? "healthy" : "unhealthy";
}

void fleet_export(fleet_t *self, metrics_t *metrics)
{
    static const char *families[] = { "keel_agent_up", "keel_agent_check_latency_seconds",
                                      "keel_agent_failure_probability", "keel_agent_recovery_tier",
                                      "keel_agent_state" };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        metrics_reset(metrics, families[i]);
    char labels[NAMES_LABELS_BUF + 64];
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (a->removed)
            continue;
        metrics_labels(labels, sizeof labels, "agent", a->name, "machine", a->machine, NULL);
        metrics_set(metrics, "keel_agent_up", labels, a->state == AGENTSTATE_UP);
        metrics_set(metrics, "keel_agent_check_latency_seconds", labels, a->latency_s);
        metrics_set(metrics, "keel_agent_failure_probability", labels, a->failure_probability);
        metrics_set(metrics, "keel_agent_recovery_tier", labels, a->tier);
        metrics_set(metrics, "keel_agent_state", labels, a->state);
    }
    metrics_set(metrics, "keel_health_sweep_duration_seconds", "", self->last_sweep_s);
    metrics_set(metrics, "keel_health_sweeps_total", "", (double)self->sweeps);
    metrics_set(metrics, "keel_watched_agents_evicted_total", "", (double)self->evicted);
    metrics_set(metrics, "keel_watched_agents_refused_total", "", (double)self->refused);
    metrics_set(metrics, "keel_unwatched_agents", "", (double)json_object_size(self->unwatched));
    pthread_mutex_unlock(&self->lock);
}

json_t *fleet_take_spans(fleet_t *self)
{
    json_t *spans = json_object();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++) {
        agent_t *a = self->agents[i];
        if (a->removed || !a->span_probes)
            continue;
        json_object_set_new(spans, a->name, json_pack("{s:i, s:i, s:i, s:f}", "probes", a->span_probes,
                            "failures", a->span_failures, "answered", a->span_answered,
                            "latency_s", a->span_latency_s));
        a->span_probes = a->span_failures = a->span_answered = 0;
        a->span_latency_s = 0;
    }
    pthread_mutex_unlock(&self->lock);
    return spans;
}

void fleet_sweep_stats(fleet_t *self, double *last_s, long *count)
{
    pthread_mutex_lock(&self->lock);
    *last_s = self->last_sweep_s;
    *count = self->sweeps;
    pthread_mutex_unlock(&self->lock);
}
