/*  coordinator: see coordinator.h.
 *
 *  Two runners (actor.h).  The dispatcher pops the queue and calls
 *  downstream agents (a slow one delays only the queue, never a reply on
 *  port 7000); a push wakes it.  The listener polls the interrupt and
 *  language-analysis subscriptions and runs the timers (inactivity,
 *  metrics file).  Requests are answered on the wire thread, which only
 *  validates, computes the priority and pushes.
 *
 *  Changes from the original, each deliberate:
 *  - a full queue is answered with an error, not "queued";
 *  - downstream agents are resolved in the registry at dispatch time under
 *    their registry names (ChainOfThoughtAgent, GOT_TOTAgent, ...);
 *  - HALF_OPEN lets one probe through (the common breaker), not all;
 *  - the suggestion list and the metric lists are bounded;
 *  - language-analysis frames may be JSON or pickles, and pickles go
 *    through the safe-subset decoder.
 *  Downstream failures go to ErrorBus as task_processing_error. */
#include "coordinator.h"
#include "actor.h"
#include "breaker.h"
#include "clock.h"
#include "fsutil.h"
#include "heap.h"
#include "log.h"
#include "pickle.h"
#include "zsub.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define KEEP 100                /* entries kept per metric list */
#define MAX_SUGGESTIONS 100
#define SUGGESTION "Paalala: Huwag kalimutang i-save ang iyong trabaho."
#define IDLE_S 1.0              /* the dispatcher's wait for a push */
#define POLL_MS 100             /* the listener's wait for a frame */

enum { COT, GOT, TTS, MEMORY, NTARGETS };
static const char *const target_names[NTARGETS] = {
    "ChainOfThoughtAgent", "GOT_TOTAgent", "StreamingTTSAgent", "MemoryOrchestrator",
};
static const char *const types[3] = { "text", "audio", "vision" };

struct coordinator_t {
    service_t *svc;
    registry_t *registry;
    size_t queue_max;
    int timeout_ms;
    double pause_s, inactivity_s, inactivity_check_s, save_s;
    char interrupt_ep[256], language_ep[256], metrics_path[4096];
    size_t max_frame;           /* the cap on a subscription's frame (zsub.h) */

    actor_t *dispatcher, *listener;
    pthread_mutex_t lock;
    heap_t *queue;
    double paused_until;        /* monotonic */
    double last_interaction;    /* monotonic */
    json_t *suggestions;        /* FIFO of strings */
    json_t *stats;              /* the metrics file's object */
    breaker_t *breakers[NTARGETS];
    wire_server_t *suggest;
};

/* ---- the formula ---------------------------------------------------------- */

int coordinator_priority(const char *task_type, const char *user_id, json_t *metadata,
                         size_t queue_len, size_t queue_max)
{
    int p = !strcmp(task_type, "audio_processing") ? 1 : !strcmp(task_type, "text_processing") ? 2
          : !strcmp(task_type, "background_task") ? 5 : 3;
    if (user_id && *user_id) {
        const char *ut = json_string_value(json_object_get(metadata, "user_type"));
        if (ut)
            p += !strcmp(ut, "admin") ? -2 : !strcmp(ut, "premium") ? -1 : !strcmp(ut, "guest") ? 1 : 0;
    }
    const char *urgency = json_string_value(json_object_get(metadata, "urgency"));
    if (urgency)
        p += !strcmp(urgency, "critical") ? -3 : !strcmp(urgency, "high") ? -1 : !strcmp(urgency, "low") ? 1 : 0;
    if ((double)queue_len > (double)queue_max * 0.8)
        p += 1;
    return p < 1 ? 1 : p > 10 ? 10 : p;
}

/* ---- validation ------------------------------------------------------------- */

static const char *check(json_t *body, const char *key, int kind, bool required, char *buf, size_t len,
                         const char *model)
{
    json_t *v = json_object_get(body, key);
    const char *why = NULL;
    if (!v)
        why = required ? "Field required" : NULL;
    else if (kind == 's' && !json_is_string(v))
        why = "Input should be a valid string";
    else if (kind == 'n' && !json_is_string(v) && !json_is_null(v))
        why = "Input should be a valid string";
    else if (kind == 'o' && !json_is_object(v))
        why = "Input should be a valid dictionary";
    else if (kind == 'i' && !json_is_integer(v))
        why = "Input should be a valid integer";
    else if (kind == 't') {
        double t;
        if (!json_is_number(v) && !(json_is_string(v) && clock_parse_iso(json_string_value(v), &t) == 0))
            why = "Input should be a valid datetime";
    }
    if (!why)
        return NULL;
    snprintf(buf, len, "1 validation error for %s\n%s\n  %s", model, key, why);
    return buf;
}

