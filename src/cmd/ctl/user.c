/*  user: SecurityGateway's users from the command line: `user add NAME
 *  [--admin]`, `user passwd NAME`, `user delete NAME`, `user list`.
 *
 *  Through the running service by default (its add_user, set_password,
 *  delete_user and list_users actions, with an administrator's token), so
 *  that the service sees every change at once and ends the sessions a new
 *  password or a deletion invalidates.  The first administrator on a fresh
 *  install needs no token: `user add NAME --admin` without one asks
 *  add_first_admin, which the service accepts from loopback while no
 *  administrator exists.
 *
 *  Offline with --data-dir DIR on the command line: the same operations on
 *  DIR/security/security.db, only while no SecurityGateway holds that
 *  directory (dirlock.h), and holding it meanwhile so none starts half way:
 *  for a first administrator before the first start, or a forgotten
 *  password with the service stopped.  Offline answers take the service's
 *  reply shapes, so both are printed alike.
 *
 *  Secrets come only from stdin, never from the command line, where other
 *  users could read them in the process list.  With --user, stdin's first
 *  line is that user's password (read first, to log in) and the new
 *  password the next.  --legacy-sha256 takes an original agent's SHA-256
 *  hex hash instead (the migration hook): verified once at the next login
 *  and replaced by Argon2id. */
#include "ctl.h"
#include "clock.h"
#include "dirlock.h"
#include "fsutil.h"
#include "security/passwd.h"
#include "security/sessions.h"
#include "security/users.h"
#include "wire.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SECURITY_PORT 7005
#define HASH_TIMEOUT_MS 30000   /* Argon2id on the service: slow by design */
#define MAX_NAME 128

/* ---- the request ----------------------------------------------------------- */

static int check_name(const char *name)
{
    size_t len = strlen(name);
    bool control = false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        control |= *p < 0x20 || *p == 0x7f;
    if (len == 0 || len > MAX_NAME || control) {
        ctl_warn("a user name has 1 to %d bytes and no control characters", MAX_NAME);
        return -1;
    }
    return 0;
}

/* Reads the new password (or legacy hash) from stdin into the request. */
static int add_secret(const ctl_args_t *args, const char *name, json_t *request)
{
    bool legacy = ctl_option(args, "legacy-sha256") != NULL;
    if (legacy == (ctl_option(args, "password-stdin") != NULL)) {
        ctl_warn("give --password-stdin or --legacy-sha256 (the secret comes from stdin)");
        return CTL_USAGE;
    }
    char prompt[200], secret[1100];
    snprintf(prompt, sizeof prompt, "New password for %.128s: ", name);
    if (ctl_read_secret(prompt, secret, sizeof secret) < 0) {
        ctl_warn("no %s on stdin", legacy ? "hash" : "password");
        return CTL_USAGE;
    }
    if (legacy && !passwd_is_legacy(secret)) {
        sodium_memzero(secret, sizeof secret);
        ctl_warn("--legacy-sha256 needs 64 lowercase hex characters");
        return CTL_USAGE;
    }
    json_object_set_new(request, legacy ? "legacy_sha256" : "password", json_string(secret));
    sodium_memzero(secret, sizeof secret);
    return CTL_OK;
}

/* ---- offline: the database file itself ---------------------------------- */

typedef struct {
    char dir[PATH_MAX];
    dirlock_t *lock;
    store_t *db;
} offline_t;

static int offline_open(ctl_t *ctl, offline_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->dir, sizeof o->dir, "%s/security", ctl->data_dir);
    long holder = dirlock_holder(o->dir);
    if (holder != 0) {
        ctl_warn("SecurityGateway (pid %ld) is running on %s: manage users through it (without"
                 " --data-dir)", holder, ctl->data_dir);
        return CTL_FAILED;
    }
    char err[PATH_MAX + 256], path[PATH_MAX + 16];
    if (fs_mkdirs(o->dir) < 0) {
        ctl_warn("cannot create %s", o->dir);
        return CTL_FAILED;
    }
    if (!(o->lock = dirlock_take(o->dir, err, sizeof err))) {
        ctl_warn("%s", err);
        return CTL_FAILED;
    }
    snprintf(path, sizeof path, "%s/security.db", o->dir);
    if (!(o->db = users_open(path, err, sizeof err))) {
        ctl_warn("cannot open %s: %s", path, err);
        dirlock_release(&o->lock);
        return CTL_FAILED;
    }
    return CTL_OK;
}

static void offline_close(offline_t *o)
{
    store_destroy(&o->db);
    dirlock_release(&o->lock);
}

static json_t *success(const char *message, const char *name)
{
    return json_pack("{s:s, s:s, s:s?}", "status", "success", "message", message, "user_id", name);
}

/* The stored form of the request's secret into hash; 0 or -1. */
static int offline_hash(ctl_t *ctl, json_t *request, char *hash)
{
    const char *legacy = json_string_value(json_object_get(request, "legacy_sha256"));
    if (legacy) {
        memcpy(hash, legacy, 65);   /* 64 hex characters and the NUL */
        return 0;
    }
    passwd_params_t params = {
        (unsigned long long)config_int(ctl->config, "security.argon2.opslimit", 3),
        (size_t)config_int(ctl->config, "security.argon2.memlimit_kib", 65536) * 1024,
    };
    return passwd_hash(&params, json_string_value(json_object_get(request, "password")), hash);
}

