/*  errors: the ErrorBus from the command line.  `errors` shows the newest
 *  events (filtered by agent or severity), `--follow` keeps printing new
 *  ones as they are stored (it asks for events after the last id seen, so
 *  none is shown twice or skipped), and `errors groups` shows the grouped
 *  fingerprints, most frequent first. */
#include "ctl.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRORBUS_PORT 7003

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* The reply of an ErrorBus request (data is consumed), or NULL with *rc
 * set. */
static json_t *ask(ctl_t *ctl, const char *action, json_t *data, int *rc)
{
    json_t *request = json_pack("{s:s, s:o}", "action", action, "data", data);
    json_t *reply = ctl_call(ctl, ERRORBUS_PORT, request, ctl_timeout(ctl, CTL_TIMEOUT_MS));
    json_decref(request);
    *rc = reply ? ctl_check_reply(reply) : CTL_UNREACHABLE;
    if (*rc != CTL_OK) {
        json_decref(reply);
        return NULL;
    }
    return reply;
}

static const char *field(json_t *row, const char *key)
{
    return json_string_value(json_object_get(row, key)) ?: "";
}

/* --json while following: one array, written as events arrive and closed
 * when keelctl is stopped, so the output is still one JSON document. */
typedef struct {
    bool json, table, first;
} printer_t;

static void print_rows(printer_t *p, json_t *rows)
{
    json_t *table = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (p->json) {
            char *text = json_dumps(row, JSON_COMPACT | JSON_ENSURE_ASCII);
            printf("%s%s", p->first ? "[\n  " : ",\n  ", text ? text : "{}");
            p->first = false;
            free(text);
            continue;
        }
        char when[32], id[32];
        ctl_time(json_number_value(json_object_get(row, "timestamp")), when, sizeof when);
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(row, "id")));
        if (p->table)
            json_array_append_new(table, json_pack("[s,s,s,s,s,s]", id, when, field(row, "level"),
                                                   field(row, "agent"), field(row, "error_type"),
                                                   field(row, "message")));
        else
            ctl_say("%s  %s  %s  %s  %s  %s", id, when, field(row, "level"), field(row, "agent"),
                    field(row, "error_type"), field(row, "message"));
    }
    static const char *cols[] = { "ID", "TIME", "LEVEL", "AGENT", "TYPE", "MESSAGE" };
    if (p->table && !p->json)
        ctl_table(cols, 6, table);
    json_decref(table);
    fflush(stdout);
}

static void close_json(printer_t *p)
{
    if (p->json)
        printf("%s", p->first ? "[]\n" : "\n]\n");
    fflush(stdout);
}

/* Rows arrive newest first; print oldest first, like a log. */
static json_t *reversed(json_t *rows)
{
    json_t *out = json_array();
    for (size_t i = json_array_size(rows); i > 0; i--)
        json_array_append(out, json_array_get(rows, i - 1));
    return out;
}

static long max_id(json_t *rows, long current)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        long id = (long)json_integer_value(json_object_get(row, "id"));
        if (id > current)
            current = id;
    }
    return current;
}

static json_t *filter(const char *agent, const char *severity, long limit)
{
    json_t *data = json_pack("{s:I}", "limit", (json_int_t)limit);
    if (agent)
        json_object_set_new(data, "agent", json_string(agent));
    if (severity)
        json_object_set_new(data, "severity", json_string(severity));
    return data;
}

static int follow(ctl_t *ctl, printer_t *p, const char *agent, const char *severity, long last)
{
    p->table = false;
    int rc = CTL_OK;
    while (!interrupted) {
        json_t *data = filter(agent, severity, 1000);
        json_object_set_new(data, "after_id", json_integer(last));
        json_t *reply = ask(ctl, "get_errors", data, &rc);
        if (!reply) {
            if (interrupted)    /* the signal cut the request short: a normal end */
                rc = CTL_OK;
            break;
        }
        json_t *rows = json_object_get(reply, "data");
        print_rows(p, rows);
        last = max_id(rows, last);
        json_decref(reply);
        usleep(500000);
    }
    return rc;
}

