/*  monitor: security events.  Failed logins, lockouts, misused tokens and
 *  sharp trust drops are counted in /metrics, and the ones an operator
 *  must see are published on the ErrorBus: a burst of failed logins (more
 *  than `burst` in `burst_window_s`), every lockout, token misuse (forged,
 *  malformed or expired tokens presented), and a trust score falling by
 *  more than `trust_drop`.  Events of one type are published at most once
 *  per `event_interval_s`, so an attack cannot flood the bus through us. */
#ifndef KEEL_SECURITY_MONITOR_H
#define KEEL_SECURITY_MONITOR_H
#include "service.h"

typedef struct monitor_t monitor_t;

monitor_t *monitor_new(service_t *svc);
void monitor_destroy(monitor_t **self_p);
void monitor_login(monitor_t *self, const char *outcome);        /* success|failure|locked */
void monitor_lockout(monitor_t *self, const char *kind, double lock_s);
void monitor_token_misuse(monitor_t *self, const char *kind);    /* malformed|expired|forged|unknown */
void monitor_trust(monitor_t *self, const char *model_id, double before, double after);
/* get_security_counters' reply: the logins by outcome, the lockouts by key
 * kind and the misused tokens by kind, every kind named, counted since
 * start: {"status":"success","logins":{"failure":3,...},...}. */
json_t *monitor_counters(monitor_t *self);
/* Counts a user or model name refused for its length
 * (keel_bad_requests_total{reason="name_too_long"}, names.h). */
void monitor_name_too_long(monitor_t *self);
/* Publishes an internal error (REGISTRATION_ERROR, ...) with the reason,
 * at most once per event_interval_s per type; `type` must be static text. */
void monitor_error(monitor_t *self, const char *type, const char *message);
#endif
