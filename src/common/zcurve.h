/*  zcurve: CURVE encryption and client authentication for every Keel ZMQ
 *  socket, switched on by SECURE_ZMQ=1 or `secure_zmq: true`.
 *
 *  Certificates (ZPL text files, zpl.h, in the layout czmq's zcert and
 *  pyzmq's zmq.auth write and read, so the original agents' certificates
 *  serve as they are) live in certificates_dir, or $ZMQ_CERTIFICATES_DIR:
 *
 *      server.key  server.key_secret     the pair every Keel server socket uses
 *      client.key  client.key_secret     this machine's client pair
 *      authorized_clients/NAME.key       public keys allowed to connect (ZAP)
 *
 *  The allow-list holds public keys only, apart from the secrets, and is
 *  re-read when the directory changes, so adding or revoking a key takes
 *  effect for the next connection without a restart.  The ZAP handler is a
 *  REP socket on inproc://zeromq.zap.01 in the process's ZMQ context (a
 *  handler in another context could not serve sockets made in ours);
 *  zsocket.c makes that socket, as it makes every other, and hands it
 *  over.  Secret key files readable by group or others are refused, and so
 *  is a secret key that is not its public key's pair. */
#ifndef KEEL_ZCURVE_H
#define KEEL_ZCURVE_H
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Reads secure_zmq and the certificates; with need_server the server pair
 * must exist too.  0, or -1 with the reason logged.  Without this call the
 * first socket configures from SECURE_ZMQ and ZMQ_CERTIFICATES_DIR. */
int zcurve_configure(config_t *config, bool need_server);
/* Whether SECURE_ZMQ is on (configured from the environment when
 * zcurve_configure was not called). */
bool zcurve_enabled(void);
/* Whether the kept agents' sockets use CURVE too (`agent_curve`, off by
 * default: the agents never turn CURVE on themselves; zsocket.h). */
bool zcurve_agents_enabled(void);
/* Binds `rep` (a REP socket, taken over in every case) to the ZAP endpoint
 * and answers it on a runner of its own (actor.h) until zcurve_shutdown.
 * 0 or -1. */
int zcurve_serve_zap(void *rep);
/* Makes `socket` a CURVE server behind the allow-list; a no-op when
 * disabled.  -1 (logged) when enabled but the server pair is missing or no
 * ZAP handler serves yet: the caller must not bind a plaintext socket then. */
int zcurve_server(void *socket);
/* Makes `socket` a CURVE client of the Keel servers; a no-op when disabled. */
int zcurve_client(void *socket);
/* Writes a fresh server pair, client pair and allow-list entry into dir,
 * every file mode 0600; existing keys are kept unless `force`. */
int zcurve_generate(const char *dir, bool force, char *err, size_t errlen);
/* Writes an extra client pair NAME.key/NAME.key_secret and allows it. */
int zcurve_generate_client(const char *dir, const char *name, char *err, size_t errlen);
/* Reads the 32-byte public key of the certificate file `path` (NAME.key or
 * NAME.key_secret, as Keel, czmq or pyzmq wrote it) and, when secret_key is
 * not NULL, its secret key, which must be there and match.  0, or -1 with
 * the reason in err (the keys' contents are undefined then). */
int zcurve_read_cert(const char *path, unsigned char *public_key, unsigned char *secret_key, char *err,
                     size_t errlen);
/* Stops the ZAP handler and closes its socket (zsocket_shutdown, at exit). */
void zcurve_shutdown(void);
#endif