const char *coordinator_validate(const char *type, json_t *body, char *buf, size_t len)
{
    const char *model = !strcmp(type, "text") ? "TextRequest" : !strcmp(type, "audio") ? "AudioRequest"
                      : "VisionRequest";
    const char *main_key = !strcmp(type, "text") ? "data" : !strcmp(type, "audio") ? "audio_data" : "image_data";
    const char *why = check(body, main_key, 's', true, buf, len, model);
    if (!why) why = check(body, "context", 'o', false, buf, len, model);
    if (!why) why = check(body, "metadata", 'o', false, buf, len, model);
    if (!why) why = check(body, "user_id", 'n', false, buf, len, model);
    if (!why) why = check(body, "session_id", 'n', false, buf, len, model);
    if (!why) why = check(body, "timestamp", 't', false, buf, len, model);
    if (!why && strcmp(type, "text") != 0)
        why = check(body, "format", 's', false, buf, len, model);
    if (!why && !strcmp(type, "audio"))
        why = check(body, "sample_rate", 'i', false, buf, len, model);
    return why;
}

json_t *coordinator_from_language(json_t *msg)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type || strcmp(type, "language_analysis") != 0)
        return NULL;
    json_t *translated = json_object_get(msg, "translated_text");
    json_t *transcription = json_object_get(msg, "transcription");
    const char *tt = json_string_value(translated);
    json_t *data = tt && *tt ? translated : transcription;
    if (!json_is_string(data))
        return NULL;
    json_t *lang = json_object_get(msg, "detected_language");
    return json_pack("{s:s, s:O, s:{s:O, s:O, s:O}, s:{s:s, s:b, s:O, s:O}}",
                     "type", "text", "data", data,
                     "context", "original_text", transcription ? transcription : json_null(),
                     "language_analysis", json_object_get(msg, "analysis") ? json_object_get(msg, "analysis") : json_null(),
                     "detected_language", lang ? lang : json_null(),
                     "metadata", "source", "speech_recognition",
                     "was_translated", translated && !json_is_null(translated),
                     "translation_status", json_object_get(msg, "translation_status") ? json_object_get(msg, "translation_status") : json_null(),
                     "original_language", lang ? lang : json_null());
}

/* ---- metrics ------------------------------------------------------------- */

static json_t *default_stats(void)
{
    return json_pack("{s:i, s:{s:i, s:i, s:i}, s:i, s:i, s:{s:[], s:[], s:[]}, s:[], s:n}",
                     "requests_total", 0, "requests_by_type", "text", 0, "audio", 0, "vision", 0,
                     "success", 0, "failure", 0, "response_times", "text", "audio", "vision",
                     "queue_sizes", "last_updated");
}

static void bump(json_t *obj, const char *key)
{
    json_object_set_new(obj, key, json_integer(json_integer_value(json_object_get(obj, key)) + 1));
}

static void keep_last(json_t *list)
{
    while (json_array_size(list) > KEEP)
        json_array_remove(list, 0);
}

static void load_stats(coordinator_t *self)
{
    self->stats = default_stats();
    json_t *saved = json_load_file(self->metrics_path, 0, NULL);
    if (json_is_object(saved))
        json_object_update(self->stats, saved);
    json_decref(saved);
}

/* Call with the lock held. */
static void save_stats(coordinator_t *self)
{
    char ts[40];
    json_object_set_new(self->stats, "last_updated", json_string(clock_iso_local(clock_wall(), ts, sizeof ts)));
    json_t *rt = json_object_get(self->stats, "response_times");
    const char *k;
    json_t *v;
    json_object_foreach(rt, k, v)
        keep_last(v);
    keep_last(json_object_get(self->stats, "queue_sizes"));
    char *text = json_dumps(self->stats, JSON_INDENT(2));
    if (text && fs_write_atomic(self->metrics_path, text, strlen(text), 0640) < 0)
        log_warn("core", "cannot save coordinator metrics to %s", self->metrics_path);
    free(text);
}

/* ---- requests ------------------------------------------------------------- */

