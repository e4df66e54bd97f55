/*  service: see service.h. */
#include "service.h"
#include "announce.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "procmetrics.h"
#include "token.h"
#include "wirejson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reading /proc/self/status cost more than everything else in a ping (a
 * third of keeld's CPU under bench/ping.sh), so the process-wide count is
 * read at most once a second; a health dict a second stale is still true. */
static int active_threads(void)
{
    static atomic_long read_at_ms = -1000000;
    static atomic_int cached;
    long now_ms = (long)(clock_mono() * 1000);
    if (now_ms - atomic_load(&read_at_ms) < 1000)
        return atomic_load(&cached);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    int threads = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &threads) == 1)
            break;
    fclose(f);
    atomic_store(&cached, threads);
    atomic_store(&read_at_ms, now_ms);
    return threads;
}

static const char *phase_of(int state)
{
    return state == SERVICE_READY ? "healthy" : state == SERVICE_STARTING ? "starting" : "stopping";
}

json_t *service_health(service_t *self)
{
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    int state = atomic_load(&self->state);
    char message[128];
    const char *phase = phase_of(state);
    snprintf(message, sizeof message, "%s is %s", self->def->title, phase);
    json_t *dict = json_pack("{s:s, s:b, s:b, s:s, s:s, s:f, s:i, s:s, s:s, s:f}",
                             "status", state == SERVICE_READY ? "ok" : phase,
                             "ready", state == SERVICE_READY,
                             "initialized", state != SERVICE_STARTING,
                             "message", message, "timestamp", ts,
                             "uptime", service_uptime(self),
                             "active_threads", active_threads(),
                             "service", self->def->title, "version", KEEL_VERSION,
                             "requests", (double)wire_server_requests(self->wire));
    json_object_set_new(dict, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(dict, "ports", json_pack("{s:i, s:i}",
                                                 "zmq", config_port(self->config, self->def->zmq_port),
                                                 "http", config_port(self->config, self->def->http_port)));
    if (self->def->health && state == SERVICE_READY)
        self->def->health(self, dict);
    return dict;
}

/* ---- the health reply, cached -------------------------------------------
 *
 * Agents ping a service far more often than anything else they ask, and
 * building the dict (the hooks read every module's state, jansson builds
 * and frees a few dozen values) cost many times the rest of a ping.  So
 * the wire's health reply is the dict's text, kept, with the five fields
 * that change from one reply to the next (message, timestamp, uptime,
 * active_threads, requests) written afresh into it for every reply: those
 * are always true when the reply leaves.
 *
 * The rest is reused only while it still holds:
 *  - the service's state has not changed (status, ready, initialized);
 *  - no request has been answered since it was built but health
 *    requests and lookups (wire_server_changes), so whoever was answered
 *    a registration, a login, a reload or anything else sees its effect
 *    in the very next health reply;
 *  - it is at most SERVICE_HEALTH_REUSE_S old, for what changes without a
 *    request: figures the services' own loops sample (the twin's system
 *    figures every core.twin.poll_interval_s, the hub's sweeps every few
 *    seconds), events that arrive on ErrorBus's SUB port, processes the
 *    supervisor watches, a breaker's opening running out.  Ten
 *    milliseconds is less than a reply waits on a busy socket, and less
 *    than any of those loops' periods by a hundred times, so the reply
 *    says nothing a dict built on arrival could not have said. */
#define SERVICE_HEALTH_REUSE_S 0.01

enum { FRESH_MESSAGE, FRESH_TIMESTAMP, FRESH_UPTIME, FRESH_THREADS, FRESH_REQUESTS, NFRESH };
static const char *const fresh_keys[NFRESH] = { "message", "timestamp", "uptime", "active_threads",
                                                "requests" };

typedef struct health_text_t {
    pthread_mutex_t lock;
    char *text;                 /* the dict, a marker in place of each fresh field's value */
    size_t len;
    size_t at[NFRESH][2];       /* where each marker starts and ends, in text order */
    int order[NFRESH];          /* which field each of those is */
    double built;               /* clock_mono() */
    long changes;               /* wire_server_changes() when built */
    int state;
    service_health_adjust_fn *adjust;   /* what it was built with */
} health_text_t;

static health_text_t *health_text_new(void)
{
    health_text_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

static void health_text_destroy(health_text_t **self_p)
{
    if (!*self_p)
        return;
    pthread_mutex_destroy(&(*self_p)->lock);
    free((*self_p)->text);
    free(*self_p);
    *self_p = NULL;
}

/* Builds the text with markers: 0 when every fresh field was found where
 * the wire writes it, else -1 (a hook replaced one: no reuse then). */
static int health_text_build(health_text_t *cache, service_t *self, int state,
                             service_health_adjust_fn *adjust)
{
    free(cache->text);
    cache->text = NULL;
    /* Read before the dict: a change counted later makes the next reply
     * build again, one counted earlier is in the dict already. */
    long changes = wire_server_changes(self->wire);
    json_t *dict = service_health(self);
    if (adjust)
        adjust(dict);
    for (int i = 0; i < NFRESH; i++) {
        char marker[4] = { '\x01', (char)('0' + i), '\0' };
        if (!json_object_get(dict, fresh_keys[i])) {
            json_decref(dict);
            return -1;
        }
        json_object_set_new(dict, fresh_keys[i], json_string(marker));
    }
    cache->text = wirejson_dump(dict, &cache->len);
    json_decref(dict);
    if (!cache->text)
        return -1;
    int found = 0;
    for (int i = 0; i < NFRESH; i++) {
        char pattern[64];
        int n = snprintf(pattern, sizeof pattern, "\"%s\":\"\\u0001%d\"", fresh_keys[i], i);
        char *hit = memmem(cache->text, cache->len, pattern, (size_t)n);
        if (!hit)
            return -1;
        size_t key = strlen(fresh_keys[i]) + 3;     /* "key": */
        size_t start = (size_t)(hit - cache->text) + key;
        int j = found++;        /* kept in text order */
        while (j > 0 && cache->at[j - 1][0] > start) {
            cache->at[j][0] = cache->at[j - 1][0];
            cache->at[j][1] = cache->at[j - 1][1];
            cache->order[j] = cache->order[j - 1];
            j--;
        }
        cache->at[j][0] = start;
        cache->at[j][1] = start + (size_t)n - key;
        cache->order[j] = i;
    }
    cache->built = clock_mono();
    cache->changes = changes;
    cache->state = state;
    cache->adjust = adjust;
    return 0;
}

static void put_fresh(wirejson_buf_t *buf, service_t *self, int field, const char *message)
{
    char ts[40];
    switch (field) {
    case FRESH_MESSAGE:
        wirejson_buf_string(buf, message, strlen(message));
        break;
    case FRESH_TIMESTAMP:
        clock_iso_local(clock_wall(), ts, sizeof ts);
        wirejson_buf_string(buf, ts, strlen(ts));
        break;
    case FRESH_UPTIME: {
        /* To the microsecond, the clock's own resolution for agents: the
         * seventeen digits of "%.17g" cost a tenth of a ping. */
        long long us = (long long)(service_uptime(self) * 1e6);
        char fraction[8] = ".000000";
        for (int i = 6, rest = (int)(us % 1000000); i >= 1; i--, rest /= 10)
            fraction[i] = (char)('0' + rest % 10);
        wirejson_buf_integer(buf, us / 1000000);
        wirejson_buf_raw(buf, fraction, 7);
        break;
    }
    case FRESH_THREADS:
        wirejson_buf_integer(buf, active_threads());
        break;
    default:
        wirejson_buf_real(buf, (double)wire_server_requests(self->wire));
    }
}

json_t *service_health_reply(service_t *self, wire_request_t *req, const char *message,
                             service_health_adjust_fn *adjust)
{
    health_text_t *cache = self->health_text;
    int state = atomic_load(&self->state);
    char own[128];
    if (!message) {
        snprintf(own, sizeof own, "%s is %s", self->def->title, phase_of(state));
        message = own;
    }
    wire_request_reads_only(req);
    pthread_mutex_lock(&cache->lock);
    bool fresh = cache->text && cache->state == state && cache->adjust == adjust
                 && cache->changes == wire_server_changes(self->wire)
                 && clock_mono() - cache->built < SERVICE_HEALTH_REUSE_S;
    if (!fresh && health_text_build(cache, self, state, adjust) < 0) {
        pthread_mutex_unlock(&cache->lock);
        json_t *dict = service_health(self);
        if (adjust)
            adjust(dict);
        json_object_set_new(dict, "message", json_string(message));
        return dict;
    }
    wirejson_buf_t buf = { 0 };
    wirejson_buf_reserve(&buf, cache->len + 256);     /* the fresh fields' text fits */
    size_t from = 0;
    for (int k = 0; k < NFRESH; k++) {
        wirejson_buf_raw(&buf, cache->text + from, cache->at[k][0] - from);
        put_fresh(&buf, self, cache->order[k], message);
        from = cache->at[k][1];
    }
    wirejson_buf_raw(&buf, cache->text + from, cache->len - from);
    pthread_mutex_unlock(&cache->lock);
    size_t len;
    char *text = wirejson_buf_finish(&buf, &len);
    if (!text)
        return wire_error("Internal error: health reply is not serialisable");
    return wire_reply_text(req, text, len);
}

double service_uptime(service_t *self)
{
    return clock_mono() - self->started_mono;
}

char *service_path(service_t *self, const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", self->data_dir, file);
    return buf;
}

void service_bind_endpoint(service_t *self, int base_port, char *buf, size_t len)
{
    const char *bind = config_str(self->config, "bind", "127.0.0.1");
    if (!strcmp(bind, "0.0.0.0"))
        bind = "*";
    snprintf(buf, len, "tcp://%s:%d", bind, config_port(self->config, base_port));
}

void service_error_bus_endpoint(config_t *config, char *buf, size_t len)
{
    const char *endpoint = config_str(config, "error_bus_endpoint", "");
    if (*endpoint)
        snprintf(buf, len, "%s", endpoint);
    else
        config_local_endpoint(config, 7150, buf, len);
}

static json_t *on_health(void *ctx, wire_request_t *req)
{
    return service_health_reply(ctx, req, NULL, NULL);
}

/* The process's loader reads the file, environment and flags again; a
 * configuration with errors changes nothing. */
static json_t *on_reload(void *ctx, wire_request_t *req)
{
    (void)req;
    service_t *self = ctx;
    if (!self->loader)
        return wire_error("%s cannot reload here: this process has no configuration to read again",
                          self->def->title);
    char err[512] = "";
    config_t *fresh = self->loader(self->loader_ctx, err, sizeof err);
    if (!fresh) {
        log_error(self->def->name, "reload refused: %s; keeping the old configuration", err);
        return wire_error("Reload refused, the old configuration stays: %s", err);
    }
    service_reload(self, fresh);
    config_destroy(&fresh);
    log_info(self->def->name, "%s: configuration reloaded on request", self->def->title);
    char message[160];
    snprintf(message, sizeof message, "%s reloaded its configuration", self->def->title);
    return json_pack("{s:s, s:s, s:s}", "status", "success", "service", self->def->title,
                     "message", message);
}

/* BaseAgent's health actions, which a service's own table may replace,
 * and the reload every service answers. */
static const wire_route_t health_routes[] = {
    { WIRE_ACTION, "ping", on_health, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "health", on_health, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "health_check", on_health, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "reload", on_reload, NULL, ROUTE_ADMIN },
    { 0 },
};

static void on_http_health(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    service_t *self = ctx;
    json_t *dict = service_health(self);
    int status = atomic_load(&self->state) == SERVICE_READY ? 200 : 503;
    http_reply_json(reply, status, dict);
}

static void on_http_metrics(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    service_t *self = ctx;
    char labels[64];
    metrics_labels(labels, sizeof labels, "service", self->def->name, NULL);
    metrics_set(self->metrics, "keel_uptime_seconds", labels, service_uptime(self));
    size_t len;
    reply->status = 200;
    reply->body = metrics_render(self->metrics, &len);
    reply->body_len = len;
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void list_wire_route(void *arg, const wire_route_t *route)
{
    json_array_append_new(arg, json_pack("{s:s, s:s?, s:s?, s:s}", "dialect", wire_dialect_name(route->dialect),
                                         "name", route->name, "module", route->module,
                                         "privilege", privilege_name(route->privilege)));
}

static void list_http_route(void *arg, const http_route_t *route)
{
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s}", "method", route->method, "path", route->path,
                                         "privilege", privilege_name(route->privilege)));
}

