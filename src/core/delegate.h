/*  delegate: the gradual-migration and rollback path of DESIGN.md.  When
 *  `modules.<Agent>.mode` is `delegate`, the requests that belonged to that
 *  absorbed agent are forwarded to the still-running Python agent at
 *  `delegate_to`, with a timeout and a circuit breaker, and its reply is
 *  passed back unchanged. */
#ifndef KEEL_CORE_DELEGATE_H
#define KEEL_CORE_DELEGATE_H
#include <jansson.h>

#include "service.h"

typedef struct delegate_t delegate_t;

/* NULL when the module is not delegated (or has no delegate_to). */
delegate_t *core_delegate_new(service_t *svc, const char *module);
void core_delegate_destroy(delegate_t **self_p);
/* The legacy agent's reply to `request` (a new reference), or an error reply. */
json_t *core_delegate_forward(delegate_t *self, json_t *request);
/* The wire handler: forwards the request body (ctx is the delegate). */
json_t *core_delegate_handler(void *ctx, wire_request_t *req);
/* {"endpoint", "breaker"} for /health. */
json_t *core_delegate_status(delegate_t *self);
#endif
