/*  auth: AuthenticationAgent's actions (register, login, logout,
 *  validate_token) in the original's words, plus what Keel adds: authorize
 *  (may this bearer do X, for other services' HTTP routes), issue_token
 *  and rotate_jwt_key (service JWTs: administrators' routes, whose token
 *  the runtime checks, in `auth_token`, before the handler runs).
 *
 *  Deliberate wire changes, for security: every failed login answers
 *  "Invalid user_id or password" (the original's "User not found" and
 *  "Invalid password" told an attacker which names exist), an unknown user
 *  costs the same Argon2id verification as a known one, and a locked key
 *  answers its own message.  No handler ever logs a token or a password. */
#include "gateway.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "sessions.h"
#include "token.h"
#include "users.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_FAILED "Invalid user_id or password"
#define LOCKED "Account temporarily locked after repeated failed logins; try again later"
#define MAX_SOURCE 128

static json_t *error_message(const char *text)
{
    return wire_error_key("message", "%s", text);
}

/* Python's truthiness for the original's `if not user_id or not password`. */
static bool falsy(json_t *v)
{
    return !v || json_is_null(v) || json_is_false(v) || (json_is_string(v) && json_string_length(v) == 0)
           || (json_is_integer(v) && json_integer_value(v) == 0)
           || (json_is_real(v) && json_real_value(v) == 0.0)
           || (json_is_array(v) && json_array_size(v) == 0)
           || (json_is_object(v) && json_object_size(v) == 0);
}

/* Reads user_id and password; NULL reply when both are usable strings. */
static json_t *credentials(gateway_t *gw, json_t *body, const char *error_type,
                           const char **user, const char **password)
{
    json_t *u = json_object_get(body, "user_id"), *p = json_object_get(body, "password");
    if (falsy(u) || falsy(p))
        return error_message("Missing user_id or password");
    if (!json_is_string(u) || !json_is_string(p)) {
        monitor_error(gw->monitor, error_type, "user_id and password must be strings");
        return error_message("user_id and password must be strings");
    }
    if (json_string_length(u) > gw->max_user_len) {
        monitor_name_too_long(gw->monitor);
        return wire_error_key("message", "user_id is longer than %zu bytes", gw->max_user_len);
    }
    if (json_string_length(p) > gw->max_password_len)
        return wire_error_key("message", "password is longer than %zu bytes", gw->max_password_len);
    if (strlen(json_string_value(u)) != json_string_length(u)
        || strlen(json_string_value(p)) != json_string_length(p))
        return error_message("user_id and password must not contain NUL characters");
    *user = json_string_value(u);
    *password = json_string_value(p);
    return NULL;
}

static json_t *on_register(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    if (!gw->allow_registration)
        return error_message("Registration is disabled");
    const char *user, *password;
    json_t *reply = credentials(gw, req->body, "REGISTRATION_ERROR", &user, &password);
    if (reply)
        return reply;
    char hash[PASSWD_MAX];
    pthread_mutex_lock(&gw->db_lock);
    int exists = users_get(gw->db, user, hash, sizeof hash, NULL);
    pthread_mutex_unlock(&gw->db_lock);
    if (exists == 1)
        return error_message("User already exists");
    if (exists < 0 || passwd_hash(&gw->pw, password, hash) < 0) {
        monitor_error(gw->monitor, "REGISTRATION_ERROR", "cannot store a new user");
        return error_message("Registration failed");
    }
    char why[200] = "";
    pthread_mutex_lock(&gw->db_lock);
    int rc = users_add(gw->db, user, hash, false);
    if (rc < 0)
        snprintf(why, sizeof why, "%s", store_errmsg(gw->db));
    pthread_mutex_unlock(&gw->db_lock);
    sodium_memzero(hash, sizeof hash);
    if (rc == 1)
        return error_message("User already exists");
    if (rc < 0) {
        monitor_error(gw->monitor, "REGISTRATION_ERROR", "cannot store a new user");
        return wire_error_key("message", "Registration failed: %s", why);
    }
    log_info("security", "user registered");
    return json_pack("{s:s, s:s}", "status", "success", "message", "User registered successfully");
}

