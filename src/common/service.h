/*  service: the lifecycle every Keel service shares.  A service is a
 *  definition (name, ports, start/stop hooks) plus the runtime the common
 *  library gives it: configuration, metrics, a wire server on its ZMQ port,
 *  an HTTP server with /health and /metrics, an error publisher and a data
 *  directory of its own.  service_start brings HTTP up first, answering 503
 *  "starting" until the service's own start hook has finished, so /health
 *  tells the truth from the first second; service_stop refuses new work,
 *  lets replies in flight finish, then calls the stop hook, which flushes
 *  and closes the service's databases.
 *
 *  Services share no memory, even in one process: each owns its sockets,
 *  threads and database, and talks to the others over the wire. */
#ifndef KEEL_SERVICE_H
#define KEEL_SERVICE_H
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>

#include "config.h"
#include "errpub.h"
#include "httpd.h"
#include "metrics.h"
#include "wire.h"

#define KEEL_VERSION "0.1.0"

typedef enum { SERVICE_STARTING, SERVICE_READY, SERVICE_STOPPING } service_state_t;

typedef struct service_t service_t;

/* One absorbed agent: the routes that came from it, and its old port.  With
 * `legacy_ports: true` the service also listens there (+ PORT_OFFSET) with
 * only these routes; with `modules.<name>.mode: delegate` these routes are
 * forwarded to `modules.<name>.delegate_to` (the still-running original). */
typedef struct {
    const char *name;                   /* "ServiceRegistry" */
    int legacy_port;                    /* 0 when it had none of its own */
    const char *const *actions;         /* NULL-terminated, or NULL */
    const char *const *commands;        /* NULL-terminated, or NULL */
    bool type_route, raw_route;         /* owns the `type` / raw route */
    int legacy_health_port;             /* its health REP port, or 0 */
} service_module_t;

typedef struct {
    const char *name;           /* "core": command line, metrics, data dir */
    const char *title;          /* "CoreOrchestrator": messages and health */
    int zmq_port, http_port;    /* before PORT_OFFSET */
    int (*start)(service_t *svc);                   /* 0 or -1 */
    void (*stop)(service_t *svc);
    void (*health)(service_t *svc, json_t *dict);   /* adds or changes fields */
    void (*reload)(service_t *svc, config_t *fresh);
    const service_module_t *modules;    /* ends with { NULL } */
    bool serves_browsers;       /* its HTTP port has a page: Host is checked (httpd.h) */
} service_def_t;

struct service_t {
    const service_def_t *def;
    config_t *config;
    metrics_t *metrics;
    wire_server_t *wire;
    httpd_t *http;
    errpub_t *errors;
    char data_dir[PATH_MAX];
    double started_mono;
    atomic_int state;
    void *impl;                 /* the service's own state */
};

service_t *service_new(const service_def_t *def, config_t *config);
void service_destroy(service_t **self_p);
int service_start(service_t *self);
void service_stop(service_t *self);
void service_reload(service_t *self, config_t *fresh);
/* The BaseAgent health dict (spec/core_orchestrator.md §1.4) plus service,
 * version, uptime and requests, after the definition's health hook. */
json_t *service_health(service_t *self);
double service_uptime(service_t *self);
/* <data_dir>/<service>/<file>. */
char *service_path(service_t *self, const char *file, char *buf, size_t len);
/* Keel's ZMQ endpoint of a service port, for this service's binds. */
void service_bind_endpoint(service_t *self, int base_port, char *buf, size_t len);
/* Where errors go: error_bus_endpoint, or the local ErrorBus (7150 + offset). */
void service_error_bus_endpoint(config_t *config, char *buf, size_t len);
#endif