static json_t *response(const char *status, const char *message, const char *error)
{
    char ts[40];
    return json_pack("{s:s, s:s?, s:n, s:n, s:n, s:s?, s:{}, s:s}", "status", status, "message", message,
                     "data", "speak", "memory_entry", "error", error, "metadata",
                     "timestamp", clock_iso_local(clock_wall(), ts, sizeof ts));
}

static void count(coordinator_t *self, const char *family, const char *key, const char *value)
{
    char labels[96];
    metrics_labels(labels, sizeof labels, key, value, NULL);
    metrics_add(self->svc->metrics, family, labels, 1);
}

/* Builds a task of task_type carrying `request` (borrowed) as parameters[key]
 * and queues it; 0 with its id in id, or -1 when the queue is full. */
static int enqueue_task(coordinator_t *self, const char *task_type, const char *key, json_t *request,
                        char *id, size_t idlen)
{
    char ts[40];
    double now = clock_wall();
    snprintf(id, idlen, "task_%.6f", now);
    json_t *meta = json_object_get(request, "metadata");
    pthread_mutex_lock(&self->lock);
    int prio = coordinator_priority(task_type, json_string_value(json_object_get(request, "user_id")),
                                    meta, heap_size(self->queue), self->queue_max);
    json_t *task = json_pack("{s:s, s:s, s:s, s:i, s:{s:O}, s:[], s:n, s:s, s:n}",
                             "task_id", id, "agent_id", "RequestCoordinator", "task_type", task_type,
                             "priority", prio, "parameters", key, request, "dependencies",
                             "timeout_seconds", "created_at", clock_iso_local(now, ts, sizeof ts),
                             "scheduled_for");
    int rc = heap_push(self->queue, prio, task);
    pthread_mutex_unlock(&self->lock);
    if (rc == 0)
        actor_wake(self->dispatcher);
    if (rc < 0) {
        json_decref(task);
        count(self, "keel_core_tasks_dropped_total", "reason", "queue_full");
        log_warn("core", "task queue full (%zu); %s dropped", self->queue_max, task_type);
    }
    return rc;
}

/* A user request of `type` (text, audio, vision) as a task. */
static int enqueue(coordinator_t *self, const char *type, json_t *request)
{
    char task_type[32], id[48];
    snprintf(task_type, sizeof task_type, "%s_processing", type);
    return enqueue_task(self, task_type, "request", request, id, sizeof id);
}

static json_t *on_type(void *ctx, wire_request_t *req)
{
    coordinator_t *self = ctx;
    double started = clock_mono();
    const char *type = req->name;
    int t = -1;
    for (int i = 0; i < 3; i++)
        if (type && !strcmp(type, types[i]))
            t = i;
    pthread_mutex_lock(&self->lock);
    self->last_interaction = started;
    bump(self->stats, "requests_total");
    if (t >= 0)
        bump(json_object_get(self->stats, "requests_by_type"), types[t]);
    json_array_append_new(json_object_get(self->stats, "queue_sizes"), json_integer((json_int_t)heap_size(self->queue)));
    keep_last(json_object_get(self->stats, "queue_sizes"));
    pthread_mutex_unlock(&self->lock);
    if (t < 0) {
        char *text = json_is_string(json_object_get(req->body, "type")) ? NULL
                   : json_dumps(json_object_get(req->body, "type"), JSON_ENCODE_ANY | JSON_COMPACT);
        char message[300];
        snprintf(message, sizeof message, "Unknown request type: %s", text ? text : type);
        free(text);
        return response("error", message, NULL);
    }
    char buf[512];
    const char *why = coordinator_validate(type, req->body, buf, sizeof buf);
    if (why)
        return response("error", why, why);
    if (enqueue(self, type, req->body) < 0) {
        char message[160];
        snprintf(message, sizeof message, "Request queue is full (%zu tasks); %s request not queued",
                 self->queue_max, type);
        return response("error", message, "queue_full");
    }
    pthread_mutex_lock(&self->lock);
    json_t *rt = json_object_get(json_object_get(self->stats, "response_times"), type);
    json_array_append_new(rt, json_real(clock_mono() - started));
    keep_last(rt);
    pthread_mutex_unlock(&self->lock);
    char message[64];
    snprintf(message, sizeof message, "%c%s request queued", type[0] - 32, type + 1);
    return response("success", message, NULL);
}

