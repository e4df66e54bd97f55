/*  zsocket: the one place Keel makes a ZMQ socket, so that no socket can be
 *  forgotten by SECURE_ZMQ.  A socket is asked for by type and role, and the
 *  role decides its security (zcurve.h):
 *
 *  - ZSOCKET_SERVER binds a Keel port that Keel's own clients use (the
 *    services' ports, keelctl's, the other machine's Keel).  With
 *    SECURE_ZMQ it is a CURVE server behind the ZAP allow-list; when it
 *    cannot be one (no server keys) no socket is made at all, so nothing
 *    ever binds in plaintext by mistake.
 *  - ZSOCKET_CLIENT connects to a Keel service.  With SECURE_ZMQ it is a
 *    CURVE client of the server key.
 *  - ZSOCKET_AGENT_SERVER binds a port the kept agents dial (the absorbed
 *    agents' old ports, the error bus, the feeds they subscribe to), and
 *    ZSOCKET_AGENT_CLIENT connects to a kept agent (a probe, a delegate, a
 *    downstream call, an agent's PUB).  They are CURVE only when the agents
 *    speak it too (`agent_curve`, zcurve.h): the kept agents' secure_zmq.py
 *    hands every socket back unchanged, so by default theirs stay plaintext under
 *    SECURE_ZMQ, and `trusted_sources` decides who may make the agents'
 *    state changes there (privilege.h).
 *  - ZSOCKET_INPROC joins threads of this process (inproc:// only).  It is
 *    exempt from CURVE: libzmq runs no security handshake over inproc (its
 *    pipes never carry ZMTP), and no other process can reach an inproc
 *    endpoint, so there is no one to authenticate.
 *
 *  Every socket gets LINGER 0, so a close never waits on a dead peer, and
 *  ZMQ_MAXMSGSIZE.  That limit drops the peer's connection without a word,
 *  so for request sockets it is only the far safety net (ZSOCKET_FAR_CAP):
 *  the services refuse an oversized request themselves, with a reply.  A
 *  socket that takes other processes' frames with no reply to give (a SUB)
 *  passes its own, lower cap: an oversized frame is then never allocated.
 *
 *  The ZAP handler that admits CURVE clients is started with the first
 *  server socket and lives in the process's context, so server sockets are
 *  made there only. */
#ifndef KEEL_ZSOCKET_H
#define KEEL_ZSOCKET_H
#include <stddef.h>

#define ZSOCKET_FAR_CAP ((size_t)64 << 20)

typedef enum {
    ZSOCKET_SERVER,
    ZSOCKET_CLIENT,
    ZSOCKET_AGENT_SERVER,
    ZSOCKET_AGENT_CLIENT,
    ZSOCKET_INPROC,
} zsocket_role_t;

/* A new socket of ZMQ `type` in the process's context; max_frame 0 means
 * ZSOCKET_FAR_CAP.  NULL (logged) when SECURE_ZMQ is on and the role's
 * keys are missing; the caller closes it with zmq_close. */
void *zsocket_new(int type, zsocket_role_t role, size_t max_frame);
/* The same in another context: clients and inproc sockets only, since the
 * ZAP handler serves the process's context. */
void *zsocket_new_in(void *context, int type, zsocket_role_t role, size_t max_frame);
/* The process's second context, for clients made by the thousand (gather.h):
 * its I/O thread is apart from the services' sockets, so a health sweep's
 * connections and handshakes never delay a service's reply. */
void *zsocket_apart_context(void);
/* An inproc endpoint's name no socket of this process has had before, in
 * buf ("inproc://<what>-<n>").  A closed socket keeps its name until the
 * reaper thread has destroyed it, so a name made from an object's address,
 * which malloc hands out again, can still be bound by the last object's
 * socket: the new bind fails and its peers connect to the dying one. */
void zsocket_inproc_endpoint(char *buf, size_t len, const char *what);
/* At exit, after every socket is closed: stops the ZAP handler and ends the
 * process's contexts. */
void zsocket_shutdown(void);
#endif