/* Ends the user's sessions in the file; how many, or -1. */
static int end_sessions(store_t *db, const char *name)
{
    sessions_t *sessions = sessions_new(db, clock_wall());
    int ended = sessions ? sessions_end_user(sessions, name) : -1;
    sessions_destroy(&sessions);
    return ended;
}

/* What the service would answer, done on the file. */
static json_t *offline_apply(ctl_t *ctl, store_t *db, json_t *request)
{
    const char *action = json_string_value(json_object_get(request, "action"));
    const char *name = json_string_value(json_object_get(request, "user_id"));
    char hash[PASSWD_MAX], message[300];
    bool admin = false;
    if (!strcmp(action, "list_users")) {
        json_t *users = users_list(db);
        return users ? json_pack("{s:s, s:o}", "status", "success", "users", users)
                     : wire_error("cannot read the users table");
    }
    if (!strcmp(action, "add_user")) {
        admin = json_is_true(json_object_get(request, "admin"));
        int rc = offline_hash(ctl, request, hash) < 0 ? -1 : users_add(db, name, hash, admin);
        sodium_memzero(hash, sizeof hash);
        if (rc != 0)
            return rc == 1 ? wire_error("User %s already exists (keelctl user passwd changes a password)", name)
                           : wire_error("cannot store the user");
        snprintf(message, sizeof message, "User %s added%s", name, admin ? " (administrator)" : "");
        json_t *reply = success(message, name);
        json_object_set_new(reply, "admin", json_boolean(admin));
        return reply;
    }
    int found = users_get(db, name, hash, sizeof hash, &admin);
    sodium_memzero(hash, sizeof hash);
    if (found == 0)
        return wire_error("Unknown user: %s", name);
    int rc = found < 0 ? -1 : 0, ended = 0;
    if (rc == 0 && !strcmp(action, "set_password")) {
        rc = offline_hash(ctl, request, hash) < 0 ? -1 : users_set_hash(db, name, hash);
        sodium_memzero(hash, sizeof hash);
        snprintf(message, sizeof message, "Password of %s changed", name);
    } else if (rc == 0) {
        if (admin && users_count_admins(db) == 1)
            return wire_error("Refused: %s is the last administrator; add another one first", name);
        rc = users_delete(db, name) == 1 ? 0 : -1;
        snprintf(message, sizeof message, "User %s deleted", name);
    }
    if (rc == 0 && (ended = end_sessions(db, name)) < 0)
        rc = -1;
    if (rc < 0)
        return wire_error("cannot change %s in the users table", name);
    json_t *reply = success(message, name);
    json_object_set_new(reply, "sessions_ended", json_integer(ended));
    return reply;
}

/* ---- either way ---------------------------------------------------------------- */

/* Sends the request (through the service, or to the file with --data-dir);
 * the reply, or NULL with *rc set. */
static json_t *perform(ctl_t *ctl, json_t *request, int *rc)
{
    if (ctl->data_dir) {
        offline_t o;
        if ((*rc = offline_open(ctl, &o)) != CTL_OK)
            return NULL;
        json_t *reply = offline_apply(ctl, o.db, request);
        offline_close(&o);
        return reply;
    }
    json_t *reply = ctl_call_patient(ctl, SECURITY_PORT, request, HASH_TIMEOUT_MS);
    *rc = reply ? CTL_OK : CTL_UNREACHABLE;
    return reply;
}

/* Builds the request, authorizes it, reads the secret when the action
 * needs one, performs it and prints the outcome. */
static int change(ctl_t *ctl, const ctl_args_t *args, const char *action, bool secret)
{
    const char *name = args->argv[0];
    if (check_name(name) < 0)
        return CTL_USAGE;
    bool admin = ctl_option(args, "admin") != NULL;
    json_t *request = json_pack("{s:s, s:s}", "action", action, "user_id", name);
    if (admin)
        json_object_set_new(request, "admin", json_true());
    /* the login password is stdin's first line, the new one the next */
    int rc = ctl->data_dir ? CTL_OK : ctl_authorize(ctl, request);
    if (rc == CTL_OK && !ctl->data_dir && admin && !strcmp(action, "add_user")
        && !json_object_get(request, "auth_token"))
        json_object_set_new(request, "action", json_string("add_first_admin"));
    if (rc == CTL_OK && secret)
        rc = add_secret(args, name, request);
    json_t *reply = rc == CTL_OK ? perform(ctl, request, &rc) : NULL;
    json_decref(request);
    if (!reply)
        return rc;
    rc = ctl_check_reply(reply);
    if (rc == CTL_DENIED && !ctl->token && !ctl->user)
        ctl_warn("give an administrator's token (--token, KEEL_TOKEN, or --user NAME); without one,"
                 " only the first administrator can be added, from this machine, while none exists");
    if (rc == CTL_OK && ctl->json)
        ctl_print_json(reply);
    else if (rc == CTL_OK)
        ctl_say("%s", json_string_value(json_object_get(reply, "message")));
    json_decref(reply);
    return rc;
}