/* GET /routes: every route of this service with its privilege and module,
 * the table docs/reliability.md's threat model is written from.  While the
 * start hook attaches routes there is nothing stable to list. */
static void on_http_routes(void *ctx, const http_request_t *req, http_reply_t *reply)
{
    (void)req;
    service_t *self = ctx;
    if (atomic_load(&self->state) != SERVICE_READY) {
        http_reply_json(reply, 503, json_pack("{s:s, s:s}", "status", "error", "error",
                                              "the service is not ready"));
        return;
    }
    json_t *modules = json_array(), *zmq = json_array(), *http = json_array();
    for (const service_module_t *m = self->def->modules; m && m->name; m++)
        json_array_append_new(modules, json_string(m->name));
    wire_server_each_route(self->wire, list_wire_route, zmq);
    httpd_each_route(self->http, list_http_route, http);
    http_reply_json(reply, 200, json_pack("{s:s, s:o, s:o, s:o}", "service", self->def->title,
                                          "modules", modules, "zmq", zmq, "http", http));
}

static const http_route_t http_routes[] = {
    { "GET", "/health", on_http_health, ROUTE_PUBLIC, 0 },
    { "GET", "/metrics", on_http_metrics, ROUTE_PUBLIC, 0 },
    { "GET", "/routes", on_http_routes, ROUTE_PUBLIC, 0 },
    { 0 },
};

