/*  zsub: a subscription to another process's PUB, with a cap on its frames
 *  that does not cost the subscription.
 *
 *  The cap is ZMQ_MAXMSGSIZE (zsocket.h), so a frame over it is never
 *  allocated.  But libzmq treats such a frame as a protocol error, and a
 *  connecting socket never reconnects after one: the first oversized frame
 *  would end the subscription for good.  So the subscription watches its
 *  own socket (a ZMQ socket monitor over inproc) and, when a connection
 *  drops for any reason, makes the SUB socket anew and connects again; a
 *  publisher that restarted costs the same, which is what libzmq's own
 *  reconnect would have done.  Each drop is counted.
 *
 *  One thread owns a subscription: poll its two items, then zsub_recv. */
#ifndef KEEL_ZSUB_H
#define KEEL_ZSUB_H
#include <stddef.h>
#include <zmq.h>

typedef struct zsub_t zsub_t;

/* Subscribes to every topic of `endpoint`, frames capped at max_frame
 * bytes.  NULL (logged) when no socket can be made (SECURE_ZMQ without a
 * client key). */
zsub_t *zsub_new(const char *endpoint, size_t max_frame);
void zsub_destroy(zsub_t **self_p);
/* Fills items[0..1] (the SUB and its monitor) for zmq_poll; returns 2, or
 * 0 when the socket could not be made again after a drop. */
int zsub_pollitems(zsub_t *self, zmq_pollitem_t *items);
/* After a poll that filled `items` from zsub_pollitems: answers a dropped
 * connection, then reads one message if one waits.  Returns 1 with the
 * message's last frame in `last` (a topic frame may precede it), else 0. */
int zsub_recv(zsub_t *self, const zmq_pollitem_t *items, zmq_msg_t *last);
/* Connections dropped and made anew since zsub_new. */
long zsub_drops(zsub_t *self);
#endif
