/*  prom: one Prometheus instant query over plain HTTP, the only thing the
 *  digital twin asks of Prometheus.  A hand-written HTTP/1.0 GET on purpose:
 *  one request shape, a hard deadline, and no new library for it. */
#ifndef KEEL_CORE_PROM_H
#define KEEL_CORE_PROM_H

/* base_url "http://host:port[/prefix]".  Sets *out to the first result's
 * value; -1 when unreachable, late, malformed or empty. */
int core_prom_query(const char *base_url, const char *query, double timeout_s, double *out);
#endif