service_t *service_new(const service_def_t *def, config_t *config)
{
    service_t *self = calloc(1, sizeof *self);
    self->def = def;
    self->config = config;
    self->started_mono = clock_mono();
    atomic_store(&self->state, SERVICE_STARTING);
    pthread_mutex_init(&self->reload_lock, NULL);
    snprintf(self->data_dir, sizeof self->data_dir, "%s/%s",
             config_str(config, "data_dir", "./var/keel"), def->name);
    self->metrics = metrics_new();
    metrics_declare(self->metrics, "keel_uptime_seconds", "Seconds since the service started.",
                    METRIC_GAUGE, NULL, 0);
    procmetrics_attach(self->metrics, KEEL_VERSION);
    self->liveness = liveness_new();
    self->wire = wire_server_new(def->name, self->metrics);
    wire_server_set_liveness(self->wire, self->liveness);
    wire_server_set_max_request(self->wire, (size_t)config_int(config, "max_request_bytes", 1 << 20));
    self->http = httpd_new(def->name, self->metrics);
    self->privilege = privilege_new();
    wire_server_set_privilege(self->wire, self->privilege);
    httpd_set_privilege(self->http, self->privilege);
    char endpoint[256];
    service_error_bus_endpoint(config, endpoint, sizeof endpoint);
    self->errors = errpub_new(endpoint, def->title);
    self->announce = announce_new(self);
    self->health_text = health_text_new();
    return self;
}

