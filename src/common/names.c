/*  names: see names.h.  The limit is bytes, not characters: buffers and
 *  database keys are measured in bytes, and a client that counts
 *  characters can only ever stay under it. */
#include "names.h"

#include <stdio.h>
#include <string.h>

bool names_fit(const char *name)
{
    return !name || strnlen(name, NAMES_MAX + 1) <= NAMES_MAX;
}

bool names_refuse(metrics_t *metrics, const char *service, const char *field, const char *name,
                  char *why, size_t len)
{
    if (names_fit(name))
        return false;
    snprintf(why, len, "%s is %zu bytes long; names are limited to %d bytes", field, strlen(name),
             NAMES_MAX);
    if (metrics) {
        metrics_declare(metrics, "keel_bad_requests_total", "Requests refused before dispatch, by reason.",
                        METRIC_COUNTER, NULL, 0);
        char labels[128];
        metrics_labels(labels, sizeof labels, "service", service ? service : "", "reason", "name_too_long",
                       NULL);
        metrics_add(metrics, "keel_bad_requests_total", labels, 1);
    }
    return true;
}
