/*  ratelimit: how fast one source address may create new names in a
 *  table (a registration under a new agent id, a metric for a service not
 *  yet known), so that junk from one address cannot fill the table before
 *  the real names arrive.  A token bucket per source: `burst` names at
 *  once and `per_minute` more each minute.  Only new names take a token:
 *  an agent that registers again or keeps reporting is never slowed.
 *
 *  The buckets are a bounded table too.  A bucket that has refilled is the
 *  same as no bucket, so it is the first to go; when every bucket is still
 *  spending, the one idle longest goes, and its source starts afresh (the
 *  price of a bound, paid only by someone with that many addresses).
 *  Thread-safe; time is passed in (monotonic seconds), so tests need no
 *  sleeps. */
#ifndef KEEL_RATELIMIT_H
#define KEEL_RATELIMIT_H
#include <stdbool.h>
#include <stddef.h>

typedef struct ratelimit_t ratelimit_t;

/* burst <= 0 turns the limit off. */
ratelimit_t *ratelimit_new(double burst, double per_minute, size_t max_sources);
void ratelimit_destroy(ratelimit_t **self_p);
/* New rates (a reload); buckets keep what they hold, capped at the new burst. */
void ratelimit_configure(ratelimit_t *self, double burst, double per_minute);
/* Takes one token from the bucket of `source` (NULL or "": an unknown
 * address; all of those share one bucket): true when the source may
 * create a name now. */
bool ratelimit_take(ratelimit_t *self, const char *source, double now);
/* "at most B at once and R a minute" (or "no limit"), for refusals. */
char *ratelimit_describe(ratelimit_t *self, char *buf, size_t len);
#endif