static int run_tail(ctl_t *ctl, const ctl_args_t *args)
{
    const char *agent = ctl_option(args, "agent"), *severity = ctl_option(args, "severity");
    long limit;
    if (ctl_option_long(args, "limit", 20, 1, 10000, &limit) < 0)
        return CTL_USAGE;
    bool following = ctl_option(args, "follow") != NULL;
    if (following) {            /* before anything is shown: a stop then ends the JSON array */
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
    int rc;
    json_t *reply = ask(ctl, "get_errors", filter(agent, severity, limit), &rc);
    if (!reply)
        return rc;
    printer_t p = { ctl->json, true, true };
    json_t *rows = reversed(json_object_get(reply, "data"));
    print_rows(&p, rows);
    long last = max_id(rows, 0);
    json_decref(rows);
    json_decref(reply);
    if (following)
        rc = follow(ctl, &p, agent, severity, last);
    close_json(&p);
    return rc;
}

static int run_groups(ctl_t *ctl, const ctl_args_t *args)
{
    bool across = ctl_option(args, "across-sources") != NULL;
    int rc;
    json_t *reply = ask(ctl, "get_error_groups", json_pack("{s:i, s:b}", "limit", 50,
                                                           "across_sources", across), &rc);
    if (!reply)
        return rc;
    json_t *rows = json_object_get(reply, "data");
    if (ctl->json) {
        ctl_print_json(json_is_array(rows) ? rows : json_array());
    } else {
        json_t *table = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            char count[32], last[32];
            snprintf(count, sizeof count, "%lld",
                     (long long)json_integer_value(json_object_get(row, "count")));
            ctl_time(json_number_value(json_object_get(row, "last_seen")), last, sizeof last);
            json_array_append_new(table, json_pack("[s,s,s,s,s]", count,
                json_string_value(json_object_get(row, across ? "agents" : "agent")) ?: "",
                json_string_value(json_object_get(row, "error_type")) ?: "", last,
                json_string_value(json_object_get(row, "pattern")) ?: ""));
        }
        static const char *cols[] = { "COUNT", "AGENT", "TYPE", "LAST SEEN", "PATTERN" };
        ctl_table(cols, 5, table);
        json_decref(table);
    }
    json_decref(reply);
    return CTL_OK;
}

static const ctl_option_t tail_options[] = {
    { "agent", 'a', "NAME", "only this agent's events" },
    { "severity", 's', "LEVEL", "only events of this severity (e.g. error, critical)" },
    { "limit", 'n', "N", "how many of the newest events (default 20)" },
    { "follow", 'f', NULL, "keep printing new events as they are stored, until interrupted" },
    { NULL, 0, NULL, NULL },
};

static const ctl_option_t groups_options[] = {
    { "across-sources", 0, NULL, "group the same error from different agents together" },
    { NULL, 0, NULL, NULL },
};

static const ctl_command_t groups_command = {
    .name = "groups",
    .operands = "",
    .summary = "grouped error fingerprints, most frequent first",
    .description =
        "ErrorBus's groups of events with the same fingerprint, the 50 most frequent:\n"
        "how many, which agent (or agents), the type, when last seen, the pattern.",
    .options = groups_options,
    .run = run_groups,
};

static const ctl_command_t *const errors_subcommands[] = { &groups_command, NULL };

const ctl_command_t ctl_errors_command = {
    .name = "errors",
    .operands = "",
    .summary = "the newest ErrorBus events, or their groups (errors groups)",
    .description =
        "The newest events stored by ErrorBus, oldest first, filtered by agent or\n"
        "severity.  With --follow, new events are printed as they are stored, none twice\n"
        "or skipped, until keelctl is interrupted; with --json as well, the events form\n"
        "one JSON array, closed when keelctl stops.",
    .options = tail_options,
    .run = run_tail,
    .subcommands = errors_subcommands,
};
