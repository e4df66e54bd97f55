/*  natsbridge: see natsbridge.h.
 *
 *  Loops are broken twice: the connection is opened with NoEcho, so the
 *  server never hands the bus its own messages, and each message carries a
 *  Keel-Origin header, so a bus that does receive one of its own (a server
 *  without NoEcho) skips it.  Events taken from NATS are marked with the
 *  NATS framing and are never published back.  A replay of an event that
 *  is already stored is a duplicate of its error_id and is not stored
 *  again.
 *
 *  While the server is away, libnats buffers publishes (reconnect buffer,
 *  64 MiB); past that a publish fails and is counted.  The database is the
 *  bus's own record either way.  libnats is loaded by the first bridge
 *  (natslib.h), so a bus that does not bridge never maps it. */
#include "natsbridge.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "natslib.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct natsbridge_t {
    const natslib_t *nats;      /* borrowed: natslib.h */
    char *url, *prefix;
    char origin[48];
    evstore_t *store;
    metrics_t *metrics;
    natsOptions *opts;
    natsConnection *conn;
    natsSubscription *sub;
    atomic_long published, received, failed, reconnects, disconnects;
};

static void show_connected(natsbridge_t *self, bool connected)
{
    if (self->metrics)
        metrics_set(self->metrics, "keel_errorbus_nats_connected", "", connected);
}

/* A first connection made late (the server was not up at start). */
static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    show_connected(closure, true);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    natsbridge_t *self = closure;
    atomic_fetch_add(&self->disconnects, 1);
    show_connected(self, false);
    log_warn("errorbus", "NATS connection to %s lost; reconnecting", self->url);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    natsbridge_t *self = closure;
    atomic_fetch_add(&self->reconnects, 1);
    show_connected(self, true);
    log_info("errorbus", "NATS connection to %s restored", self->url);
}

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    natsbridge_t *self = closure;
    const char *origin = NULL;
    if (self->nats->msg_header_get(msg, "Keel-Origin", &origin) == NATS_OK && origin
        && strcmp(origin, self->origin) == 0) {
        self->nats->msg_destroy(msg);
        return;
    }
    const char *data = self->nats->msg_get_data(msg);
    size_t len = (size_t)self->nats->msg_get_data_length(msg);
    char reason[160];
    event_t *e = normalise_text(data ? data : "", data ? len : 0, FRAMING_NATS, clock_wall(),
                                reason, sizeof reason);
    if (e) {
        atomic_fetch_add(&self->received, 1);
        evstore_submit(self->store, e);
    } else {
        char why[200];
        snprintf(why, sizeof why, "payload: %s", reason);
        evstore_quarantine(self->store, "nats", why, data ? data : "", data ? len : 0);
    }
    self->nats->msg_destroy(msg);
}

natsbridge_t *natsbridge_new(const char *url, const char *prefix, evstore_t *store,
                             metrics_t *metrics)
{
    char err[256];
    const natslib_t *nats = natslib_load(err, sizeof err);
    if (!nats) {
        log_error("errorbus", "NATS bridge to %s: %s", url, err);
        return NULL;
    }
    natsbridge_t *self = calloc(1, sizeof *self);
    self->nats = nats;
    self->url = strdup(url);
    self->prefix = strdup(prefix);
    self->store = store;
    self->metrics = metrics;
    normalise_new_id("bus-", self->origin, sizeof self->origin);
    if (metrics) {
        metrics_declare(metrics, "keel_errorbus_nats_published_total",
                        "Events published to NATS.", METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_errorbus_nats_failed_total",
                        "Events NATS did not take (reconnect buffer full).", METRIC_COUNTER, NULL, 0);
        metrics_declare(metrics, "keel_errorbus_nats_connected",
                        "1 while the NATS server is reachable.", METRIC_GAUGE, NULL, 0);
    }
    natsStatus s = self->nats->options_create(&self->opts);
    if (s == NATS_OK) s = self->nats->options_set_url(self->opts, url);
    if (s == NATS_OK) s = self->nats->options_set_name(self->opts, "keel-errorbus");
    if (s == NATS_OK) s = self->nats->options_set_max_reconnect(self->opts, -1);
    if (s == NATS_OK) s = self->nats->options_set_reconnect_wait(self->opts, 250);
    if (s == NATS_OK) s = self->nats->options_set_reconnect_buf_size(self->opts, 64 << 20);
    if (s == NATS_OK) s = self->nats->options_set_no_echo(self->opts, true);
    if (s == NATS_OK) s = self->nats->options_set_retry_on_failed_connect(self->opts, true, on_connected, self);
    if (s == NATS_OK) s = self->nats->options_set_disconnected_cb(self->opts, on_disconnected, self);
    if (s == NATS_OK) s = self->nats->options_set_reconnected_cb(self->opts, on_reconnected, self);
    if (s == NATS_OK) {
        s = self->nats->connection_connect(&self->conn, self->opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            log_warn("errorbus", "NATS server %s not reachable yet; will keep trying", url);
            s = NATS_OK;
        }
    }
    char subject[256];
    snprintf(subject, sizeof subject, "%s.>", prefix);
    if (s == NATS_OK) s = self->nats->connection_subscribe(&self->sub, self->conn, subject, on_message, self);
    if (s == NATS_OK) s = self->nats->subscription_set_pending_limits(self->sub, 1000000, 1 << 30);
    if (s != NATS_OK) {
        log_error("errorbus", "NATS bridge to %s failed: %s", url, self->nats->status_get_text(s));
        natsbridge_destroy(&self);
        return NULL;
    }
    show_connected(self, natsbridge_connected(self));
    log_info("errorbus", "NATS bridge on %s, subjects %s.<level>.<agent>", url, prefix);
    return self;
}

