/*  announce: see announce.h.
 *
 *  One REQ client (Lazy Pirate, in wire.c) and one ticker (actor.h) per
 *  service, whose interval is the next heartbeat or the backoff; a kick
 *  wakes it, so a reload re-registers at once, and a stop never waits out
 *  a period. */
#include "announce.h"
#include "actor.h"
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_MS 1000
#define MAX_BACKOFF_S 10.0
#define MAX_PERIOD_S 60.0
/* A pass makes a call of at most TIMEOUT_MS per name, twice when it
 * registers, after a wait of at most MAX_PERIOD_S. */
#define WATCH_S (2 * MAX_PERIOD_S)

struct announce_t {
    service_t *svc;
    char endpoint[256];
    wire_client_t *client;
    actor_t *ticker;
    atomic_bool kicked;
    /* the ticker's own */
    bool registered, said_failed, said_done;
    double backoff;
};

char *announce_host(config_t *config, char *buf, size_t len)
{
    const char *host = config_str(config, "advertise_host", "");
    if (!*host)
        host = config_str(config, "core.advertise_host", "");   /* its first home, still read */
    if (!*host) {
        host = config_str(config, "bind", "127.0.0.1");
        if (!strcmp(host, "0.0.0.0") || !strcmp(host, "*")) {
            if (gethostname(buf, len) == 0)
                return buf;
            host = "127.0.0.1";
        }
    }
    snprintf(buf, len, "%s", host);
    return buf;
}

/* host and port of "tcp://host:port"; false if it is not one. */
static bool split_endpoint(const char *endpoint, char *host, size_t len, int *port)
{
    const char *start = strncmp(endpoint, "tcp://", 6) ? NULL : endpoint + 6;
    const char *colon = start ? strrchr(start, ':') : NULL;
    if (!colon || colon == start || (size_t)(colon - start) >= len)
        return false;
    snprintf(host, len, "%.*s", (int)(colon - start), start);
    *port = atoi(colon + 1);
    return *port > 0 && *port < 65536;
}

static json_t *record(service_t *svc, const char *name, json_t *delegation)
{
    char host[256];
    int port = config_port(svc->config, svc->def->zmq_port);
    announce_host(svc->config, host, sizeof host);
    const char *to = json_string_value(json_object_get(json_object_get(delegation, name), "endpoint"));
    bool delegated = to && split_endpoint(to, host, sizeof host, &port);
    /* A Keel service answers a ZMQ health_check on its main port. */
    json_t *fields = json_pack("{s:s, s:s, s:s, s:i, s:i, s:[s], s:{s:s}}", "agent_id", name,
                               "agent_type", svc->def->title, "host", host, "port", port,
                               "health_check_port", port, "capabilities", "keel",
                               "metadata", "alias_of", svc->def->title);
    if (delegated)
        json_object_set_new(json_object_get(fields, "metadata"), "delegated_to", json_string(to));
    return fields;
}

json_t *announce_records(service_t *svc)
{
    json_t *delegation = wire_server_delegation(svc->wire);
    json_t *records = json_array();
    json_array_append_new(records, record(svc, svc->def->title, delegation));
    for (const service_module_t *m = svc->def->modules; m && m->name; m++)
        if (strcmp(m->name, svc->def->title))
            json_array_append_new(records, record(svc, m->name, delegation));
    json_decref(delegation);
    return records;
}

static json_t *call(announce_t *self, json_t *request, char *err, size_t errlen)
{
    json_t *reply = wire_client_call(self->client, request, err, errlen);
    json_decref(request);
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (reply && (!status || strcmp(status, "success"))) {
        const char *why = json_string_value(json_object_get(reply, "error"));
        snprintf(err, errlen, "%s", why ? why : "refused");
        json_decref(reply);
        return NULL;
    }
    return reply;
}

