/*  bus: the ErrorBus's state, shared by the files that make up the service
 *  (errorbus.c wires them together, query.c answers on 7003).  Each part
 *  owns its own loop (actor.h) and lock; this struct only holds them
 *  together. */
#ifndef KEEL_ERRORBUS_BUS_H
#define KEEL_ERRORBUS_BUS_H
#include "analysis.h"
#include "evstore.h"
#include "fanout.h"
#include "ingress.h"
#include "logscan.h"
#include "natsbridge.h"
#include "recovery.h"
#include "service.h"

typedef struct {
    service_t *svc;
    evstore_t *store;
    fanout_t *fanout;
    ingress_t *ingress;
    recovery_t *recovery;
    analysis_t *analysis;
    logscan_t *logscan;
    natsbridge_t *nats;         /* NULL unless errorbus.nats_url is set */
} bus_t;

/* Attaches the routes of 7003 to the service's wire server. */
void query_attach(bus_t *bus, wire_server_t *wire);
#endif
