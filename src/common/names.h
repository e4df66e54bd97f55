/*  names: the one limit on the names agents send (agent ids, service and
 *  model names, user names, error sources, task types).  A name is a key:
 *  cut to fit a buffer, two long names that share a prefix become one,
 *  and the second overwrites the first while both are told "success".  So
 *  a name longer than NAMES_MAX bytes is refused whole, with a reply that
 *  names the limit and a count in keel_bad_requests_total{reason=
 *  "name_too_long"}, and every buffer that holds a name has room for
 *  NAMES_MAX bytes and its terminator, so a name within the limit is never
 *  cut anywhere. */
#ifndef KEEL_NAMES_H
#define KEEL_NAMES_H
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

#define NAMES_MAX 255
/* A buffer for any accepted name. */
#define NAMES_BUF (NAMES_MAX + 1)
/* A metrics label text (metrics_labels) whose first label is a name,
 * escaped (each byte may double), and a few short labels after it. */
#define NAMES_LABELS_BUF (2 * NAMES_MAX + 128)

/* True when `name` (NULL counts as fitting) is at most NAMES_MAX bytes. */
bool names_fit(const char *name);
/* True when `name` is too long: `why` then says which field, how long it
 * is and the limit, and the refusal is counted for `service` in metrics
 * (either may be NULL).  False, touching nothing, when it fits. */
bool names_refuse(metrics_t *metrics, const char *service, const char *field, const char *name,
                  char *why, size_t len);
#endif