/* Counts the attempt on the user and the source; false when either is locked. */
static bool begin_attempt(gateway_t *gw, const char *user, const char *source, double now, double *retry)
{
    if (!lockout_begin(gw->db, &gw->lockout, "user", user, now, retry))
        return false;
    if (source && !lockout_begin(gw->db, &gw->lockout, "source", source, now, retry)) {
        lockout_undo(gw->db, "user", user);
        return false;
    }
    return true;
}

static void fail_attempt(gateway_t *gw, const char *user, const char *source, double now)
{
    double lock_s;
    pthread_mutex_lock(&gw->db_lock);
    bool user_locked = lockout_fail(gw->db, &gw->lockout, "user", user, now, &lock_s);
    double user_lock_s = lock_s;
    bool source_locked = source && lockout_fail(gw->db, &gw->lockout, "source", source, now, &lock_s);
    pthread_mutex_unlock(&gw->db_lock);
    monitor_login(gw->monitor, "failure");
    if (user_locked)
        monitor_lockout(gw->monitor, "user", user_lock_s);
    if (source_locked)
        monitor_lockout(gw->monitor, "source", lock_s);
}

/* Replaces a legacy or outdated hash after a successful verification. */
static void rehash(gateway_t *gw, const char *user, const char *password)
{
    char fresh[PASSWD_MAX];
    if (passwd_hash(&gw->pw, password, fresh) < 0)
        return;
    pthread_mutex_lock(&gw->db_lock);
    int rc = users_set_hash(gw->db, user, fresh);
    pthread_mutex_unlock(&gw->db_lock);
    sodium_memzero(fresh, sizeof fresh);
    if (rc == 0)
        log_info("security", "a password hash was upgraded to Argon2id");
}

static json_t *session_reply(gateway_t *gw, const char *user)
{
    char token[65];
    double expires;
    pthread_mutex_lock(&gw->db_lock);
    char why[200] = "";
    int rc = sessions_create(gw->sessions, user, clock_wall(), gw->session_ttl_s, gw->max_sessions, token, &expires);
    if (rc == 0)
        users_touch_login(gw->db, user);
    else
        snprintf(why, sizeof why, "%s", store_errmsg(gw->db));
    pthread_mutex_unlock(&gw->db_lock);
    if (rc < 0) {
        monitor_error(gw->monitor, "LOGIN_ERROR", "cannot store a session");
        return wire_error_key("message", "Login failed: the session could not be stored: %s", why);
    }
    char iso[40];
    clock_iso_local(expires, iso, sizeof iso);
    json_t *reply = json_pack("{s:s, s:s, s:{s:s, s:s}}", "status", "success", "message", "Login successful",
                              "session", "token", token, "expires_at", iso);
    sodium_memzero(token, sizeof token);
    return reply;
}

static json_t *on_login(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    const char *user, *password;
    json_t *reply = credentials(gw, req->body, "LOGIN_ERROR", &user, &password);
    if (reply)
        return reply;
    char source[MAX_SOURCE + 1];
    /* The source is the client's address; an agent name only where there is
     * none (inproc), since a request can claim any name. */
    const char *src = req->peer ? req->peer
                                : json_string_value(json_object_get(req->body, "source_agent"));
    if (src)
        snprintf(source, sizeof source, "%s", src);
    double now = clock_wall(), retry = 0;
    char stored[PASSWD_MAX];
    bool admin = false;
    pthread_mutex_lock(&gw->db_lock);
    bool open = begin_attempt(gw, user, src ? source : NULL, now, &retry);
    int found = open ? users_get(gw->db, user, stored, sizeof stored, &admin) : 0;
    pthread_mutex_unlock(&gw->db_lock);
    if (!open) {
        monitor_login(gw->monitor, "locked");
        return json_pack("{s:s, s:s, s:i}", "status", "error", "message", LOCKED,
                         "retry_after_s", (int)(retry + 0.999));
    }
    if (found < 0) {
        monitor_error(gw->monitor, "LOGIN_ERROR", "cannot read the users table");
        return error_message("Login failed");
    }
    bool upgrade = false;
    int ok = passwd_verify(&gw->pw, found ? stored : gw->decoy_hash, password, &upgrade);
    sodium_memzero(stored, sizeof stored);
    if (!found || ok != 0) {
        fail_attempt(gw, user, src ? source : NULL, now);
        return error_message(LOGIN_FAILED);
    }
    pthread_mutex_lock(&gw->db_lock);
    lockout_success(gw->db, user);
    if (src)
        lockout_undo(gw->db, "source", source);
    pthread_mutex_unlock(&gw->db_lock);
    if (upgrade)
        rehash(gw, user, password);
    monitor_login(gw->monitor, "success");
    return session_reply(gw, user);
}