/* ProactiveAgent's due task ({"action":"execute_task","task":{...}},
 * main_pc_code/agents/ProactiveAgent.py:_execute_task), which no original
 * coordinator answered: queued whole as a background task (priority 5 in
 * the formula) for ChainOfThoughtAgent.  ProactiveAgent marks the task
 * completed on "success" and logs `message` otherwise. */
static json_t *on_execute_task(void *ctx, wire_request_t *req)
{
    coordinator_t *self = ctx;
    json_t *task = json_object_get(req->body, "task");
    if (!json_is_object(task))
        return response("error", "'task' must be an object", "invalid_task");
    char id[48], message[160];
    if (enqueue_task(self, "background_task", "task", task, id, sizeof id) < 0) {
        snprintf(message, sizeof message, "Request queue is full (%zu tasks); task not queued", self->queue_max);
        return response("error", message, "queue_full");
    }
    snprintf(message, sizeof message, "Task queued as %s", id);
    json_t *reply = response("success", message, NULL);
    json_object_set_new(reply, "task_id", json_string(id));
    return reply;
}

/* ---- dispatch --------------------------------------------------------------- */

/* tcp://host:port of a registered agent, or -1 with err. */
static int resolve(coordinator_t *self, const char *name, char *endpoint, size_t len, char *err, size_t errlen)
{
    json_t *rec = registry_lookup(self->registry, name, err, errlen);
    if (!rec)
        return -1;
    const char *host = json_string_value(json_object_get(rec, "host"));
    if (!host || !strcmp(host, "0.0.0.0"))
        host = "127.0.0.1";
    snprintf(endpoint, len, "tcp://%s:%lld", host, (long long)json_integer_value(json_object_get(rec, "port")));
    json_decref(rec);
    return 0;
}

/* A side request (TTS, memory); failures are reported, not retried. */
static void side_call(coordinator_t *self, int target, json_t *request, const char *error_type, const char *what)
{
    char endpoint[300], err[512];
    json_t *reply = NULL;
    if (resolve(self, target_names[target], endpoint, sizeof endpoint, err, sizeof err) == 0)
        reply = wire_call_agent(endpoint, request, self->timeout_ms, 0, err, sizeof err);
    if (!reply)
        errpub_report(self->svc->errors, error_type, "medium", NULL, "Error sending %s request: %s", what, err);
    json_decref(reply);
}

static void dispatch(coordinator_t *self, json_t *task)
{
    const char *task_type = json_string_value(json_object_get(task, "task_type"));
    int target = strstr(task_type, "audio") || strstr(task_type, "vision") ? GOT : COT;
    breaker_t *b = self->breakers[target];
    if (!breaker_allow(b, clock_mono())) {
        count(self, "keel_core_tasks_dropped_total", "reason", "breaker_open");
        log_warn("core", "breaker for %s is open; task %s dropped", target_names[target],
                 json_string_value(json_object_get(task, "task_id")));
        return;
    }
    char endpoint[300], err[512];
    json_t *reply = NULL;
    if (resolve(self, target_names[target], endpoint, sizeof endpoint, err, sizeof err) == 0)
        reply = wire_call_agent(endpoint, task, self->timeout_ms, 0, err, sizeof err);
    if (!reply) {
        breaker_record_failure(b, clock_mono());
        count(self, "keel_core_tasks_total", "outcome", "error");
        json_t *details = json_pack("{s:O, s:s, s:O}", "task_id", json_object_get(task, "task_id"),
                                    "service", target_names[target], "task_type", json_object_get(task, "task_type"));
        errpub_report(self->svc->errors, "task_processing_error", "high", details, "Failed to process task %s: %s",
                      json_string_value(json_object_get(task, "task_id")), err);
        json_decref(details);
        return;
    }
    const char *status = json_string_value(json_object_get(reply, "status"));
    bool ok = status && !strcmp(status, "success");
    pthread_mutex_lock(&self->lock);
    bump(self->stats, ok ? "success" : "failure");
    pthread_mutex_unlock(&self->lock);
    count(self, "keel_core_tasks_total", "outcome", ok ? "success" : "failure");
    const char *speak = json_string_value(json_object_get(reply, "speak"));
    if (speak && *speak) {
        json_t *req = json_pack("{s:s}", "text", speak);
        side_call(self, TTS, req, "tts_request_error", "TTS");
        json_decref(req);
    }
    json_t *entry = json_object_get(reply, "memory_entry");
    if (entry && !json_is_null(entry)) {
        json_t *req = json_pack("{s:s, s:O}", "action", "save", "data", entry);
        side_call(self, MEMORY, req, "memory_storage_error", "memory");
        json_decref(req);
    }
    breaker_record_success(b, clock_mono());
    json_decref(reply);
}

