/*  sdnotify: tells systemd how keeld is doing (sd_notify(3)): READY=1 once
 *  every service of the process answers, RELOADING=1 around a reload,
 *  STOPPING=1 when it begins to stop, WATCHDOG=1 while its loops are alive.
 *  Outside systemd (no NOTIFY_SOCKET) every call does nothing.
 *
 *  Written here rather than linking libsystemd: the protocol is one
 *  datagram of "KEY=value" lines to the Unix socket named in NOTIFY_SOCKET,
 *  which systemd documents as a stable interface for exactly this, and it
 *  is thirty lines; libsystemd would add a runtime dependency (and its
 *  sd-bus, sd-journal and sd-event) to every machine for the one call. */
#ifndef KEEL_SDNOTIFY_H
#define KEEL_SDNOTIFY_H
#include <stdbool.h>

typedef struct sdnotify_t sdnotify_t;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then removes them
 * from the environment, so that agents Keel starts never talk to systemd
 * in keeld's name.  Call before any thread starts (it changes the
 * environment).  Never NULL. */
sdnotify_t *sdnotify_new(void);
void sdnotify_destroy(sdnotify_t **self_p);
/* Sends `state` ("READY=1\nSTATUS=..."); 0, or -1 when not under systemd
 * or the send failed. */
int sdnotify_send(sdnotify_t *self, const char *state);
/* The watchdog period systemd asked for (WatchdogSec), in seconds; 0 when
 * there is none or it is meant for another process. */
double sdnotify_watchdog_s(sdnotify_t *self);
#endif