/* Every name registered: true, or false with err. */
static bool register_all(announce_t *self, char *err, size_t errlen)
{
    json_t *records = announce_records(self->svc);
    bool ok = true;
    size_t i;
    json_t *fields;
    json_array_foreach(records, i, fields) {
        json_t *request = json_deep_copy(fields);
        json_object_set_new(request, "action", json_string("register_agent"));
        json_t *reply = call(self, request, err, errlen);
        ok = ok && reply;
        json_decref(reply);
        if (!ok)
            break;
    }
    json_decref(records);
    return ok;
}

/* Every name's heartbeat: the next period (a third of the registry's TTL),
 * 0 when a name is no longer registered, -1 with err on failure. */
static double beat_all(announce_t *self, char *err, size_t errlen)
{
    json_t *records = announce_records(self->svc);
    double period = MAX_PERIOD_S;
    size_t i;
    json_t *fields;
    json_array_foreach(records, i, fields) {
        json_t *reply = call(self, json_pack("{s:s, s:O}", "action", "heartbeat", "agent_name",
                                             json_object_get(fields, "agent_id")), err, errlen);
        if (!reply) {
            period = strstr(err, "not found") ? 0 : -1;
            break;
        }
        double ttl = json_number_value(json_object_get(reply, "ttl_s"));
        if (ttl > 0 && ttl / 3 < period)
            period = ttl / 3;
        json_decref(reply);
    }
    json_decref(records);
    return period;
}

/* One pass: registers when kicked or not yet registered, beats every
 * name, and sets the interval to the next beat or the backoff. */
static void announce_pass(void *arg)
{
    announce_t *self = arg;
    const char *name = self->svc->def->name, *title = self->svc->def->title;
    char err[256] = "";
    double wait = -1;
    if (atomic_exchange(&self->kicked, false) || !self->registered) {
        self->registered = register_all(self, err, sizeof err);
        if (self->registered && !self->said_done)
            log_info(name, "%s's names registered with %s", title, self->endpoint);
        self->said_done = self->said_done || self->registered;
    }
    if (self->registered)
        wait = beat_all(self, err, sizeof err);
    /* A registry that takes the names but has none to beat (it lost
     * them, or it is the original ServiceRegistry, delegated to) is
     * registered with again, after a backoff. */
    if (wait == 0)
        self->registered = false;
    if (wait < 0 && !self->said_failed && actor_running(self->ticker))
        log_warn(name, "cannot keep %s's names registered with %s (%s); retrying", title,
                 self->endpoint, err);
    self->said_failed = wait < 0;
    self->backoff = wait <= 0 ? (self->backoff * 2 > MAX_BACKOFF_S ? MAX_BACKOFF_S : self->backoff * 2)
                              : 0.1;
    actor_set_interval(self->ticker, wait <= 0 ? self->backoff : wait < 0.1 ? 0.1 : wait);
}

announce_t *announce_new(service_t *svc)
{
    announce_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    const char *endpoint = config_str(svc->config, "registry_endpoint", "");
    if (*endpoint)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    else
        config_local_endpoint(svc->config, 7000, self->endpoint, sizeof self->endpoint);
    self->client = wire_client_new(self->endpoint, TIMEOUT_MS, 0);
    self->backoff = 0.1;
    self->ticker = actor_new("announce", MAX_PERIOD_S, announce_pass, self);
    wire_client_cancel_on(self->client, actor_stop_fd(self->ticker));
    actor_watch(self->ticker, svc->liveness, WATCH_S);
    return self;
}

int announce_start(announce_t *self)
{
    return actor_start(self->ticker);
}

void announce_stop(announce_t *self)
{
    actor_stop(self->ticker);
}

void announce_kick(announce_t *self)
{
    atomic_store(&self->kicked, true);
    actor_wake(self->ticker);
}

void announce_destroy(announce_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    announce_t *self = *self_p;
    actor_destroy(&self->ticker);
    wire_client_destroy(&self->client);
    free(self);
    *self_p = NULL;
}
