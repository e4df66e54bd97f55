/*  dashboard: the live web page of the whole system, served by the hub on
 *  its HTTP port (8002): GET / and /ui/NAME give the page compiled into the
 *  binary (web_assets.h); GET /api/dashboard gives everything the page
 *  shows in one JSON document (the hub's fleet and alerts, and what the
 *  other four services answer within a short timeout, with each agent
 *  marked supervised when CoreOrchestrator runs it); GET /api/agent gives
 *  one agent's histories; GET /api/history the stored time series the
 *  charts draw (history.h).  The two actions, POST /api/restart and
 *  POST /api/ack, are ROUTE_ADMIN: they need an administrator's bearer
 *  token, which the restart passes on to CoreOrchestrator. */
#ifndef OBS_DASHBOARD_H
#define OBS_DASHBOARD_H
#include "alerting.h"
#include "fleet.h"
#include "history.h"
#include "hubdb.h"
#include "service.h"

/* Registers the routes on svc->http; the hub's parts are borrowed. */
void dashboard_attach(service_t *svc, fleet_t *fleet, alerting_t *alerts, hubdb_t *db,
                      history_t *history);
#endif