void service_destroy(service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    service_t *self = *self_p;
    service_stop(self);
    wire_server_destroy(&self->wire);
    httpd_destroy(&self->http);
    announce_destroy(&self->announce);
    errpub_destroy(&self->errors);
    privilege_destroy(&self->privilege);
    metrics_destroy(&self->metrics);
    pthread_mutex_destroy(&self->reload_lock);
    liveness_destroy(&self->liveness);
    health_text_destroy(&self->health_text);
    free(self);
    *self_p = NULL;
}

typedef struct {
    service_t *svc;
    int refused;
} route_check_t;

static bool module_known(service_t *self, const char *name)
{
    for (const service_module_t *m = self->def->modules; m && m->name; m++)
        if (strcmp(m->name, name) == 0)
            return true;
    return false;
}

static void check_wire_route(void *arg, const wire_route_t *route)
{
    route_check_t *check = arg;
    const char *name = route->name ? route->name : wire_dialect_name(route->dialect);
    if (!privilege_declared(route->privilege)) {
        log_error(check->svc->def->name, "route %s declares no privilege", name);
        check->refused++;
    }
    if (route->module && !module_known(check->svc, route->module)) {
        log_error(check->svc->def->name, "route %s names module %s, which %s does not have", name,
                  route->module, check->svc->def->title);
        check->refused++;
    }
}

