/*  memsvc: see memsvc.h.
 *
 *  The error classes need the raw reply (a reply that is JSON but not an
 *  object is an "invalid response", not an error), so probes use the raw
 *  client call and parse here.  The first check waits a full interval, as
 *  the original's loop did not, because a hub that starts before the
 *  memory services should not report them failed in its first second.
 *
 *  The watch runs only where the memory services are configured (either
 *  endpoint, or memory_services.enabled): the original probed 7140 and
 *  7142 on every machine, and a machine without them got a
 *  memory_*_timeout error every minute that nobody could act on.  The
 *  defaults still serve get_system_status, which only asks when asked. */
#include "memsvc.h"
#include "clock.h"
#include "log.h"
#include "prober.h"
#include "wire.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *key;        /* memory_orchestrator | memory_scheduler */
    char *endpoint;
    json_t *record;
} target_t;

struct memsvc_t {
    errpub_t *errors;
    prober_t *prober;
    target_t targets[2];
    int timeout_ms;
    double interval_s;
    bool enabled;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running;
};

memsvc_t *memsvc_new(config_t *config, errpub_t *errors)
{
    memsvc_t *self = calloc(1, sizeof *self);
    self->errors = errors;
    self->prober = prober_new(64);
    self->targets[0] = (target_t){ "memory_orchestrator",
        strdup(config_str(config, "observability.memory_orchestrator_endpoint", "tcp://127.0.0.1:7140")),
        NULL };
    self->targets[1] = (target_t){ "memory_scheduler",
        strdup(config_str(config, "observability.memory_scheduler_endpoint", "tcp://127.0.0.1:7142")),
        NULL };
    self->timeout_ms = (int)config_int(config, "observability.memory_services.timeout_ms", 5000);
    long ms = config_int(config, "observability.memory_services.interval_ms",
                         config_int(config, "observability.memory_services.interval_s", 60) * 1000);
    self->interval_s = (ms > 10 ? ms : 10) / 1000.0;
    bool configured = config_get(config, "observability.memory_orchestrator_endpoint")
                      || config_get(config, "observability.memory_scheduler_endpoint");
    self->enabled = config_bool(config, "observability.memory_services.enabled", configured);
    pthread_mutex_init(&self->lock, NULL);
    clock_cond_init(&self->wake);
    return self;
}

