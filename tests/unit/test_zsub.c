/*  test_zsub: a capped subscription to a real PUB on loopback.  Frames
 *  under the cap arrive; a frame over it never does, the dropped
 *  connection is counted and made anew, and later frames arrive again
 *  (libzmq alone would have ended the subscription for good). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "log.h"
#include "zsocket.h"
#include "zsub.h"

/* Polls for up to `seconds`, sending `frame` every 50 ms while waiting:
 * the size of the first message received, or -1. */
static long receive_while_sending(zsub_t *sub, void *pub, const char *frame, size_t len,
                                  double seconds)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    long got = -1;
    double end = clock_mono() + seconds;
    while (got < 0 && clock_mono() < end) {
        if (frame)
            zmq_send(pub, frame, len, 0);
        zmq_pollitem_t items[2];
        int n = zsub_pollitems(sub, items);
        if (zmq_poll(items, n, 50) > 0 && zsub_recv(sub, items, &msg) == 1)
            got = (long)zmq_msg_size(&msg);
    }
    zmq_msg_close(&msg);
    return got;
}

static void test_over_the_cap_is_dropped_and_the_subscription_kept(void **state)
{
    (void)state;
    void *pub = zsocket_new(ZMQ_PUB, ZSOCKET_SERVER, 0);
    assert_int_equal(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t len = sizeof endpoint;
    zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, endpoint, &len);
    zsub_t *sub = zsub_new(endpoint, 1024);
    assert_non_null(sub);

    assert_int_equal(receive_while_sending(sub, pub, "small", 5, 5.0), 5);
    /* Drain what the repeated sends left queued. */
    while (receive_while_sending(sub, pub, NULL, 0, 0.2) >= 0)
        ;
    char *big = malloc(4096);
    memset(big, 'x', 4096);
    zmq_send(pub, big, 4096, 0);
    double end = clock_mono() + 5.0;
    while (zsub_drops(sub) == 0 && clock_mono() < end)
        assert_true(receive_while_sending(sub, pub, NULL, 0, 0.05) < 0);
    assert_int_equal(zsub_drops(sub), 1);
    /* The new connection serves; nothing over the cap ever came through. */
    long got = receive_while_sending(sub, pub, "again", 5, 5.0);
    assert_int_equal(got, 5);
    free(big);
    zsub_destroy(&sub);
    assert_null(sub);
    zmq_close(pub);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_over_the_cap_is_dropped_and_the_subscription_kept),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    zsocket_shutdown();
    return failed;
}
