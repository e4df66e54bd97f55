/*  prom: the Prometheus instant queries the digital twin asks, all at once
 *  over HTTP (gather.h) under one deadline, so a Prometheus that accepts
 *  and then stalls costs the sampler one timeout per sample, not one per
 *  query. */
#ifndef KEEL_CORE_PROM_H
#define KEEL_CORE_PROM_H
#include <stddef.h>

/* base_url "http://host:port[/prefix]".  values[i] gets the first result
 * of queries[i], and keeps what it held when that query is unreachable,
 * late, malformed or empty.  Returns how many queries were answered. */
size_t prom_query(const char *base_url, const char *const *queries, double *values, size_t n,
                  double timeout_s);
#endif