static void dispatcher_run(actor_t *actor, void *arg)
{
    coordinator_t *self = arg;
    while (actor_running(actor)) {
        pthread_mutex_lock(&self->lock);
        double paused = self->paused_until - clock_mono();
        json_t *task = paused > 0 ? NULL : heap_pop(self->queue, NULL);
        pthread_mutex_unlock(&self->lock);
        if (!task) {
            actor_wait(actor, paused > 0 && paused < IDLE_S ? paused : IDLE_S);
            continue;
        }
        dispatch(self, task);
        json_decref(task);
    }
}

/* ---- subscriptions and timers -------------------------------------------------- */

static void on_interrupt(coordinator_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t cleared = heap_size(self->queue);
    heap_clear(self->queue);
    self->paused_until = clock_mono() + self->pause_s;
    pthread_mutex_unlock(&self->lock);
    count(self, "keel_core_interrupts_total", "source", "interrupt");
    log_info("core", "interrupt: %zu queued task(s) cleared, dispatch paused %.1f s", cleared, self->pause_s);
}

static void on_language(coordinator_t *self, const char *data, size_t len)
{
    json_t *msg = NULL;
    char err[256] = "";
    if (len && data[0] == '{')
        msg = json_loadb(data, len, 0, NULL);
    else
        msg = pickle_decode(data, len, err, sizeof err);
    if (!msg) {
        count(self, "keel_core_language_frames_total", "outcome", "rejected");
        log_warn("core", "language-analysis frame rejected: %s", *err ? err : "not JSON");
        return;
    }
    json_t *request = coordinator_from_language(msg);
    json_decref(msg);
    if (!request) {
        count(self, "keel_core_language_frames_total", "outcome", "ignored");
        return;
    }
    count(self, "keel_core_language_frames_total", "outcome", "queued");
    enqueue(self, "text", request);
    json_decref(request);
}

static void timers(coordinator_t *self, double *last_check, double *last_save)
{
    double now = clock_mono();
    pthread_mutex_lock(&self->lock);
    if (now - *last_check >= self->inactivity_check_s) {
        *last_check = now;
        if (now - self->last_interaction > self->inactivity_s) {
            if (json_array_size(self->suggestions) < MAX_SUGGESTIONS)
                json_array_append_new(self->suggestions, json_string(SUGGESTION));
            self->last_interaction = now;
        }
    }
    if (now - *last_save >= self->save_s) {
        *last_save = now;
        save_stats(self);
    }
    pthread_mutex_unlock(&self->lock);
}

static void listener_run(actor_t *actor, void *arg)
{
    coordinator_t *self = arg;
    /* NULL when SECURE_ZMQ has no client key: that channel is not heard. */
    zsub_t *subs[2] = { zsub_new(self->interrupt_ep, self->max_frame),
                        zsub_new(self->language_ep, self->max_frame) };
    static const char *const channels[2] = { "interrupt", "language" };
    long drops[2] = { 0, 0 };
    double last_check = clock_mono(), last_save = clock_mono();
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (actor_running(actor)) {
        actor_alive(actor);
        zmq_pollitem_t items[5];
        int at[3] = { 0, 0, 0 };        /* subscription i polls items[at[i] .. at[i + 1]) */
        for (int i = 0; i < 2; i++)
            at[i + 1] = at[i] + (subs[i] ? zsub_pollitems(subs[i], items + at[i]) : 0);
        items[at[2]] = (zmq_pollitem_t){ NULL, actor_stop_fd(actor), ZMQ_POLLIN, 0 };
        if (zmq_poll(items, at[2] + 1, POLL_MS) > 0) {
            for (int i = 0; i < 2; i++) {
                if (at[i + 1] == at[i] || zsub_recv(subs[i], items + at[i], &msg) == 0)
                    continue;
                if (i == 0)
                    on_interrupt(self);
                else
                    on_language(self, zmq_msg_data(&msg), zmq_msg_size(&msg));
            }
        }
        for (int i = 0; i < 2; i++)
            for (long d = subs[i] ? zsub_drops(subs[i]) : 0; drops[i] < d; drops[i]++)
                count(self, "keel_core_subscription_drops_total", "channel", channels[i]);
        timers(self, &last_check, &last_save);
    }
    zmq_msg_close(&msg);
    zsub_destroy(&subs[0]);
    zsub_destroy(&subs[1]);
}