/* The token field: NULL reply when it is a string (copied to *token). */
static json_t *token_field(json_t *body, const char **token)
{
    json_t *t = json_object_get(body, "token");
    if (falsy(t))
        return error_message("Missing token");
    *token = json_string_value(t);
    return NULL;
}

static json_t *on_logout(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    const char *token = NULL;
    json_t *reply = token_field(req->body, &token);
    if (reply)
        return reply;
    int rc = 0;
    if (token_is_session(token)) {
        pthread_mutex_lock(&gw->db_lock);
        rc = sessions_delete(gw->sessions, token);
        pthread_mutex_unlock(&gw->db_lock);
    } else {
        monitor_token_misuse(gw->monitor, "malformed");
    }
    if (rc < 0) {
        monitor_error(gw->monitor, "LOGOUT_ERROR", "cannot delete a session");
        return error_message("Logout failed");
    }
    if (rc == 0)
        return error_message("Invalid token");
    return json_pack("{s:s, s:s}", "status", "success", "message", "Logout successful");
}

/* Checks any bearer: a session token (its owner and role come back) or a
 * JWT (its subject; admin when it carries the scope asked for). */
static bool check_bearer(gateway_t *gw, const char *token, const char *scope, char *subject, size_t len,
                         bool *admin)
{
    *admin = false;
    if (!token) {
        monitor_token_misuse(gw->monitor, "malformed");
        return false;
    }
    if (token_is_session(token)) {
        session_state_t state = sessions_check(gw->sessions, token, clock_wall(), subject, len);
        if (state == SESSION_LIVE && scope) {   /* the role matters only when a scope is asked */
            char hash[PASSWD_MAX];
            pthread_mutex_lock(&gw->db_lock);
            if (users_get(gw->db, subject, hash, sizeof hash, admin) < 0)
                monitor_error(gw->monitor, "TOKEN_VALIDATION_ERROR", "cannot read the users table");
            pthread_mutex_unlock(&gw->db_lock);
            sodium_memzero(hash, sizeof hash);
        }
        if (state != SESSION_LIVE)
            monitor_token_misuse(gw->monitor, state == SESSION_EXPIRED ? "expired" : "unknown");
        return state == SESSION_LIVE && (!scope || strcmp(scope, "admin") || *admin);
    }
    if (strchr(token, '.')) {
        const char *reason = NULL;
        bool ok = token_verify_jwt(gw->svc->config, token, scope, subject, len, &reason) == 0;
        if (!ok)
            monitor_token_misuse(gw->monitor, strcmp(reason, "expired") == 0 ? "expired"
                                              : strcmp(reason, "missing scope") == 0 ? "unknown" : "forged");
        *admin = ok && scope && strcmp(scope, "admin") == 0;
        return ok;
    }
    monitor_token_misuse(gw->monitor, "malformed");
    return false;
}

static json_t *on_validate_token(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    const char *token = NULL;
    json_t *reply = token_field(req->body, &token);
    if (reply)
        return reply;
    char subject[NAMES_BUF];
    bool admin;
    bool valid = check_bearer(gw, token, NULL, subject, sizeof subject, &admin);
    /* One of two texts: written once, not built and serialised per call. */
    static const char yes[] = "{\"status\":\"success\",\"valid\":true}";
    static const char no[] = "{\"status\":\"success\",\"valid\":false}";
    char *text = strdup(valid ? yes : no);
    return text ? wire_reply_text(req, text, strlen(text)) : NULL;
}

