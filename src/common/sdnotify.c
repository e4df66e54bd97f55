/*  sdnotify: see sdnotify.h.  A NOTIFY_SOCKET starting with '@' names a
 *  socket in the abstract namespace (the '@' stands for the leading NUL). */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct sdnotify_t {
    struct sockaddr_un addr;
    socklen_t addr_len;         /* 0: not under systemd */
    double watchdog_s;
};

sdnotify_t *sdnotify_new(void)
{
    sdnotify_t *self = calloc(1, sizeof *self);
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len = path ? strlen(path) : 0;
    if (len > 1 && len < sizeof self->addr.sun_path && (path[0] == '/' || path[0] == '@')) {
        self->addr.sun_family = AF_UNIX;
        memcpy(self->addr.sun_path, path, len);
        if (path[0] == '@')
            self->addr.sun_path[0] = '\0';
        self->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    if (usec && (!pid || atol(pid) == (long)getpid()))
        self->watchdog_s = strtod(usec, NULL) / 1e6;
    if (!(self->watchdog_s > 0))
        self->watchdog_s = 0;
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return self;
}

void sdnotify_destroy(sdnotify_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

int sdnotify_send(sdnotify_t *self, const char *state)
{
    if (!self->addr_len)
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t sent;
    do {
        sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                      (const struct sockaddr *)&self->addr, self->addr_len);
    } while (sent < 0 && errno == EINTR);
    close(fd);
    return sent == (ssize_t)strlen(state) ? 0 : -1;
}

double sdnotify_watchdog_s(sdnotify_t *self)
{
    return self->addr_len ? self->watchdog_s : 0;
}
