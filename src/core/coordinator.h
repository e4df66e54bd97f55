/*  coordinator: RequestCoordinator (CO-55..CO-66): user requests by `type`
 *  (text, audio, vision) become prioritised tasks in a bounded queue; a
 *  dispatcher sends them to the reasoning agents found in the registry,
 *  behind one circuit breaker per downstream; interrupts clear the queue,
 *  language-analysis frames become text requests, inactivity produces a
 *  suggestion, and the request metrics are saved to a file. */
#ifndef KEEL_CORE_COORDINATOR_H
#define KEEL_CORE_COORDINATOR_H
#include <jansson.h>

#include "registry.h"
#include "service.h"

typedef struct coordinator_t coordinator_t;

coordinator_t *coordinator_new(service_t *svc, registry_t *registry);
void coordinator_destroy(coordinator_t **self_p);
int coordinator_start(coordinator_t *self);
void coordinator_attach(coordinator_t *self, wire_server_t *wire);
void coordinator_health(coordinator_t *self, json_t *dict);

/* The priority formula (lower is served first), clamped to 1..10.
 * metadata may be NULL; queue_len and queue_max give the load term. */
int coordinator_priority(const char *task_type, const char *user_id, json_t *metadata,
                         size_t queue_len, size_t queue_max);
/* Checks a request of `type`; NULL when valid, else the validation text
 * (static or in buf). */
const char *coordinator_validate(const char *type, json_t *body, char *buf, size_t len);
/* A language_analysis message as a text request (a new reference), or
 * NULL when it is not one. */
json_t *coordinator_from_language(json_t *msg);
#endif
