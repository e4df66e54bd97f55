/*  service: the lifecycle every Keel service shares.  A service is a
 *  definition (name, ports, start/stop hooks) plus the runtime the common
 *  library gives it: configuration, metrics, a wire server on its ZMQ port,
 *  an HTTP server with /health and /metrics, an error publisher and a data
 *  directory of its own, and the privilege every route is checked against
 *  (`trusted_sources`, the administrator's token).  service_start brings HTTP up first, answering 503
 *  "starting" until the service's own start hook has finished, so /health
 *  tells the truth from the first second; service_stop refuses new work,
 *  lets replies in flight finish, then calls the stop hook, which flushes
 *  and closes the service's databases.
 *
 *  Once ready, a service keeps its names (its title and every absorbed
 *  agent) registered with CoreOrchestrator, so the kept agents find it.
 *
 *  Services share no memory, even in one process: each owns its sockets,
 *  threads and database, and talks to the others over the wire.
 *
 *  A running service holds its data directory's lock (dirlock.h), so that
 *  keelctl can tell whether it may write there offline.  Every service
 *  answers `reload` on its own port (administrators only): keelctl reloads
 *  a service by asking it, whichever process or machine runs it, and the
 *  process that started the service says how a fresh configuration is read
 *  (service_set_loader), since only it knows its file, environment and
 *  flags. */
#ifndef KEEL_SERVICE_H
#define KEEL_SERVICE_H
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>

#include "config.h"
#include "dirlock.h"
#include "errpub.h"
#include "httpd.h"
#include "liveness.h"
#include "metrics.h"
#include "privilege.h"
#include "wire.h"

#define KEEL_VERSION "0.1.0"

typedef enum { SERVICE_STARTING, SERVICE_READY, SERVICE_STOPPING } service_state_t;

typedef struct service_t service_t;

/* One absorbed agent and its old ports.  Its routes are those whose
 * table entry names it as `module`.  With `legacy_ports: true` the service
 * also listens on its port (+ PORT_OFFSET) with only those routes; with
 * `modules.<name>.mode: delegate` they are forwarded to
 * `modules.<name>.delegate_to` (the still-running original).  A route
 * naming a module its service does not list fails the start. */
typedef struct {
    const char *name;                   /* "ServiceRegistry" */
    int legacy_port;                    /* 0 when it had none of its own */
    int legacy_health_port;             /* its health REP port, or 0 */
    int client_port;    /* a port kept agents dial for it by default though the original
                         * never bound it (LearningAdjusterAgent's 5632), served like
                         * legacy_port; 0 when none */
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

/* Reads the configuration afresh for a reload: a new config_t, or NULL
 * with the reason in err. */
typedef config_t *(service_loader_fn)(void *ctx, char *err, size_t errlen);

struct service_t {
    const service_def_t *def;
    config_t *config;
    metrics_t *metrics;
    wire_server_t *wire;
    httpd_t *http;
    errpub_t *errors;
    /* Its loops' stamps (the wire thread and workers; loops of its own
     * take theirs with liveness_stamp): keeld feeds systemd's watchdog
     * only while all are fresh. */
    liveness_t *liveness;
    privilege_t *privilege;     /* shared by the wire and HTTP servers */
    char data_dir[PATH_MAX];
    double started_mono;
    atomic_int state;
    dirlock_t *lock;            /* held from start to stop */
    pthread_mutex_t reload_lock;        /* one reload at a time: SIGHUP or `reload` */
    service_loader_fn *loader;
    void *loader_ctx;
    struct announce_t *announce;    /* its names in the registry (announce.h) */
    struct health_text_t *health_text;  /* the wire's health reply, cached (service.c) */
    void *impl;                 /* the service's own state */
};

service_t *service_new(const service_def_t *def, config_t *config);
void service_destroy(service_t **self_p);
int service_start(service_t *self);
void service_stop(service_t *self);
void service_reload(service_t *self, config_t *fresh);
/* How the `reload` action reads a fresh configuration (ctx borrowed);
 * without a loader it answers that this process cannot reload. */
void service_set_loader(service_t *self, service_loader_fn *loader, void *ctx);
/* The BaseAgent health dict (CO-9, docs/wire-protocol.md) plus service,
 * version, pid, ports ({zmq, http}), uptime and requests, after the
 * definition's health hook. */
json_t *service_health(service_t *self);
/* Changes a service makes to the dict on its ZMQ port only. */
typedef void (service_health_adjust_fn)(json_t *dict);
/* The wire's reply to a health request: service_health, then `adjust`
 * (may be NULL), with `message` in place of the dict's when not NULL
 * ("pong"), served from a text cached for at most 10 ms and only while
 * no request that may change state was answered (service.c says why the
 * reply stays true).  The request is declared read only.  Returns what the handler returns (wire_reply_text). */
json_t *service_health_reply(service_t *self, wire_request_t *req, const char *message,
                             service_health_adjust_fn *adjust);
double service_uptime(service_t *self);
/* <data_dir>/<service>/<file>. */
char *service_path(service_t *self, const char *file, char *buf, size_t len);
/* Keel's ZMQ endpoint of a service port, for this service's binds. */
void service_bind_endpoint(service_t *self, int base_port, char *buf, size_t len);
/* Where errors go: error_bus_endpoint, or the local ErrorBus (7150 + offset). */
void service_error_bus_endpoint(config_t *config, char *buf, size_t len);
#endif
