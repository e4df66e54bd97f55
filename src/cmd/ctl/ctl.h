/*  ctl: what every keelctl command shares: where the services are, how to
 *  call one, and how to print a table for people or JSON for scripts. */
#ifndef KEEL_CTL_H
#define KEEL_CTL_H
#include <jansson.h>
#include <stdbool.h>

#include "config.h"

typedef struct {
    config_t *config;
    const char *host;           /* --host, default 127.0.0.1 */
    bool json;                  /* --json */
    int timeout_ms;
} ctl_t;

typedef struct {
    const char *name;
    const char *usage;
    int (*run)(ctl_t *ctl, int argc, char **argv);    /* exit code */
} ctl_command_t;

/* tcp://host:(base + port_offset) */
void ctl_endpoint(ctl_t *ctl, int base_port, char *buf, size_t len);
/* Calls a Keel service; NULL with the reason printed on stderr. */
json_t *ctl_call(ctl_t *ctl, int base_port, json_t *request);
/* An administrator's token for the routes that need one (the caller frees
 * it): $KEEL_TOKEN, else a short JWT signed with the key file when this
 * user can read it (whoever reads it may sign anything), else NULL. */
char *ctl_admin_token(ctl_t *ctl);
/* Prints rows (arrays of strings) under a header, columns padded. */
void ctl_table(const char *const *header, size_t ncols, json_t *rows);
/* Prints a JSON value for scripts. */
void ctl_print_json(json_t *value);
/* Formats seconds as "3d 4h", "12m 5s". */
char *ctl_duration(double seconds, char *buf, size_t len);

extern const ctl_command_t ctl_status_command;
extern const ctl_command_t ctl_health_command;
extern const ctl_command_t ctl_agents_command;
extern const ctl_command_t ctl_agent_command;
extern const ctl_command_t ctl_migrate_command;
extern const ctl_command_t ctl_errors_command;
extern const ctl_command_t ctl_reload_command;
extern const ctl_command_t ctl_user_command;
extern const ctl_command_t ctl_certs_command;
extern const ctl_command_t ctl_resources_command;
/* `migrate state` and `migrate rollback`, dispatched by `migrate`. */
int ctl_migrate_state(ctl_t *ctl, int argc, char **argv);
int ctl_migrate_rollback(ctl_t *ctl, int argc, char **argv);
#endif
