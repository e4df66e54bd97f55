/*  natslib: libnats, loaded the first time a NATS bridge is made.
 *
 *  The bridge is off unless errorbus.nats_url is set, and libnats brings
 *  OpenSSL with it: linked, every keeld process mapped both whether it
 *  bridged or not, some 1.9 MB resident (issue 17: under 15 MB for an idle
 *  `keeld all`).  Loaded here, only a bus that bridges pays for them.  The
 *  library is never unloaded: its threads outlive any one bridge. */
#ifndef KEEL_ERRORBUS_NATSLIB_H
#define KEEL_ERRORBUS_NATSLIB_H
#include <nats/nats.h>
#include <stddef.h>

/* The library loaded: KEEL_NATS_LIB when set (tests), else this. */
#define NATSLIB_DEFAULT "libnats.so.3.4"

/* The libnats functions the bridge calls, each of the type nats.h gives. */
typedef struct {
    __typeof__(&natsOptions_Create) options_create;
    __typeof__(&natsOptions_SetURL) options_set_url;
    __typeof__(&natsOptions_SetName) options_set_name;
    __typeof__(&natsOptions_SetMaxReconnect) options_set_max_reconnect;
    __typeof__(&natsOptions_SetReconnectWait) options_set_reconnect_wait;
    __typeof__(&natsOptions_SetReconnectBufSize) options_set_reconnect_buf_size;
    __typeof__(&natsOptions_SetNoEcho) options_set_no_echo;
    __typeof__(&natsOptions_SetRetryOnFailedConnect) options_set_retry_on_failed_connect;
    __typeof__(&natsOptions_SetDisconnectedCB) options_set_disconnected_cb;
    __typeof__(&natsOptions_SetReconnectedCB) options_set_reconnected_cb;
    __typeof__(&natsOptions_Destroy) options_destroy;
    __typeof__(&natsConnection_Connect) connection_connect;
    __typeof__(&natsConnection_Subscribe) connection_subscribe;
    __typeof__(&natsConnection_FlushTimeout) connection_flush_timeout;
    __typeof__(&natsConnection_Close) connection_close;
    __typeof__(&natsConnection_Destroy) connection_destroy;
    __typeof__(&natsConnection_PublishMsg) connection_publish_msg;
    __typeof__(&natsConnection_Status) connection_status;
    __typeof__(&natsSubscription_SetPendingLimits) subscription_set_pending_limits;
    __typeof__(&natsSubscription_Unsubscribe) subscription_unsubscribe;
    __typeof__(&natsSubscription_Destroy) subscription_destroy;
    __typeof__(&natsMsg_Create) msg_create;
    __typeof__(&natsMsgHeader_Set) msg_header_set;
    __typeof__(&natsMsgHeader_Get) msg_header_get;
    __typeof__(&natsMsg_GetData) msg_get_data;
    __typeof__(&natsMsg_GetDataLength) msg_get_data_length;
    __typeof__(&natsMsg_Destroy) msg_destroy;
    __typeof__(&natsStatus_GetText) status_get_text;
} natslib_t;

/* The functions, loaded once for the process: borrowed, valid until it
 * exits.  NULL, with why in err, when the library or one of its functions
 * cannot be found; a later call tries again. */
const natslib_t *natslib_load(char *err, size_t errlen);
#endif
