/*  reload: asks a running keeld to reload its configuration (SIGHUP to the
 *  pid in <data_dir>/keeld.pid), e.g. after switching a module between
 *  unified and delegate mode. */
#include "ctl.h"
#include "fsutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char path[4096];
    snprintf(path, sizeof path, "%s/keeld.pid", config_str(ctl->config, "data_dir", "./var/keel"));
    char *text = fs_read_all(path, NULL);
    int pid = text ? atoi(text) : 0;
    free(text);
    if (pid <= 0) {
        fprintf(stderr, "keelctl: no running keeld found (%s)\n", path);
        return 1;
    }
    if (kill(pid, SIGHUP) < 0) {
        fprintf(stderr, "keelctl: cannot signal keeld %d: %s\n", pid, strerror(errno));
        return 1;
    }
    printf("reload requested (keeld pid %d)\n", pid);
    return 0;
}

const ctl_command_t ctl_reload_command = {
    "reload", "reload                      make keeld re-read its configuration", run,
};
