/*  trust: AgentTrustScorer.  A model's score is 0.7 x its success ratio
 *  plus 0.3 x max(0, 1 - latest response time / 5 s), computed in that
 *  order in IEEE doubles so the figures match the original to the last
 *  bit, then clamped to [0, 1] (the original let a negative response time
 *  push it to 1.06).  The old score plays no part, as in the original.
 *  The score row and the performance log row are written in one durable
 *  transaction, so a crash leaves both or neither. */
#ifndef KEEL_SECURITY_TRUST_H
#define KEEL_SECURITY_TRUST_H
#include "monitor.h"
#include "service.h"

typedef struct trust_t trust_t;

trust_t *trust_new(const char *db_path, monitor_t *monitor, char *err, size_t errlen);
void trust_destroy(trust_t **self_p);
/* log_performance, get_trust_score, get_performance_history, get_agent_scores. */
void trust_attach(trust_t *self, wire_server_t *wire);
/* The formula, unclamped: successes and total include the current call. */
double trust_formula(long successes, long total, double response_time);
/* The score the service returns: the formula clamped to [0, 1]. */
double trust_score(long successes, long total, double response_time);
#endif
