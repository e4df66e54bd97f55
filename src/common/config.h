/*  config: Keel's configuration as one JSON tree.  The built-in defaults
 *  come from the key table (configkeys.h); a YAML file is merged over them,
 *  then the environment, then command-line flags.  Every key is checked
 *  against the table at every depth: an unknown key, a value of the wrong
 *  type or out of its range is an error naming the file, the line and the
 *  dotted key, so a typo never silently becomes a default, and a refused
 *  file changes nothing.  Read-only after loading, except for a whole
 *  reload, so readers take no lock. */
#ifndef KEEL_CONFIG_H
#define KEEL_CONFIG_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct config_t config_t;

config_t *config_new(void);                 /* the built-in defaults */
void config_destroy(config_t **self_p);
/* Merges a YAML file over the tree.  0, or -1 with "FILE:LINE: key 'a.b': ..." in err. */
int config_load_file(config_t *self, const char *path, char *err, size_t errlen);
/* Merges YAML text (for tests and `keelctl`); `origin` names it in errors. */
int config_load_text(config_t *self, const char *text, const char *origin,
                     char *err, size_t errlen);
/* PORT_OFFSET, KEEL_DATA_DIR, KEEL_BIND, SECURE_ZMQ, KEEL_LOG_LEVEL. */
int config_apply_env(config_t *self, char *err, size_t errlen);
/* Sets one dotted key from text, parsed as its type in the table and
 * range-checked (flags, environment). */
int config_set(config_t *self, const char *key, const char *text, char *err, size_t errlen);

json_t *config_get(config_t *self, const char *key);       /* borrowed; NULL if absent */
const char *config_str(config_t *self, const char *key, const char *fallback);
long config_int(config_t *self, const char *key, long fallback);
double config_double(config_t *self, const char *key, double fallback);
bool config_bool(config_t *self, const char *key, bool fallback);
/* Keel's own port `base` moved by port_offset. */
int config_port(config_t *self, int base);
/* A tcp:// endpoint on the loopback or bind host for a Keel port: the
 * default used where the configuration names no endpoint. */
void config_local_endpoint(config_t *self, int base, char *buf, size_t len);
#endif
