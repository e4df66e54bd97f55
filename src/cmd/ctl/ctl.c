/*  ctl: calling the services.  Every call is one ZMQ request on the
 *  service's own port (wire.h's client, CURVE when configured).  Calls that
 *  must not add up (status asks five services) are one gather (gather.h)
 *  with one deadline; calls that are slow on a live service (Argon2id
 *  hashing) first ask for health with the short timeout, so that a service
 *  that is down is reported at once rather than after the long one.
 *
 *  An administrator's token comes from --token or KEEL_TOKEN, or from a
 *  login as --user with the password read from stdin; that session is ended
 *  when keelctl exits, so a script run every minute leaves no sessions
 *  behind.  Without either, a user who can read the services' key file (root,
 *  or the keel user, on the machine itself) gets a JWT of a minute signed
 *  with it.  The token travels in the request's `auth_token` key. */
#include "ctl.h"
#include "gather.h"
#include "token.h"
#include "wire.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define SECURITY_PORT 7005
#define LOGIN_TIMEOUT_MS 30000

void ctl_endpoint(ctl_t *ctl, int base_port, char *buf, size_t len)
{
    snprintf(buf, len, "tcp://%s:%d", ctl->host, config_port(ctl->config, base_port));
}

int ctl_timeout(ctl_t *ctl, int default_ms)
{
    return ctl->timeout_ms > 0 ? ctl->timeout_ms : default_ms;
}

json_t *ctl_call(ctl_t *ctl, int base_port, json_t *request, int timeout_ms)
{
    char endpoint[256], err[256];
    ctl_endpoint(ctl, base_port, endpoint, sizeof endpoint);
    json_t *reply = wire_call(endpoint, request, timeout_ms, 0, err, sizeof err);
    if (!reply)
        ctl_warn("no answer from %s: %s", endpoint, err);
    return reply;
}

json_t *ctl_call_patient(ctl_t *ctl, int base_port, json_t *request, int slow_ms)
{
    json_t *ping = json_pack("{s:s}", "action", "ping");
    json_t *alive = ctl_call(ctl, base_port, ping, ctl_timeout(ctl, CTL_TIMEOUT_MS));
    json_decref(ping);
    if (!alive)
        return NULL;
    json_decref(alive);
    return ctl_call(ctl, base_port, request, ctl_timeout(ctl, slow_ms));
}

void ctl_call_each(ctl_t *ctl, const int *base_ports, json_t *const *requests, json_t **replies,
                   size_t n, int timeout_ms)
{
    gather_call_t *calls = calloc(n ? n : 1, sizeof *calls);
    char (*endpoints)[256] = calloc(n ? n : 1, sizeof *endpoints);
    for (size_t i = 0; i < n; i++) {
        ctl_endpoint(ctl, base_ports[i], endpoints[i], sizeof endpoints[i]);
        calls[i] = (gather_call_t){ .url = endpoints[i], .request = requests[i] };
    }
    gather_run(calls, n, timeout_ms);
    for (size_t i = 0; i < n; i++) {
        replies[i] = gather_reply_json(&calls[i]);
        if (!json_is_object(replies[i])) {
            json_decref(replies[i]);
            replies[i] = NULL;
        }
    }
    gather_clear(calls, n);
    free(calls);
    free(endpoints);
}

int ctl_read_secret(const char *prompt, char *buf, size_t len)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios saved, quiet;
    if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
        fprintf(stderr, "%s", prompt);
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
        tty = false;
    }
    bool got = fgets(buf, (int)len, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    if (!got)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return *buf ? 0 : -1;
}

/* Logs in as --user; CTL_OK with ctl->session set, or an exit code. */
static int log_in(ctl_t *ctl)
{
    char prompt[300], password[1100];
    snprintf(prompt, sizeof prompt, "Password for %s: ", ctl->user);
    if (ctl_read_secret(prompt, password, sizeof password) < 0) {
        ctl_warn("--user %s: no password on stdin", ctl->user);
        return CTL_USAGE;
    }
    json_t *request = json_pack("{s:s, s:s, s:s}", "action", "login", "user_id", ctl->user,
                                "password", password);
    sodium_memzero(password, sizeof password);
    json_t *reply = ctl_call_patient(ctl, SECURITY_PORT, request, LOGIN_TIMEOUT_MS);
    json_object_set_new(request, "password", json_string(""));
    json_decref(request);
    if (!reply)
        return CTL_UNREACHABLE;
    const char *token = json_string_value(json_object_get(json_object_get(reply, "session"), "token"));
    int rc = CTL_OK;
    if (token)
        ctl->session = strdup(token);
    else {
        ctl_warn("login as %s refused: %s", ctl->user, ctl_reply_error(reply));
        rc = CTL_DENIED;
    }
    json_decref(reply);
    return rc;
}

/* A JWT of a minute with scope admin, when the key file is readable. */
static char *key_file_token(ctl_t *ctl)
{
    char path[4096];
    FILE *keys = fopen(token_keys_path(ctl->config, path, sizeof path), "r");
    if (!keys)
        return NULL;
    fclose(keys);
    json_t *scopes = json_pack("[s]", "admin");
    char *jwt = token_issue(ctl->config, "keelctl", scopes, 60);
    json_decref(scopes);
    return jwt;
}

int ctl_authorize(ctl_t *ctl, json_t *request)
{
    if (ctl->token) {
        json_object_set_new(request, "auth_token", json_string(ctl->token));
        return CTL_OK;
    }
    if (!ctl->user) {
        char *jwt = key_file_token(ctl);
        if (jwt)
            json_object_set_new(request, "auth_token", json_string(jwt));
        free(jwt);
        return CTL_OK;
    }
    if (!ctl->session) {
        int rc = log_in(ctl);
        if (rc != CTL_OK)
            return rc;
    }
    json_object_set_new(request, "auth_token", json_string(ctl->session));
    return CTL_OK;
}

void ctl_logout(ctl_t *ctl)
{
    if (!ctl->session)
        return;
    json_t *request = json_pack("{s:s, s:s}", "action", "logout", "token", ctl->session);
    json_decref(ctl_call(ctl, SECURITY_PORT, request, ctl_timeout(ctl, CTL_TIMEOUT_MS)));
    json_decref(request);
    sodium_memzero(ctl->session, strlen(ctl->session));
    free(ctl->session);
    ctl->session = NULL;
}

const char *ctl_reply_error(json_t *reply)
{
    const char *text = json_string_value(json_object_get(reply, "error"));
    if (!text)
        text = json_string_value(json_object_get(reply, "message"));
    return text ? text : "the service refused the request";
}

int ctl_check_reply(json_t *reply)
{
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (status && !strcmp(status, "success"))
        return CTL_OK;
    const char *error = ctl_reply_error(reply);
    ctl_warn("%s", error);
    return strncmp(error, "Forbidden", 9) == 0 ? CTL_DENIED : CTL_FAILED;
}

const char *ctl_agent_state(json_t *record, const char **reason)
{
    /* The hub's records say `state` (and `error` for a failed probe), the
     * registry's `health`. */
    const char *state = json_string_value(json_object_get(record, "state"));
    if (!state)
        state = json_string_value(json_object_get(record, "health"));
    const char *why = json_string_value(json_object_get(record, "reason"));
    if (!why)
        why = json_string_value(json_object_get(record, "error"));
    if (reason)
        *reason = why ? why : "";
    return state ? state : "unknown";
}
