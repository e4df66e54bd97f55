/*  natslib: see natslib.h. */
#include "natslib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static natslib_t lib;
static const natslib_t *loaded;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Each function's name in the library and its place in natslib_t. */
static const struct {
    const char *name;
    size_t offset;
} functions[] = {
    { "natsOptions_Create", offsetof(natslib_t, options_create) },
    { "natsOptions_SetURL", offsetof(natslib_t, options_set_url) },
    { "natsOptions_SetName", offsetof(natslib_t, options_set_name) },
    { "natsOptions_SetMaxReconnect", offsetof(natslib_t, options_set_max_reconnect) },
    { "natsOptions_SetReconnectWait", offsetof(natslib_t, options_set_reconnect_wait) },
    { "natsOptions_SetReconnectBufSize", offsetof(natslib_t, options_set_reconnect_buf_size) },
    { "natsOptions_SetNoEcho", offsetof(natslib_t, options_set_no_echo) },
    { "natsOptions_SetRetryOnFailedConnect", offsetof(natslib_t, options_set_retry_on_failed_connect) },
    { "natsOptions_SetDisconnectedCB", offsetof(natslib_t, options_set_disconnected_cb) },
    { "natsOptions_SetReconnectedCB", offsetof(natslib_t, options_set_reconnected_cb) },
    { "natsOptions_Destroy", offsetof(natslib_t, options_destroy) },
    { "natsConnection_Connect", offsetof(natslib_t, connection_connect) },
    { "natsConnection_Subscribe", offsetof(natslib_t, connection_subscribe) },
    { "natsConnection_FlushTimeout", offsetof(natslib_t, connection_flush_timeout) },
    { "natsConnection_Close", offsetof(natslib_t, connection_close) },
    { "natsConnection_Destroy", offsetof(natslib_t, connection_destroy) },
    { "natsConnection_PublishMsg", offsetof(natslib_t, connection_publish_msg) },
    { "natsConnection_Status", offsetof(natslib_t, connection_status) },
    { "natsSubscription_SetPendingLimits", offsetof(natslib_t, subscription_set_pending_limits) },
    { "natsSubscription_Unsubscribe", offsetof(natslib_t, subscription_unsubscribe) },
    { "natsSubscription_Destroy", offsetof(natslib_t, subscription_destroy) },
    { "natsMsg_Create", offsetof(natslib_t, msg_create) },
    { "natsMsgHeader_Set", offsetof(natslib_t, msg_header_set) },
    { "natsMsgHeader_Get", offsetof(natslib_t, msg_header_get) },
    { "natsMsg_GetData", offsetof(natslib_t, msg_get_data) },
    { "natsMsg_GetDataLength", offsetof(natslib_t, msg_get_data_length) },
    { "natsMsg_Destroy", offsetof(natslib_t, msg_destroy) },
    { "natsStatus_GetText", offsetof(natslib_t, status_get_text) },
};

/* Fills lib from the library at `path`; 0, or -1 with why. */
static int load_library(const char *path, char *err, size_t errlen)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
        return -1;
    }
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
        /* POSIX: what dlsym returns for a function converts to a function pointer */
        void *fn = dlsym(handle, functions[i].name);
        if (!fn) {
            snprintf(err, errlen, "%s has no %s", path, functions[i].name);
            dlclose(handle);
            return -1;
        }
        memcpy((char *)&lib + functions[i].offset, &fn, sizeof fn);
    }
    return 0;
}

const natslib_t *natslib_load(char *err, size_t errlen)
{
    pthread_mutex_lock(&lock);
    if (!loaded) {
        const char *path = getenv("KEEL_NATS_LIB");
        if (load_library(path && *path ? path : NATSLIB_DEFAULT, err, errlen) == 0)
            loaded = &lib;
    }
    const natslib_t *result = loaded;
    pthread_mutex_unlock(&lock);
    return result;
}
