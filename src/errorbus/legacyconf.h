/*  legacyconf: ErrorBusService's own configuration file
 *  (documentation/error_management/error_bus_config.yaml), read when it is
 *  there so a deployment that tuned its log patterns keeps them.  Only the
 *  keys that still mean something are taken (error_management.logs_dir,
 *  .scan_interval, .error_patterns); ports, topic, bind address and the
 *  database path come from Keel's configuration.  A string that is exactly
 *  ${VAR} becomes the environment value, or stays literal when VAR is
 *  unset; ${VAR} inside a longer string is left alone, as the original did. */
#ifndef KEEL_ERRORBUS_LEGACYCONF_H
#define KEEL_ERRORBUS_LEGACYCONF_H
#include <jansson.h>

/* The parsed file with substitutions done, or NULL when it is absent or
 * unreadable (logged). */
json_t *legacyconf_load(const char *path);
/* Substitutes exact ${VAR} strings in place, recursively. */
void legacyconf_substitute(json_t *node);
#endif
