/*  errors: the ErrorBus from the command line.  `errors` shows the newest
 *  events (filtered by agent or severity), `--follow` keeps printing new
 *  ones as they are stored (it asks for events after the last id seen, so
 *  none is shown twice or skipped), and `errors groups` shows the grouped
 *  fingerprints, most frequent first. */
#include "ctl.h"
#include "clock.h"

#include <getopt.h>
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

static json_t *ask(ctl_t *ctl, const char *action, json_t *data)
{
    json_t *request = json_pack("{s:s, s:o}", "action", action, "data", data);
    json_t *reply = ctl_call(ctl, ERRORBUS_PORT, request);
    json_decref(request);
    if (reply && strcmp(json_string_value(json_object_get(reply, "status")) ?: "", "success")) {
        fprintf(stderr, "keelctl: %s\n",
                json_string_value(json_object_get(reply, "message")) ?: "ErrorBus refused the request");
        json_decref(reply);
        return NULL;
    }
    return reply;
}

static const char *field(json_t *row, const char *key)
{
    return json_string_value(json_object_get(row, key)) ?: "";
}

/* A table for the first screen; plain lines while following, so output
 * appended later needs no realignment. */
static void print_rows(ctl_t *ctl, json_t *rows, bool as_table)
{
    json_t *table = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (ctl->json) {
            char *text = json_dumps(row, JSON_COMPACT);
            puts(text ? text : "{}");
            free(text);
            continue;
        }
        char when[40], id[32];
        clock_iso_local(json_number_value(json_object_get(row, "timestamp")), when, sizeof when);
        when[19] = '\0';
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(row, "id")));
        if (as_table)
            json_array_append_new(table, json_pack("[s,s,s,s,s,s]", id, when, field(row, "level"),
                                                   field(row, "agent"), field(row, "error_type"),
                                                   field(row, "message")));
        else
            printf("%s  %s  %s  %s  %s  %s\n", id, when, field(row, "level"), field(row, "agent"),
                   field(row, "error_type"), field(row, "message"));
    }
    static const char *cols[] = { "ID", "TIME", "LEVEL", "AGENT", "TYPE", "MESSAGE" };
    if (as_table && !ctl->json)
        ctl_table(cols, 6, table);
    json_decref(table);
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

static json_t *filter(const char *agent, const char *severity, int limit)
{
    json_t *data = json_pack("{s:i}", "limit", limit);
    if (agent)
        json_object_set_new(data, "agent", json_string(agent));
    if (severity)
        json_object_set_new(data, "severity", json_string(severity));
    return data;
}

static int follow(ctl_t *ctl, const char *agent, const char *severity, long last)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!interrupted) {
        json_t *data = filter(agent, severity, 1000);
        json_object_set_new(data, "after_id", json_integer(last));
        json_t *reply = ask(ctl, "get_errors", data);
        if (!reply)
            return 1;
        json_t *rows = json_object_get(reply, "data");
        print_rows(ctl, rows, false);
        last = max_id(rows, last);
        json_decref(reply);
        usleep(500000);
    }
    return 0;
}

static int tail(ctl_t *ctl, int argc, char **argv)
{
    static struct option longopts[] = {
        { "agent", required_argument, NULL, 'a' },
        { "severity", required_argument, NULL, 's' },
        { "limit", required_argument, NULL, 'n' },
        { "follow", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    const char *agent = NULL, *severity = NULL;
    int limit = 20, c;
    bool follow_on = false;
    optind = 0;
    while ((c = getopt_long(argc + 1, argv - 1, "a:s:n:f", longopts, NULL)) != -1) {
        switch (c) {
        case 'a': agent = optarg; break;
        case 's': severity = optarg; break;
        case 'n': limit = atoi(optarg); break;
        case 'f': follow_on = true; break;
        default: return 2;
        }
    }
    if (limit < 1) {
        fprintf(stderr, "keelctl: --limit must be a positive number\n");
        return 2;
    }
    json_t *reply = ask(ctl, "get_errors", filter(agent, severity, limit));
    if (!reply)
        return 1;
    json_t *rows = reversed(json_object_get(reply, "data"));
    print_rows(ctl, rows, true);
    long last = max_id(rows, 0);
    json_decref(rows);
    json_decref(reply);
    return follow_on ? follow(ctl, agent, severity, last) : 0;
}

static int groups(ctl_t *ctl, int argc, char **argv)
{
    bool across = argc > 1 && !strcmp(argv[1], "--across-sources");
    json_t *reply = ask(ctl, "get_error_groups", json_pack("{s:i, s:b}", "limit", 50,
                                                           "across_sources", across));
    if (!reply)
        return 1;
    json_t *rows = json_object_get(reply, "data");
    if (ctl->json) {
        ctl_print_json(rows);
    } else {
        json_t *table = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            char count[32], last[40];
            snprintf(count, sizeof count, "%lld",
                     (long long)json_integer_value(json_object_get(row, "count")));
            clock_iso_local(json_number_value(json_object_get(row, "last_seen")), last, sizeof last);
            last[19] = '\0';
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
    return 0;
}

static int run(ctl_t *ctl, int argc, char **argv)
{
    if (argc > 0 && !strcmp(argv[0], "groups"))
        return groups(ctl, argc, argv);
    return tail(ctl, argc, argv);
}

const ctl_command_t ctl_errors_command = {
    "errors",
    "errors [--agent A] [--severity S] [--limit N] [--follow] | errors groups [--across-sources]",
    run,
};
