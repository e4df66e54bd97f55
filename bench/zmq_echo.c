/*  zmq_echo: the floor under every Keel request, a bare libzmq ROUTER that
 *  answers each request with a fixed reply, served the way the wire thread
 *  serves (zmq_poll, then up to 64 queued messages, envelope sent back in
 *  front of the reply).  bench/profile.py profiles it beside the services:
 *  what a request costs above this is Keel's own work.
 *
 *  usage: zmq_echo ENDPOINT    (runs until killed) */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define BATCH 64
#define FRAMES 8

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: zmq_echo ENDPOINT\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    if (zmq_bind(router, argv[1]) != 0) {
        fprintf(stderr, "zmq_echo: cannot bind %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
        return 1;
    }
    static const char reply[] = "{\"status\":\"ok\"}";
    zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
    for (;;) {
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        for (int n = 0; n < BATCH; n++) {
            zmq_msg_t frames[FRAMES];
            int count = 0, more = 1;
            while (more) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, router, count ? 0 : ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&part);
                    break;
                }
                more = zmq_msg_more(&part);
                if (count < FRAMES)
                    frames[count++] = part;
                else
                    zmq_msg_close(&part);   /* frames past FRAMES are dropped */
            }
            if (count == 0)
                break;
            for (int i = 0; i < count - 1; i++)
                zmq_msg_send(&frames[i], router, ZMQ_SNDMORE);
            zmq_send(router, reply, sizeof reply - 1, 0);
            zmq_msg_close(&frames[count - 1]);
        }
    }
}
