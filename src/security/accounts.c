/*  accounts: user management on SecurityGateway's port, for
 *  administrators (`keelctl user ...`).  It goes through the running
 *  service, not its database file, because only the service can end the
 *  sessions a change invalidates (its in-memory index answers validations)
 *  and because an operator's keelctl may run on another machine.
 *
 *  Every action needs an administrator's token in `auth_token` (ADMIN in
 *  the route table), checked against this service's own session table,
 *  but one: add_first_admin makes the first administrator on a fresh
 *  install.  It is an agent's route, and its handler narrows it further:
 *  only while no administrator exists, and only from a loopback address,
 *  so nobody else on the network (not even a trusted source) can take an
 *  unconfigured Keel.  The check and the insert happen under one lock, so
 *  two such requests racing make one administrator, not two.  (The other
 *  way is offline, before the first start: `keelctl --data-dir DIR user
 *  add`.)
 *
 *  Passwords are hashed here, with the service's Argon2id parameters,
 *  outside the database lock; `legacy_sha256` takes an original agent's
 *  hash instead, replaced by Argon2id at the user's next login. */
#include "gateway.h"
#include "log.h"
#include "users.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static bool from_loopback(const char *peer)
{
    return peer && (strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0
                    || strncmp(peer, "::ffff:127.", 11) == 0);
}

/* The user_id of a request, or NULL with *reply set. */
static const char *user_of(gateway_t *gw, json_t *body, json_t **reply)
{
    json_t *u = json_object_get(body, "user_id");
    const char *name = json_string_value(u);
    if (!name || !*name) {
        *reply = wire_error("user_id must be a non-empty string");
        return NULL;
    }
    if (json_string_length(u) > gw->max_user_len) {
        monitor_name_too_long(gw->monitor);
        *reply = wire_error("user_id is longer than %zu bytes", gw->max_user_len);
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            *reply = wire_error("user_id must not contain control characters");
            return NULL;
        }
    if (strlen(name) != json_string_length(u)) {
        *reply = wire_error("user_id must not contain NUL characters");
        return NULL;
    }
    return name;
}

/* The stored form of the request's secret (Argon2id of `password`, or
 * `legacy_sha256` as given) into hash; NULL, or an error reply. */
static json_t *secret_of(gateway_t *gw, json_t *body, char *hash)
{
    json_t *p = json_object_get(body, "password"), *legacy = json_object_get(body, "legacy_sha256");
    if (p && legacy)
        return wire_error("give password or legacy_sha256, not both");
    if (legacy) {
        const char *hex = json_string_value(legacy);
        if (!hex || !passwd_is_legacy(hex))
            return wire_error("legacy_sha256 must be 64 lowercase hex characters");
        memcpy(hash, hex, 65);
        return NULL;
    }
    const char *password = json_string_value(p);
    if (!password || !*password)
        return wire_error("password must be a non-empty string");
    if (json_string_length(p) > gw->max_password_len)
        return wire_error("password is longer than %zu bytes", gw->max_password_len);
    if (strlen(password) != json_string_length(p))
        return wire_error("password must not contain NUL characters");
    if (passwd_hash(&gw->pw, password, hash) < 0) {
        monitor_error(gw->monitor, "ACCOUNT_ERROR", "cannot hash a password");
        return wire_error("cannot hash the password");
    }
    return NULL;
}

static json_t *store_failed(gateway_t *gw, const char *what)
{
    monitor_error(gw->monitor, "ACCOUNT_ERROR", what);
    return wire_error("%s", what);
}

/* The user of an add: name and stored secret; NULL, or an error reply. */
static json_t *new_user_of(gateway_t *gw, json_t *body, const char **name, char *hash)
{
    json_t *reply = NULL;
    if (!(*name = user_of(gw, body, &reply)))
        return reply;
    return secret_of(gw, body, hash);
}

static json_t *added(const char *name, bool admin, bool first)
{
    log_info("security", "user %s added%s%s", name, admin ? " as an administrator" : "",
             first ? " (the first administrator, from loopback)" : "");
    char message[300];
    snprintf(message, sizeof message, "User %s added%s", name, admin ? " (administrator)" : "");
    return json_pack("{s:s, s:s, s:s, s:b, s:b}", "status", "success", "message", message,
                     "user_id", name, "admin", admin, "first_admin", first);
}

/* users_add's answer: added, already there, or the store's failure. */
static json_t *add_result(gateway_t *gw, int rc, const char *name, bool admin, bool first)
{
    if (rc == 1)
        return wire_error("User %s already exists (keelctl user passwd changes a password)", name);
    if (rc < 0)
        return store_failed(gw, "cannot store the user");
    return added(name, admin, first);
}

static json_t *on_add_user(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    json_t *admin_v = json_object_get(req->body, "admin");
    if (admin_v && !json_is_boolean(admin_v))
        return wire_error("admin must be true or false");
    bool admin = json_is_true(admin_v);
    const char *name;
    char hash[PASSWD_MAX];
    json_t *reply = new_user_of(gw, req->body, &name, hash);
    if (reply)
        return reply;
    pthread_mutex_lock(&gw->db_lock);
    int rc = users_add(gw->db, name, hash, admin);
    pthread_mutex_unlock(&gw->db_lock);
    sodium_memzero(hash, sizeof hash);
    return add_result(gw, rc, name, admin, false);
}

