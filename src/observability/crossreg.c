/*  crossreg: see crossreg.h.  Wire workers may call it concurrently,
 *  hence the mutex. */
#include "crossreg.h"
#include "clock.h"
#include "names.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct crossreg_t {
    pthread_mutex_t lock;
    json_t *agents;     /* "<machine>/<agent>" -> {machine_id, agent_name, status, last_update} */
    double stale_s;
    metrics_t *metrics;
};

crossreg_t *crossreg_new(double stale_s, metrics_t *metrics)
{
    crossreg_t *self = calloc(1, sizeof *self);
    self->metrics = metrics;
    pthread_mutex_init(&self->lock, NULL);
    self->agents = json_object();
    self->stale_s = stale_s;
    return self;
}

void crossreg_destroy(crossreg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    json_decref((*self_p)->agents);
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

static json_t *status_view(crossreg_t *self)
{
    json_t *agents = json_object();
    double now = clock_wall();
    const char *key;
    json_t *entry;
    json_object_foreach(self->agents, key, entry) {
        json_t *copy = json_copy(entry);
        if (now - json_number_value(json_object_get(entry, "last_update")) > self->stale_s)
            json_object_set_new(copy, "status", json_string("stale"));
        json_object_set_new(agents, key, copy);
    }
    return json_pack("{s:s, s:o}", "status", "success", "agents", agents);
}

json_t *crossreg_handle(crossreg_t *self, json_t *request)
{
    json_t *type = json_object_get(request, "request_type");
    const char *t = json_string_value(type);
    if (t && !strcmp(t, "get_status")) {
        pthread_mutex_lock(&self->lock);
        json_t *reply = status_view(self);
        pthread_mutex_unlock(&self->lock);
        return reply;
    }
    const char *machine = json_string_value(json_object_get(request, "machine_id"));
    const char *agent = json_string_value(json_object_get(request, "agent_name"));
    bool known = t && (!strcmp(t, "register") || !strcmp(t, "unregister") || !strcmp(t, "heartbeat"));
    if (!known) {
        char *text = t ? NULL : json_dumps(type, JSON_ENCODE_ANY | JSON_COMPACT);
        json_t *reply = json_pack("{s:s, s:s++}", "status", "error", "error", "Unknown request type: ",
                                  t ? t : json_is_null(type) ? "None" : text ? text : "None", "");
        free(text);
        return reply;
    }
    if (!machine || !*machine || !agent || !*agent)
        return json_pack("{s:s, s:s}", "status", "error", "error", "Missing machine_id or agent_name");
    char key[2 * NAMES_BUF], why[128];
    if (names_refuse(self->metrics, "observability", "machine_id", machine, why, sizeof why)
        || names_refuse(self->metrics, "observability", "agent_name", agent, why, sizeof why))
        return json_pack("{s:s, s:s}", "status", "error", "error", why);
    if (strchr(machine, '/'))
        return json_pack("{s:s, s:s}", "status", "error", "error", "machine_id must not contain '/'");
    snprintf(key, sizeof key, "%s/%s", machine, agent);
    json_t *reply;
    pthread_mutex_lock(&self->lock);
    if (!strcmp(t, "unregister")) {
        json_object_del(self->agents, key);
        reply = json_pack("{s:s, s:s++++}", "status", "success", "message", "Unregistered agent ",
                          agent, " on machine ", machine, "");
    } else {
        json_object_set_new(self->agents, key, json_pack("{s:s, s:s, s:s, s:f}", "machine_id", machine,
                                                         "agent_name", agent, "status", "running",
                                                         "last_update", clock_wall()));
        reply = !strcmp(t, "register")
            ? json_pack("{s:s, s:s++++}", "status", "success", "message", "Registered agent ", agent,
                        " on machine ", machine, "")
            : json_pack("{s:s}", "status", "success");
    }
    pthread_mutex_unlock(&self->lock);
    return reply;
}