static void check_http_route(void *arg, const http_route_t *route)
{
    route_check_t *check = arg;
    if (!privilege_declared(route->privilege)) {
        log_error(check->svc->def->name, "route %s %s declares no privilege", route->method, route->path);
        check->refused++;
    }
}

/* Every route declares a privilege and belongs to a module of this
 * service, or the service does not start. */
static int check_routes(service_t *self)
{
    route_check_t check = { self, 0 };
    wire_server_each_route(self->wire, check_wire_route, &check);
    httpd_each_route(self->http, check_http_route, &check);
    return check.refused ? -1 : 0;
}

static int listen_legacy_ports(service_t *self)
{
    if (!config_bool(self->config, "legacy_ports", false))
        return 0;
    for (const service_module_t *m = self->def->modules; m && m->name; m++) {
        char endpoint[256];
        const int ports[] = { m->legacy_port, m->client_port };
        for (size_t i = 0; i < 2; i++) {
            if (!ports[i])
                continue;
            service_bind_endpoint(self, ports[i], endpoint, sizeof endpoint);
            if (wire_server_listen_module(self->wire, m->name, endpoint) < 0)
                return -1;
        }
        if (m->legacy_health_port) {
            service_bind_endpoint(self, m->legacy_health_port, endpoint, sizeof endpoint);
            if (wire_server_listen_any(self->wire, endpoint, on_health, self) < 0)
                return -1;
        }
    }
    return 0;
}

/* Delegation as `config` says, for every module of this service. */
static void apply_modes(service_t *self, config_t *config)
{
    for (const service_module_t *m = self->def->modules; m && m->name; m++) {
        char key[160];
        snprintf(key, sizeof key, "modules.%s.mode", m->name);
        bool delegate = strcmp(config_str(config, key, "unified"), "delegate") == 0;
        snprintf(key, sizeof key, "modules.%s.delegate_to", m->name);
        const char *endpoint = delegate ? config_str(config, key, "") : "";
        if (delegate && !*endpoint)
            log_error(self->def->name, "module %s: mode delegate needs delegate_to", m->name);
        snprintf(key, sizeof key, "modules.%s.fallback", m->name);
        bool fallback = config_bool(config, key, false);
        snprintf(key, sizeof key, "modules.%s.timeout_ms", m->name);
        int timeout_ms = (int)config_int(config, key, 5000);
        snprintf(key, sizeof key, "modules.%s.breaker", m->name);
        breaker_limits_t limits = breaker_limits_read(config, key);
        wire_server_delegate(self->wire, m->name, endpoint, timeout_ms, fallback, &limits);
    }
}

/* The HTTP limits of `http.*`, and the Host allow-list on a browser page. */
static void configure_http(service_t *self)
{
    httpd_limits_t limits = HTTPD_DEFAULT_LIMITS;
    config_t *c = self->config;
    /* The key table holds each in its range (configkeys.c). */
    limits.max_connections = (unsigned)config_int(c, "http.max_connections", limits.max_connections);
    limits.max_per_address = (unsigned)config_int(c, "http.max_connections_per_address",
                                                  limits.max_per_address);
    limits.deadline_s = (unsigned)config_int(c, "http.request_deadline_s", limits.deadline_s);
    limits.max_body = (size_t)config_int(c, "http.max_body_bytes", (long)limits.max_body);
    limits.workers = (unsigned)config_int(c, "http.workers", limits.workers);
    httpd_set_limits(self->http, &limits);
    if (!self->def->serves_browsers)
        return;
    json_t *list = config_get(c, "http.allowed_hosts");
    size_t n = json_array_size(list), k = 0;
    const char **hosts = calloc(n + 1, sizeof *hosts);
    for (size_t i = 0; i < n; i++)
        if (json_is_string(json_array_get(list, i)))
            hosts[k++] = json_string_value(json_array_get(list, i));
    httpd_check_host(self->http, hosts, k);
    free(hosts);
}