static int run_add(ctl_t *ctl, const ctl_args_t *args) { return change(ctl, args, "add_user", true); }
static int run_passwd(ctl_t *ctl, const ctl_args_t *args) { return change(ctl, args, "set_password", true); }
static int run_delete(ctl_t *ctl, const ctl_args_t *args) { return change(ctl, args, "delete_user", false); }

/* The table's form of a stored ISO time, or `none`. */
static const char *local_time(json_t *iso, char *buf, size_t len, const char *none)
{
    double at;
    return clock_parse_iso(json_string_value(iso), &at) == 0 ? ctl_time(at, buf, len) : none;
}

static int run_list(ctl_t *ctl, const ctl_args_t *args)
{
    (void)args;
    json_t *request = json_pack("{s:s}", "action", "list_users");
    int rc = ctl->data_dir ? CTL_OK : ctl_authorize(ctl, request);
    json_t *reply = rc == CTL_OK ? perform(ctl, request, &rc) : NULL;
    json_decref(request);
    if (!reply)
        return rc;
    rc = ctl_check_reply(reply);
    json_t *users = json_object_get(reply, "users");
    if (rc == CTL_OK && ctl->json) {
        ctl_print_json(json_is_array(users) ? users : json_array());
    } else if (rc == CTL_OK) {
        json_t *rows = json_array();
        size_t i;
        json_t *u;
        json_array_foreach(users, i, u) {
            char created[32], last[32];
            json_array_append_new(rows, json_pack("[s,s,s,s]", json_string_value(json_object_get(u, "user_id")),
                                                  json_is_true(json_object_get(u, "admin")) ? "yes" : "no",
                                                  local_time(json_object_get(u, "created_at"), created,
                                                             sizeof created, "-"),
                                                  local_time(json_object_get(u, "last_login"), last,
                                                             sizeof last, "never")));
        }
        static const char *header[] = { "USER", "ADMIN", "CREATED", "LAST LOGIN" };
        ctl_table(header, 4, rows);
        json_decref(rows);
    }
    json_decref(reply);
    return rc;
}

/* ---- the commands ------------------------------------------------------------ */

#define HOW \
    "Through the running SecurityGateway with an administrator's token (--token,\n" \
    "KEEL_TOKEN, or --user NAME with that user's password on stdin's first line);\n" \
    "with --data-dir DIR, on DIR's files instead, only while SecurityGateway is\n" \
    "stopped."

static const ctl_option_t add_options[] = {
    { "admin", 0, NULL, "make the user an administrator" },
    { "password-stdin", 0, NULL, "read the password from stdin (one line)" },
    { "legacy-sha256", 0, NULL, "read an original agent's SHA-256 hex hash from stdin instead" },
    { NULL, 0, NULL, NULL },
};
static const ctl_option_t passwd_options[] = {
    { "password-stdin", 0, NULL, "read the new password from stdin (one line)" },
    { "legacy-sha256", 0, NULL, "read an original agent's SHA-256 hex hash from stdin instead" },
    { NULL, 0, NULL, NULL },
};

static const ctl_command_t add_command = {
    .name = "add", .operands = "NAME", .summary = "add a user (--admin: an administrator)",
    .description =
        "Adds NAME with the password read from stdin.  " HOW "\n"
        "The first administrator of a fresh install needs no token: SecurityGateway\n"
        "accepts `user add NAME --admin --password-stdin` from this machine (loopback)\n"
        "while no administrator exists.  Or, before the first start:\n"
        "`keelctl --data-dir DIR user add NAME --admin --password-stdin`.",
    .options = add_options, .min_operands = 1, .max_operands = 1, .run = run_add,
};
static const ctl_command_t passwd_command = {
    .name = "passwd", .operands = "NAME", .summary = "set a user's password; ends the user's sessions",
    .description = "Sets NAME's password from stdin and ends every session NAME had.  " HOW,
    .options = passwd_options, .min_operands = 1, .max_operands = 1, .run = run_passwd,
};
static const ctl_command_t delete_command = {
    .name = "delete", .operands = "NAME", .summary = "delete a user and end the user's sessions",
    .description = "Deletes NAME and ends its sessions; the last administrator cannot be deleted.  " HOW,
    .min_operands = 1, .max_operands = 1, .run = run_delete,
};
static const ctl_command_t list_command = {
    .name = "list", .operands = "", .summary = "the users, administrators marked",
    .description = "Every user: whether an administrator, when created, when last logged in.  " HOW,
    .run = run_list,
};
static const ctl_command_t *const user_subcommands[] = {
    &add_command, &passwd_command, &delete_command, &list_command, NULL,
};

const ctl_command_t ctl_user_command = {
    .name = "user",
    .operands = "",
    .summary = "SecurityGateway's users: add, passwd, delete, list",
    .subcommands = user_subcommands,
};
