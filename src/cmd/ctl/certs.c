/*  certs: `keelctl certs generate [--dir DIR] [--force] [--client NAME]`.
 *  Writes fresh CURVE keys for SECURE_ZMQ (zcurve.h has the layout), every
 *  file mode 0600 and the directories 0700; with --client, an extra client
 *  pair for one agent, added to the allow-list.  Existing keys are never
 *  replaced without --force. */
#include "ctl.h"
#include "zcurve.h"

#include <stdio.h>
#include <stdlib.h>

static int run_generate(ctl_t *ctl, const ctl_args_t *args)
{
    const char *env = getenv("ZMQ_CERTIFICATES_DIR");
    const char *dir = ctl_option(args, "dir");
    if (!dir)
        dir = env && *env ? env : config_str(ctl->config, "certificates_dir", "./certificates");
    const char *client = ctl_option(args, "client");
    char err[512];
    int rc = client ? zcurve_generate_client(dir, client, err, sizeof err)
                    : zcurve_generate(dir, ctl_option(args, "force") != NULL, err, sizeof err);
    if (rc < 0) {
        ctl_warn("%s", err);
        return CTL_FAILED;
    }
    if (ctl->json) {
        json_t *out = json_pack("{s:s, s:s?}", "dir", dir, "client", client);
        ctl_print_json(out);
        json_decref(out);
    } else {
        ctl_say("CURVE keys written to %s%s%s", dir, client ? " for client " : "", client ? client : "");
    }
    return CTL_OK;
}

static const ctl_option_t generate_options[] = {
    { "dir", 0, "DIR", "where (default: $ZMQ_CERTIFICATES_DIR, certificates_dir, ./certificates)" },
    { "force", 0, NULL, "replace existing keys" },
    { "client", 0, "NAME", "an extra client pair for one agent, added to the allow-list" },
    { NULL, 0, NULL, NULL },
};

static const ctl_command_t generate_command = {
    .name = "generate",
    .operands = "",
    .summary = "write CURVE keys for SECURE_ZMQ",
    .description =
        "Writes the server pair, this machine's client pair and the allow-list entry\n"
        "(every file mode 0600, directories 0700), or with --client an extra client\n"
        "pair.  Existing keys are kept unless --force.",
    .options = generate_options,
    .run = run_generate,
    .local = true,
};

static const ctl_command_t *const certs_subcommands[] = { &generate_command, NULL };

const ctl_command_t ctl_certs_command = {
    .name = "certs",
    .operands = "",
    .summary = "CURVE keys for SECURE_ZMQ",
    .subcommands = certs_subcommands,
};
