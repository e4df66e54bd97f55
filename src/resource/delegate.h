/*  delegate: the gradual-migration path of DESIGN.md.  Each absorbed agent
 *  (ResourceManager, TaskScheduler, AsyncProcessor, VRAMOptimizerAgent) can
 *  be set to `modules.<Agent>: {mode: delegate, delegate_to: tcp://...}`;
 *  its requests are then forwarded unchanged to the still-running legacy
 *  agent and its reply returned, instead of being handled in C.  A circuit
 *  breaker (3 failures, 30 s) keeps a dead legacy agent from costing every
 *  caller the full timeout. */
#ifndef KEEL_RS_DELEGATE_H
#define KEEL_RS_DELEGATE_H
#include "service.h"

typedef struct rs_delegate_t rs_delegate_t;

/* NULL when the module is served in C (the default). */
rs_delegate_t *rs_delegate_new(service_t *svc, const char *module);
void rs_delegate_destroy(rs_delegate_t **self_p);
/* Forwards the request's frame; the legacy reply or an error reply. */
json_t *rs_delegate_forward(rs_delegate_t *self, wire_request_t *req);
/* A wire handler whose ctx is the delegate. */
json_t *rs_delegate_handler(void *ctx, wire_request_t *req);
#endif