static json_t *first_admin_refused(gateway_t *gw, const char *why)
{
    char labels[96];
    metrics_labels(labels, sizeof labels, "service", "security", "reason", "forbidden", NULL);
    metrics_add(gw->svc->metrics, "keel_bad_requests_total", labels, 1);
    return wire_error("Forbidden: %s; add_user needs an administrator's token", why);
}

/* The first administrator: loopback only, while none exists (see the top). */
static json_t *on_add_first_admin(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    if (!from_loopback(req->peer))
        return first_admin_refused(gw, "the first administrator is made from the machine itself");
    /* Refused before the password is hashed (Argon2id, tens of ms), and
     * checked again under the lock that the insert takes. */
    pthread_mutex_lock(&gw->db_lock);
    int admins = users_count_admins(gw->db);
    pthread_mutex_unlock(&gw->db_lock);
    if (admins != 0)
        return first_admin_refused(gw, "an administrator exists already");
    const char *name;
    char hash[PASSWD_MAX];
    json_t *reply = new_user_of(gw, req->body, &name, hash);
    if (reply)
        return reply;
    pthread_mutex_lock(&gw->db_lock);
    int rc = users_count_admins(gw->db) != 0 ? 2 : users_add(gw->db, name, hash, true);
    pthread_mutex_unlock(&gw->db_lock);
    sodium_memzero(hash, sizeof hash);
    if (rc == 2)
        return first_admin_refused(gw, "an administrator exists already");
    return add_result(gw, rc, name, true, true);
}

/* The success of a change that ended the user's sessions, logged too:
 * "<what> <name> <done>; N session(s) ended". */
static json_t *sessions_ended_reply(const char *what, const char *name, const char *done, int ended)
{
    char message[300];
    snprintf(message, sizeof message, "%s %s %s; %d session(s) ended", what, name, done, ended);
    log_info("security", "%s", message);
    return json_pack("{s:s, s:s, s:s, s:i}", "status", "success", "message", message, "user_id", name,
                     "sessions_ended", ended);
}

/* A new password ends every session of the user. */
static json_t *on_set_password(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    json_t *reply = NULL;
    const char *name = user_of(gw, req->body, &reply);
    if (!name)
        return reply;
    char hash[PASSWD_MAX];
    if ((reply = secret_of(gw, req->body, hash)))
        return reply;
    char stored[PASSWD_MAX];
    pthread_mutex_lock(&gw->db_lock);
    int found = users_get(gw->db, name, stored, sizeof stored, NULL);
    int rc = found == 1 ? users_set_hash(gw->db, name, hash) : found;
    int ended = rc == 0 ? sessions_end_user(gw->sessions, name) : 0;
    pthread_mutex_unlock(&gw->db_lock);
    sodium_memzero(hash, sizeof hash);
    sodium_memzero(stored, sizeof stored);
    if (found == 0)
        return wire_error("Unknown user: %s", name);
    if (rc < 0 || ended < 0)
        return store_failed(gw, "cannot store the new password");
    return sessions_ended_reply("Password of", name, "changed", ended);
}

/* The last administrator stays: without one, only loopback could make
 * another. */
static json_t *on_delete_user(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    json_t *reply = NULL;
    const char *name = user_of(gw, req->body, &reply);
    if (!name)
        return reply;
    char stored[PASSWD_MAX];
    bool admin = false;
    int ended = 0, rc;
    pthread_mutex_lock(&gw->db_lock);
    int found = users_get(gw->db, name, stored, sizeof stored, &admin);
    bool last_admin = found == 1 && admin && users_count_admins(gw->db) == 1;
    rc = found == 1 && !last_admin ? users_delete(gw->db, name) : found;
    if (rc == 1)
        ended = sessions_end_user(gw->sessions, name);
    pthread_mutex_unlock(&gw->db_lock);
    sodium_memzero(stored, sizeof stored);
    if (found == 0)
        return wire_error("Unknown user: %s", name);
    if (last_admin)
        return wire_error("Refused: %s is the last administrator; add another one first", name);
    if (rc < 0 || ended < 0)
        return store_failed(gw, "cannot delete the user");
    return sessions_ended_reply("User", name, "deleted", ended);
}

/* An administrator's: the names are not for everyone. */
static json_t *on_list_users(void *ctx, wire_request_t *req)
{
    (void)req;
    gateway_t *gw = ctx;
    pthread_mutex_lock(&gw->db_lock);
    json_t *users = users_list(gw->db);
    pthread_mutex_unlock(&gw->db_lock);
    if (!users)
        return store_failed(gw, "cannot read the users table");
    return json_pack("{s:s, s:o}", "status", "success", "users", users);
}

/* Keel's own user management: no kept agent sends any of it. */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "add_user", on_add_user, NULL, ROUTE_ADMIN },
    { WIRE_ACTION, "add_first_admin", on_add_first_admin, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "set_password", on_set_password, NULL, ROUTE_ADMIN },
    { WIRE_ACTION, "delete_user", on_delete_user, NULL, ROUTE_ADMIN },
    { WIRE_ACTION, "list_users", on_list_users, NULL, ROUTE_ADMIN },
    { 0 },
};

void accounts_attach(gateway_t *gw, wire_server_t *wire)
{
    wire_server_attach(wire, routes, gw);
}
