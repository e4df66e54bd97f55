/*  privilege: who may call a route.  Every route, on ZMQ or HTTP, declares
 *  its privilege in the table that declares the route, and the runtime
 *  checks it here before any handler or delegate runs, so a service cannot
 *  expose a state change by forgetting a check in a handler:
 *
 *    ROUTE_PUBLIC  anyone who can connect: reads, health, login.
 *    ROUTE_AGENT   the state changes the kept agents make without
 *                  credentials (registration, their error reports): a CURVE
 *                  client the ZAP handler admitted, or a source address in
 *                  `trusted_sources` (CIDRs; loopback by default), or an
 *                  administrator.
 *    ROUTE_ADMIN   an administrator's token: the request's `auth_token` on
 *                  ZMQ, `Authorization: Bearer` on HTTP.
 *
 *  Zero is no privilege at all: a table entry that forgot its privilege is
 *  refused, by the service at start and by the check itself.
 *
 *  Whether a token is an administrator's is the service's question, asked
 *  through a callback: token_check_admin for most (JWTs locally, session
 *  tokens by asking SecurityGateway), SecurityGateway its own tables, since
 *  a wire call to itself from its own server thread could deadlock. */
#ifndef KEEL_PRIVILEGE_H
#define KEEL_PRIVILEGE_H
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef enum { ROUTE_UNDECLARED = 0, ROUTE_PUBLIC, ROUTE_AGENT, ROUTE_ADMIN } route_privilege_t;

typedef enum { PRIVILEGE_GRANTED, PRIVILEGE_NO_TOKEN, PRIVILEGE_BAD_TOKEN } privilege_verdict_t;

/* What is known of a caller.  All borrowed. */
typedef struct {
    const char *peer;       /* the source IP address, or NULL */
    bool curve;             /* a CURVE client the ZAP handler admitted */
    const char *token;      /* the administrator's token offered, or NULL */
} privilege_caller_t;

/* True when `token` is an administrator's. */
typedef bool (privilege_admin_fn)(void *ctx, const char *token);

typedef struct privilege_t privilege_t;

/* Trusts loopback and no token until configured. */
privilege_t *privilege_new(void);
void privilege_destroy(privilege_t **self_p);
/* Reads `trusted_sources`; on a bad entry keeps what it had and returns -1
 * with "trusted_sources: 'x' is not an address or CIDR" in err.  Safe while
 * checks run (a reload). */
int privilege_configure(privilege_t *self, config_t *config, char *err, size_t errlen);
void privilege_set_admin_check(privilege_t *self, privilege_admin_fn *fn, void *ctx);
/* May this caller use a route of privilege `need`?  A NULL self grants
 * only public routes. */
privilege_verdict_t privilege_check(privilege_t *self, route_privilege_t need,
                                    const privilege_caller_t *caller);
bool privilege_declared(route_privilege_t privilege);
/* "public", "agent", "admin", or "undeclared". */
const char *privilege_name(route_privilege_t privilege);
/* The refusal, in one sentence: "Forbidden: stop_agent needs an
 * administrator's token". */
void privilege_refusal(route_privilege_t need, const char *route, char *buf, size_t len);
#endif
