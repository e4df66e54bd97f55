/*  errpub: reporting an error to the ErrorBus exactly as the existing agents
 *  do: a PUB socket connected to the bus's bound SUB (port 7150) sending one
 *  frame `ERROR:{json}` (framing F1 of docs/wire-protocol.md) with
 *  timestamp (epoch), agent, error_type, message, severity and details.
 *  Fire and forget, as for the agents: a bus that is down costs nothing but
 *  the message.  Thread-safe (a mutex around the socket). */
#ifndef KEEL_ERRPUB_H
#define KEEL_ERRPUB_H
#include <jansson.h>

typedef struct errpub_t errpub_t;

/* Until errpub_start, held reports go out only with a later report. */
errpub_t *errpub_new(const char *endpoint, const char *agent);
/* Starts sending held reports once the bus subscribes.  0 or -1. */
int errpub_start(errpub_t *self);
void errpub_destroy(errpub_t **self_p);
/* details is borrowed and may be NULL.  0, or -1 when the send failed. */
int errpub_report(errpub_t *self, const char *error_type, const char *severity,
                  json_t *details, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#endif