void natsbridge_unsubscribe(natsbridge_t *self)
{
    if (self->sub) {
        self->nats->subscription_unsubscribe(self->sub);
        self->nats->subscription_destroy(self->sub);
        self->sub = NULL;
    }
}

void natsbridge_destroy(natsbridge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    natsbridge_t *self = *self_p;
    natsbridge_unsubscribe(self);
    if (self->conn) {
        self->nats->connection_flush_timeout(self->conn, 1000);
        self->nats->connection_close(self->conn);
        self->nats->connection_destroy(self->conn);
    }
    self->nats->options_destroy(self->opts);
    free(self->url);
    free(self->prefix);
    free(self);
    *self_p = NULL;
}

/* A subject token: letters, digits, '_' and '-' kept, anything else '_'. */
static void token(char *out, size_t len, const char *text)
{
    size_t o = 0;
    for (; text && *text && o + 1 < len; text++)
        out[o++] = isalnum((unsigned char)*text) || *text == '-' || *text == '_' ? *text : '_';
    if (o == 0 && len > 7)
        o = (size_t)snprintf(out, len, "unknown");
    out[o] = '\0';
}

void natsbridge_publish(void *arg, const event_t *e, const char *json, size_t len)
{
    natsbridge_t *self = arg;
    char agent[NAMES_BUF], subject[NAMES_BUF + 256];
    token(agent, sizeof agent, e->agent);
    snprintf(subject, sizeof subject, "%s.%s.%s", self->prefix, e->level, agent);
    natsMsg *msg = NULL;
    natsStatus s = self->nats->msg_create(&msg, subject, NULL, json, (int)len);
    if (s == NATS_OK) s = self->nats->msg_header_set(msg, "Nats-Msg-Id", e->error_id);
    if (s == NATS_OK) s = self->nats->msg_header_set(msg, "Keel-Origin", self->origin);
    if (s == NATS_OK) s = self->nats->connection_publish_msg(self->conn, msg);
    self->nats->msg_destroy(msg);
    if (s == NATS_OK) {
        atomic_fetch_add(&self->published, 1);
        if (self->metrics)
            metrics_add(self->metrics, "keel_errorbus_nats_published_total", "", 1);
    } else {
        atomic_fetch_add(&self->failed, 1);
        if (self->metrics)
            metrics_add(self->metrics, "keel_errorbus_nats_failed_total", "", 1);
    }
}

bool natsbridge_connected(natsbridge_t *self)
{
    return self->conn && self->nats->connection_status(self->conn) == NATS_CONN_STATUS_CONNECTED;
}

json_t *natsbridge_status(natsbridge_t *self)
{
    bool connected = natsbridge_connected(self);
    return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "url", self->url,
                     "connected", connected,
                     "published", (json_int_t)atomic_load(&self->published),
                     "received", (json_int_t)atomic_load(&self->received),
                     "failed", (json_int_t)atomic_load(&self->failed),
                     "reconnects", (json_int_t)atomic_load(&self->reconnects),
                     "disconnects", (json_int_t)atomic_load(&self->disconnects));
}
