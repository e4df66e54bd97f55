/*  service: see service.h. */
#include "service.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

json_t *service_health(service_t *self)
{
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    int state = atomic_load(&self->state);
    char message[128];
    const char *phase = state == SERVICE_READY ? "healthy"
                        : state == SERVICE_STARTING ? "starting" : "stopping";
    snprintf(message, sizeof message, "%s is %s", self->def->title, phase);
    char filter[64];
    snprintf(filter, sizeof filter, "service=\"%s\"", self->def->name);
    json_t *dict = json_pack("{s:s, s:b, s:b, s:s, s:s, s:f, s:i, s:s, s:s, s:f}",
                             "status", state == SERVICE_READY ? "ok" : phase,
                             "ready", state == SERVICE_READY,
                             "initialized", state != SERVICE_STARTING,
                             "message", message, "timestamp", ts,
                             "uptime", service_uptime(self),
                             "active_threads", active_threads(),
                             "service", self->def->title, "version", KEEL_VERSION,
                             "requests", metrics_sum(self->metrics, "keel_requests_total", filter));
    if (self->def->health && state == SERVICE_READY)
        self->def->health(self, dict);
    return dict;
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
    (void)req;
    return service_health(ctx);
}

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

service_t *service_new(const service_def_t *def, config_t *config)
{
    service_t *self = calloc(1, sizeof *self);
    self->def = def;
    self->config = config;
    self->started_mono = clock_mono();
    atomic_store(&self->state, SERVICE_STARTING);
    snprintf(self->data_dir, sizeof self->data_dir, "%s/%s",
             config_str(config, "data_dir", "./var/keel"), def->name);
    self->metrics = metrics_new();
    metrics_declare(self->metrics, "keel_uptime_seconds", "Seconds since the service started.",
                    METRIC_GAUGE, NULL, 0);
    self->wire = wire_server_new(def->name, self->metrics);
    wire_server_set_max_request(self->wire, (size_t)config_int(config, "max_request_bytes", 1 << 20));
    self->http = httpd_new(def->name, self->metrics);
    char endpoint[256];
    service_error_bus_endpoint(config, endpoint, sizeof endpoint);
    self->errors = errpub_new(endpoint, def->title);
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
    errpub_destroy(&self->errors);
    metrics_destroy(&self->metrics);
    free(self);
    *self_p = NULL;
}

static void tag_names(service_t *self, const char *module, wire_dialect_t dialect,
                      const char *const *names)
{
    for (size_t i = 0; names && names[i]; i++)
        wire_server_tag(self->wire, module, dialect, names[i]);
}

static void tag_modules(service_t *self)
{
    for (const service_module_t *m = self->def->modules; m && m->name; m++) {
        tag_names(self, m->name, WIRE_ACTION, m->actions);
        tag_names(self, m->name, WIRE_COMMAND, m->commands);
        if (m->type_route)
            wire_server_tag(self->wire, m->name, WIRE_TYPE, NULL);
        if (m->raw_route)
            wire_server_tag(self->wire, m->name, WIRE_RAW, NULL);
    }
}

static int listen_legacy_ports(service_t *self)
{
    if (!config_bool(self->config, "legacy_ports", false))
        return 0;
    for (const service_module_t *m = self->def->modules; m && m->name; m++) {
        char endpoint[256];
        if (m->legacy_port) {
            service_bind_endpoint(self, m->legacy_port, endpoint, sizeof endpoint);
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
        wire_server_delegate(self->wire, m->name, endpoint, timeout_ms, fallback);
    }
}

/* A configured count: the default when it is missing or out of range. */
static unsigned http_count(config_t *config, const char *key, unsigned fallback, unsigned most)
{
    long value = config_int(config, key, fallback);
    if (value < 1 || value > (long)most) {
        log_warn("service", "%s = %ld is out of range (1 to %u): using %u", key, value, most, fallback);
        return fallback;
    }
    return (unsigned)value;
}

/* The HTTP limits of `http.*`, and the Host allow-list on a browser page. */
static void configure_http(service_t *self)
{
    httpd_limits_t limits = HTTPD_DEFAULT_LIMITS;
    config_t *c = self->config;
    limits.max_connections = http_count(c, "http.max_connections", limits.max_connections, 1 << 20);
    limits.max_per_address = http_count(c, "http.max_connections_per_address", limits.max_per_address,
                                        1 << 20);
    limits.deadline_s = http_count(c, "http.request_deadline_s", limits.deadline_s, 3600);
    limits.max_body = http_count(c, "http.max_body_bytes", (unsigned)limits.max_body, 1 << 30);
    limits.workers = http_count(c, "http.workers", limits.workers, 64);
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
    httpd_route(self->http, "GET", "/health", on_http_health, self);
    httpd_route(self->http, "GET", "/metrics", on_http_metrics, self);
    httpd_set_authorizer(self->http, token_http_authorizer, self->config);
    configure_http(self);
    const char *bind = config_str(self->config, "bind", "127.0.0.1");
    if (httpd_start(self->http, bind, config_port(self->config, self->def->http_port)) < 0)
        return -1;
    static const char *health_actions[] = { "ping", "health", "health_check" };
    for (size_t i = 0; i < 3; i++)
        wire_server_on_action(self->wire, health_actions[i], on_health, self);
    char endpoint[256];
    service_bind_endpoint(self, self->def->zmq_port, endpoint, sizeof endpoint);
    if (wire_server_bind(self->wire, endpoint) < 0)
        return -1;
    if (self->def->start && self->def->start(self) < 0) {
        log_error(self->def->name, "%s failed to start", self->def->title);
        return -1;
    }
    tag_modules(self);
    apply_modes(self, self->config);
    if (listen_legacy_ports(self) < 0 || wire_server_start(self->wire) < 0)
        return -1;
    atomic_store(&self->state, SERVICE_READY);
    log_info(self->def->name, "%s ready (ZMQ %d, HTTP %d)", self->def->title,
             config_port(self->config, self->def->zmq_port),
             config_port(self->config, self->def->http_port));
    return 0;
}

void service_stop(service_t *self)
{
    if (atomic_exchange(&self->state, SERVICE_STOPPING) == SERVICE_STOPPING)
        return;
    wire_server_stop(self->wire);
    httpd_stop(self->http);
    if (self->def->stop)
        self->def->stop(self);
    log_info(self->def->name, "%s stopped", self->def->title);
}

void service_reload(service_t *self, config_t *fresh)
{
    apply_modes(self, fresh);
    if (self->def->reload)
        self->def->reload(self, fresh);
}