void memsvc_destroy(memsvc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    memsvc_t *self = *self_p;
    memsvc_stop(self);
    prober_destroy(&self->prober);
    for (int i = 0; i < 2; i++) {
        free(self->targets[i].endpoint);
        json_decref(self->targets[i].record);
    }
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Sends one request; the reply object, or NULL with the error class and
 * message set. */
static json_t *call(memsvc_t *self, const char *endpoint, const char *request,
                    const char **cls, char *msg, size_t len)
{
    wire_client_t *client = wire_client_new_agent(endpoint, self->timeout_ms, 0);
    char err[128];
    size_t rlen = 0;
    char *raw = wire_client_call_raw(client, request, strlen(request), &rlen, err, sizeof err);
    wire_client_destroy(&client);
    if (!raw) {
        bool timeout = strstr(err, "no reply") != NULL;
        *cls = timeout ? "timeout" : "health_check_error";
        snprintf(msg, len, "%s", timeout ? "Health check request timed out" : err);
        return NULL;
    }
    json_t *reply = json_loadb(raw, rlen, JSON_DECODE_ANY, NULL);
    if (!json_is_object(reply)) {
        *cls = "invalid_response";
        snprintf(msg, len, "Invalid response format: %.*s", (int)(rlen > 200 ? 200 : rlen), raw);
        json_decref(reply);
        free(raw);
        return NULL;
    }
    free(raw);
    return reply;
}

static void check_one(memsvc_t *self, target_t *t)
{
    const char *cls = NULL;
    char msg[256];
    json_t *reply = call(self, t->endpoint, "{\"action\":\"health_check\",\"data\":{}}", &cls, msg,
                         sizeof msg);
    char ts[40];
    clock_iso_local(clock_wall(), ts, sizeof ts);
    json_t *record;
    if (reply && hprobe_reply_verdict(reply, HPROBE_EXPECT_SUCCESS) == HPROBE_HEALTHY) {
        record = json_pack("{s:s, s:s, s:O}", "status", "healthy", "last_checked", ts, "details", reply);
    } else {
        if (reply) {
            cls = "health_check_failed";
            const char *m = json_string_value(json_object_get(reply, "message"));
            snprintf(msg, sizeof msg, "%s", m ? m : "Unknown error");
        }
        char type[96];
        snprintf(type, sizeof type, "%s_%s", t->key, cls);
        errpub_report(self->errors, type, "ERROR", NULL, "%s", msg);
        const char *status = !strcmp(cls, "timeout") ? "timeout"
                             : !strcmp(cls, "health_check_failed") ? "unhealthy" : "error";
        record = json_pack("{s:s, s:s, s:s, s:s}", "status", status, "last_checked", ts,
                           "error", msg, "error_type", type);
        if (reply)
            json_object_set(record, "details", reply);
    }
    json_decref(reply);
    pthread_mutex_lock(&self->lock);
    json_decref(t->record);
    t->record = record;
    pthread_mutex_unlock(&self->lock);
}

void memsvc_check(memsvc_t *self)
{
    for (int i = 0; i < 2; i++)
        check_one(self, &self->targets[i]);
}

static void *loop(void *arg)
{
    memsvc_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (clock_cond_wait(&self->wake, &self->lock, self->interval_s, &self->running)) {
        pthread_mutex_unlock(&self->lock);
        memsvc_check(self);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

int memsvc_start(memsvc_t *self)
{
    if (!self->enabled)
        return 0;
    self->running = true;
    if (pthread_create(&self->thread, NULL, loop, self) != 0) {
        self->running = false;
        return -1;
    }
    return 0;
}

void memsvc_stop(memsvc_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool was = self->running;
    self->running = false;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (was)
        pthread_join(self->thread, NULL);
}

json_t *memsvc_records(memsvc_t *self)
{
    json_t *records = json_object();
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < 2; i++)
        if (self->targets[i].record)
            json_object_set(records, self->targets[i].key, self->targets[i].record);
    pthread_mutex_unlock(&self->lock);
    return records;
}

/* "tcp://host:port" into the probe's host and port; -1 if it is not one. */
static int split_endpoint(const char *endpoint, hprobe_t *p)
{
    const char *host = strncmp(endpoint, "tcp://", 6) ? NULL : endpoint + 6;
    const char *colon = host ? strrchr(host, ':') : NULL;
    if (!colon || (size_t)(colon - host) >= sizeof p->host)
        return -1;
    memcpy(p->host, host, (size_t)(colon - host));
    p->host[colon - host] = '\0';
    p->port = atoi(colon + 1);
    return p->port > 0 ? 0 : -1;
}

static json_t *sub_reply(hprobe_t *p)
{
    if (json_is_object(p->details))
        return json_incref(p->details);
    if (p->details)
        return json_pack("{s:s, s:s}", "status", "error", "message", "Invalid response format");
    return json_pack("{s:s, s:s}", "status", "error", "message", p->error);
}

/* Both sub-calls at once, so an unreachable service costs one timeout. */
json_t *memsvc_system_status(memsvc_t *self)
{
    static const char *const requests[] = {
        "{\"action\":\"get_memory_system_status\",\"data\":{}}",
        "{\"action\":\"health_check\",\"data\":{}}",
    };
    hprobe_t probes[2];
    memset(probes, 0, sizeof probes);
    for (int i = 0; i < 2; i++) {
        probes[i].kind = HPROBE_ZMQ;
        probes[i].request = requests[i];
        probes[i].timeout_ms = self->timeout_ms;
        probes[i].expect = HPROBE_EXPECT_SUCCESS;
        if (split_endpoint(self->targets[i].endpoint, &probes[i]) < 0) {
            probes[i].result = HPROBE_ERROR;
            snprintf(probes[i].error, sizeof probes[i].error, "bad endpoint %s", self->targets[i].endpoint);
        }
    }
    hprobe_t run[2];
    size_t n = 0, from[2];
    for (size_t i = 0; i < 2; i++)
        if (probes[i].result != HPROBE_ERROR) {
            from[n] = i;
            run[n++] = probes[i];
        }
    prober_run(self->prober, run, n);
    for (size_t k = 0; k < n; k++)
        probes[from[k]] = run[k];
    json_t *reply = json_pack("{s:s, s:{s:o, s:o}}", "status", "success", "memory_system",
                              "orchestrator", sub_reply(&probes[0]), "scheduler", sub_reply(&probes[1]));
    json_decref(probes[0].details);
    json_decref(probes[1].details);
    return reply;
}