int service_start(service_t *self)
{
    if (fs_mkdirs(self->data_dir) < 0) {
        log_error(self->def->name, "cannot create data directory %s", self->data_dir);
        return -1;
    }
    errpub_start(self->errors);
    char err[PATH_MAX + 128];
    self->lock = dirlock_take(self->data_dir, err, sizeof err);
    if (!self->lock) {
        log_error(self->def->name, "%s cannot start: %s", self->def->title, err);
        return -1;
    }
    if (privilege_configure(self->privilege, self->config, err, sizeof err) < 0) {
        log_error(self->def->name, "%s", err);
        return -1;
    }
    privilege_set_admin_check(self->privilege, token_check_admin, self->config);
    httpd_attach(self->http, http_routes, self);
    configure_http(self);
    const char *bind = config_str(self->config, "bind", "127.0.0.1");
    if (httpd_start(self->http, bind, config_port(self->config, self->def->http_port)) < 0)
        return -1;
    wire_server_attach(self->wire, health_routes, self);
    /* Health comes from a cache and never waits: it skips the workers.  A
     * service's own table may replace these routes, and then says itself. */
    for (size_t i = 0; i < 3; i++)
        wire_server_answer_inline(self->wire, WIRE_ACTION, health_routes[i].name);
    char endpoint[256];
    service_bind_endpoint(self, self->def->zmq_port, endpoint, sizeof endpoint);
    if (wire_server_bind(self->wire, endpoint) < 0)
        return -1;
    if (self->def->start && self->def->start(self) < 0) {
        log_error(self->def->name, "%s failed to start", self->def->title);
        return -1;
    }
    if (check_routes(self) < 0) {
        log_error(self->def->name, "%s refused: a route above is declared wrong", self->def->title);
        return -1;
    }
    apply_modes(self, self->config);
    if (listen_legacy_ports(self) < 0 || wire_server_start(self->wire) < 0)
        return -1;
    atomic_store(&self->state, SERVICE_READY);
    announce_start(self->announce);
    log_info(self->def->name, "%s ready (ZMQ %d, HTTP %d)", self->def->title,
             config_port(self->config, self->def->zmq_port),
             config_port(self->config, self->def->http_port));
    return 0;
}

void service_stop(service_t *self)
{
    if (atomic_exchange(&self->state, SERVICE_STOPPING) == SERVICE_STOPPING)
        return;
    announce_stop(self->announce);
    wire_server_stop(self->wire);
    httpd_stop(self->http);
    if (self->def->stop)
        self->def->stop(self);
    dirlock_release(&self->lock);
    log_info(self->def->name, "%s stopped", self->def->title);
}

void service_reload(service_t *self, config_t *fresh)
{
    pthread_mutex_lock(&self->reload_lock);
    char err[256];
    if (privilege_configure(self->privilege, fresh, err, sizeof err) < 0)
        log_error(self->def->name, "reload: %s; keeping the trusted sources", err);
    apply_modes(self, fresh);
    announce_kick(self->announce);
    if (self->def->reload)
        self->def->reload(self, fresh);
    /* A SIGHUP reload comes by no request: the next health reply builds afresh. */
    pthread_mutex_lock(&self->health_text->lock);
    free(self->health_text->text);
    self->health_text->text = NULL;
    pthread_mutex_unlock(&self->health_text->lock);
    pthread_mutex_unlock(&self->reload_lock);
}

void service_set_loader(service_t *self, service_loader_fn *loader, void *ctx)
{
    self->loader = loader;
    self->loader_ctx = ctx;
}
