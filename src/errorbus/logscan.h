/*  logscan: errors that agents only wrote to their log files.  Every
 *  interval it reads what was appended to each .log file of the logs directory since the last
 *  scan (byte offsets kept in the database, so a line is never ingested
 *  twice, even across restarts) and applies both originals' rules: EMS's
 *  (a line with ERROR or CRITICAL that names TimeoutError, ZMQError, CUDA
 *  out of memory or Connection refused) and ErrorBusService's configured
 *  patterns.  A file that shrank was rotated or truncated and is read
 *  again from the start.  The bus's own log is never scanned, so its
 *  own lines cannot feed back into it. */
#ifndef KEEL_ERRORBUS_LOGSCAN_H
#define KEEL_ERRORBUS_LOGSCAN_H
#include <jansson.h>

#include "evstore.h"

typedef struct logscan_t logscan_t;

/* patterns: [{pattern, error_type, severity}] (borrowed); NULL gives the
 * defaults of error_bus_config.yaml. */
logscan_t *logscan_new(evstore_t *store, const char *dir, double interval_s, json_t *patterns);
void logscan_destroy(logscan_t **self_p);
int logscan_start(logscan_t *self);
/* One scan; the number of events it produced. */
int logscan_run(logscan_t *self);
#endif