static json_t *on_authorize(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    const char *token = NULL;
    json_t *reply = token_field(req->body, &token);
    if (reply)
        return reply;
    const char *scope = json_string_value(json_object_get(req->body, "scope"));
    char subject[NAMES_BUF] = "";
    bool admin;
    bool valid = check_bearer(gw, token, scope, subject, sizeof subject, &admin);
    return json_pack("{s:s, s:b, s:s, s:b}", "status", "success", "valid", valid,
                     "subject", valid ? subject : "", "admin", valid && admin);
}

bool auth_is_admin(gateway_t *gw, const char *token)
{
    char subject[NAMES_BUF];
    bool admin;
    return check_bearer(gw, token, "admin", subject, sizeof subject, &admin) && admin;
}

static bool scopes_valid(json_t *scopes)
{
    if (!json_is_array(scopes) || json_array_size(scopes) > 32)
        return false;
    size_t i;
    json_t *s;
    json_array_foreach(scopes, i, s)
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 64)
            return false;
    return true;
}

static json_t *on_issue_token(void *ctx, wire_request_t *req)
{
    gateway_t *gw = ctx;
    json_t *subject = json_object_get(req->body, "subject"), *scopes = json_object_get(req->body, "scopes");
    json_t *ttl = json_object_get(req->body, "ttl_s");
    if (!json_is_string(subject) || json_string_length(subject) == 0 || json_string_length(subject) > 128)
        return error_message("subject must be a non-empty string of at most 128 bytes");
    if (scopes && !scopes_valid(scopes))
        return error_message("scopes must be a list of at most 32 short strings");
    long ttl_s = json_is_integer(ttl) ? (long)json_integer_value(ttl) : 3600;
    if (ttl_s < 1 || ttl_s > 30L * 86400)
        return error_message("ttl_s must be between 1 and 2592000");
    char *jwt = token_issue(gw->svc->config, json_string_value(subject), scopes, ttl_s);
    if (!jwt)
        return error_message("cannot issue a token");
    char iso[40];
    clock_iso_local(clock_wall() + (double)ttl_s, iso, sizeof iso);
    json_t *reply = json_pack("{s:s, s:s, s:s}", "status", "success", "token", jwt, "expires_at", iso);
    sodium_memzero(jwt, strlen(jwt));
    free(jwt);
    log_info("security", "service token issued to %.128s", json_string_value(subject));
    return reply;
}

static json_t *on_rotate_key(void *ctx, wire_request_t *req)
{
    (void)req;
    gateway_t *gw = ctx;
    if (token_keys_rotate(gw->svc->config) < 0)
        return error_message("cannot rotate the signing key");
    return json_pack("{s:s, s:s}", "status", "success", "message", "Signing key rotated");
}

#define AA "AuthenticationAgent"

/* Signing in is for anyone who can connect, and so is registering, which
 * security.allow_registration (off by default) switches: an operator who
 * turns it on opens it to all, as AuthenticationAgent was.  A logout needs
 * the session it ends.  Service tokens and the signing key are an
 * administrator's (no kept agent sends either: they are Keel's). */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "register", on_register, AA, ROUTE_PUBLIC },
    { WIRE_ACTION, "login", on_login, AA, ROUTE_PUBLIC },
    { WIRE_ACTION, "logout", on_logout, AA, ROUTE_PUBLIC },
    { WIRE_ACTION, "validate_token", on_validate_token, AA, ROUTE_PUBLIC },
    { WIRE_ACTION, "authorize", on_authorize, AA, ROUTE_PUBLIC },
    { WIRE_ACTION, "issue_token", on_issue_token, AA, ROUTE_ADMIN },
    { WIRE_ACTION, "rotate_jwt_key", on_rotate_key, AA, ROUTE_ADMIN },
    { 0 },
};

void auth_attach(gateway_t *gw, wire_server_t *wire)
{
    wire_server_attach(wire, routes, gw);
    /* A validation is answered from memory (the session index, the JWT
     * keys and tokens already checked) and writes nothing: it never waits
     * behind a login's Argon2id on the workers. */
    wire_server_answer_inline(wire, WIRE_ACTION, "validate_token");
}