/* ---- suggestion port ---------------------------------------------------------- */

static json_t *on_suggestion_raw(void *ctx, wire_request_t *req)
{
    coordinator_t *self = ctx;
    json_t *reply = json_pack("{s:n}", "suggestion");
    if (req->raw_len == 14 && !memcmp(req->raw, "get_suggestion", 14)) {
        pthread_mutex_lock(&self->lock);
        if (json_array_size(self->suggestions)) {
            json_object_set(reply, "suggestion", json_array_get(self->suggestions, 0));
            json_array_remove(self->suggestions, 0);
        }
        pthread_mutex_unlock(&self->lock);
    }
    return reply;
}

static json_t *on_suggestion_other(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    return json_pack("{s:n}", "suggestion");
}

/* ---- lifecycle ------------------------------------------------------------- */

static void collect(metrics_t *metrics, void *arg)
{
    coordinator_t *self = arg;
    pthread_mutex_lock(&self->lock);
    size_t queued = heap_size(self->queue);
    pthread_mutex_unlock(&self->lock);
    metrics_set(metrics, "keel_core_queue_size", NULL, (double)queued);
}

coordinator_t *coordinator_new(service_t *svc, registry_t *registry)
{
    config_t *cfg = svc->config;
    coordinator_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    self->registry = registry;
    long qmax = config_int(cfg, "core.coordinator.queue_max_size", 100);
    self->queue_max = qmax < 1 ? 1 : (size_t)qmax;
    self->timeout_ms = (int)config_int(cfg, "core.coordinator.task_timeout_ms", 5000);
    self->pause_s = config_double(cfg, "core.coordinator.interrupt_pause_s", 5.0);
    self->inactivity_s = config_double(cfg, "core.coordinator.inactivity_s", 300.0);
    self->inactivity_check_s = config_double(cfg, "core.coordinator.inactivity_check_s", 30.0);
    self->save_s = config_double(cfg, "core.coordinator.metrics_save_s", 300.0);
    long max_frame = config_int(cfg, "core.coordinator.max_frame_bytes", 256 << 10);
    self->max_frame = (size_t)(max_frame > 0 ? max_frame : 256 << 10);
    snprintf(self->interrupt_ep, sizeof self->interrupt_ep, "%s",
             config_str(cfg, "core.coordinator.interrupt_endpoint", "tcp://127.0.0.1:5576"));
    snprintf(self->language_ep, sizeof self->language_ep, "%s",
             config_str(cfg, "core.coordinator.language_endpoint", "tcp://127.0.0.1:5577"));
    service_path(svc, "request_coordinator_metrics.json", self->metrics_path, sizeof self->metrics_path);
    breaker_limits_t limits = breaker_limits_read(cfg, "core.coordinator.breaker");
    for (int i = 0; i < NTARGETS; i++)
        self->breakers[i] = breaker_new(target_names[i], &limits);
    pthread_mutex_init(&self->lock, NULL);
    /* A dispatch makes up to three calls (the task, TTS, memory). */
    self->dispatcher = actor_new_runner("core dispatcher", dispatcher_run, NULL, self);
    actor_watch(self->dispatcher, svc->liveness, IDLE_S + 3 * self->timeout_ms / 1000.0);
    self->listener = actor_new_runner("core listener", listener_run, NULL, self);
    actor_watch(self->listener, svc->liveness, 1.0);
    self->queue = heap_new(self->queue_max, (void (*)(void *))json_decref);
    self->suggestions = json_array();
    self->last_interaction = clock_mono();
    load_stats(self);
    static const char *families[][2] = {
        { "keel_core_tasks_total", "Tasks dispatched to downstream agents by outcome." },
        { "keel_core_tasks_dropped_total", "Tasks dropped, by reason (queue_full, breaker_open)." },
        { "keel_core_interrupts_total", "Interrupts received (queue cleared)." },
        { "keel_core_language_frames_total", "Language-analysis frames by outcome." },
        { "keel_core_subscription_drops_total",
          "Connections to the interrupt or language publisher dropped and made anew (a frame over"
          " core.coordinator.max_frame_bytes, or the publisher went away)." },
    };
    for (size_t i = 0; i < 5; i++)
        metrics_declare(svc->metrics, families[i][0], families[i][1], METRIC_COUNTER, NULL, 0);
    metrics_declare(svc->metrics, "keel_core_queue_size", "Tasks waiting in the coordinator queue.",
                    METRIC_GAUGE, NULL, 0);
    metrics_add_collector(svc->metrics, collect, self);
    return self;
}

