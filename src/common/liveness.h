/*  liveness: whether a service's loops are still coming round.  Each loop
 *  that matters (a wire thread, a wire worker, a health sweep) takes a
 *  stamp and beats it every time round: one atomic store, cheap enough for
 *  a loop that turns every 100 ms.  keeld feeds systemd's watchdog only
 *  while every stamp of every service is fresh, so a thread stuck in a
 *  handler, a deadlock or a sweep that never ends gets the process
 *  restarted instead of a service that answers nothing while /health and
 *  the process look alive.
 *
 *  Stamps are taken before the loops' threads start and live as long as
 *  the liveness they came from; a loop that ends on purpose (stopping)
 *  retires its stamp. */
#ifndef KEEL_LIVENESS_H
#define KEEL_LIVENESS_H
#include <stdbool.h>
#include <stddef.h>

typedef struct liveness_t liveness_t;
typedef struct liveness_stamp_t liveness_stamp_t;

liveness_t *liveness_new(void);
void liveness_destroy(liveness_t **self_p);
/* A stamp for the loop `name` that comes round at least every `interval_s`,
 * beaten once already.  Borrowed: valid until liveness_destroy.  NULL when
 * self is NULL or holds its maximum (64); every call below takes NULL. */
liveness_stamp_t *liveness_stamp(liveness_t *self, const char *name, double interval_s);
void liveness_beat(liveness_stamp_t *stamp);
/* The loop ended on purpose: no longer watched. */
void liveness_retire(liveness_stamp_t *stamp);
/* Whether every watched loop beat within its interval plus grace_s before
 * `now` (clock_mono seconds).  When not, the first stalled loop's name and
 * how long it has been quiet, in `stalled`. */
bool liveness_fresh(liveness_t *self, double now, double grace_s, char *stalled, size_t len);
#endif
