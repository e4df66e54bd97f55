/*  memsvc: see memsvc.h.
 *
 *  Both services are asked at once (gather.h), so one that is down costs
 *  one timeout.  The error classes need the raw reply (a reply that is
 *  JSON but not an object is an "invalid response", not an error), so it
 *  is parsed here.  The first check waits a full interval, as the
 *  original's loop did not, because a hub that starts before the memory
 *  services should not report them failed in its first second.
 *
 *  The watch runs only where the memory services are configured (either
 *  endpoint, or memory_services.enabled): the original probed 7140 and
 *  7142 on every machine, and a machine without them got a
 *  memory_*_timeout error every minute that nobody could act on.  The
 *  defaults still serve get_system_status, which only asks when asked. */
#include "memsvc.h"
#include "actor.h"
#include "clock.h"
#include "gather.h"
#include "log.h"
#include "prober.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key;        /* memory_orchestrator | memory_scheduler */
    char *endpoint;
    json_t *record;
} target_t;

struct memsvc_t {
    errpub_t *errors;
    target_t targets[2];
    int timeout_ms;
    bool enabled;
    actor_t *ticker;
    pthread_mutex_t lock;
};

static void check(void *arg)
{
    memsvc_check(arg);
}

memsvc_t *memsvc_new(config_t *config, errpub_t *errors)
{
    memsvc_t *self = calloc(1, sizeof *self);
    self->errors = errors;
    self->targets[0] = (target_t){ "memory_orchestrator",
        strdup(config_str(config, "observability.memory_orchestrator_endpoint", "tcp://127.0.0.1:7140")),
        NULL };
    self->targets[1] = (target_t){ "memory_scheduler",
        strdup(config_str(config, "observability.memory_scheduler_endpoint", "tcp://127.0.0.1:7142")),
        NULL };
    self->timeout_ms = (int)config_int(config, "observability.memory_services.timeout_ms", 5000);
    long ms = config_int(config, "observability.memory_services.interval_ms",
                         config_int(config, "observability.memory_services.interval_s", 60) * 1000);
    self->ticker = actor_new("obs memsvc", (ms > 10 ? ms : 10) / 1000.0, check, self);
    actor_delay_first(self->ticker);
    bool configured = config_get(config, "observability.memory_orchestrator_endpoint")
                      || config_get(config, "observability.memory_scheduler_endpoint");
    self->enabled = config_bool(config, "observability.memory_services.enabled", configured);
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

void memsvc_destroy(memsvc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    memsvc_t *self = *self_p;
    actor_destroy(&self->ticker);
    for (int i = 0; i < 2; i++) {
        free(self->targets[i].endpoint);
        json_decref(self->targets[i].record);
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static const char HEALTH_CHECK[] = "{\"action\":\"health_check\",\"data\":{}}";

/* Asks both services at once, requests[i] of targets[i], so one that is
 * down costs one timeout, not two, and none once cancel_fd (-1: none)
 * turns readable; the caller clears the calls. */
static void ask_both(memsvc_t *self, const char *const requests[2], gather_call_t calls[2], int cancel_fd)
{
    for (int i = 0; i < 2; i++)
        calls[i] = (gather_call_t){ .url = self->targets[i].endpoint, .body = requests[i],
                                    .body_len = strlen(requests[i]), .agent = true };
    gather_run_until(calls, 2, self->timeout_ms, cancel_fd);
}

/* The reply object of a call, or NULL with the error class and message set. */
static json_t *reply_of(const gather_call_t *call, const char **cls, char *msg, size_t len)
{
    json_t *reply = gather_reply_json(call);
    if (json_is_object(reply))
        return reply;
    json_decref(reply);
    if (call->state == GATHER_OK) {
        *cls = "invalid_response";
        snprintf(msg, len, "Invalid response format: %.*s", (int)(call->reply_len > 200 ? 200 : call->reply_len),
                 call->reply ? call->reply : "");
    } else {
        *cls = call->state == GATHER_TIMEOUT ? "timeout" : "health_check_error";
        snprintf(msg, len, "%s", call->state == GATHER_TIMEOUT ? "Health check request timed out" : call->error);
    }
    return NULL;
}

static void check_one(memsvc_t *self, target_t *t, const gather_call_t *call)
{
    const char *cls = NULL;
    char msg[256];
    json_t *reply = reply_of(call, &cls, msg, sizeof msg);
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
    static const char *const requests[2] = { HEALTH_CHECK, HEALTH_CHECK };
    gather_call_t calls[2];
    ask_both(self, requests, calls, actor_stop_fd(self->ticker));
    for (int i = 0; i < 2; i++)
        check_one(self, &self->targets[i], &calls[i]);
    gather_clear(calls, 2);
}

int memsvc_start(memsvc_t *self)
{
    return self->enabled ? actor_start(self->ticker) : 0;
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

static json_t *sub_reply(const gather_call_t *call)
{
    const char *cls = NULL;
    char msg[256];
    json_t *reply = reply_of(call, &cls, msg, sizeof msg);
    if (reply)
        return reply;
    return json_pack("{s:s, s:s}", "status", "error", "message",
                     !strcmp(cls, "invalid_response") ? "Invalid response format" : call->error);
}

json_t *memsvc_system_status(memsvc_t *self)
{
    static const char *const requests[2] = { "{\"action\":\"get_memory_system_status\",\"data\":{}}",
                                             HEALTH_CHECK };
    gather_call_t calls[2];
    ask_both(self, requests, calls, -1);
    json_t *reply = json_pack("{s:s, s:{s:o, s:o}}", "status", "success", "memory_system",
                              "orchestrator", sub_reply(&calls[0]), "scheduler", sub_reply(&calls[1]));
    gather_clear(calls, 2);
    return reply;
}