int coordinator_start(coordinator_t *self)
{
    char endpoint[256];
    service_bind_endpoint(self->svc, (int)config_int(self->svc->config, "core.coordinator.suggestion_port", 5591),
                          endpoint, sizeof endpoint);
    /* Popping the oldest suggestion is what the port is for: a read. */
    static const wire_route_t suggestion_routes[] = {
        { WIRE_RAW, NULL, on_suggestion_raw, NULL, ROUTE_PUBLIC },
        { 0 },
    };
    self->suggest = wire_server_new("core_suggestion", self->svc->metrics);
    wire_server_attach(self->suggest, suggestion_routes, self);
    wire_server_on_unknown(self->suggest, on_suggestion_other, self);
    if (wire_server_bind(self->suggest, endpoint) < 0 || wire_server_start(self->suggest) < 0) {
        log_error("core", "cannot serve the suggestion port %s", endpoint);
        return -1;
    }
    return actor_start(self->dispatcher) < 0 || actor_start(self->listener) < 0 ? -1 : 0;
}

void coordinator_destroy(coordinator_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    coordinator_t *self = *self_p;
    actor_stop_all((actor_t *[]){ self->dispatcher, self->listener }, 2);
    actor_destroy(&self->dispatcher);
    actor_destroy(&self->listener);
    wire_server_destroy(&self->suggest);
    pthread_mutex_lock(&self->lock);
    save_stats(self);
    pthread_mutex_unlock(&self->lock);
    for (int i = 0; i < NTARGETS; i++)
        breaker_destroy(&self->breakers[i]);
    heap_destroy(&self->queue);
    json_decref(self->suggestions);
    json_decref(self->stats);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* No kept agent sends a `type` request: queueing work for the reasoning
 * agents that way is an administrator's.  ProactiveAgent sends
 * execute_task to 26002, RequestCoordinator's old port (AGENT). */
static const wire_route_t routes[] = {
    { WIRE_TYPE, NULL, on_type, "RequestCoordinator", ROUTE_ADMIN },
    { WIRE_ACTION, "execute_task", on_execute_task, "RequestCoordinator", ROUTE_AGENT },
    { 0 },
};

void coordinator_attach(coordinator_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}

void coordinator_health(coordinator_t *self, json_t *dict)
{
    double now = clock_mono();
    json_t *breakers = json_object();
    for (int i = 0; i < NTARGETS; i++) {
        char state[16];
        const char *name = breaker_state_name(breaker_state(self->breakers[i], now));
        size_t n = 0;
        for (; name[n] && n + 1 < sizeof state; n++)
            state[n] = (char)(name[n] >= 'A' && name[n] <= 'Z' ? name[n] + 32 : name[n]);
        state[n] = '\0';
        json_object_set_new(breakers, target_names[i], json_pack("{s:s, s:s, s:i}", "name", target_names[i],
                            "state", state, "failure_count", breaker_failures(self->breakers[i])));
    }
    pthread_mutex_lock(&self->lock);
    size_t queued = heap_size(self->queue);
    json_t *stats = json_pack("{s:O, s:O, s:O, s:O}", "requests_total", json_object_get(self->stats, "requests_total"),
                              "requests_by_type", json_object_get(self->stats, "requests_by_type"),
                              "success", json_object_get(self->stats, "success"),
                              "failure", json_object_get(self->stats, "failure"));
    bool paused = now < self->paused_until;
    size_t pending = json_array_size(self->suggestions);
    pthread_mutex_unlock(&self->lock);
    json_object_set_new(dict, "queue_size", json_integer((json_int_t)queued));
    json_object_set_new(dict, "circuit_breakers", breakers);
    json_object_set_new(dict, "coordinator", json_pack("{s:I, s:I, s:b, s:I, s:o}", "queue_size", (json_int_t)queued,
                        "queue_max_size", (json_int_t)self->queue_max, "paused", paused,
                        "pending_suggestions", (json_int_t)pending, "metrics", stats));
}
