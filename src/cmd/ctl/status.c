/*  status: the five services at a glance.  All five are asked at once, with
 *  one deadline (1 s unless --timeout says otherwise), so five services that
 *  are down cost one timeout, not five.  Each answers the health action on
 *  its own port with its pid, version, ports, uptime and request count. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

#define STATUS_TIMEOUT_MS 1000
#define NSERVICES 5

static const struct { const char *title; int port; } services[NSERVICES] = {
    { "CoreOrchestrator", 7000 }, { "ResourceManager", 7001 },
    { "ObservabilityHub", 7002 }, { "ErrorBus", 7003 }, { "SecurityGateway", 7005 },
};

static const char *number_or_dash(json_t *v, const char *fmt, char *buf, size_t len)
{
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, fmt, json_number_value(v));
    return buf;
}

static json_t *row_of(ctl_t *ctl, int i, json_t *reply)
{
    const char *status = reply ? json_string_value(json_object_get(reply, "status")) : NULL;
    json_t *ports = json_object_get(reply, "ports");
    char zmq[16], http[16], pid[16], uptime[32], requests[32];
    snprintf(zmq, sizeof zmq, "%d", config_port(ctl->config, services[i].port));
    snprintf(http, sizeof http, "%d", config_port(ctl->config, services[i].port + 1000));
    if (json_is_integer(json_object_get(ports, "http")))
        snprintf(http, sizeof http, "%lld", (long long)json_integer_value(json_object_get(ports, "http")));
    const char *version = json_string_value(json_object_get(reply, "version"));
    return json_pack("[s,s,s,s,s,s,s,s]", services[i].title, status ? status : "down",
                     number_or_dash(json_object_get(reply, "pid"), "%.0f", pid, sizeof pid),
                     version ? version : "-", zmq, http,
                     reply ? ctl_duration(json_number_value(json_object_get(reply, "uptime")), uptime,
                                          sizeof uptime) : "-",
                     number_or_dash(json_object_get(reply, "requests"), "%.0f", requests, sizeof requests));
}

static int run(ctl_t *ctl, const ctl_args_t *args)
{
    (void)args;
    json_t *requests[NSERVICES], *replies[NSERVICES];
    int ports[NSERVICES];
    for (int i = 0; i < NSERVICES; i++) {
        requests[i] = json_pack("{s:s}", "action", "health");
        ports[i] = services[i].port;
    }
    ctl_call_each(ctl, ports, requests, replies, NSERVICES, ctl_timeout(ctl, STATUS_TIMEOUT_MS));
    json_t *rows = json_array(), *all = json_array();
    int unhealthy = 0;
    for (int i = 0; i < NSERVICES; i++) {
        const char *status = json_string_value(json_object_get(replies[i], "status"));
        unhealthy += !status || strcmp(status, "ok") != 0;
        json_array_append_new(rows, row_of(ctl, i, replies[i]));
        json_array_append_new(all, json_pack("{s:s, s:i, s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}",
                                             "service", services[i].title,
                                             "port", config_port(ctl->config, services[i].port),
                                             "status", status ? status : "down",
                                             "pid", json_object_get(replies[i], "pid"),
                                             "version", json_object_get(replies[i], "version"),
                                             "ports", json_object_get(replies[i], "ports"),
                                             "uptime_s", json_object_get(replies[i], "uptime"),
                                             "requests", json_object_get(replies[i], "requests"),
                                             "health", replies[i]));
        json_decref(requests[i]);
        json_decref(replies[i]);
    }
    if (ctl->json) {
        ctl_print_json(all);
    } else {
        static const char *header[] = { "SERVICE", "STATUS", "PID", "VERSION", "ZMQ", "HTTP", "UPTIME",
                                        "REQUESTS" };
        ctl_table(header, 8, rows);
    }
    json_decref(rows);
    json_decref(all);
    return unhealthy ? CTL_FAILED : CTL_OK;
}

const ctl_command_t ctl_status_command = {
    .name = "status",
    .operands = "",
    .summary = "the five services: status, pid, version, ports, uptime, requests",
    .description =
        "Asks the five services at once on their ZMQ ports (--host, --port-offset) and\n"
        "shows each one's status (ok, starting, stopping, or down when it did not answer\n"
        "within the deadline: 1 s, or --timeout), pid, version, ZMQ and HTTP ports,\n"
        "uptime and requests served.  Exit 0 when all five are ok, else 1.",
    .run = run,
};
