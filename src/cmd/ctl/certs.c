/*  certs: `keelctl certs generate [--dir DIR] [--force] [--client NAME]`.
 *  Writes fresh CURVE keys for SECURE_ZMQ (zcurve.h has the layout), every
 *  file mode 0600 and the directories 0700; with --client, an extra client
 *  pair for one agent, added to the allow-list.  Existing keys are never
 *  replaced without --force. */
#include "ctl.h"
#include "zcurve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: keelctl certs generate [--dir DIR] [--force] [--client NAME]\n");
    return 2;
}

/* argv[0] is the subcommand; options may come anywhere after it. */
static int run(ctl_t *ctl, int argc, char **argv)
{
    const char *env = getenv("ZMQ_CERTIFICATES_DIR");
    const char *dir = env && *env ? env : config_str(ctl->config, "certificates_dir", "./certificates");
    const char *client = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force"))
            force = true;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--client") && i + 1 < argc)
            client = argv[++i];
        else
            return usage();
    }
    if (argc < 1 || strcmp(argv[0], "generate") != 0)
        return usage();
    char err[512];
    int rc = client ? zcurve_generate_client(dir, client, err, sizeof err)
                    : zcurve_generate(dir, force, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "keelctl: %s\n", err);
        return 1;
    }
    printf("CURVE keys written to %s%s%s\n", dir, client ? " for client " : "", client ? client : "");
    return 0;
}

const ctl_command_t ctl_certs_command = {
    "certs", "certs generate [--dir DIR] [--force] [--client NAME]   CURVE keys for SECURE_ZMQ", run,
};
