/*  keelctl: the command-line client for people and scripts.  Each command
 *  lives in its own file under ctl/ and declares its options there; they
 *  are listed here.  ctl/args.c parses every line the same way (options
 *  anywhere, --help on every command), ctl/print.c prints tables for
 *  people and one JSON document for scripts (--json), and the exit codes
 *  are ctl.h's, documented in keelctl(1). */
#include "ctl/ctl.h"
#include "log.h"
#include "zcurve.h"

#include <stdlib.h>

static const ctl_command_t *const commands[] = {
    &ctl_status_command,
    &ctl_health_command,
    &ctl_agents_command,
    &ctl_agent_command,
    &ctl_errors_command,
    &ctl_resources_command,
    &ctl_reload_command,
    &ctl_user_command,
    &ctl_certs_command,
    &ctl_migrate_command,
    NULL,
};

int main(int argc, char **argv)
{
    ctl_t ctl = { .config = config_new(), .host = "127.0.0.1" };
    log_set_level(LOG_WARN);
    const ctl_command_t *command = NULL;
    ctl_args_t args;
    int rc = ctl_args_parse(&ctl, argc, argv, commands, &command, &args);
    if (rc < 0) {
        /* `certs generate` writes the keys CURVE would look for */
        if (!command->local)
            zcurve_configure(ctl.config, false);
        rc = command->run(&ctl, &args);
        ctl_logout(&ctl);
    }
    ctl_args_release(&args);
    config_destroy(&ctl.config);
    return rc;
}
