/*  ctl: what every keelctl command shares: the command table each command
 *  declares (args.c parses every command line from it), where the services
 *  are and how to call them with an administrator's token (ctl.c), and how
 *  to print for people, every string escaped, or one JSON document for
 *  scripts (print.c). */
#ifndef KEEL_CTL_H
#define KEEL_CTL_H
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* Exit codes, documented in keelctl(1). */
enum {
    CTL_OK = 0,             /* done; for status/health: everything up */
    CTL_FAILED = 1,         /* done, and found a problem or was refused */
    CTL_USAGE = 2,          /* the command line is wrong */
    CTL_UNREACHABLE = 3,    /* a service the command needs did not answer */
    CTL_DENIED = 4,         /* an administrator's token was needed, or refused */
};

/* How long a command waits for an answer unless it or --timeout says otherwise. */
#define CTL_TIMEOUT_MS 2000

typedef struct {
    config_t *config;
    const char *host;           /* --host, default 127.0.0.1 */
    bool json;                  /* --json */
    int timeout_ms;             /* --timeout, or 0: the command's own default */
    const char *data_dir;       /* --data-dir on the command line (not the environment), or NULL */
    const char *token;          /* --token, else KEEL_TOKEN, or NULL */
    const char *user;           /* --user: log in as this user, password on stdin */
    char *session;              /* the session this run logged in with; logged out at exit */
} ctl_t;

/* ---- the command table (args.c) ---------------------------------------- */

typedef struct {
    const char *name;           /* the long name: "agent" for --agent */
    char short_name;            /* 'a' for -a, or 0 */
    const char *arg;            /* the argument's name in the help ("NAME"); NULL for a flag */
    const char *help;           /* one line */
} ctl_option_t;

typedef struct ctl_args_t ctl_args_t;
typedef struct ctl_command_t ctl_command_t;

struct ctl_command_t {
    const char *name;
    const char *operands;               /* "NAME", "[SERVICE...]", or "" */
    const char *summary;                /* one line, for `keelctl --help` */
    const char *description;            /* for `keelctl COMMAND --help`, or NULL */
    const ctl_option_t *options;        /* ends with { NULL }, or NULL */
    int min_operands, max_operands;     /* max -1: any number */
    int (*run)(ctl_t *ctl, const ctl_args_t *args);    /* NULL: needs a subcommand */
    const ctl_command_t *const *subcommands;            /* NULL-terminated, or NULL */
    bool local;                         /* calls no service: no CURVE set-up */
};

#define CTL_MAX_GIVEN 32

struct ctl_args_t {
    int argc;                   /* operands after the command's words */
    char **argv;
    char **words;               /* owned: the words of the line, argv points in */
    int ngiven;
    struct { const char *name, *value; } given[CTL_MAX_GIVEN];
};

/* Parses the whole command line: global options into ctl, the command (and
 * subcommand) into *command, its options and operands into args.  Returns
 * -1 when the command is to run, else the exit code of a run that ends
 * here (--help, --version: 0, having printed; a usage error: 2). */
int ctl_args_parse(ctl_t *ctl, int argc, char **argv, const ctl_command_t *const *commands,
                   const ctl_command_t **command, ctl_args_t *args);
void ctl_args_release(ctl_args_t *args);
/* An option's value ("" for a flag), the last one given; NULL if absent. */
const char *ctl_option(const ctl_args_t *args, const char *name);
/* An integer option in [min, max], or fallback when absent; -1 (printed)
 * when it is not such a number. */
int ctl_option_long(const ctl_args_t *args, const char *name, long fallback, long min, long max,
                    long *out);

/* ---- calling the services (ctl.c) -------------------------------------- */

/* tcp://host:(base + port_offset) */
void ctl_endpoint(ctl_t *ctl, int base_port, char *buf, size_t len);
/* --timeout, else the command's default. */
int ctl_timeout(ctl_t *ctl, int default_ms);
/* Calls a Keel service; NULL (the reason printed) when it did not answer. */
json_t *ctl_call(ctl_t *ctl, int base_port, json_t *request, int timeout_ms);
/* For a slow request (Argon2id): a health request with the usual timeout
 * first, so a service that is down is reported at once, then `request`
 * with slow_ms. */
json_t *ctl_call_patient(ctl_t *ctl, int base_port, json_t *request, int slow_ms);
/* Calls n services at once, one deadline for all; replies[i] NULL where
 * the service did not answer.  Requests are borrowed. */
void ctl_call_each(ctl_t *ctl, const int *base_ports, json_t *const *requests, json_t **replies,
                   size_t n, int timeout_ms);
/* Adds `auth_token` to request when keelctl has one: --token, KEEL_TOKEN,
 * a login as --user, else a short JWT signed with the key file when this
 * user can read it (whoever reads it may sign anything).  CTL_OK, or the
 * exit code of a failed login. */
int ctl_authorize(ctl_t *ctl, json_t *request);
/* Ends the session this run logged in with, if any. */
void ctl_logout(ctl_t *ctl);
/* CTL_OK for a success reply; otherwise prints its error and returns
 * CTL_DENIED for a refusal for want of a token, else CTL_FAILED. */
int ctl_check_reply(json_t *reply);
/* The error text of a reply ("error", else "message"), never NULL. */
const char *ctl_reply_error(json_t *reply);
/* One line of a secret from stdin (the newline stripped), echo off on a
 * terminal; 0, or -1 when there is none. */
int ctl_read_secret(const char *prompt, char *buf, size_t len);
/* An agent's state and its reason as the services report it (borrowed;
 * "unknown" and "" when absent).  Every command reads agent state here. */
const char *ctl_agent_state(json_t *record, const char **reason);

/* ---- printing (print.c) ------------------------------------------------ */

/* A copy of text fit for a terminal (caller frees): control characters,
 * C1 controls, invalid UTF-8, bidirectional controls and line separators
 * become \n, \t, \r, \xNN or \u{NNNN}, so what an agent sent can neither
 * drive the terminal nor reorder what is shown around it. */
char *ctl_escape(const char *text);
/* A line on stdout, escaped after formatting. */
void ctl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "keelctl: ..." on stderr, escaped after formatting. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Rows (arrays of strings) under a header, escaped, columns padded. */
void ctl_table(const char *const *header, size_t ncols, json_t *rows);
/* One JSON document for scripts. */
void ctl_print_json(json_t *value);
/* Seconds as "3d 4h", "12m 5s", "4.2s". */
char *ctl_duration(double seconds, char *buf, size_t len);
/* Unix seconds as local "2025-01-31 14:05:09"; "-" for 0. */
char *ctl_time(double unix_s, char *buf, size_t len);

extern const ctl_command_t ctl_status_command;
extern const ctl_command_t ctl_health_command;
extern const ctl_command_t ctl_agents_command;
extern const ctl_command_t ctl_agent_command;
extern const ctl_command_t ctl_migrate_command;
extern const ctl_command_t ctl_errors_command;
extern const ctl_command_t ctl_reload_command;
extern const ctl_command_t ctl_user_command;
extern const ctl_command_t ctl_certs_command;
extern const ctl_command_t ctl_resources_command;
/* `migrate state` and `migrate rollback`, subcommands of `migrate`. */
extern const ctl_command_t ctl_migrate_state_command;
extern const ctl_command_t ctl_migrate_rollback_command;
#endif
