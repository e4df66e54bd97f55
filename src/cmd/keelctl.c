/*  keelctl: the command-line client for people and scripts.  Global options
 *  come first, then a command; each command lives in its own file under
 *  ctl/ and is listed here.  Tables for people, --json for scripts; the
 *  exit code is 0 on success, 1 when the command found a problem, 2 for
 *  usage errors. */
#include "ctl/ctl.h"
#include "log.h"
#include "zcurve.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ctl_command_t *commands[] = {
    &ctl_status_command,
    &ctl_health_command,
    &ctl_agents_command,
    &ctl_agent_command,
    &ctl_migrate_command,
    &ctl_errors_command,
    &ctl_reload_command,
    &ctl_user_command,
    &ctl_certs_command,
    &ctl_resources_command,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: keelctl [--json] [--host H] [--port-offset N] [--config FILE] COMMAND ...\n"
                 "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %s\n", commands[i]->usage);
}

int main(int argc, char **argv)
{
    static struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "host", required_argument, NULL, 'H' },
        { "port-offset", required_argument, NULL, 'p' },
        { "config", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    ctl_t ctl = { config_new(), "127.0.0.1", false, 2000 };
    const char *config_path = getenv("KEEL_CONFIG"), *offset = NULL;
    log_set_level(LOG_WARN);
    int c;
    while ((c = getopt_long(argc, argv, "+jH:p:c:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': ctl.json = true; break;
        case 'H': ctl.host = optarg; break;
        case 'p': offset = optarg; break;
        case 'c': config_path = optarg; break;
        case 't': ctl.timeout_ms = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char err[512];
    if ((config_path && config_load_file(ctl.config, config_path, err, sizeof err) < 0)
        || config_apply_env(ctl.config, err, sizeof err) < 0
        || (offset && config_set(ctl.config, "port_offset", offset, err, sizeof err) < 0)) {
        fprintf(stderr, "keelctl: %s\n", err);
        return 2;
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const ctl_command_t *command = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[optind], commands[i]->name) == 0)
            command = commands[i];
    int rc = 2;
    if (command) {
        optind++;
        if (command != &ctl_certs_command)
            zcurve_configure(ctl.config, false);
        rc = command->run(&ctl, argc - optind, argv + optind);
    } else {
        fprintf(stderr, "keelctl: unknown command '%s'\n", argv[optind]);
        usage(stderr);
    }
    config_destroy(&ctl.config);
    return rc;
}
