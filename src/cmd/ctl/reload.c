/*  reload: asks each service to re-read its configuration, e.g. after
 *  switching a module between unified and delegate mode.  The request goes
 *  to each service's own ZMQ port (the `reload` action, administrators
 *  only), so it reaches the service wherever it runs, at --port-offset,
 *  and whichever process runs it: two keeld sharing a data directory, one
 *  per service, are both reached.  The services are asked for health first,
 *  all at once, so the ones not running are reported within the short
 *  deadline; the live ones then reload in parallel. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

#define NSERVICES 5
#define PING_TIMEOUT_MS 1000
#define RELOAD_TIMEOUT_MS 10000

typedef struct {
    const char *name, *title;
    int port;
} target_t;

static const target_t services[NSERVICES] = {
    { "core", "CoreOrchestrator", 7000 }, { "resource", "ResourceManager", 7001 },
    { "observability", "ObservabilityHub", 7002 }, { "errorbus", "ErrorBus", 7003 },
    { "security", "SecurityGateway", 7005 },
};

/* The services the operands name, in the table's order (all when none);
 * how many, or -1 for an unknown name. */
static int choose(const ctl_args_t *args, const target_t **chosen)
{
    bool named[NSERVICES] = { false };
    for (int a = 0; a < args->argc; a++) {
        int found = -1;
        for (int i = 0; i < NSERVICES; i++)
            if (!strcmp(args->argv[a], services[i].name) || !strcmp(args->argv[a], services[i].title))
                found = i;
        if (found < 0) {
            ctl_warn("reload: unknown service '%s' (core, resource, observability, errorbus, security)",
                     args->argv[a]);
            return -1;
        }
        named[found] = true;
    }
    int n = 0;
    for (int i = 0; i < NSERVICES; i++)
        if (args->argc == 0 || named[i])
            chosen[n++] = &services[i];
    return n;
}

/* Sends `action` to the targets at once; replies[i] NULL where none came. */
static void ask_all(ctl_t *ctl, const target_t **targets, int n, json_t **requests, json_t **replies,
                    int timeout_ms)
{
    int ports[NSERVICES];
    for (int i = 0; i < n; i++)
        ports[i] = targets[i]->port;
    ctl_call_each(ctl, ports, requests, replies, (size_t)n, timeout_ms);
}

static void report(ctl_t *ctl, const target_t **targets, int n, json_t **replies, const bool *alive)
{
    json_t *results = json_array(), *rows = json_array();
    for (int i = 0; i < n; i++) {
        const char *status = json_string_value(json_object_get(replies[i], "status"));
        const char *result = !alive[i] ? "down" : !replies[i] ? "no answer"
                             : status && !strcmp(status, "success") ? "reloaded" : "refused";
        const char *message = !alive[i] ? "not running (no answer to ping)"
                              : !replies[i] ? "no answer to reload"
                              : !strcmp(result, "reloaded") ? json_string_value(json_object_get(replies[i], "message"))
                              : ctl_reply_error(replies[i]);
        int port = config_port(ctl->config, targets[i]->port);
        char port_text[16];
        snprintf(port_text, sizeof port_text, "%d", port);
        json_array_append_new(rows, json_pack("[s,s,s,s]", targets[i]->title, port_text, result,
                                              message ? message : ""));
        json_array_append_new(results, json_pack("{s:s, s:i, s:s, s:s}", "service", targets[i]->title,
                                                 "port", port, "result", result, "message",
                                                 message ? message : ""));
    }
    if (ctl->json) {
        ctl_print_json(results);
    } else {
        static const char *header[] = { "SERVICE", "PORT", "RESULT", "MESSAGE" };
        ctl_table(header, 4, rows);
    }
    json_decref(results);
    json_decref(rows);
}

static int run(ctl_t *ctl, const ctl_args_t *args)
{
    const target_t *targets[NSERVICES], *live[NSERVICES];
    int n = choose(args, targets);
    if (n < 0)
        return CTL_USAGE;
    json_t *requests[NSERVICES], *replies[NSERVICES] = { NULL }, *live_replies[NSERVICES];
    for (int i = 0; i < n; i++)
        requests[i] = json_pack("{s:s}", "action", "ping");
    ask_all(ctl, targets, n, requests, replies, ctl_timeout(ctl, PING_TIMEOUT_MS));
    bool alive[NSERVICES];
    int m = 0, rc = CTL_OK;
    json_t *live_requests[NSERVICES];
    for (int i = 0; i < n; i++) {
        alive[i] = replies[i] != NULL;
        json_decref(replies[i]);
        replies[i] = NULL;
        json_object_set_new(requests[i], "action", json_string("reload"));
        if (alive[i] && rc == CTL_OK)
            rc = ctl_authorize(ctl, requests[i]);
        if (alive[i]) {
            live[m] = targets[i];
            live_requests[m++] = requests[i];
        }
    }
    if (m == 0) {
        ctl_warn("reload: no service answered at %s (port offset %ld)", ctl->host,
                 config_int(ctl->config, "port_offset", 0));
        rc = CTL_UNREACHABLE;
    }
    if (rc == CTL_OK) {
        ask_all(ctl, live, m, live_requests, live_replies, ctl_timeout(ctl, RELOAD_TIMEOUT_MS));
        for (int i = 0, j = 0; i < n; i++)
            replies[i] = alive[i] ? live_replies[j++] : NULL;
        report(ctl, targets, n, replies, alive);
        for (int i = 0; i < n; i++) {
            const char *status = json_string_value(json_object_get(replies[i], "status"));
            if (alive[i] && !(status && !strcmp(status, "success")))
                rc = replies[i] && !strncmp(ctl_reply_error(replies[i]), "Forbidden", 9) ? CTL_DENIED
                     : rc == CTL_DENIED ? rc : CTL_FAILED;
        }
    }
    for (int i = 0; i < n; i++) {
        json_decref(requests[i]);
        json_decref(replies[i]);
    }
    return rc;
}

const ctl_command_t ctl_reload_command = {
    .name = "reload",
    .operands = "[SERVICE...]",
    .summary = "make the running services re-read their configuration",
    .description =
        "Asks each service (all five, or those named: core, resource, observability,\n"
        "errorbus, security) on its own ZMQ port to read its configuration again, as\n"
        "SIGHUP does, e.g. after switching a module between unified and delegate mode.\n"
        "Needs an administrator's token (--token, KEEL_TOKEN or --user).  Services that\n"
        "are not running are shown as down and skipped; a configuration with errors is\n"
        "refused and the old one stays.  Exit 0 when every running service reloaded,\n"
        "1 when one refused, 3 when none answered, 4 without a valid token.",
    .min_operands = 0,
    .max_operands = -1,
    .run = run,
};
