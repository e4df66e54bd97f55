/*  test_zsocket: the socket factory applies security by role.  Plaintext
 *  by default; under secure_zmq a server socket is a CURVE server behind
 *  the allow-list (a plaintext client and a client with a foreign key get
 *  nothing, the allowed client is served), a client socket is a CURVE
 *  client, and an inproc socket stays plain.  Every socket has LINGER 0 and
 *  a frame cap (the far net, or the caller's); a server socket outside the
 *  process's context, or without keys, is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "testutil.h"
#include "zcurve.h"
#include "zsocket.h"

static int int_option(void *socket, int option)
{
    int value = -1;
    size_t len = sizeof value;
    assert_int_equal(zmq_getsockopt(socket, option, &value, &len), 0);
    return value;
}

static int64_t cap_of(void *socket)
{
    int64_t value = -1;
    size_t len = sizeof value;
    assert_int_equal(zmq_getsockopt(socket, ZMQ_MAXMSGSIZE, &value, &len), 0);
    return value;
}

static config_t *configured(const char *secure, const char *dir)
{
    config_t *cfg = config_new();
    char err[256];
    assert_int_equal(config_set(cfg, "secure_zmq", secure, err, sizeof err), 0);
    assert_int_equal(config_set(cfg, "certificates_dir", dir, err, sizeof err), 0);
    return cfg;
}

/* The reply to one request from `client` to `server`, or NULL within 1 s. */
static char *exchange(void *server, void *client, const char *endpoint)
{
    int timeout = 1000;
    zmq_setsockopt(client, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(server, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(client, endpoint), 0);
    zmq_send(client, "ping", 4, 0);
    char buf[16];
    int n = zmq_recv(server, buf, sizeof buf, 0);
    if (n != 4)
        return NULL;
    zmq_send(server, "pong", 4, 0);
    n = zmq_recv(client, buf, sizeof buf - 1, 0);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return strdup(buf);
}

static void *bound_server(char *endpoint, size_t len)
{
    void *server = zsocket_new(ZMQ_REP, ZSOCKET_SERVER, 0);
    assert_non_null(server);
    assert_int_equal(zmq_bind(server, "tcp://127.0.0.1:*"), 0);
    zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, endpoint, &len);
    return server;
}

static void test_plaintext_by_default(void **state)
{
    (void)state;
    config_t *cfg = configured("false", "/nonexistent");
    assert_int_equal(zcurve_configure(cfg, false), 0);
    void *server = zsocket_new(ZMQ_PUB, ZSOCKET_SERVER, 0);
    void *client = zsocket_new(ZMQ_SUB, ZSOCKET_CLIENT, 4096);
    void *inproc = zsocket_new(ZMQ_PAIR, ZSOCKET_INPROC, 0);
    assert_non_null(server);
    assert_non_null(client);
    assert_non_null(inproc);
    assert_int_equal(int_option(server, ZMQ_MECHANISM), ZMQ_NULL);
    assert_int_equal(int_option(client, ZMQ_MECHANISM), ZMQ_NULL);
    assert_int_equal(int_option(server, ZMQ_LINGER), 0);
    assert_int_equal(int_option(inproc, ZMQ_LINGER), 0);
    assert_true(cap_of(server) == (int64_t)ZSOCKET_FAR_CAP);
    assert_true(cap_of(client) == 4096);
    zmq_close(server);
    zmq_close(client);
    zmq_close(inproc);
    config_destroy(&cfg);
}

static void test_secure_roles(void **state)
{
    (void)state;
    char dir[] = "/tmp/keel-zsocket-XXXXXX", err[256];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(zcurve_generate(dir, false, err, sizeof err), 0);
    config_t *cfg = configured("true", dir);
    assert_int_equal(zcurve_configure(cfg, true), 0);

    char endpoint[64];
    void *server = bound_server(endpoint, sizeof endpoint);
    assert_int_equal(int_option(server, ZMQ_MECHANISM), ZMQ_CURVE);
    assert_int_equal(int_option(server, ZMQ_CURVE_SERVER), 1);

    /* The allowed client (this machine's pair) is served. */
    void *client = zsocket_new(ZMQ_REQ, ZSOCKET_CLIENT, 0);
    assert_int_equal(int_option(client, ZMQ_MECHANISM), ZMQ_CURVE);
    char *reply = exchange(server, client, endpoint);
    assert_non_null(reply);
    assert_string_equal(reply, "pong");
    free(reply);
    zmq_close(client);
    zmq_close(server);

    /* A plaintext client gets nothing. */
    server = bound_server(endpoint, sizeof endpoint);
    void *other = zmq_ctx_new();
    void *plain = zmq_socket(other, ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(plain, ZMQ_LINGER, &zero, sizeof zero);
    assert_null(exchange(server, plain, endpoint));
    zmq_close(plain);
    zmq_close(server);

    /* Nor does a CURVE client whose key is not in the allow-list. */
    server = bound_server(endpoint, sizeof endpoint);
    char pub[41], sec[41], server_pub[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    void *probe = zsocket_new(ZMQ_REQ, ZSOCKET_CLIENT, 0);
    size_t len = sizeof server_pub;
    assert_int_equal(zmq_getsockopt(probe, ZMQ_CURVE_SERVERKEY, server_pub, &len), 0);
    zmq_close(probe);
    void *stranger = zmq_socket(other, ZMQ_REQ);
    zmq_setsockopt(stranger, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(stranger, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(stranger, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(stranger, ZMQ_CURVE_SECRETKEY, sec, 40);
    assert_null(exchange(server, stranger, endpoint));
    zmq_close(stranger);
    zmq_close(server);
    zmq_ctx_term(other);

    /* Inproc stays plain; a server outside the process's context is refused. */
    void *inproc = zsocket_new(ZMQ_PAIR, ZSOCKET_INPROC, 0);
    assert_int_equal(int_option(inproc, ZMQ_MECHANISM), ZMQ_NULL);
    zmq_close(inproc);
    void *ctx = zmq_ctx_new();
    assert_null(zsocket_new_in(ctx, ZMQ_REP, ZSOCKET_SERVER, 0));
    void *elsewhere = zsocket_new_in(ctx, ZMQ_REQ, ZSOCKET_CLIENT, 0);
    assert_non_null(elsewhere);
    assert_int_equal(int_option(elsewhere, ZMQ_MECHANISM), ZMQ_CURVE);
    zmq_close(elsewhere);
    zmq_ctx_term(ctx);
    /* gather's context, apart from the services' sockets, makes CURVE clients
     * too; zsocket_shutdown ends it with the process's. */
    void *apart = zsocket_new_in(zsocket_apart_context(), ZMQ_REQ, ZSOCKET_CLIENT, 0);
    assert_non_null(apart);
    assert_int_equal(int_option(apart, ZMQ_MECHANISM), ZMQ_CURVE);
    assert_ptr_equal(zsocket_apart_context(), zsocket_apart_context());
    zmq_close(apart);
    config_destroy(&cfg);

    /* Without keys under secure_zmq no socket is made at all. */
    cfg = configured("true", "/nonexistent");
    assert_int_equal(zcurve_configure(cfg, false), -1);
    assert_null(zsocket_new(ZMQ_PUB, ZSOCKET_SERVER, 0));
    assert_null(zsocket_new(ZMQ_SUB, ZSOCKET_CLIENT, 0));
    config_destroy(&cfg);
    cfg = configured("false", "/nonexistent");
    zcurve_configure(cfg, false);
    config_destroy(&cfg);
    tu_rmtree(dir);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plaintext_by_default),
        cmocka_unit_test(test_secure_roles),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    zsocket_shutdown();
    return failed;
}
